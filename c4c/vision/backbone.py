"""The CLIP image tower that turns frames into the per-frame features the captioner reads.

Accepted weights (all in OpenAI's key layout, `visual.*`, sizes read off the tensor shapes):
a CLIP4Clip checkpoint (`pytorch_model.bin.N`: bare state dict, every key prefixed `clip.`, mixed
fp16/fp32), an OpenAI CLIP state dict, an OpenAI TorchScript `.pt` (only with allow_torchscript),
or c4c safetensors written by `Backbone.save`. Text-tower and similarity-head keys are ignored.

The network is `transformers.CLIPVisionModelWithProjection` (QuickGELU, LayerNorm eps 1e-5) built
from a config, offline; the embedding is ``ln_post(CLS) @ proj``, not L2-normalised (reference.md 1.5).
On CPU in float32 the transformers model is built only when something asks for `.model` (the GPU
path, fp16, training, `embed_tokens`): importing transformers alone costs ~2.7 s of a cold start.

`embed` on CPU in float32 runs `_FastViT` on the same weights: the patch convolution as one matrix
product, fused q/k/v, every linear layer on prepacked weights (`kernels.Linear`), PyTorch's fused
attention, and in the last block only the class token goes past attention (the embedding reads
nothing else). Frames are split over worker threads with one intra-op thread each
(`cpu.parallel_map`). Embeddings equal the transformers model's to ~1e-5.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from ..checkpoints import check_finite, check_shapes, load_state_dict, read_safetensors_metadata, save_safetensors
from ..errors import CheckpointError, InputError
from .fast_vit import _CHUNK_TOKENS, _FastViT

__all__ = ["Backbone", "VisionArch", "vision_keys", "arch_from_state_dict", "to_hf", "from_hf"]

_BLOCK = re.compile(r"^visual\.transformer\.resblocks\.(\d+)\.")
# OpenAI residual-block sub-keys -> transformers CLIPEncoderLayer sub-keys (in_proj is split apart).
_BLOCK_MAP = {
    "attn.out_proj.weight": "self_attn.out_proj.weight", "attn.out_proj.bias": "self_attn.out_proj.bias",
    "ln_1.weight": "layer_norm1.weight", "ln_1.bias": "layer_norm1.bias",
    "mlp.c_fc.weight": "mlp.fc1.weight", "mlp.c_fc.bias": "mlp.fc1.bias",
    "mlp.c_proj.weight": "mlp.fc2.weight", "mlp.c_proj.bias": "mlp.fc2.bias",
    "ln_2.weight": "layer_norm2.weight", "ln_2.bias": "layer_norm2.bias",
}
_TOP_MAP = {
    "visual.class_embedding": "vision_model.embeddings.class_embedding",
    "visual.positional_embedding": "vision_model.embeddings.position_embedding.weight",
    "visual.conv1.weight": "vision_model.embeddings.patch_embedding.weight",
    "visual.ln_pre.weight": "vision_model.pre_layrnorm.weight",  # sic: transformers' spelling
    "visual.ln_pre.bias": "vision_model.pre_layrnorm.bias",
    "visual.ln_post.weight": "vision_model.post_layernorm.weight",
    "visual.ln_post.bias": "vision_model.post_layernorm.bias",
}
_FORMAT = "c4c-clip-visual"  # safetensors metadata "format" written by Backbone.save


@dataclass(frozen=True)
class VisionArch:
    """A ViT image tower's sizes, all read off a state dict's shapes."""

    image_size: int    # input pixels per side = grid * patch
    patch: int         # conv1 kernel = stride
    width: int         # transformer width
    layers: int        # residual blocks
    heads: int         # attention heads (OpenAI: width // 64)
    mlp: int           # MLP hidden size (OpenAI: 4 * width)
    embed_dim: int     # output embedding size E (visual.proj columns)

    @property
    def grid(self) -> int:
        return self.image_size // self.patch


def vision_keys(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The `visual.*` tensors of any CLIP-like state dict, with `module.` / `clip.` prefixes removed
    (CLIP4Clip stores `clip.visual.*`); text tower, logit scale and similarity heads are dropped."""
    out: dict[str, torch.Tensor] = {}
    for key, t in state_dict.items():
        k = key[len("module."):] if key.startswith("module.") else key
        k = k[len("clip."):] if k.startswith("clip.") else k
        if k.startswith("visual."):
            if k in out:
                raise CheckpointError(f"key {k!r} appears twice (with and without a 'clip.' prefix); "
                                      "the state dict mixes two models")
            out[k] = t
    return out


def _expected_shapes(a: VisionArch) -> dict[str, tuple[int, ...]]:
    w = a.width
    shapes: dict[str, tuple[int, ...]] = {
        "visual.conv1.weight": (w, 3, a.patch, a.patch),
        "visual.class_embedding": (w,),
        "visual.positional_embedding": (a.grid * a.grid + 1, w),
        "visual.ln_pre.weight": (w,), "visual.ln_pre.bias": (w,),
        "visual.ln_post.weight": (w,), "visual.ln_post.bias": (w,),
        "visual.proj": (w, a.embed_dim),
    }
    for i in range(a.layers):
        p = f"visual.transformer.resblocks.{i}."
        shapes.update({
            p + "attn.in_proj_weight": (3 * w, w), p + "attn.in_proj_bias": (3 * w,),
            p + "attn.out_proj.weight": (w, w), p + "attn.out_proj.bias": (w,),
            p + "ln_1.weight": (w,), p + "ln_1.bias": (w,), p + "ln_2.weight": (w,), p + "ln_2.bias": (w,),
            p + "mlp.c_fc.weight": (a.mlp, w), p + "mlp.c_fc.bias": (a.mlp,),
            p + "mlp.c_proj.weight": (w, a.mlp), p + "mlp.c_proj.bias": (w,),
        })
    return shapes


def arch_from_state_dict(sd: Mapping[str, torch.Tensor], source: str | Path = "state dict",
                         heads: int | None = None) -> VisionArch:
    """Read a ViT's sizes off its `visual.*` tensors and check every key's presence and shape.

    Raises CheckpointError naming the first missing, unexpected or mis-shaped key."""
    def need(key: str, ndim: int) -> torch.Tensor:
        if key not in sd:
            raise CheckpointError(f"{source}: missing key {key!r}; not a CLIP ViT image tower")
        if sd[key].ndim != ndim:
            raise CheckpointError(f"{source}: key {key!r} has shape {list(sd[key].shape)}, expected {ndim} dimensions")
        return sd[key]

    if any(k.startswith(("visual.layer1.", "visual.attnpool.")) for k in sd):  # before conv2: ResNets have one
        raise CheckpointError(f"{source}: is a ResNet CLIP image tower (RN50, ...); only ViT towers are supported")
    if "visual.conv2.weight" in sd:
        raise CheckpointError(f"{source}: has 'visual.conv2.weight' (CLIP4Clip linear_patch=3d), which c4c does "
                              "not support; use a checkpoint trained with linear_patch=2d")
    conv = need("visual.conv1.weight", 4)
    width, patch = int(conv.shape[0]), int(conv.shape[-1])
    pos_rows = int(need("visual.positional_embedding", 2).shape[0])
    grid = int(round((pos_rows - 1) ** 0.5))
    if grid * grid + 1 != pos_rows:
        raise CheckpointError(f"{source}: visual.positional_embedding has {pos_rows} rows, not grid*grid+1")
    embed_dim = int(need("visual.proj", 2).shape[1])
    layers = len({int(m.group(1)) for k in sd if (m := _BLOCK.match(k))})
    if layers == 0:
        raise CheckpointError(f"{source}: no 'visual.transformer.resblocks.N.*' keys; not a CLIP ViT image tower")
    mlp = int(need("visual.transformer.resblocks.0.mlp.c_fc.weight", 2).shape[0])
    heads = heads if heads is not None else max(1, width // 64)  # reference hard-codes width // 64
    if heads < 1 or width % heads:
        raise CheckpointError(f"{source}: width {width} is not divisible into {heads} attention heads; pass heads=")
    arch = VisionArch(image_size=grid * patch, patch=patch, width=width, layers=layers, heads=heads,
                      mlp=mlp, embed_dim=embed_dim)
    expected = _expected_shapes(arch)
    check_shapes(sd, expected, source)
    extra = sorted(set(sd) - set(expected))
    if extra:
        raise CheckpointError(f"{source}: unexpected image-tower key {extra[0]!r} ({len(extra)} in all); "
                              "not an OpenAI-layout CLIP ViT")
    return arch


def to_hf(sd: Mapping[str, torch.Tensor], arch: VisionArch) -> dict[str, torch.Tensor]:
    """OpenAI `visual.*` tensors -> `CLIPVisionModelWithProjection` state dict (float32)."""
    out = {hf: sd[oa].float() for oa, hf in _TOP_MAP.items()}
    out["visual_projection.weight"] = sd["visual.proj"].float().t().contiguous()  # x @ proj == Linear(proj.T)
    w = arch.width
    for i in range(arch.layers):
        src, dst = f"visual.transformer.resblocks.{i}.", f"vision_model.encoder.layers.{i}."
        qkv_w, qkv_b = sd[src + "attn.in_proj_weight"].float(), sd[src + "attn.in_proj_bias"].float()
        for j, name in enumerate("qkv"):  # nn.MultiheadAttention packs [q; k; v] along dim 0
            out[f"{dst}self_attn.{name}_proj.weight"] = qkv_w[j * w:(j + 1) * w].contiguous()
            out[f"{dst}self_attn.{name}_proj.bias"] = qkv_b[j * w:(j + 1) * w].contiguous()
        for oa, hf in _BLOCK_MAP.items():
            out[dst + hf] = sd[src + oa].float()
    return out


def from_hf(hf: Mapping[str, torch.Tensor], arch: VisionArch) -> dict[str, torch.Tensor]:
    """Inverse of `to_hf`: a transformers state dict -> OpenAI `visual.*` layout."""
    out = {oa: hf[h] for oa, h in _TOP_MAP.items()}
    out["visual.proj"] = hf["visual_projection.weight"].t().contiguous()
    for i in range(arch.layers):
        src, dst = f"vision_model.encoder.layers.{i}.", f"visual.transformer.resblocks.{i}."
        out[dst + "attn.in_proj_weight"] = torch.cat([hf[f"{src}self_attn.{n}_proj.weight"] for n in "qkv"])
        out[dst + "attn.in_proj_bias"] = torch.cat([hf[f"{src}self_attn.{n}_proj.bias"] for n in "qkv"])
        for oa, h in _BLOCK_MAP.items():
            out[dst + oa] = hf[src + h]
    return out


def _build(arch: VisionArch, weights: dict[str, torch.Tensor], device: torch.device, source: str | Path):
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    cfg = CLIPVisionConfig(hidden_size=arch.width, intermediate_size=arch.mlp, num_hidden_layers=arch.layers,
                           num_attention_heads=arch.heads, image_size=arch.image_size, patch_size=arch.patch,
                           projection_dim=arch.embed_dim, hidden_act="quick_gelu", layer_norm_eps=1e-5,
                           num_channels=3, attention_dropout=0.0)
    # Built on the meta device: random initialisation of a ViT-B costs ~2 s and is thrown away.
    with torch.device("meta"):
        model = CLIPVisionModelWithProjection(cfg)
    buffers = {n for n, _ in model.named_buffers()}
    if buffers != {"vision_model.embeddings.position_ids"}:  # a transformers change: take the slow, safe path
        model = CLIPVisionModelWithProjection(cfg)
    else:
        model = model.to_empty(device=device)
        n_pos = arch.grid * arch.grid + 1
        model.vision_model.embeddings.register_buffer(
            "position_ids", torch.arange(n_pos, device=device).expand((1, -1)), persistent=False)
    result = model.load_state_dict(weights, strict=False, assign=False)
    if result.missing_keys or result.unexpected_keys:  # the key maps above are complete: a bug if hit
        bad = (result.missing_keys or result.unexpected_keys)[0]
        raise CheckpointError(f"{source}: weight {bad!r} did not map onto the transformers CLIP model "
                              f"(missing {len(result.missing_keys)}, unexpected {len(result.unexpected_keys)})")
    return model.to(device).eval()


def _device(device: str | torch.device) -> torch.device:
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise InputError(f"unknown device {device!r}; use cpu or cuda (cuda:N)") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"device {device!r} requested but CUDA is not available here; use cpu")
    return dev


class Backbone:
    """A frozen CLIP image tower: pixels [n,3,S,S] -> frame embeddings (n, E)."""

    def __init__(self, model, arch: VisionArch, device: torch.device, provenance, dtype: torch.dtype = torch.float32,
                 weights: dict[str, torch.Tensor] | None = None, source: str | Path = "state dict"):
        # The transformers CLIPVisionModelWithProjection (eval mode), or None until first needed; then
        # `weights` (OpenAI `visual.*` layout, float32, CPU) hold the tower. Once built, the model is
        # the one copy of the weights.
        self._model = model
        self._weights = weights
        self._source = source
        self._model_lock = threading.Lock()
        self.arch = arch
        self.device = device
        self.dtype = dtype              # compute dtype: float32 (parity) or float16 (CUDA speed)
        self._provenance = provenance
        self._fast = None               # (weights stamp, _FastViT), built on first CPU float32 embed
        self._fast_lock = threading.Lock()
        self._fingerprint = None        # (weights stamp, sha256 hex)

    @classmethod
    def from_state_dict(cls, sd: Mapping[str, torch.Tensor], device: str | torch.device = "cpu",
                        provenance=None, heads: int | None = None, source: str | Path = "state dict",
                        dtype: torch.dtype = torch.float32) -> Backbone:
        """Build from any CLIP-like state dict (prefixes and text-tower keys are handled)."""
        vis = vision_keys(sd)
        if not vis:
            raise CheckpointError(f"{source}: has no 'visual.*' (or 'clip.visual.*') keys; not a CLIP checkpoint")
        arch = arch_from_state_dict(vis, source, heads=heads)
        check_finite(vis, source)
        device = _device(device)
        if device.type == "cpu" and dtype == torch.float32:  # the fast path needs no transformers model
            weights = {k: v.detach().to(torch.float32, copy=True) for k, v in vis.items()}
            return cls(None, arch, device, provenance, dtype, weights=weights, source=source)
        model = _build(arch, to_hf(vis, arch), device, source)
        if dtype != torch.float32:
            model = model.to(dtype)
        return cls(model, arch, device, provenance, dtype)

    @property
    def model(self):
        """The transformers `CLIPVisionModelWithProjection` (built on first access on CPU)."""
        if self._model is None:
            with self._model_lock:
                if self._model is None:
                    # Not as inference tensors, even when first asked for under inference_mode: they
                    # would have no version counters, which `_stamp` reads.
                    with torch.inference_mode(False):
                        model = _build(self.arch, to_hf(self._weights, self.arch), self.device, self._source)
                    self._model, self._weights = model, None
        return self._model

    @classmethod
    def from_file(cls, path: str | Path, device: str | torch.device = "cpu", allow_torchscript: bool = False,
                  heads: int | None = None, dtype: torch.dtype = torch.float32) -> Backbone:
        """Load CLIP4Clip `.bin`, OpenAI state dict / TorchScript `.pt`, or c4c safetensors.

        Everything is cast to float32 (dtype=torch.float16 halves the weights afterwards, for CUDA).
        `heads` overrides width // 64 (c4c safetensors carry it in their metadata)."""
        path = Path(path)
        sd = load_state_dict(path, allow_torchscript=allow_torchscript)
        meta = read_safetensors_metadata(path)
        if meta.get("format") == _FORMAT:
            provenance = meta.get("provenance")
            heads = heads if heads is not None else meta.get("vision_heads")
        else:
            kind = "CLIP4Clip checkpoint" if any(k.startswith("clip.") for k in sd) else "CLIP state dict"
            provenance = f"{kind} {path.name}"
        return cls.from_state_dict(sd, device=device, provenance=provenance, heads=heads, source=path, dtype=dtype)

    @property
    def image_size(self) -> int:
        return self.arch.image_size

    @property
    def embed_dim(self) -> int:
        return self.arch.embed_dim

    @property
    def provenance(self):
        return self._provenance

    def _check(self, pixels: torch.Tensor) -> None:
        s = self.arch.image_size
        if pixels.ndim != 4 or tuple(pixels.shape[1:]) != (3, s, s):
            raise InputError(f"expected pixels [n,3,{s},{s}] for this backbone, got {list(pixels.shape)}")

    def _tensors(self):
        """The tensors that hold the tower now: the model's parameters, or the raw weights."""
        weights, model = self._weights, self._model  # this order: `model` sets _model before dropping _weights
        return model.parameters() if model is not None else weights.values()

    def _stamp(self) -> tuple:
        # Changes whenever a weight is replaced (address) or updated in place (version counter).
        return tuple((p.data_ptr(), p._version) for p in self._tensors())

    @property
    def fingerprint(self) -> str:
        """sha256 of the architecture, compute dtype and every weight's bytes: the identity of what
        this backbone computes (feature-cache keys). Hashed once (~0.3 s for ViT-B/32), redone only if
        a weight changes."""
        stamp = self._stamp()
        if self._fingerprint is None or self._fingerprint[0] != stamp:
            h = hashlib.sha256(repr((asdict(self.arch), str(self.dtype))).encode())
            weights, model = self._weights, self._model
            # The transformers layout's names and tensors, whether or not the model is built: the
            # same fingerprint either way (feature journals record it).
            tensors = model.state_dict() if model is not None else to_hf(weights, self.arch)
            with torch.no_grad():
                for name, t in sorted(tensors.items()):
                    h.update(f"{name}:{tuple(t.shape)}:{t.dtype}".encode())
                    h.update(t.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy())  # no copy
            self._fingerprint = (stamp, h.hexdigest())
        return self._fingerprint[1]

    def _fast_vit(self) -> _FastViT | None:
        """The CPU float32 fast forward, rebuilt if any weight changed since (version counters)."""
        weights, model = self._weights, self._model
        if self.device.type != "cpu" or self.dtype != torch.float32 or (model is not None and model.training):
            return None
        stamp = self._stamp()
        with self._fast_lock:
            if self._fast is None or self._fast[0] != stamp:
                fast = _FastViT(self.arch, weights) if model is None else _FastViT.from_model(model, self.arch)
                self._fast = (stamp, fast)
            return self._fast[1]

    def embed(self, pixels: torch.Tensor, batch_size: int = 32, workers: int | None = None) -> torch.Tensor:
        """Frame embeddings ln_post(CLS) @ proj, unnormalised: float32 CPU tensor (n, E).

        On CPU in float32, frames go in fixed-size chunks (~256 tokens, at most `batch_size` frames)
        over `workers` threads (default `cpu.thread_workers`: the intra-op thread budget, one
        intra-op thread each); the result does not depend on the number of threads or workers."""
        self._check(pixels)
        fast = self._fast_vit()
        if fast is not None:
            from ..cpu import parallel_map, thread_workers
            n = pixels.shape[0]
            if n == 0:
                return torch.zeros((0, self.embed_dim), dtype=torch.float32)
            workers = thread_workers(n) if workers is None else max(1, min(int(workers), n))
            # Chunks of a fixed size (~256 tokens: a full-speed matmul on one core), never sized by the
            # worker count: a chunk's rows then go through matmuls of the same shapes on one thread
            # whatever the thread budget, so embeddings are bit-identical at any thread count.
            per = max(1, min(batch_size, _CHUNK_TOKENS // (self.arch.grid ** 2 + 1)))
            x = pixels.to(torch.float32)
            chunks = [x[i:i + per] for i in range(0, n, per)]
            return torch.cat(parallel_map(fast, chunks, workers))
        out = []
        with torch.inference_mode():
            for i in range(0, pixels.shape[0], batch_size):
                x = pixels[i:i + batch_size].to(self.device, self.dtype)
                out.append(self.model(pixel_values=x).image_embeds.float().cpu())  # (b, E)
        return torch.cat(out) if out else torch.zeros((0, self.embed_dim), dtype=torch.float32)

    def embed_tokens(self, pixels: torch.Tensor) -> torch.Tensor:
        """ln_post(all tokens) @ proj, float32 CPU (n, tokens, E): token 0 is `embed`. For debugging."""
        self._check(pixels)
        vm = self.model.vision_model
        with torch.inference_mode():
            h = vm(pixel_values=pixels.to(self.device, self.dtype)).last_hidden_state  # (n, T, width)
            return self.model.visual_projection(vm.post_layernorm(h)).float().cpu()

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The weights in OpenAI key layout (`visual.*`)."""
        weights, model = self._weights, self._model
        return dict(weights) if model is None else from_hf(model.state_dict(), self.arch)

    def save(self, path: str | Path, provenance=None) -> None:
        """Write safetensors in OpenAI key layout with metadata {format, provenance, arch}."""
        prov = provenance if provenance is not None else self._provenance
        sd = {k: v.float() for k, v in self.state_dict().items()}
        save_safetensors(sd, path, {"format": _FORMAT, "provenance": prov, "vision_heads": self.arch.heads,
                                    "arch": asdict(self.arch)})
