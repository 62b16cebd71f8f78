"""The CLIP4Caption caption model (video encoder TE + caption decoder TD) in UniVL's key layout.

Re-implements the reference `CaptionGenerator` of the CLIP4Caption reproduction (UniVL's
`NormalizeVideo`, `VisualModel`, `DecoderModel`; reference.md 2.2 and 3) with the same state-dict keys,
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

import re
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .layers import DecoderModel, LayerNorm, NormalizeVideo, VisualModel, additive_mask
from ..checkpoints import check_finite, check_shapes, load_state_dict, read_safetensors_metadata, save_safetensors
from ..errors import CheckpointError, InputError
from ..settings import MASKS

__all__ = ["CaptionConfig", "CaptionModel", "prepare_video", "caption_loss", "MASKS"]

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


class CaptionModel(nn.Module):
    """TE + TD caption model; `state_dict()` keys equal the reference checkpoint's (docs/reference.md 3.3)."""

    def __init__(self, cfg: CaptionConfig, init: bool = True):
        """A fresh model; `init=False` skips the reference init (for weights about to be overwritten)."""
        super().__init__()
        self.cfg = cfg
        self.normalize_video = NormalizeVideo(cfg)
        self.visual = VisualModel(cfg)
        self.decoder = DecoderModel(cfg)
        if init:
            self.apply(self._init_weights)

    def _init_weights(self, m):
        # Reference PreTrainedModel.init_weights: N(0, 0.02) weights, zero biases, LayerNorm 1/0.
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, 0.0, self.cfg.init_std)
        if isinstance(m, nn.Linear) and m.bias is not None:
            nn.init.zeros_(m.bias)
        if isinstance(m, LayerNorm):
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
                                  "caption model; use it to initialise training (c4c.captioning.univl.init_from_univl)")
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
