"""The CLIP4Caption caption model (video encoder TE + caption decoder TD) in UniVL's key layout.

Re-implements the reference `CaptionGenerator` of the CLIP4Caption reproduction (UniVL's
`NormalizeVideo`, `VisualModel`, `DecoderModel`; SPEC 2.2 and 3) with the same state-dict keys,
so the released `.bin` files load as they are. Arithmetic follows the reference op for op (TF-style
LayerNorm with eps 1e-12, erf GELU, scores/sqrt(d) + additive -10000 masks) because the
reproduction's all-zero video mask makes outputs depend on fp32 rounding (golden README 4).

Sizes are read off the state dict; the number of attention heads is not in the weights, so it is a
setting (default hidden // 64, like BERT-base). Per-model settings: `mask` ("repro": zero-pad to
`max_frames` slots and mask nothing but add -10000 to every key score, as the released checkpoint
was trained; "frames": mask the padding, UniVL's convention; "ones": all-ones mask, diagnostic),
`max_frames` and `max_words`.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .checkpoints import check_finite, check_shapes, load_state_dict, read_safetensors_metadata, save_safetensors
from .errors import CheckpointError, InputError

__all__ = ["CaptionConfig", "CaptionModel", "LoadReport", "init_from_univl", "prepare_video", "caption_loss",
           "MASKS"]

MASKS = ("repro", "frames", "ones")
_FORMAT = "c4c-caption"  # safetensors metadata "format" of files written by CaptionModel.save
_TIED = "decoder.classifier.cls.predictions.decoder.weight"  # the classifier weight, tied to the word embedding
_WORD = "decoder.embeddings.word_embeddings.weight"


@dataclass(frozen=True)
class CaptionConfig:
    """Sizes (read off a state dict) and per-model settings of a caption model."""
    video_dim: int                # D: width of the per-frame features (512 for CLIP ViT-B, 1024 for S3D)
    hidden: int = 768             # H: transformer width of TE and TD
    heads: int | None = None      # attention heads; None/0 = hidden // 64 (not stored in reference weights)
    intermediate: int = 3072      # feed-forward width
    te_layers: int = 2            # video encoder layers (reproduction 2, paper 1, UniVL 6)
    td_layers: int = 2            # decoder layers (reproduction 2, paper 3, UniVL 3)
    vocab_size: int = 30522       # decoder vocabulary (rows of the word embedding)
    visual_positions: int = 512   # rows of the TE position embedding (max frames it can take)
    decoder_positions: int = 512  # rows of the TD position embedding (max caption prefix length)
    mask: str = "repro"           # video mask convention, one of MASKS
    max_frames: int = 20          # frame slots: features are cut / zero-padded to this many
    max_words: int = 48           # decoding steps (and teacher-forcing length)
    dropout: float = 0.1          # hidden and attention dropout, active in train mode only
    init_std: float = 0.02        # std of the fresh normal init (reference initializer_range)

    def __post_init__(self):
        if not self.heads:  # 0 or None: BERT's 64-wide heads
            object.__setattr__(self, "heads", max(1, self.hidden // 64))
        if self.hidden % self.heads:
            raise InputError(f"{self.heads} attention heads do not divide the hidden size {self.hidden}; "
                             "pass a head count that does (e.g. hidden // 64)")
        if self.mask not in MASKS:
            raise InputError(f"unknown mask convention {self.mask!r}; use one of {', '.join(MASKS)}")
        if not 1 <= self.max_frames <= self.visual_positions:
            raise InputError(f"max_frames {self.max_frames} must be between 1 and the encoder's "
                             f"{self.visual_positions} positions")
        if not 1 <= self.max_words <= self.decoder_positions:
            raise InputError(f"max_words {self.max_words} must be between 1 and the decoder's "
                             f"{self.decoder_positions} positions")

    @property
    def head_dim(self) -> int:
        return self.hidden // self.heads

    @classmethod
    def from_state_dict(cls, sd: dict[str, torch.Tensor], source: str = "state dict", *, heads: int | None = None,
                        mask: str = "repro", max_frames: int | None = None, max_words: int | None = None,
                        dropout: float = 0.1) -> CaptionConfig:
        """Read sizes off UniVL-layout weights: layer counts from the keys, widths from shapes."""
        def shape(key):
            if key not in sd:
                raise CheckpointError(f"{source}: missing key {key!r}; not a CLIP4Caption/UniVL caption checkpoint")
            return tuple(sd[key].shape)

        def count(prefix):
            found = {int(m.group(1)) for k in sd if (m := re.match(re.escape(prefix) + r"(\d+)\.", k))}
            return max(found) + 1 if found else 0

        hidden, video_dim = shape("visual.embeddings.word_embeddings.weight")
        td_layers = count("decoder.decoder.layer.")
        if td_layers == 0:
            raise CheckpointError(f"{source}: no decoder layers (decoder.decoder.layer.N.*); not a caption checkpoint")
        visual_positions = shape("visual.embeddings.position_embeddings.weight")[0]
        decoder_positions = shape("decoder.embeddings.position_embeddings.weight")[0]
        return cls(
            video_dim=video_dim, hidden=hidden, heads=heads,
            intermediate=shape("decoder.decoder.layer.0.intermediate.dense.weight")[0],
            te_layers=count("visual.encoder.layer."), td_layers=td_layers,
            vocab_size=shape(_WORD)[0], visual_positions=visual_positions, decoder_positions=decoder_positions,
            mask=mask, max_frames=max_frames or min(20, visual_positions),
            max_words=max_words or min(48, decoder_positions), dropout=dropout)


def _gelu(x):
    # The reference's exact erf GELU, written out so the arithmetic matches it bit for bit.
    return x * 0.5 * (1.0 + torch.erf(x / math.sqrt(2.0)))


def additive_mask(mask: torch.Tensor, dtype=torch.float32) -> torch.Tensor:
    """(B, T) 0/1 key mask -> (B, 1, 1, T) additive mask, (1 - m) * -10000 as the reference computes it."""
    return (1.0 - mask[:, None, None, :].to(dtype)) * -10000.0


class _LayerNorm(nn.Module):
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
        self.LayerNorm = _LayerNorm(cfg.hidden)
        self.dropout = nn.Dropout(cfg.dropout)

    def forward(self, x, residual):
        return self.LayerNorm(self.dropout(self.dense(x)) + residual)


class _Intermediate(nn.Module):
    def __init__(self, cfg: CaptionConfig):
        super().__init__()
        self.dense = nn.Linear(cfg.hidden, cfg.intermediate)

    def forward(self, x):
        return _gelu(self.dense(x))


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
        self.LayerNorm = _LayerNorm(cfg.hidden)
        self.dropout = nn.Dropout(cfg.dropout)

    def forward(self, x):  # (B, T, D) -> (B, T, H)
        pos = self.position_embeddings.weight[: x.shape[1]]
        return self.dropout(self.LayerNorm(self.word_embeddings(x) + pos))


class _Pooler(nn.Module):
    def __init__(self, cfg: CaptionConfig):
        super().__init__()
        self.dense = nn.Linear(cfg.hidden, cfg.hidden)  # stored in every checkpoint, unused for captioning


class _Visual(nn.Module):
    def __init__(self, cfg: CaptionConfig):
        super().__init__()
        self.embeddings = _VisualEmbeddings(cfg)
        self.encoder = _Encoder(cfg)
        self.pooler = _Pooler(cfg)


class _NormalizeVideo(nn.Module):
    def __init__(self, cfg: CaptionConfig):
        super().__init__()
        self.visual_norm2d = _LayerNorm(cfg.video_dim)


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
        self.LayerNorm = _LayerNorm(cfg.hidden)
        self.dropout = nn.Dropout(cfg.dropout)

    def forward(self, ids, start: int = 0):  # (B, L) -> (B, L, H), positions start..start+L-1
        pos = self.position_embeddings.weight[start: start + ids.shape[-1]]
        return self.dropout(self.LayerNorm(self.word_embeddings(ids) + pos))


class _Transform(nn.Module):
    def __init__(self, cfg: CaptionConfig):
        super().__init__()
        self.dense = nn.Linear(cfg.hidden, cfg.hidden)
        self.LayerNorm = _LayerNorm(cfg.hidden)

    def forward(self, x):
        return self.LayerNorm(_gelu(self.dense(x)))


class _Predictions(nn.Module):
    def __init__(self, cfg: CaptionConfig, word_embeddings: nn.Parameter):
        super().__init__()
        self.transform = _Transform(cfg)
        self.decoder = nn.Linear(cfg.hidden, cfg.vocab_size, bias=False)
        self.decoder.weight = word_embeddings  # tied (SPEC 2.2 step 6)
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


class _Decoder(nn.Module):
    def __init__(self, cfg: CaptionConfig):
        super().__init__()
        self.embeddings = _DecoderEmbeddings(cfg)
        self.decoder = _DecoderStack(cfg)
        self.classifier = _Classifier(cfg, self.embeddings.word_embeddings.weight)


class CaptionModel(nn.Module):
    """TE + TD caption model; `state_dict()` keys equal the reference checkpoint's (keys_repro.txt)."""

    def __init__(self, cfg: CaptionConfig, init: bool = True):
        """A fresh model; `init=False` skips the reference init (for weights about to be overwritten)."""
        super().__init__()
        self.cfg = cfg
        self.normalize_video = _NormalizeVideo(cfg)
        self.visual = _Visual(cfg)
        self.decoder = _Decoder(cfg)
        if init:
            self.apply(self._init_weights)

    def _init_weights(self, m):
        # Reference PreTrainedModel.init_weights: N(0, 0.02) weights, zero biases, LayerNorm 1/0.
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, 0.0, self.cfg.init_std)
        if isinstance(m, nn.Linear) and m.bias is not None:
            nn.init.zeros_(m.bias)
        if isinstance(m, _LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)

    def encoder_states(self, video, video_mask) -> list[torch.Tensor]:
        """video (B, T, D), video_mask (B, T) 0/1 -> [normalized (B,T,D), embeddings (B,T,H), each TE layer]."""
        x = self.normalize_video.visual_norm2d(video.float())
        add = additive_mask(video_mask, x.dtype)
        out = [x, self.visual.embeddings(x)]
        for layer in self.visual.encoder.layer:
            out.append(layer(out[-1], add))
        return out

    def encode(self, video, video_mask) -> torch.Tensor:
        """The decoder memory (B, T, H): TE output on all T slots, padded ones included."""
        return self.encoder_states(video, video_mask)[-1]

    def decoder_states(self, input_ids, memory, video_mask, decoder_mask) -> list[torch.Tensor]:
        """Teacher forcing: input_ids/decoder_mask (B, L) -> [embeddings (B,L,H), each TD layer output]."""
        x = self.decoder.embeddings(input_ids)
        length = input_ids.shape[1]
        causal = torch.triu(torch.ones(length, length, device=x.device, dtype=x.dtype), diagonal=1)
        keep = decoder_mask[:, None, None, :].to(x.dtype)
        self_mask = ((1.0 - keep) + causal).gt(0).to(x.dtype) * -10000.0  # (B, 1, L, L), reference form
        mem_mask = additive_mask(video_mask, x.dtype)
        out = [x]
        for layer in self.decoder.decoder.layer:
            out.append(layer(out[-1], memory, self_mask, mem_mask))
        return out

    def logits(self, hidden) -> torch.Tensor:
        """Classifier: (..., H) -> (..., V)."""
        return self.decoder.classifier.cls.predictions(hidden)

    def forward(self, video, video_mask, input_ids, decoder_mask) -> torch.Tensor:
        """Teacher-forced logits (B, L, V); dropout is active in train mode."""
        memory = self.encode(video, video_mask)
        return self.logits(self.decoder_states(input_ids, memory, video_mask, decoder_mask)[-1])

    def memory_kv(self, memory) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Cross-attention keys/values of every TD layer, computed once per video: each (B, nh, T, dh)."""
        return [(layer.enc_attn.att.split(layer.enc_attn.att.key(memory)),
                 layer.enc_attn.att.split(layer.enc_attn.att.value(memory))) for layer in self.decoder.decoder.layer]

    def step(self, tokens, pos: int, cache, mem_kv, mem_mask) -> torch.Tensor:
        """KV-cached decoder step: tokens (N,) at position `pos` -> last hidden state (N, H).
        cache (layers, 2, N, nh, Lmax, dh) is written at `pos`; rows are grouped by video (N = B*G)."""
        x = self.decoder.embeddings(tokens[:, None], start=pos)[:, 0]
        for i, layer in enumerate(self.decoder.decoder.layer):
            x = layer.step(x, pos, cache[i], mem_kv[i][0], mem_kv[i][1], mem_mask)
        return x

    @classmethod
    def from_file(cls, path: str | Path, *, heads: int | None = None, mask: str | None = None,
                  max_frames: int | None = None, max_words: int | None = None) -> CaptionModel:
        """Load a reproduction `.bin` (bare state dict) or a c4c safetensors file, in eval mode.

        Settings: an argument given here wins, then the safetensors metadata, then the defaults
        (heads hidden // 64, mask "repro" as the released checkpoint was trained, 20 frames, 48 words).
        """
        sd = load_state_dict(path)
        meta = read_safetensors_metadata(path)
        if sd and all(k.startswith("module.") for k in sd):  # saved from a DataParallel wrapper
            sd = {k[len("module."):]: v for k, v in sd.items()}
        if any(k.startswith(("bert.", "cross.")) for k in sd):
            raise CheckpointError(f"{path}: this is a UniVL pretraining checkpoint (bert./cross. keys), not a "
                                  "caption model; use it to initialise training (init_from_univl)")
        cfg = CaptionConfig.from_state_dict(
            sd, str(path), heads=heads or meta.get("heads"), mask=mask or meta.get("mask") or "repro",
            max_frames=max_frames or meta.get("max_frames"), max_words=max_words or meta.get("max_words"))
        return cls.from_state_dict(sd, cfg, source=str(path))

    @classmethod
    def from_state_dict(cls, sd: dict[str, torch.Tensor], cfg: CaptionConfig,
                        source: str = "state dict") -> CaptionModel:
        """Build a model holding exactly `sd` (missing/mis-shaped/extra keys and NaN/Inf raise CheckpointError)."""
        # Not built on the meta device: its normal_ pulls in torch._dynamo (seconds of import time).
        model = cls(cfg, init=False)
        expected = {k: tuple(v.shape) for k, v in model.state_dict().items() if k != _TIED}
        check_shapes(sd, expected, source)
        extra = sorted(set(sd) - set(expected) - {_TIED})
        if extra:
            raise CheckpointError(f"{source}: unexpected key {extra[0]!r} ({len(extra)} in all); "
                                  "not a caption checkpoint of this layout")
        if _TIED in sd and sd[_TIED].data_ptr() != sd[_WORD].data_ptr():
            check_shapes(sd, {_TIED: expected[_WORD]}, source)
            if not torch.equal(sd[_TIED], sd[_WORD]):
                raise CheckpointError(f"{source}: {_TIED!r} differs from {_WORD!r}; the classifier must be tied "
                                      "to the word embedding")
        sd = {k: v.float().contiguous() for k, v in sd.items() if k in expected}
        check_finite(sd, source)
        sd[_TIED] = sd[_WORD]
        model.load_state_dict(sd, strict=True, assign=True)
        # assign=True gives each name its own Parameter: re-tie the classifier to the word embedding.
        model.decoder.classifier.cls.predictions.decoder.weight = model.decoder.embeddings.word_embeddings.weight
        return model.eval()

    def save(self, path: str | Path, provenance: str | dict = "") -> None:
        """Write safetensors (tied weight stored once) with settings and provenance in the metadata."""
        sd = {k: v for k, v in self.state_dict().items() if k != _TIED}
        cfg = self.cfg
        save_safetensors(sd, path, {"format": _FORMAT, "heads": cfg.heads, "mask": cfg.mask,
                                    "max_frames": cfg.max_frames, "max_words": cfg.max_words,
                                    "provenance": provenance})

    def with_settings(self, **settings) -> CaptionModel:
        """Change per-model settings (mask, max_frames, max_words, dropout) in place; sizes cannot change."""
        bad = set(settings) - {"mask", "max_frames", "max_words", "dropout"}
        if bad:
            raise InputError(f"cannot change {', '.join(sorted(bad))} of a built model")
        self.cfg = replace(self.cfg, **settings)
        if "dropout" in settings:
            for m in self.modules():
                if isinstance(m, nn.Dropout):
                    m.p = settings["dropout"]
        return self


def prepare_video(feats, cfg: CaptionConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-frame features (n, D) -> (video (1, T, D), video_mask (1, T) int64) with T = cfg.max_frames.

    Frames beyond max_frames are dropped from the end (the reference loaders keep the first ones);
    missing slots are zeros. The mask follows cfg.mask: "repro" all 0 (every key gets -10000, as the
    reproduction's loader did), "frames" 1 on real frames, "ones" all 1.
    """
    f = torch.as_tensor(feats if isinstance(feats, torch.Tensor) else np.asarray(feats), dtype=torch.float32)
    if f.ndim != 2:
        raise InputError(f"features must be a 2-D array (frames, {cfg.video_dim}); got shape {tuple(f.shape)}")
    if f.shape[1] != cfg.video_dim:
        raise InputError(f"features have {f.shape[1]} columns but the decoder expects {cfg.video_dim}-d frame "
                         "embeddings; extract them with the backbone this decoder was trained on")
    if f.shape[0] == 0:
        raise InputError("features have 0 frames; the video yielded no frames")
    if not bool(torch.isfinite(f).all()):
        raise InputError("features contain NaN or Inf; re-extract them (the video may be broken)")
    n = min(f.shape[0], cfg.max_frames)
    video = f.new_zeros(1, cfg.max_frames, cfg.video_dim)
    video[0, :n] = f[:n]
    mask = torch.zeros(1, cfg.max_frames, dtype=torch.long, device=f.device)
    if cfg.mask == "frames":
        mask[0, :n] = 1
    elif cfg.mask == "ones":
        mask[:] = 1
    return video, mask


def caption_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Reference training loss: mean cross-entropy over every position (B, L), ignore_index -1.
    Padding targets are 0 ([PAD]) and therefore count, as in the reference."""
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=-1)


@dataclass(frozen=True)
class LoadReport:
    """What `init_from_univl` did, key by key (model key names)."""
    source: str                                                        # the file read
    loaded: tuple[str, ...] = ()                                       # copied from the file
    skipped_shape: tuple[tuple[str, tuple, tuple], ...] = ()           # (key, expected, found): kept fresh init
    missing: tuple[str, ...] = ()                                      # no counterpart in the file: kept fresh init
    unused: tuple[str, ...] = field(default=(), repr=False)            # file keys that fed nothing

    def summary(self) -> str:
        lines = [f"{self.source}: loaded {len(self.loaded)}, shape mismatch {len(self.skipped_shape)}, "
                 f"missing {len(self.missing)}, unused {len(self.unused)}"]
        lines += [f"  kept fresh (shape {list(e)} vs {list(f)} in file): {k}" for k, e, f in self.skipped_shape]
        lines += [f"  kept fresh (not in file): {k}" for k in self.missing]
        return "\n".join(lines)


# Where a caption-model key may also be found in a UniVL file: the decoder's embeddings are BERT's.
_UNIVL_ALIASES = {
    _WORD: ("bert.embeddings.word_embeddings.weight",),
    "decoder.embeddings.position_embeddings.weight": ("bert.embeddings.position_embeddings.weight",),
}


def init_from_univl(model: CaptionModel, path: str | Path) -> LoadReport:
    """Initialise `model` from `univl.pretrained.bin` the way the reproduction does (SPEC 2.4, 2.8).

    Non-strict, by name: visual layers 0..L-1 and decoder layers 0..L-1 (extra file layers unused),
    embeddings and classifier from `decoder.*` (falling back to `bert.*`). Keys whose shapes differ
    (e.g. LN/Linear over 1024-d S3D input vs 512-d CLIP) keep their fresh init, as the reference
    logs and skips them. Raises CheckpointError if nothing at all fits.
    """
    src = load_state_dict(path)
    # The reference renames TF-style gamma/beta LayerNorm names.
    src = {k.replace("gamma", "weight").replace("beta", "bias"): v for k, v in src.items()}
    targets = {k: v for k, v in model.state_dict(keep_vars=True).items() if k != _TIED}
    plan, used, skipped, missing = {}, set(), [], []  # plan: model key -> file key to copy
    for key, param in targets.items():
        name = next((n for n in (key, *_UNIVL_ALIASES.get(key, ())) if n in src), None)
        if name is None:
            missing.append(key)
            continue
        used.add(name)
        if tuple(src[name].shape) != tuple(param.shape):
            skipped.append((key, tuple(param.shape), tuple(src[name].shape)))
        else:
            plan[key] = name
    check_finite({n: src[n] for n in plan.values()}, path)  # only what is copied: unused heads may be anything
    with torch.no_grad():
        for key, name in plan.items():
            targets[key].copy_(src[name])
    loaded = list(plan)
    if not loaded:
        raise CheckpointError(f"{path}: no key of the caption model matches this file; is it univl.pretrained.bin?")
    if _WORD in loaded:
        used.add(_TIED)  # the file's classifier weight is the same tensor as its word embedding
    return LoadReport(source=str(path), loaded=tuple(loaded), skipped_shape=tuple(skipped), missing=tuple(missing),
                      unused=tuple(k for k in src if k not in used))
