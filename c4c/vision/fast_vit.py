"""The CLIP image tower's forward on plain tensors, for CPU float32 inference (`Backbone.embed`).

The patch convolution as one matrix product, fused q/k/v, every linear layer on prepacked weights
(`kernels.Linear`), PyTorch's fused attention, and in the last block only the class token goes past
attention (the embedding reads nothing else). Embeddings equal the transformers model's to ~1e-5.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from ..kernels import Linear

if TYPE_CHECKING:
    from .backbone import VisionArch

__all__: list[str] = []  # used by backbone.py only

_CHUNK_TOKENS = 256  # tokens per chunk of frames in Backbone.embed's CPU path (5 frames of ViT-B/32)


class _FastViT:
    """The CLIP image tower's forward on plain tensors, for CPU float32 inference (see module doc).
    Holds references to the tower's norms and position table, and a packed copy of every linear
    layer (~the tower's size again). Needs no transformers model: `Backbone` builds it straight from
    the checkpoint's tensors, so the CPU path never imports transformers (~2.7 s)."""

    def __init__(self, arch: VisionArch, t: dict[str, torch.Tensor]):
        """`t`: the tower's tensors in OpenAI's `visual.*` layout, float32 (see `from_model`)."""
        # Every matrix product on oneDNN-prepacked weights, blocked for one chunk of frames: the stock
        # kernel re-packs the weight on each call (1.28 s -> 0.89 s for 20 ViT-B/32 frames on 2 workers,
        # measured here; results equal F.linear's to ~1e-6 relative).
        lin = lambda w, b=None: Linear(w.detach(), None if b is None else b.detach(), "fp32", _CHUNK_TOKENS)  # noqa: E731
        ln = lambda k: (t[k + ".weight"].detach(), t[k + ".bias"].detach(), 1e-5)  # noqa: E731  CLIP's eps
        self.arch = arch
        self.patch = lin(t["visual.conv1.weight"].reshape(arch.width, -1))          # (c, kh, kw) order
        self.cls = t["visual.class_embedding"].detach()
        self.pos = t["visual.positional_embedding"].detach()                      # (1 + g*g, W)
        self.ln_pre, self.ln_post = ln("visual.ln_pre"), ln("visual.ln_post")
        self.proj = lin(t["visual.proj"].t().contiguous())                        # (E, W)
        self.blocks = []
        for i in range(arch.layers):
            p = f"visual.transformer.resblocks.{i}."
            self.blocks.append(dict(
                qkv=lin(t[p + "attn.in_proj_weight"], t[p + "attn.in_proj_bias"]),  # [q; k; v] rows
                o=lin(t[p + "attn.out_proj.weight"], t[p + "attn.out_proj.bias"]),
                ln1=ln(p + "ln_1"), ln2=ln(p + "ln_2"),
                f1=lin(t[p + "mlp.c_fc.weight"], t[p + "mlp.c_fc.bias"]),
                f2=lin(t[p + "mlp.c_proj.weight"], t[p + "mlp.c_proj.bias"]),
            ))

    @classmethod
    def from_model(cls, model, arch: VisionArch) -> _FastViT:
        """From a transformers `CLIPVisionModelWithProjection` (the same tensors, regrouped)."""
        from .backbone import from_hf
        return cls(arch, from_hf(model.state_dict(), arch))

    @staticmethod
    def _ln(x, p):
        return F.layer_norm(x, x.shape[-1:], p[0], p[1], p[2])

    def __call__(self, pixels: torch.Tensor) -> torch.Tensor:
        """pixels (n, 3, S, S) float32 -> embeddings (n, E)."""
        a = self.arch
        n, g, p, w, nh = pixels.shape[0], a.grid, a.patch, a.width, a.heads
        # conv1 (stride = kernel = p, no bias) == each patch's (c, kh, kw) pixels @ the flattened kernel
        patches = pixels.reshape(n, 3, g, p, g, p).permute(0, 2, 4, 1, 3, 5).reshape(n * g * g, 3 * p * p)
        x = self.patch(patches).view(n, g * g, w)
        x = torch.cat([self.cls.expand(n, 1, w), x], 1) + self.pos                 # (n, T, W)
        x = self._ln(x, self.ln_pre)
        t = x.shape[1]
        for i, b in enumerate(self.blocks):
            h = self._ln(x, b["ln1"]).reshape(n * t, w)
            q, k, v = b["qkv"](h).view(n, t, 3, nh, w // nh).permute(2, 0, 3, 1, 4).unbind(0)
            if i == len(self.blocks) - 1:  # only the class token is read after the last block
                q, x = q[:, :, :1], x[:, :1]
            r = x.shape[1]                                                           # T, or 1 in the last block
            ctx = F.scaled_dot_product_attention(q, k, v)                            # (n, nh, r, dh)
            x = x + b["o"](ctx.transpose(1, 2).reshape(n * r, w)).view(n, r, w)
            h = b["f1"](self._ln(x, b["ln2"]).reshape(n * r, w))
            h = h * torch.sigmoid(1.702 * h)                                          # QuickGELU
            x = x + b["f2"](h).view(n, r, w)
        return self.proj(self._ln(x[:, 0], self.ln_post))
