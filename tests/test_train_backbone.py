"""The mini CLIP (OpenAI key layout) and its CLIP4Clip meanP training."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
import torch

from c4c.train.backbone import TINY, contrastive_loss, retrieval_metrics, train_backbone
from c4c.train.clip_model import CLIP, ClipConfig, WordTokenizer

@pytest.fixture(autouse=True)
def one_thread():
    # One thread: on a shared, loaded 2-core box two OpenMP threads can run 30x slower than one.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


SMALL = ClipConfig(image_size=32, patch=8, width=64, layers=2, embed_dim=32, text_width=64, text_layers=1,
                   context=16, vocab_size=40)


def _openai_keys(prefix: str, layers: int) -> set[str]:
    block = ["attn.in_proj_weight", "attn.in_proj_bias", "attn.out_proj.weight", "attn.out_proj.bias",
             "ln_1.weight", "ln_1.bias", "mlp.c_fc.weight", "mlp.c_fc.bias", "mlp.c_proj.weight", "mlp.c_proj.bias",
             "ln_2.weight", "ln_2.bias"]
    return {f"{prefix}transformer.resblocks.{i}.{k}" for i in range(layers) for k in block}


def test_state_dict_has_openai_keys_and_shapes():
    cfg = ClipConfig()
    sd = CLIP(cfg).state_dict()
    expected = {"visual.conv1.weight", "visual.class_embedding", "visual.positional_embedding",
                "visual.ln_pre.weight", "visual.ln_pre.bias", "visual.ln_post.weight", "visual.ln_post.bias",
                "visual.proj", "token_embedding.weight", "positional_embedding", "ln_final.weight", "ln_final.bias",
                "text_projection", "logit_scale"}
    expected |= _openai_keys("visual.", cfg.layers) | _openai_keys("", cfg.text_layers)
    assert set(sd) == expected  # conv1 has no bias, nothing else sneaks in
    grid = cfg.image_size // cfg.patch
    assert sd["visual.conv1.weight"].shape == (cfg.width, 3, cfg.patch, cfg.patch)
    assert sd["visual.positional_embedding"].shape == (grid * grid + 1, cfg.width)
    assert sd["visual.proj"].shape == (cfg.width, cfg.embed_dim)
    assert sd["visual.transformer.resblocks.0.attn.in_proj_weight"].shape == (3 * cfg.width, cfg.width)
    assert sd["visual.transformer.resblocks.0.mlp.c_fc.weight"].shape == (4 * cfg.width, cfg.width)
    assert sd["text_projection"].shape == (cfg.text_width, cfg.embed_dim)
    model = CLIP(cfg)
    assert model.visual.transformer.resblocks[0].attn.num_heads == cfg.width // 64
    vision_mb = sum(v.numel() for k, v in sd.items() if k.startswith("visual.")) * 4 / 1e6
    assert vision_mb < 5  # the zoo's budget for the shipped backbone


def test_config_refuses_widths_the_loader_cannot_split():
    with pytest.raises(ValueError):
        ClipConfig(width=96)
    with pytest.raises(ValueError):
        ClipConfig(image_size=60, patch=8)


def test_text_feature_is_read_at_eot():
    tok = WordTokenizer.from_captions(["a red ball moves left", "a blue box grows"])
    assert tok.eot == len(tok) - 1 and tok.encode("a red ball", 16)[-1] == tok.eot
    assert tok.encode("a purple ball", 16)[2] == 1  # unknown word
    model = CLIP(replace(SMALL, vocab_size=len(tok))).eval()
    ids = tok.batch(["a red ball moves left"], 16)
    junk = ids.clone()
    junk[0, 8:] = 3  # tokens after EOT must not matter (causal mask, EOT = argmax)
    with torch.no_grad():
        assert torch.allclose(model.encode_text(ids), model.encode_text(junk), atol=1e-6)
        other = model.encode_text(tok.batch(["a blue box grows"], 16))
    assert not torch.allclose(model.encode_text(ids), other)


def test_retrieval_metrics():
    e = torch.eye(6)
    m = retrieval_metrics(e, e)
    assert m["t2v_r1"] == 100.0 and m["v2t_r1"] == 100.0 and m["t2v_medr"] == 1.0
    shifted = retrieval_metrics(e, e.roll(1, dims=0))  # every text matches the next video
    assert shifted["t2v_r1"] == 0.0 and shifted["t2v_medr"] == 2.0 and shifted["t2v_r5"] == 100.0


def test_contrastive_loss_learns_a_batch():
    torch.manual_seed(0)
    tok = WordTokenizer.from_captions([f"caption number {i}" for i in range(8)])
    model = CLIP(replace(SMALL, vocab_size=len(tok)))
    pixels = torch.randn(16, 3, 32, 32)
    video_of = torch.arange(8).repeat_interleave(2)
    ids = tok.batch([f"caption number {i}" for i in range(8)], 16)
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3)
    first = contrastive_loss(model, pixels, video_of, ids).item()
    assert first == pytest.approx(math.log(8), abs=0.5)  # random init: close to chance
    for _ in range(40):
        loss = contrastive_loss(model, pixels, video_of, ids)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.3 * first


def test_tiny_training_run_writes_a_backbone_the_loader_reads_exactly(tmp_path):
    from c4c.vision.backbone import Backbone
    from c4c.checkpoints import load_state_dict, read_safetensors_metadata
    report = train_backbone(tmp_path, TINY, cache_dir=tmp_path / "cache", progress=False, workers=0)
    assert [h["step"] for h in report["history"]] == list(range(TINY.eval_every, TINY.steps + 1, TINY.eval_every))
    assert all(np.isfinite(h["loss"]) for h in report["history"])
    assert set(report["final"]["probe"]) >= {"shape", "colour", "pos_px", "turn_deg", "patch"}  # held-out read-out
    assert 0 <= report["final"]["t2v_r1"] <= 100
    meta = read_safetensors_metadata(tmp_path / "clip_full.safetensors")
    assert meta["format"] == "c4c-clip-full" and "ball" in meta["vocab"]
    model = CLIP(ClipConfig(**meta["clip_config"]))
    model.load_state_dict(load_state_dict(tmp_path / "clip_full.safetensors"))
    model.eval()
    backbone = Backbone.from_file(tmp_path / "backbone.safetensors")
    assert backbone.image_size == TINY.model.image_size and backbone.embed_dim == TINY.model.embed_dim
    assert "meanP" in backbone.provenance["training"]
    pixels = torch.randn(6, 3, backbone.image_size, backbone.image_size)
    with torch.no_grad():
        expected = model.encode_image(pixels)
    assert torch.allclose(backbone.embed(pixels), expected, atol=1e-5)  # the key layout is right
    assert any((tmp_path / "cache").iterdir())  # frames were cached for the next run


def test_interrupted_training_resumes_to_the_same_weights(tmp_path, monkeypatch):
    import c4c.train.backbone as tb
    from c4c.checkpoints import load_state_dict
    cfg = replace(TINY, steps=6, eval_every=3, vocab_videos=12, val_videos=4, probe_videos=4, batch_videos=6,
                  model=replace(TINY.model, image_size=16, patch=8))
    tb.train_backbone(tmp_path / "a", cfg, cache_dir=tmp_path / "cache", progress=False, workers=0)
    real = tb._evaluate
    calls = []

    def stop_at_the_second_check(*a, **k):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(tb, "_evaluate", stop_at_the_second_check)
    with pytest.raises(KeyboardInterrupt):
        tb.train_backbone(tmp_path / "b", cfg, cache_dir=tmp_path / "cache", progress=False, workers=0)
    assert (tmp_path / "b" / "resume.pt").exists() and not (tmp_path / "b" / "backbone.safetensors").exists()
    monkeypatch.setattr(tb, "_evaluate", real)
    report = tb.train_backbone(tmp_path / "b", cfg, cache_dir=tmp_path / "cache", progress=False, workers=0)
    assert [h["step"] for h in report["history"]] == [3, 6] and not (tmp_path / "b" / "resume.pt").exists()
    a, b = (load_state_dict(tmp_path / d / "clip_full.safetensors") for d in "ab")
    assert all(torch.equal(a[k], b[k]) for k in a)  # resuming is exact, not just close


def test_cli_registers_backbone_subcommand(tmp_path):
    from c4c.cli import build_parser
    args = build_parser().parse_args(["train", "backbone", "--out", str(tmp_path), "--tiny", "--steps", "3",
                                      "--seed", "7", "--two-objects", "0.7"])
    assert args.tiny and args.steps == 3 and args.seed == 7 and args.two_objects == 0.7 and callable(args.func)
    args = build_parser().parse_args(["train", "backbone", "--out", str(tmp_path), "--width", "128"])
    assert args.width == 128 and args.func.__module__ == "c4c.cli.train"  # via `python -m c4c train`


def test_cli_refuses_bad_sizes(tmp_path, capsys):
    from c4c.cli import main
    assert main(["train", "backbone", "--out", str(tmp_path), "--tiny", "--width", "96", "--quiet"]) == 2
    assert "multiple of 64" in capsys.readouterr().err
    assert main(["train", "backbone", "--out", str(tmp_path), "--tiny", "--two-objects", "1.5", "--quiet"]) == 2
    assert "between 0 and 1" in capsys.readouterr().err
