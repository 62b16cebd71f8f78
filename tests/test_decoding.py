"""Decoding: KV-cached beam search and greedy reproduce the reference's ids exactly (golden and
end-to-end goldens, three mask conventions), equal the full-prefix reference beam (also on a
random real-size model), and the `decode` CLI gives the same ids through a subprocess."""

import json
import os
import subprocess
import sys
from dataclasses import replace
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import CONVS, MASK_OF, golden_decoder

from c4c.captioning.model import CaptionConfig, CaptionModel, prepare_video
from c4c.cli import main as cli_main
from c4c.captioning.decoding import beam_search, beam_search_reference, greedy
from c4c.captioning.tokenizer import Tokenizer

REPO = Path(__file__).resolve().parents[1]


pytestmark = pytest.mark.usefixtures("one_thread")


@lru_cache(maxsize=4)
def _set(path: Path):
    cfg, model, golden, inputs = golden_decoder(path, ("vocab.txt",))
    return cfg, model, golden, inputs, Tokenizer.from_file(path / "vocab.txt")


def _beam(cfg) -> int:
    return cfg.get("beam_size", 5)


def _special(cfg):
    return dict(bos_id=cfg["special_tokens"]["BOS"], eos_id=cfg["special_tokens"]["EOS"])


def _check_beam(hyp, want, tok, eos):
    assert list(hyp.ids) == want["ids"]
    assert len(hyp.ids) == want["n_steps"]
    assert abs(hyp.score - want["score"]) <= 1e-3
    assert abs(hyp.score - want["final_beams"][0]["score"]) <= 1e-3
    if want["stopped_by_top_beam_eos"]:
        assert hyp.ids[-1] == eos
    assert tok.decode(hyp.ids) == want["text"]


@pytest.mark.parametrize("conv", CONVS)
def test_beam_and_greedy_match_golden(golden_set, conv):
    cfg, model, gj, inp, tok = _set(golden_set)
    video, mask, sp = inp["video_padded"], inp[f"video_mask_{conv}"], _special(cfg)
    beams = beam_search(model, video, mask, beam=_beam(cfg), **sp)  # batched over the videos
    slow = beam_search_reference(model, video, mask, beam=_beam(cfg), **sp)
    greedies = greedy(model, video, mask, **sp)
    for i, v in enumerate(gj["videos"]):
        g = v["per_convention"][conv]
        _check_beam(beams[i], g["beam"], tok, sp["eos_id"])
        _check_beam(slow[i], g["beam"], tok, sp["eos_id"])
        assert list(greedies[i].ids) == g["greedy"]["ids"]
        assert tok.decode(greedies[i].ids) == g["greedy"]["text"]
        one = beam_search(model, video[i:i + 1], mask[i:i + 1], beam=_beam(cfg), **sp)[0]
        assert one.ids == beams[i].ids and abs(one.score - beams[i].score) <= 1e-4


@pytest.mark.parametrize("conv", CONVS)
def test_e2e_decoding_matches_golden(golden_set, conv):
    if not (golden_set / "e2e_golden.json").is_file():
        pytest.skip("set has no end-to-end goldens")
    cfg, model, _, _, tok = _set(golden_set)
    feats = np.load(golden_set / "e2e_features.npz")
    videos = json.loads((golden_set / "e2e_golden.json").read_text())["videos"]
    mcfg = replace(model.cfg, mask=MASK_OF[conv])
    batch = [prepare_video(feats[f"feats_fp32_{j}"], mcfg) for j in range(len(videos))]
    video, mask, sp = torch.cat([b[0] for b in batch]), torch.cat([b[1] for b in batch]), _special(cfg)
    beams = beam_search(model, video, mask, beam=_beam(cfg), **sp)
    greedies = greedy(model, video, mask, **sp)
    checked = 0
    for j, v in enumerate(videos):
        g = v["per_convention"][conv]
        if g["beam"]["robust"]:  # decisions with gaps >= 1e-3: exact (golden README 8)
            _check_beam(beams[j], g["beam"], tok, sp["eos_id"])
            checked += 1
        if g["greedy"]["robust"]:
            assert list(greedies[j].ids) == g["greedy"]["ids"]
            checked += 1
    if not checked:
        pytest.skip("no robust end-to-end entry in this set")


def test_suppress_eos_runs_to_max_words(golden_set):
    cfg, model, _, inp, _ = _set(golden_set)
    sp = _special(cfg)
    video, mask = inp["video_padded"], inp["video_mask_univl"]
    fast = beam_search(model, video, mask, beam=3, max_words=9, suppress_eos=True, **sp)
    slow = beam_search_reference(model, video, mask, beam=3, max_words=9, suppress_eos=True, **sp)
    for f, s in zip(fast, slow):
        assert len(f.ids) == 9 and sp["eos_id"] not in f.ids
        assert f.ids == s.ids and abs(f.score - s.score) <= 1e-4
    for h in greedy(model, video, mask, max_words=9, suppress_eos=True, **sp):
        assert len(h.ids) == 9 and sp["eos_id"] not in h.ids


def _randomize(model: CaptionModel, seed: int) -> CaptionModel:
    """Redraw every weight with spreads that make decoding decisions clear-cut (like the golden sets)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "LayerNorm" in name or "visual_norm2d" in name:
                p.copy_(torch.rand(p.shape, generator=gen) * 0.8 + 0.6 if name.endswith("weight")
                        else torch.randn(p.shape, generator=gen) * 0.2)
            elif name == "decoder.embeddings.word_embeddings.weight":
                p.copy_(torch.randn(p.shape, generator=gen) * (2 / p.shape[1] ** 0.5))
            elif "position_embeddings" in name:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.25)
            elif name.endswith("predictions.bias"):
                p.copy_(torch.randn(p.shape, generator=gen) * 0.5)
            elif name.endswith("bias"):
                p.copy_(torch.randn(p.shape, generator=gen) * 0.1)
            else:
                p.copy_(torch.randn(p.shape, generator=gen) / p.shape[1] ** 0.5)
    return model.eval()


def test_real_size_kv_beam_equals_reference_beam():
    cfg = CaptionConfig(video_dim=512, hidden=768, heads=12, intermediate=3072, te_layers=1, td_layers=3,
                        vocab_size=30522, visual_positions=32, decoder_positions=64, max_frames=20, max_words=8)
    model = _randomize(CaptionModel(cfg, init=False), seed=7)
    gen = torch.Generator().manual_seed(8)
    feats = [torch.randn(n, 512, generator=gen) * 0.5 for n in (20, 7)]
    # one video in each mask convention, decoded in one batch
    batch = [prepare_video(f, replace(cfg, mask=m)) for f, m in zip(feats, ("repro", "frames"))]
    video, mask = torch.cat([b[0] for b in batch]), torch.cat([b[1] for b in batch])
    fast = beam_search(model, video, mask, beam=5)
    slow = beam_search_reference(model, video, mask, beam=5)
    assert [h.ids for h in fast] == [h.ids for h in slow]
    for f, s in zip(fast, slow):
        assert 1 <= len(f.ids) <= 8 and abs(f.score - s.score) <= 1e-3
    assert all(len(h.ids) >= 1 for h in greedy(model, video, mask))


def _pick_video(gj) -> int:
    """A video whose beam differs between the repro and univl conventions, if any (shows the mask matters)."""
    for i, v in enumerate(gj["videos"]):
        pc = v["per_convention"]
        if pc["repro"]["beam"]["ids"] != pc["univl"]["beam"]["ids"]:
            return i
    return 0


def _cli_args(golden_set, cfg, feats, *extra):
    return ["decode", "--decoder", str(golden_set / "decoder.bin"), "--vocab", str(golden_set / "vocab.txt"),
            "--features", str(feats), "--heads", str(cfg["num_attention_heads"]), "--max-words",
            str(cfg["max_words"]), "--max-frames", str(cfg["max_frames"]), *extra]


def test_cli_subprocess_matches_golden_beam(golden_set, tmp_path):
    cfg, _, gj, inp, _ = _set(golden_set)
    i = _pick_video(gj)
    feats = tmp_path / "feats.npy"
    np.save(feats, inp[f"feats_{i}"].numpy())
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    runs = {}
    for conv, mask in (("repro", "repro"), ("univl", "frames")):  # both at once: interpreter startup dominates
        args = _cli_args(golden_set, cfg, feats, "--mask", mask, "--beam", str(_beam(cfg)), "--json")
        runs[conv] = subprocess.Popen([sys.executable, "-m", "c4c", *args], cwd=REPO, env=env, text=True,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    for conv, proc in runs.items():
        out, err = proc.communicate(timeout=240)
        assert proc.returncode == 0, err
        got = json.loads(out)
        want = gj["videos"][i]["per_convention"][conv]["beam"]
        assert got == {"token_ids": want["ids"], "caption": want["text"]}


def test_cli_greedy_text_and_errors(golden_set, tmp_path, capsys):
    cfg, _, gj, inp, _ = _set(golden_set)
    feats = tmp_path / "feats.npy"
    np.save(feats, inp["feats_0"].numpy())
    assert cli_main(_cli_args(golden_set, cfg, feats, "--greedy", "--json")) == 0
    want = gj["videos"][0]["per_convention"]["repro"]["greedy"]
    assert json.loads(capsys.readouterr().out) == {"token_ids": want["ids"], "caption": want["text"]}
    assert cli_main(_cli_args(golden_set, cfg, feats, "--mask", "frames")) == 0
    assert capsys.readouterr().out == gj["videos"][0]["per_convention"]["univl"]["beam"]["text"] + "\n"

    d = cfg["video_dim"]
    np.save(feats, np.zeros((3, d + 1), np.float32))
    assert cli_main(_cli_args(golden_set, cfg, feats)) == 2
    assert f"{d + 1} columns but the decoder expects {d}" in capsys.readouterr().err
    np.save(feats, np.zeros((2, 3, d), np.float32))
    assert cli_main(_cli_args(golden_set, cfg, feats)) == 2
    assert "must be 2-D" in capsys.readouterr().err
    np.savez(tmp_path / "feats.npz", a=np.zeros((3, d), np.float32))
    args = _cli_args(golden_set, cfg, tmp_path / "feats.npz")
    assert cli_main(args) == 2
    assert ".npz archive" in capsys.readouterr().err
    np.save(feats, inp["feats_0"].numpy())
    vocab = tmp_path / "vocab.txt"
    vocab.write_text((golden_set / "vocab.txt").read_text(encoding="utf-8") + "extra\n", encoding="utf-8")
    args = _cli_args(golden_set, cfg, feats)
    args[args.index("--vocab") + 1] = str(vocab)
    assert cli_main(args) == 2
    assert f"{cfg['vocab_size'] + 1} tokens but the decoder" in capsys.readouterr().err
