"""Decoder fine-tuning on a tiny MSR-VTT-style fixture: a features pickle in the reference layout,
an MSRVTT_data.json without split fields (json-order split), a small vocab and a fake
`univl.pretrained.bin` in the keys_univl.txt naming at small sizes."""

from __future__ import annotations

import json
import pickle
import re
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from univl_fixture import fake_univl, univl_shapes

from c4c.cli import main
from c4c.captioning.tokenizer import Tokenizer
from c4c.train.caption_data import (
    CaptionBatch,
    caption_loss,
    encode_caption,
    load_annotations,
)
from c4c.train.decoder import DecoderTrainConfig, build_model, read_metadata
from c4c.train.vocab import SPECIALS, build_vocab, write_vocab

KEYS_UNIVL = Path(__file__).resolve().parent / "data" / "keys_univl.txt"
COLOURS = ("red", "green", "blue", "yellow")
SHAPES = ("ball", "box", "star")
VERBS = ("moves left", "moves right", "spins", "grows")
D = 16  # feature width of the fixture (CLIP's 512 in miniature)


@pytest.mark.skipif(not KEYS_UNIVL.is_file(), reason="tests/data/keys_univl.txt not present")
def test_fixture_follows_the_univl_key_list():
    listed = {}
    for line in KEYS_UNIVL.read_text().splitlines():
        name, shape = line.split("\t")
        listed[name] = tuple(int(x) for x in re.findall(r"\d+", shape))
    assert univl_shapes() == listed


def _caption(rng: np.random.Generator, c: int, s: int, v: int) -> str:
    intro = rng.choice(["a", "the", "a video of a"])
    return f"{intro} {COLOURS[c]} {SHAPES[s]} {VERBS[v]}"


@pytest.fixture(scope="module")
def msrvtt(tmp_path_factory):
    """24 videos: features encode (colour, shape, verb) plus noise; 4 captions each; no split field."""
    root = tmp_path_factory.mktemp("msrvtt")
    rng = np.random.default_rng(0)
    basis = rng.normal(size=(len(COLOURS) + len(SHAPES) + len(VERBS), D)).astype(np.float32)
    feats, videos, sentences = {}, [], []
    for i in range(24):
        c, s, v = i % 4, (i // 4) % 3, (i * 7 // 3) % 4
        n = int(rng.integers(3, 26))  # some longer than max_frames 20
        code = basis[c] + basis[4 + s] + basis[7 + v]
        feats[f"video{i}"] = (code + 0.3 * rng.normal(size=(n, D))).astype(np.float32)
        videos.append({"video_id": f"video{i}", "category": 0, "id": i})
        sentences += [{"video_id": f"video{i}", "caption": _caption(rng, c, s, v), "sen_id": 4 * i + k} for k in range(4)]
    with open(root / "feats.pickle", "wb") as f:
        pickle.dump(feats, f, protocol=pickle.HIGHEST_PROTOCOL)
    (root / "MSRVTT_data.json").write_text(json.dumps({"videos": videos, "sentences": sentences}))
    vocab = build_vocab(x["caption"] for x in sentences)
    write_vocab(vocab, root / "vocab.txt")
    torch.save(fake_univl(len(vocab)), root / "univl.pretrained.bin")
    return root


def test_vocab_keeps_bert_ids_and_covers_captions(msrvtt):
    tok = Tokenizer.from_file(msrvtt / "vocab.txt")
    lines = (msrvtt / "vocab.txt").read_text().splitlines()
    assert lines[:104] == SPECIALS and lines[0] == "[PAD]" and lines[100] == "[UNK]"
    assert (tok.pad_id, tok.unk_id, tok.bos_id, tok.eos_id) == (0, 100, 101, 102)
    assert len(set(lines)) == len(lines)
    ann = load_annotations(msrvtt / "MSRVTT_data.json")
    for caps in ann.captions.values():
        for cap in caps:
            assert tok.unk_id not in tok.encode(cap)
            assert tok.decode(tok.encode(cap)) == cap
    assert tok.unk_id not in tok.encode("a purple hexagon")  # unseen words fall back to pieces


def test_json_order_split_and_split_field(msrvtt, tmp_path):
    ann = load_annotations(msrvtt / "MSRVTT_data.json")
    tr, va, te = (ann.ids(s) for s in ("train", "val", "test"))
    assert tr + va + te == [f"video{i}" for i in range(24)]  # json order, contiguous
    assert len(va) >= 1 and len(te) >= 1 and len(tr) > len(te) > len(va)
    big = {"videos": [{"video_id": f"video{i}"} for i in range(10000)],
           "sentences": [{"video_id": f"video{i}", "caption": "x"} for i in range(10000)]}
    (tmp_path / "big.json").write_text(json.dumps(big))
    ann = load_annotations(tmp_path / "big.json")
    assert [len(ann.ids(s)) for s in ("train", "val", "test")] == [6513, 497, 2990]
    assert ann.ids("val")[0] == "video6513" and ann.ids("test")[0] == "video7010"
    for v, split in zip(big["videos"], ["validate", "train", "test"] * 3334):
        v["split"] = split
    (tmp_path / "big.json").write_text(json.dumps(big))
    ann = load_annotations(tmp_path / "big.json")
    assert ann.ids("val")[:2] == ["video0", "video3"] and ann.ids("train")[0] == "video1"


def test_teacher_forcing_rows_and_loss_conventions(msrvtt):
    tok = Tokenizer.from_file(msrvtt / "vocab.txt")
    inp, tgt, mask = encode_caption(tok, "a red ball moves left " * 5, max_words=8)
    words = tok.encode("a red ball moves left " * 5)[:7]
    assert len(words) == 7 and inp == [101] + words and tgt == words + [102] and mask == [1] * 8
    inp, tgt, mask = encode_caption(tok, "a red ball", max_words=8)
    n = len(tok.encode("a red ball"))
    assert inp[:n + 1] == [101] + tok.encode("a red ball") and inp[n + 1:] == [0] * (7 - n)
    assert tgt[n] == 102 and tgt[n + 1:] == [0] * (7 - n) and mask == [1] * (n + 1) + [0] * (7 - n)
    # loss: "reference" counts padding targets, "ignore" averages over real targets only
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(1, 8, len(tok), generator=g)
    batch = CaptionBatch(torch.zeros(1, 1, D), torch.ones(1, 1), torch.zeros(1, dtype=torch.long),
                         torch.tensor([inp]), torch.tensor([mask], dtype=torch.float), torch.tensor([tgt]))
    ce = F.cross_entropy(logits[0], torch.tensor(tgt), reduction="none")
    assert torch.allclose(caption_loss(logits, batch, "reference"), ce.mean())
    assert torch.allclose(caption_loss(logits, batch, "ignore"), ce[: n + 1].mean())


def test_univl_init_loads_matching_layers(msrvtt):
    univl = torch.load(msrvtt / "univl.pretrained.bin", weights_only=True)
    vocab_size = len(Tokenizer.from_file(msrvtt / "vocab.txt"))
    model, report = build_model(DecoderTrainConfig(te_layers=1, td_layers=3), D, vocab_size,
                                init=msrvtt / "univl.pretrained.bin")
    assert model.cfg.hidden == 32 and model.cfg.intermediate == 64  # widths read off the file
    sd = model.state_dict()
    for key in ("visual.encoder.layer.0.attention.self.query.weight", "decoder.decoder.layer.2.enc_attn.att.value.weight",
                "decoder.embeddings.word_embeddings.weight", "decoder.classifier.cls.predictions.bias"):
        assert key in report.loaded and torch.equal(sd[key], univl[key])
    assert "visual.encoder.layer.1.attention.self.query.weight" not in sd  # paper's 1-layer TE
    skipped = {k for k, _, _ in report.skipped_shape}
    assert {"normalize_video.visual_norm2d.weight", "visual.embeddings.word_embeddings.weight"} <= skipped
    assert not torch.equal(sd["normalize_video.visual_norm2d.weight"][:D], univl["normalize_video.visual_norm2d.weight"][:D])


def test_train_decoder_cli_on_msrvtt_layout(msrvtt, tmp_path, capsys):
    out = tmp_path / "dec.safetensors"
    rc = main(["train", "decoder", "--features", str(msrvtt / "feats.pickle"),
               "--annotations", str(msrvtt / "MSRVTT_data.json"), "--vocab", str(msrvtt / "vocab.txt"),
               "--out", str(out), "--init", str(msrvtt / "univl.pretrained.bin"), "--seed", "3",
               "--epochs", "4", "--lr", "3e-3", "--batch-size", "16", "--captions-per-video", "0",
               "--te-layers", "1", "--td-layers", "3", "--threads", "1", "--val-last", "2", "--quiet"])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "loaded from the file:" in printed
    assert "visual.encoder.layer.0: 16 tensor(s)" in printed
    for i in range(3):
        assert f"decoder.decoder.layer.{i}: 26 tensor(s)" in printed
    meta = read_metadata(out)
    prov = meta["provenance"]
    losses = [h["loss"] for h in prov["history"]]
    assert len(losses) == 4 and losses[-1] < losses[0]
    ciders = [h["val_cider"] for h in prov["history"]]
    assert ciders[:2] == [None, None] and None not in ciders[2:]  # --val-last 2: only epochs 3 and 4 validated
    assert prov["epoch"] == 3 + int(np.argmax(ciders[2:])) and prov["val_cider"] == max(ciders[2:])
    assert prov["hyper"]["seed"] == 3 and prov["init_loaded"] > 0
    assert prov["data"]["train_videos"] == len(load_annotations(msrvtt / "MSRVTT_data.json").ids("train"))
    assert meta["mask"] == "frames" and meta["max_frames"] == 20


def test_trimmed_batches_give_the_same_loss(msrvtt):
    from c4c.train.caption_data import batch_logits
    from c4c.train.decoder import load_train_data
    data = load_train_data(msrvtt / "feats.pickle", msrvtt / "MSRVTT_data.json", msrvtt / "vocab.txt")
    model, _ = build_model(DecoderTrainConfig(hidden=32, ffn=64), data.video_dim, len(data.tokenizer))
    model.eval()  # no dropout: the two passes must see the same function
    train = data.split("train", model.cfg)
    # batches of one video (3 captions); take one whose video has fewer than 20 frames
    full, cut = next((f, c) for f, c in zip(train.batches(3, trim=False, per_video=3),
                                            train.batches(3, trim=True, per_video=3)) if c.video.shape[1] < 20)
    assert full.video.shape[1] == 20 and cut.video.shape[1] == int(full.video_mask.sum(1).max())
    assert cut.input_ids.shape[1] == int(full.decoder_mask.sum(1).max()) < full.input_ids.shape[1] == 48
    assert torch.equal(full.target_ids[:, : cut.target_ids.shape[1]], cut.target_ids)
    with torch.no_grad():
        a = caption_loss(batch_logits(model, full), full, "ignore")
        b = caption_loss(batch_logits(model, cut), cut, "ignore")
    assert torch.allclose(a, b, atol=1e-5)


def test_bucketed_epoch_has_the_same_rows_with_less_padding(msrvtt):
    from c4c.train.decoder import load_train_data
    data = load_train_data(msrvtt / "feats.pickle", msrvtt / "MSRVTT_data.json", msrvtt / "vocab.txt")
    model, _ = build_model(DecoderTrainConfig(hidden=32, ffn=64), data.video_dim, len(data.tokenizer))
    train = data.split("train", model.cfg)

    def rows(bucket):
        out, pad = [], 0
        for b in train.batches(4, torch.Generator().manual_seed(5), per_video=2, bucket=bucket):
            out += [tuple(r) + (0,) * (48 - len(r)) for r in b.target_ids.tolist()]
            pad += int((b.decoder_mask == 0).sum())
        return sorted(out), pad

    plain, pad_plain = rows(0)
    bucketed, pad_bucketed = rows(8)
    assert plain == bucketed and len(plain) == 2 * len(train.video_ids)
    assert pad_bucketed < pad_plain
