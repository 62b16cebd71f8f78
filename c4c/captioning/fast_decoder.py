"""A CaptionModel's decoder step on prepacked weights (`kernels.Linear`), with a KV cache.

Same arithmetic as `_DecoderLayer.step` in layers.py up to float summation order (~1e-6 relative),
which leaves beam decisions alone (tests/test_speed_parity.py, the golden tests). Why it is faster:
see c4c/kernels.py.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..kernels import Linear
from .layers import additive_mask, gelu
from .model import CaptionModel

__all__ = ["FastDecoder"]


def _ln(mod):
    """The TF-style LayerNorm of captioner.py as (weight, bias, eps), applied by `_layer_norm`."""
    return mod.weight.detach(), mod.bias.detach(), mod.eps


def _layer_norm(x, p):
    w, b, eps = p
    u = x.mean(-1, keepdim=True)
    d = x - u
    s = d.pow(2).mean(-1, keepdim=True)
    return w * (d / torch.sqrt(s + eps)) + b


class FastDecoder:
    """A CaptionModel's decoder step on prepacked weights: same arithmetic as `_DecoderLayer.step`
    up to float summation order. Built once per model (and precision); holds a packed copy of the
    decoder weights (~the decoder's size again in fp32)."""

    def __init__(self, model: CaptionModel, precision: str = "fp32", rows: int = 5):
        cfg = model.cfg
        self.cfg, self.precision = cfg, precision  # no reference to the model: decoding.py caches us weakly by it
        self.nh, self.dh = cfg.heads, cfg.head_dim
        self.scale = math.sqrt(cfg.head_dim)
        emb = model.decoder.embeddings
        self.word = emb.word_embeddings.weight.detach()
        self.pos = emb.position_embeddings.weight.detach()
        self.emb_ln = _ln(emb.LayerNorm)
        self.layers = []
        for layer in model.decoder.decoder.layer:
            sa, ca = layer.slf_attn, layer.enc_attn
            qkv_w = torch.cat([sa.att.query.weight, sa.att.key.weight, sa.att.value.weight]).detach()
            qkv_b = torch.cat([sa.att.query.bias, sa.att.key.bias, sa.att.value.bias]).detach()
            self.layers.append(dict(
                qkv=Linear(qkv_w, qkv_b, precision, rows),                               # (N, 3H)
                so=Linear(sa.output.dense.weight, sa.output.dense.bias, precision, rows),
                so_ln=_ln(sa.output.LayerNorm),
                cq=Linear(ca.att.query.weight, ca.att.query.bias, precision, rows),
                co=Linear(ca.output.dense.weight, ca.output.dense.bias, precision, rows),
                co_ln=_ln(ca.output.LayerNorm),
                f1=Linear(layer.intermediate.dense.weight, layer.intermediate.dense.bias, precision, rows),
                f2=Linear(layer.output.dense.weight, layer.output.dense.bias, precision, rows),
                f_ln=_ln(layer.output.LayerNorm),
                mem_k=(ca.att.key.weight.detach(), ca.att.key.bias.detach()),     # applied once per video
                mem_v=(ca.att.value.weight.detach(), ca.att.value.bias.detach()),
            ))
        pred = model.decoder.classifier.cls.predictions
        self.tr = Linear(pred.transform.dense.weight, pred.transform.dense.bias, precision, rows)
        self.tr_ln = _ln(pred.transform.LayerNorm)
        self.cls = Linear(pred.decoder.weight, pred.bias, precision, rows)             # (N, V)

    def start(self, memory, video_mask, max_words: int):
        """Per-video state: cross-attention K/V of every layer (computed once), the additive memory
        mask, and an empty self-attention cache (N, layers, 2, nh, max_words, dh)."""
        b, t = memory.shape[:2]
        split = lambda x: x.view(b, t, self.nh, self.dh).permute(0, 2, 1, 3)  # noqa: E731  (B, nh, T, dh)
        mem_kv = [(split(F.linear(memory, *p["mem_k"])), split(F.linear(memory, *p["mem_v"]))) for p in self.layers]
        mem_mask = additive_mask(video_mask, memory.dtype)
        cache = memory.new_zeros(memory.shape[0], len(self.layers), 2, self.nh, max_words, self.dh)
        return mem_kv, mem_mask, cache

    def logits(self, tokens, pos: int, cache, mem_kv, mem_mask) -> torch.Tensor:
        """tokens (N,) at position `pos` -> logits (N, V); writes the new keys/values into cache[:, :, :, :, pos]."""
        n, nh, dh = tokens.shape[0], self.nh, self.dh
        x = _layer_norm(self.word[tokens] + self.pos[pos], self.emb_ln)                 # (N, H)
        for i, p in enumerate(self.layers):
            q, k, v = p["qkv"](x).view(n, 3, nh, dh).unbind(1)                           # (N, nh, dh) each
            cache[:, i, 0, :, pos] = k
            cache[:, i, 1, :, pos] = v
            keys, vals = cache[:, i, 0, :, : pos + 1], cache[:, i, 1, :, : pos + 1]      # (N, nh, pos+1, dh)
            att = (torch.matmul(q[:, :, None], keys.transpose(-1, -2)) / self.scale).softmax(-1)
            x = _layer_norm(p["so"](torch.matmul(att, vals).reshape(n, -1)) + x, p["so_ln"])
            mk, mv = mem_kv[i]                                                           # (B, nh, T, dh)
            b = mk.shape[0]
            q = p["cq"](x).view(b, n // b, nh, dh).transpose(1, 2)                       # (B, nh, G, dh)
            scores = torch.matmul(q, mk.transpose(-1, -2)) / self.scale + mem_mask
            ctx = torch.matmul(scores.softmax(-1), mv).transpose(1, 2).reshape(n, -1)
            x = _layer_norm(p["co"](ctx) + x, p["co_ln"])
            x = _layer_norm(p["f2"](gelu(p["f1"](x))) + x, p["f_ln"])
        return self.cls(_layer_norm(gelu(self.tr(x)), self.tr_ln))
