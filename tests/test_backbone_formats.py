"""Every weights format the backbone accepts gives the same network; every broken one is refused with a
CheckpointError naming the problem. A small random ViT of another shape is checked against an
independent functional implementation of OpenAI's image tower."""

import warnings

import pytest
import torch
import torch.nn.functional as F

from conftest import GOLDEN_DIR, golden_sets

from c4c.vision.backbone import Backbone, vision_keys
from c4c.checkpoints import read_safetensors_metadata
from c4c.errors import CheckpointError, InputError

SETS = [s for s in golden_sets() if (s / "clip4clip.bin").is_file()]


def _random_clip(width=96, layers=1, patch=16, grid=4, embed=24, mlp=None, text_width=32, seed=0):
    """An OpenAI-layout CLIP state dict (image + a token text tower), random, as a mini CLIP trainer saves it."""
    g = torch.Generator().manual_seed(seed)
    r = lambda *s: torch.randn(*s, generator=g) * 0.2  # noqa: E731
    mlp = mlp or 4 * width
    sd = {"visual.conv1.weight": r(width, 3, patch, patch), "visual.class_embedding": r(width),
          "visual.positional_embedding": r(grid * grid + 1, width),
          "visual.ln_pre.weight": 1 + r(width), "visual.ln_pre.bias": r(width),
          "visual.ln_post.weight": 1 + r(width), "visual.ln_post.bias": r(width), "visual.proj": r(width, embed)}
    for i in range(layers):
        p = f"visual.transformer.resblocks.{i}."
        sd.update({p + "attn.in_proj_weight": r(3 * width, width), p + "attn.in_proj_bias": r(3 * width),
                   p + "attn.out_proj.weight": r(width, width), p + "attn.out_proj.bias": r(width),
                   p + "ln_1.weight": 1 + r(width), p + "ln_1.bias": r(width),
                   p + "ln_2.weight": 1 + r(width), p + "ln_2.bias": r(width),
                   p + "mlp.c_fc.weight": r(mlp, width), p + "mlp.c_fc.bias": r(mlp),
                   p + "mlp.c_proj.weight": r(width, mlp), p + "mlp.c_proj.bias": r(width)})
    sd.update({"token_embedding.weight": r(100, text_width), "positional_embedding": r(16, text_width),
               "transformer.resblocks.0.attn.in_proj_weight": r(3 * text_width, text_width),
               "ln_final.weight": 1 + r(text_width), "text_projection": r(text_width, embed),
               "logit_scale": torch.tensor(4.6)})
    return sd


def _openai_encode_image(sd, x, heads):
    """OpenAI CLIP VisionTransformer + encode_image, written with torch.nn.functional only. (n, E)"""
    conv = sd["visual.conv1.weight"]
    width, patch = conv.shape[0], conv.shape[-1]
    ln = lambda t, k: F.layer_norm(t, (width,), sd[k + ".weight"], sd[k + ".bias"], 1e-5)  # noqa: E731
    t = F.conv2d(x, conv, stride=patch).flatten(2).transpose(1, 2)  # (n, grid*grid, width)
    t = torch.cat([sd["visual.class_embedding"].expand(t.shape[0], 1, -1), t], 1) + sd["visual.positional_embedding"]
    t = ln(t, "visual.ln_pre").transpose(0, 1)  # (tokens, n, width), as nn.MultiheadAttention wants
    i = 0
    while f"visual.transformer.resblocks.{i}.ln_1.weight" in sd:
        p = f"visual.transformer.resblocks.{i}."
        h = ln(t, p + "ln_1")
        a, _ = F.multi_head_attention_forward(h, h, h, width, heads, sd[p + "attn.in_proj_weight"],
                                              sd[p + "attn.in_proj_bias"], None, None, False, 0.0,
                                              sd[p + "attn.out_proj.weight"], sd[p + "attn.out_proj.bias"],
                                              need_weights=False)
        t = t + a
        h = F.linear(ln(t, p + "ln_2"), sd[p + "mlp.c_fc.weight"], sd[p + "mlp.c_fc.bias"])
        t = t + F.linear(h * torch.sigmoid(1.702 * h), sd[p + "mlp.c_proj.weight"], sd[p + "mlp.c_proj.bias"])
        i += 1
    return ln(t[0], "visual.ln_post") @ sd["visual.proj"]


@pytest.mark.parametrize("arch", [dict(width=96, layers=1, patch=16, grid=4, embed=24),  # heads 1 (96 // 64)
                                  dict(width=128, layers=2, patch=8, grid=3, embed=16, mlp=200)])
def test_random_mini_clip_matches_functional_reference(arch, tmp_path):
    sd = _random_clip(**arch)
    torch.save(sd, tmp_path / "mini.bin")
    b = Backbone.from_file(tmp_path / "mini.bin")  # text keys present and ignored
    assert b.image_size == arch["patch"] * arch["grid"] and b.embed_dim == arch["embed"]
    assert b.arch.heads == max(1, arch["width"] // 64) and b.arch.mlp == arch.get("mlp", 4 * arch["width"])
    x = torch.randn(5, 3, b.image_size, b.image_size, generator=torch.Generator().manual_seed(1))
    want = _openai_encode_image(sd, x, b.arch.heads)
    got = b.embed(x, batch_size=2)
    assert got.shape == (5, arch["embed"]) and float((got - want).abs().max()) <= 1e-4
    # heads is a real architectural choice: overriding it changes the output
    if arch["width"] % 2 == 0 and b.arch.heads == 1:
        other = Backbone.from_state_dict(sd, heads=2).embed(x)
        assert float((other - want).abs().max()) > 1e-3


def test_vision_keys_strips_prefixes_and_drops_text():
    t = torch.zeros(1)
    got = vision_keys({"clip.visual.proj": t, "clip.token_embedding.weight": t, "frame_position_embeddings.weight": t,
                       "module.clip.visual.ln_post.weight": t, "visual.ln_pre.bias": t, "clip.logit_scale": t})
    assert set(got) == {"visual.proj", "visual.ln_post.weight", "visual.ln_pre.bias"}
    with pytest.raises(CheckpointError, match="twice"):
        vision_keys({"clip.visual.proj": t, "visual.proj": t})


@pytest.fixture(scope="module", params=SETS, ids=lambda p: p.name)
def golden(request):
    s = request.param
    raw = torch.load(s / "clip4clip.bin", map_location="cpu", weights_only=True)
    b = Backbone.from_file(s / "clip4clip.bin")
    x = torch.randn(3, 3, b.image_size, b.image_size, generator=torch.Generator().manual_seed(0))
    return {"raw": raw, "backbone": b, "x": x, "emb": b.embed(x)}


needs_golden = pytest.mark.skipif(not SETS, reason=f"no golden sets under {GOLDEN_DIR}")


def _script_archive(sd, path):
    """A TorchScript archive whose state_dict() has exactly the keys of `sd` (like OpenAI's ViT-B-32.pt)."""
    class Node(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x

    root = Node()
    for key, t in sd.items():
        *parents, leaf = key.split(".")
        m = root
        for name in parents:
            if not hasattr(m, name):
                m.add_module(name, Node())
            m = getattr(m, name)
        m.register_parameter(leaf, torch.nn.Parameter(t.clone(), requires_grad=False))
    with warnings.catch_warnings():  # torch 2.13 deprecates TorchScript; OpenAI's files still are TorchScript
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.save(torch.jit.script(root), str(path))


@needs_golden
@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:DeprecationWarning")
def test_openai_layout_and_torchscript_give_same_embeddings(golden, tmp_path):
    openai = {k[len("clip."):]: v for k, v in golden["raw"].items()}  # OpenAI layout, fp16/fp32 mix kept
    torch.save(openai, tmp_path / "openai.bin")
    b = Backbone.from_file(tmp_path / "openai.bin")
    assert torch.equal(b.embed(golden["x"]), golden["emb"])

    _script_archive(openai, tmp_path / "ViT-tiny.pt")
    with pytest.raises(CheckpointError, match="TorchScript"):
        Backbone.from_file(tmp_path / "ViT-tiny.pt")
    bj = Backbone.from_file(tmp_path / "ViT-tiny.pt", allow_torchscript=True)
    assert torch.equal(bj.embed(golden["x"]), golden["emb"])


@needs_golden
def test_safetensors_roundtrip_keeps_openai_layout(golden, tmp_path):
    b = golden["backbone"]
    b.save(tmp_path / "bb.safetensors", provenance={"trained_on": "synthetic clips", "by": "test"})
    meta = read_safetensors_metadata(tmp_path / "bb.safetensors")
    assert meta["provenance"] == {"trained_on": "synthetic clips", "by": "test"} and meta["vision_heads"] == b.arch.heads
    from safetensors.torch import load_file
    stored = load_file(str(tmp_path / "bb.safetensors"))
    want = vision_keys(golden["raw"])
    assert set(stored) == set(want)
    assert all(torch.equal(stored[k], want[k].float()) for k in want)
    b2 = Backbone.from_file(tmp_path / "bb.safetensors")
    assert b2.provenance == meta["provenance"] and b2.arch == b.arch
    assert torch.equal(b2.embed(golden["x"]), golden["emb"])


@needs_golden
@pytest.mark.parametrize("case,msg", [
    ("missing", "missing key 'visual.transformer.resblocks.0.mlp.c_proj.bias'"),
    ("shape", r"'visual.transformer.resblocks.0.attn.out_proj.weight' has shape \[\d+, 5\], expected \[\d+, \d+\]"),
    ("nan", "NaN or Inf"),
    ("no_visual", "no 'visual"),
    ("conv2", "linear_patch=3d"),
    ("resnet", "ResNet"),
    ("extra", "unexpected image-tower key 'visual.transformer.resblocks.0.attn.bias_k'"),
])
def test_broken_state_dicts_are_refused(golden, tmp_path, case, msg):
    sd = dict(golden["raw"])
    if case == "missing":
        del sd["clip.visual.transformer.resblocks.0.mlp.c_proj.bias"]
    elif case == "shape":
        w = sd["clip.visual.transformer.resblocks.0.attn.out_proj.weight"]
        sd["clip.visual.transformer.resblocks.0.attn.out_proj.weight"] = w[:, :5]
    elif case == "nan":
        w = sd["clip.visual.ln_post.weight"].clone()
        w[0] = float("nan")
        sd["clip.visual.ln_post.weight"] = w
    elif case == "no_visual":
        sd = {k: v for k, v in sd.items() if ".visual." not in k}
    elif case == "resnet":
        sd["clip.visual.layer1.0.conv1.weight"] = torch.zeros(1)
        sd["clip.visual.conv2.weight"] = torch.zeros(1)
    elif case == "conv2":
        sd["clip.visual.conv2.weight"] = torch.zeros(1)
    elif case == "extra":
        sd["clip.visual.transformer.resblocks.0.attn.bias_k"] = torch.zeros(1)
    torch.save(sd, tmp_path / "bad.bin")
    with pytest.raises(CheckpointError, match=msg) as e:
        Backbone.from_file(tmp_path / "bad.bin")
    assert "bad.bin" in str(e.value) and "\n" not in str(e.value)


@needs_golden
def test_embed_checks_input_and_batches_consistently(golden):
    b, x = golden["backbone"], golden["x"]
    with pytest.raises(InputError, match=str(b.image_size)):
        b.embed(torch.zeros(1, 3, b.image_size + 1, b.image_size + 1))
    assert b.embed(x[:0]).shape == (0, b.embed_dim)
    with pytest.raises(InputError, match="device"):
        Backbone.from_state_dict(golden["raw"], device="tpu-9")
    if not torch.cuda.is_available():
        with pytest.raises(InputError, match="CUDA is not available"):
            Backbone.from_state_dict(golden["raw"], device="cuda")
    assert torch.allclose(b.embed(x, batch_size=1), golden["emb"], atol=1e-5)
