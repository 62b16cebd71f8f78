"""The CLIP text tower (c4c/vision/text_tower.py): golden parity of the embeddings, CLIP's BPE ids
against CLIP's own SimpleTokenizer, the word-level tokenizer and the zoo file written from
`train backbone`'s clip_full.safetensors against the training model's `encode_text`."""

import importlib.util

import numpy as np
import pytest
import torch
from conftest import GOLDEN_DIR, golden_sets

from c4c.checkpoints import load_state_dict, save_safetensors
from c4c.errors import CheckpointError, InputError
from c4c.vision.text_tower import TextTower, _clean, clip_bpe, save_text_tower_from_clip_full

SETS = [s for s in golden_sets() if (s / "clip4clip.bin").is_file()]
HAVE_CLIP = importlib.util.find_spec("clip") is not None


@pytest.mark.skipif(not SETS, reason=f"no golden sets under {GOLDEN_DIR}")
@pytest.mark.parametrize("gset", SETS, ids=lambda p: p.name)
@pytest.mark.parametrize("fp16_on_disk", [True, False])
def test_golden_text_embeddings(gset, fp16_on_disk):
    """`encode_text` of the reference CLIP4Clip (EOT = argmax) on the set's token rows, within 1e-4;
    as stored (mixed fp16/fp32) and after an fp32 round trip through the zoo file."""
    sd = load_state_dict(gset / "clip4clip.bin")
    tower = TextTower(sd, None, source=gset.name)
    if not fp16_on_disk:
        tower = TextTower({k: v.float() for k, v in sd.items()}, None)
    ids = np.load(gset / "clip4clip_inputs.npz")["text_tokens"]
    want = np.load(gset / "clip4clip_golden.npz")["text_emb_fp32"]
    got = tower.encode_ids(torch.as_tensor(ids))
    assert got.shape == want.shape
    assert np.abs(got - want).max() < 1e-4
    # The pooled position is the EOT, the highest id: a row without it is refused.
    with pytest.raises(InputError):
        tower.encode_ids(torch.full((1, ids.shape[1]), 3))


def _simple_tokenizer():
    spec = importlib.util.find_spec("clip")
    path = spec.submodule_search_locations[0] + "/simple_tokenizer.py"
    s = importlib.util.spec_from_file_location("_clip_simple_tokenizer", path)
    module = importlib.util.module_from_spec(s)
    s.loader.exec_module(module)  # alone: the package's __init__ needs torchvision
    return module.SimpleTokenizer()


TEXTS = ["a man is playing a guitar.", "Crème brûlée à la café — naïve façade!", "don't stop   it's WE'LL they've",
         "supercalifragilisticexpialidocious" * 3, "¿Qué pasa? ¡Hola! 日本語のテキスト 中文",
         "&amp; &lt;b&gt; html &quot;x&quot;", "emoji 😀👍🏽 and €100, $5.99; 3.14159", "tabs\tand\nnewlines  ",
         "", "x", "hello-world_foo/bar@baz#qux", "Ångström ﬁnancial ligature Ⅻ", "a" * 200,
         "The QUICK brown fox (jumps) [over] {the} lazy dog...?!", "Ǆemo İstanbul ß ΣΑΣ"]


@pytest.mark.skipif(not HAVE_CLIP, reason="needs the openai-clip package (its BPE file and SimpleTokenizer)")
def test_bpe_ids_equal_clip_simple_tokenizer():
    ref, tok = _simple_tokenizer(), clip_bpe()
    assert len(tok) == 49408
    sot, eot = ref.encoder["<|startoftext|>"], ref.encoder["<|endoftext|>"]
    for text in TEXTS:
        assert tok(_clean(text))["input_ids"] == [sot] + ref.encode(text) + [eot], text


def _tiny_clip_full(tmp_path):
    from c4c.train.clip_model import CLIP, ClipConfig, WordTokenizer
    captions = ["a red ball bounces on the left", "a blue box slides to the right", "two green circles appear"]
    tok = WordTokenizer.from_captions(captions)
    cfg = ClipConfig(image_size=16, patch=8, width=64, layers=1, embed_dim=32, text_width=64, text_layers=2,
                     context=12, vocab_size=len(tok))
    torch.manual_seed(0)
    model = CLIP(cfg).eval()
    path = tmp_path / "clip_full.safetensors"
    save_safetensors({k: v.float() for k, v in model.state_dict().items()}, path,
                     {"format": "c4c-clip-full", "clip_config": cfg.to_dict(), "vocab": tok.words,
                      "provenance": {"model": "test"}})
    return model, tok, cfg, path


def test_word_tower_from_clip_full_matches_encode_text(tmp_path):
    model, tok, cfg, full = _tiny_clip_full(tmp_path)
    entry = save_text_tower_from_clip_full(full, tmp_path / "text_tower.safetensors")
    assert entry["file"] == "text_tower.safetensors" and entry["tokenizer"] == "words" and entry["embed_dim"] == 32
    tower = TextTower.from_file(tmp_path / "text_tower.safetensors")
    assert not any(k.startswith("visual.") for k in load_state_dict(tmp_path / "text_tower.safetensors"))
    texts = ["a red ball bounces", "an unknown word here", "two green circles appear on the left " * 3, ""]
    ids = tower.tokenize(texts)
    want_ids = tok.batch(texts, cfg.context)
    assert torch.equal(ids, want_ids)
    with torch.no_grad():
        want = model.encode_text(want_ids).numpy()
    assert np.abs(tower.encode(texts) - want).max() < 1e-5


def test_refuses_mismatched_vocab(tmp_path):
    _, tok, _, full = _tiny_clip_full(tmp_path)
    sd = load_state_dict(full)
    with pytest.raises(CheckpointError):
        TextTower(sd, "words", tok.words[:-1])
    with pytest.raises(CheckpointError):
        TextTower(sd, "clip-bpe")  # not 49408 embeddings
    with pytest.raises(CheckpointError):
        TextTower({k: v for k, v in sd.items() if k != "text_projection"}, None)


@pytest.mark.skipif(not SETS or not HAVE_CLIP, reason="needs a golden set and the openai-clip package")
def test_import_stores_the_text_tower_of_a_clip4clip_checkpoint(tmp_path):
    """`c4c import --backbone pytorch_model.bin.N` keeps the text tower (CLIP BPE); the zoo grounds captions."""
    import json
    import subprocess
    import sys

    from c4c.pipeline import CaptionSettings, Pipeline
    from c4c.vote.idf import IdfTable
    from c4c.zoo import read_manifest
    gset = SETS[0]
    cfg = json.loads((gset / "config.json").read_text())
    sd = torch.load(gset / "clip4clip.bin", map_location="cpu", weights_only=True)
    # The golden CLIP has a 512-word text vocabulary; a real one has CLIP's 49,408 BPE entries.
    g = torch.Generator().manual_seed(0)
    sd["clip.token_embedding.weight"] = 0.02 * torch.randn(49408, sd["clip.token_embedding.weight"].shape[1], generator=g)
    ckpt = tmp_path / "pytorch_model.bin.1"
    torch.save(sd, ckpt)
    IdfTable.from_captions([["a small red ball"], ["a big blue box"]], source="t").save(tmp_path / "idf.json")
    zoo = tmp_path / "zoo"
    p = subprocess.run([sys.executable, "-m", "c4c", "import", "--out", str(zoo), "--backbone", str(ckpt),
                        "--decoder", str(gset / "decoder.bin"), "--decoder", f"{gset / 'decoder.bin'}:twin",
                        "--heads", str(cfg["num_attention_heads"]), "--vocab", str(gset / "vocab.txt"),
                        "--idf", str(tmp_path / "idf.json")], capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr
    m = read_manifest(zoo)
    assert m["text_tower"]["file"] == "text_tower.safetensors" and m["text_tower"]["tokenizer"] == "clip-bpe"
    tower = TextTower.from_file(zoo / "text_tower.safetensors")
    want = TextTower(sd, "clip-bpe").encode(["a man is cooking."])
    assert np.abs(tower.encode(["a man is cooking."]) - want).max() < 1e-6
    r = Pipeline.from_zoo(zoo, device="cpu").caption(next(gset.glob("*.mp4")),
                                                     CaptionSettings(select="grounding", beam=1, fps_mode="reference"))
    assert all(c.grounding is not None for c in r.captions) and r.select == "grounding"
