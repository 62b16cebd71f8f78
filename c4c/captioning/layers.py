"""The caption model's building blocks, in UniVL's module layout (so state-dict keys match the
reference checkpoints) and with its arithmetic op for op (TF-style LayerNorm, erf GELU, additive
-10000 masks): see `model.py` for why the arithmetic must match.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
from torch import nn

if TYPE_CHECKING:
    from .model import CaptionConfig

__all__ = ["additive_mask", "LayerNorm", "VisualModel", "NormalizeVideo", "DecoderModel", "gelu"]


def gelu(x):
    # The reference's exact erf GELU, written out so the arithmetic matches it bit for bit.
    return x * 0.5 * (1.0 + torch.erf(x / math.sqrt(2.0)))


def additive_mask(mask: torch.Tensor, dtype=torch.float32) -> torch.Tensor:
    """(B, T) 0/1 key mask -> (B, 1, 1, T) additive mask, (1 - m) * -10000 as the reference computes it."""
    return (1.0 - mask[:, None, None, :].to(dtype)) * -10000.0


class LayerNorm(nn.Module):
    """TF-style LayerNorm (eps inside the sqrt), computed as the reference does."""

    def __init__(self, n: int, eps: float = 1e-12):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(n))
        self.bias = nn.Parameter(torch.zeros(n))
        self.eps = eps

    def forward(self, x):
        u = x.mean(-1, keepdim=True)
        s = (x - u).pow(2).mean(-1, keepdim=True)
        return self.weight * ((x - u) / torch.sqrt(s + self.eps)) + self.bias


class _QKV(nn.Module):
    """Multi-head attention projections (UniVL BertSelfAttention / MultiHeadAttention)."""

    def __init__(self, cfg: CaptionConfig):
        super().__init__()
        self.query = nn.Linear(cfg.hidden, cfg.hidden)
        self.key = nn.Linear(cfg.hidden, cfg.hidden)
        self.value = nn.Linear(cfg.hidden, cfg.hidden)
        self.heads, self.head_dim = cfg.heads, cfg.head_dim
        self.dropout = nn.Dropout(cfg.dropout)

    def split(self, x):  # (B, L, H) -> (B, nh, L, dh)
        return x.view(x.shape[0], x.shape[1], self.heads, self.head_dim).permute(0, 2, 1, 3)

    def attend(self, q, k, v, add_mask=None):
        """q (B, nh, Lq, dh), k/v (B, nh, Lk, dh), add_mask broadcastable to (B, nh, Lq, Lk) -> (B, nh, Lq, dh)."""
        scores = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(self.head_dim)
        if add_mask is not None:
            scores = scores + add_mask
        return torch.matmul(self.dropout(scores.softmax(-1)), v)

    def forward(self, q_in, kv_in, add_mask):  # (B, Lq, H), (B, Lk, H) -> (B, Lq, H)
        ctx = self.attend(self.split(self.query(q_in)), self.split(self.key(kv_in)), self.split(self.value(kv_in)),
                          add_mask)
        return ctx.permute(0, 2, 1, 3).reshape(q_in.shape)


class _AddNorm(nn.Module):
    """dense -> dropout -> LayerNorm(+residual) (BertSelfOutput / BertOutput)."""

    def __init__(self, n_in: int, cfg: CaptionConfig):
        super().__init__()
        self.dense = nn.Linear(n_in, cfg.hidden)
        self.LayerNorm = LayerNorm(cfg.hidden)
        self.dropout = nn.Dropout(cfg.dropout)

    def forward(self, x, residual):
        return self.LayerNorm(self.dropout(self.dense(x)) + residual)


class _Intermediate(nn.Module):
    def __init__(self, cfg: CaptionConfig):
        super().__init__()
        self.dense = nn.Linear(cfg.hidden, cfg.intermediate)

    def forward(self, x):
        return gelu(self.dense(x))


class _EncoderAttention(nn.Module):
    def __init__(self, cfg: CaptionConfig):
        super().__init__()
        self.self = _QKV(cfg)
        self.output = _AddNorm(cfg.hidden, cfg)

    def forward(self, x, add_mask):
        return self.output(self.self(x, x, add_mask), x)


class _EncoderLayer(nn.Module):
    def __init__(self, cfg: CaptionConfig):
        super().__init__()
        self.attention = _EncoderAttention(cfg)
        self.intermediate = _Intermediate(cfg)
        self.output = _AddNorm(cfg.intermediate, cfg)

    def forward(self, x, add_mask):
        x = self.attention(x, add_mask)
        return self.output(self.intermediate(x), x)


class _Encoder(nn.Module):
    def __init__(self, cfg: CaptionConfig):
        super().__init__()
        self.layer = nn.ModuleList(_EncoderLayer(cfg) for _ in range(cfg.te_layers))


class _VisualEmbeddings(nn.Module):
    def __init__(self, cfg: CaptionConfig):
        super().__init__()
        self.word_embeddings = nn.Linear(cfg.video_dim, cfg.hidden)  # a Linear despite the name (UniVL #20)
        self.position_embeddings = nn.Embedding(cfg.visual_positions, cfg.hidden)
        self.LayerNorm = LayerNorm(cfg.hidden)
        self.dropout = nn.Dropout(cfg.dropout)

    def forward(self, x):  # (B, T, D) -> (B, T, H)
        pos = self.position_embeddings.weight[: x.shape[1]]
        return self.dropout(self.LayerNorm(self.word_embeddings(x) + pos))


class _Pooler(nn.Module):
    def __init__(self, cfg: CaptionConfig):
        super().__init__()
        self.dense = nn.Linear(cfg.hidden, cfg.hidden)  # stored in every checkpoint, unused for captioning


class VisualModel(nn.Module):
    def __init__(self, cfg: CaptionConfig):
        super().__init__()
        self.embeddings = _VisualEmbeddings(cfg)
        self.encoder = _Encoder(cfg)
        self.pooler = _Pooler(cfg)


class NormalizeVideo(nn.Module):
    def __init__(self, cfg: CaptionConfig):
        super().__init__()
        self.visual_norm2d = LayerNorm(cfg.video_dim)


class _DecoderAttention(nn.Module):
    def __init__(self, cfg: CaptionConfig):
        super().__init__()
        self.att = _QKV(cfg)
        self.output = _AddNorm(cfg.hidden, cfg)

    def forward(self, q, kv, add_mask):
        return self.output(self.att(q, kv, add_mask), q)


class _DecoderLayer(nn.Module):
    def __init__(self, cfg: CaptionConfig):
        super().__init__()
        self.slf_attn = _DecoderAttention(cfg)
        self.enc_attn = _DecoderAttention(cfg)
        self.intermediate = _Intermediate(cfg)
        self.output = _AddNorm(cfg.intermediate, cfg)

    def forward(self, x, memory, self_mask, mem_mask):
        x = self.slf_attn(x, x, self_mask)
        x = self.enc_attn(x, memory, mem_mask)
        return self.output(self.intermediate(x), x)

    def step(self, x, pos, cache, mem_k, mem_v, mem_mask):
        """One new position for N = B*G rows. x (N, H); cache (2, N, nh, Lmax, dh), written at `pos`;
        mem_k/mem_v (B, nh, T, dh) shared by the G rows of each video; mem_mask (B, 1, 1, T)."""
        att, n = self.slf_attn.att, x.shape[0]
        q = att.query(x).view(n, att.heads, 1, att.head_dim)
        cache[0, :, :, pos] = att.key(x).view(n, att.heads, att.head_dim)
        cache[1, :, :, pos] = att.value(x).view(n, att.heads, att.head_dim)
        # The causal mask would add 0 to every visible key, so the cached step needs none.
        ctx = att.attend(q, cache[0, :, :, : pos + 1], cache[1, :, :, : pos + 1])
        x = self.slf_attn.output(ctx.reshape(n, -1), x)
        att, b = self.enc_attn.att, mem_k.shape[0]
        # The G rows of a video become G queries against that video's memory: no copy of the memory per beam.
        q = att.query(x).view(b, n // b, att.heads, att.head_dim).transpose(1, 2)  # (B, nh, G, dh)
        ctx = att.attend(q, mem_k, mem_v, mem_mask).transpose(1, 2).reshape(n, -1)
        x = self.enc_attn.output(ctx, x)
        return self.output(self.intermediate(x), x)


class _DecoderStack(nn.Module):
    def __init__(self, cfg: CaptionConfig):
        super().__init__()
        self.layer = nn.ModuleList(_DecoderLayer(cfg) for _ in range(cfg.td_layers))


class _DecoderEmbeddings(nn.Module):
    def __init__(self, cfg: CaptionConfig):
        super().__init__()
        self.word_embeddings = nn.Embedding(cfg.vocab_size, cfg.hidden)
        self.position_embeddings = nn.Embedding(cfg.decoder_positions, cfg.hidden)
        self.LayerNorm = LayerNorm(cfg.hidden)
        self.dropout = nn.Dropout(cfg.dropout)

    def forward(self, ids, start: int = 0):  # (B, L) -> (B, L, H), positions start..start+L-1
        pos = self.position_embeddings.weight[start: start + ids.shape[-1]]
        return self.dropout(self.LayerNorm(self.word_embeddings(ids) + pos))


class _Transform(nn.Module):
    def __init__(self, cfg: CaptionConfig):
        super().__init__()
        self.dense = nn.Linear(cfg.hidden, cfg.hidden)
        self.LayerNorm = LayerNorm(cfg.hidden)

    def forward(self, x):
        return self.LayerNorm(gelu(self.dense(x)))


class _Predictions(nn.Module):
    def __init__(self, cfg: CaptionConfig, word_embeddings: nn.Parameter):
        super().__init__()
        self.transform = _Transform(cfg)
        self.decoder = nn.Linear(cfg.hidden, cfg.vocab_size, bias=False)
        self.decoder.weight = word_embeddings  # tied (reference.md 2.2 step 6)
        self.bias = nn.Parameter(torch.zeros(cfg.vocab_size))

    def forward(self, x):  # (..., H) -> (..., V)
        return self.decoder(self.transform(x)) + self.bias


class _Cls(nn.Module):
    def __init__(self, cfg: CaptionConfig, word_embeddings: nn.Parameter):
        super().__init__()
        self.predictions = _Predictions(cfg, word_embeddings)


class _Classifier(nn.Module):
    def __init__(self, cfg: CaptionConfig, word_embeddings: nn.Parameter):
        super().__init__()
        self.cls = _Cls(cfg, word_embeddings)


class DecoderModel(nn.Module):
    def __init__(self, cfg: CaptionConfig):
        super().__init__()
        self.embeddings = _DecoderEmbeddings(cfg)
        self.decoder = _DecoderStack(cfg)
        self.classifier = _Classifier(cfg, self.embeddings.word_embeddings.weight)
