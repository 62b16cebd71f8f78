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
    Holds references to the transformers model's norms and position table, and a packed copy of
    every linear layer (~the tower's size again)."""

    def __init__(self, model, arch: VisionArch):
        vm = model.vision_model
        det = lambda t: t.detach()  # noqa: E731
        # Every matrix product on oneDNN-prepacked weights, blocked for one chunk of frames: the stock
        # kernel re-packs the weight on each call (1.28 s -> 0.89 s for 20 ViT-B/32 frames on 2 workers,
        # measured here; results equal F.linear's to ~1e-6 relative).
        lin = lambda w, b=None: Linear(det(w), None if b is None else det(b), "fp32", _CHUNK_TOKENS)  # noqa: E731
        self.arch = arch
        emb = vm.embeddings
        self.patch = lin(emb.patch_embedding.weight.reshape(arch.width, -1))          # (c, kh, kw) order
        self.cls = det(emb.class_embedding)
        self.pos = det(emb.position_embedding.weight)                                # (1 + g*g, W)
        self.ln_pre = (det(vm.pre_layrnorm.weight), det(vm.pre_layrnorm.bias), vm.pre_layrnorm.eps)
        self.ln_post = (det(vm.post_layernorm.weight), det(vm.post_layernorm.bias), vm.post_layernorm.eps)
        self.proj = lin(model.visual_projection.weight)                              # (E, W)
        self.blocks = []
        for layer in vm.encoder.layers:
            a = layer.self_attn
            self.blocks.append(dict(
                qkv=lin(torch.cat([a.q_proj.weight, a.k_proj.weight, a.v_proj.weight]),
                        torch.cat([a.q_proj.bias, a.k_proj.bias, a.v_proj.bias])),
                o=lin(a.out_proj.weight, a.out_proj.bias),
                ln1=(det(layer.layer_norm1.weight), det(layer.layer_norm1.bias), layer.layer_norm1.eps),
                ln2=(det(layer.layer_norm2.weight), det(layer.layer_norm2.bias), layer.layer_norm2.eps),
                f1=lin(layer.mlp.fc1.weight, layer.mlp.fc1.bias),
                f2=lin(layer.mlp.fc2.weight, layer.mlp.fc2.bias),
            ))

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
