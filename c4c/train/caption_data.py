"""Caption training data: MSRVTT_data.json-style annotations + per-video frame features ->
teacher-forcing batches built exactly as the reference loader does (reference.md 2.3).

Per caption: WordPieces cut to `max_words - 1`; input = `[CLS] w1..wn`, target = `w1..wn [SEP]`,
both zero-padded to `max_words`; `decoder_mask` = 1 on the input positions. Per video: features
(n, D) zero-padded to `max_frames` slots; `video_mask` follows the model's convention, through the
same `prepare_video` that inference uses ("frames": 1 on real frames; "repro": all zeros, the
reference loader's quirk, reference.md 3.4).

Splits: a `"split"` field on every video entry wins (c4c's synthetic data, and MSR-VTT's own
`train`/`validate`/`test` field); otherwise json order, 6,513 / 497 / 2,990 as UniVL and the
reproduction do (reference.md 2.7), scaled proportionally for files of another size.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import InputError

__all__ = ["Annotations", "load_annotations", "encode_caption", "pad_video", "CaptionBatch", "CaptionSet",
           "caption_loss", "batch_logits", "trim_frame_slots", "PAD_LOSS_MODES"]

SPLITS = ("train", "val", "test")
_SPLIT_ALIASES = {"train": "train", "val": "val", "valid": "val", "validate": "val", "validation": "val", "test": "test"}
_MSRVTT_SIZES = (6513, 497, 2990)  # reference.md 2.7: train / val / test by json order
# "reference": CrossEntropy over every position, padding targets (id 0) included, as UniVL and the
# reproduction train (reference.md 2.3). "ignore": mean over the real target tokens (w1..wn [SEP]) only.
PAD_LOSS_MODES = ("ignore", "reference")


@dataclass(frozen=True)
class Annotations:
    """Videos in json order, their split and their reference captions (json order)."""
    videos: tuple[str, ...]
    split_of: Mapping[str, str]
    captions: Mapping[str, tuple[str, ...]]
    source: str = ""

    def ids(self, split: str) -> list[str]:
        return [v for v in self.videos if self.split_of[v] == split]

    def refs(self, split: str) -> list[list[str]]:
        return [list(self.captions[v]) for v in self.ids(split)]


def _order_splits(n: int) -> list[str]:
    sizes = _MSRVTT_SIZES
    if n != sum(sizes):  # proportional split for another corpus size; at least one val and test video
        n_val = max(1, round(n * sizes[1] / sum(sizes))) if n >= 3 else 0
        n_test = max(1, round(n * sizes[2] / sum(sizes))) if n >= 3 else 0
        sizes = (n - n_val - n_test, n_val, n_test)
    return ["train"] * sizes[0] + ["val"] * sizes[1] + ["test"] * sizes[2]


def load_annotations(path: str | Path) -> Annotations:
    """Read `{"videos": [{"video_id", ["split"]}, ...], "sentences": [{"video_id", "caption"}, ...]}`."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        videos = [str(v["video_id"]) for v in data["videos"]]
        sentences = [(str(s["video_id"]), str(s["caption"])) for s in data["sentences"]]
    except FileNotFoundError:
        raise InputError(f"{path}: no such annotations file") from None
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError) as e:
        raise InputError(f"{path}: not an MSRVTT_data.json-style file ({type(e).__name__}: {e}); expected "
                         "'videos' with 'video_id' and 'sentences' with 'video_id' and 'caption'") from None
    if len(set(videos)) != len(videos):
        raise InputError(f"{path}: duplicate video ids in 'videos'")
    raw_splits = [v.get("split") for v in data["videos"]]
    if all(isinstance(s, str) and s.lower() in _SPLIT_ALIASES for s in raw_splits):
        splits = [_SPLIT_ALIASES[s.lower()] for s in raw_splits]
    else:
        splits = _order_splits(len(videos))
    caps: dict[str, list[str]] = {v: [] for v in videos}
    for vid, cap in sentences:
        if vid in caps:
            caps[vid].append(cap)
    empty = [v for v in videos if not caps[v]]
    if empty:
        raise InputError(f"{path}: {len(empty)} video(s) have no caption (e.g. {empty[0]!r})")
    return Annotations(tuple(videos), dict(zip(videos, splits)), {v: tuple(c) for v, c in caps.items()}, str(path))


def encode_caption(tokenizer, caption: str, max_words: int) -> tuple[list[int], list[int], list[int]]:
    """(input_ids, target_ids, decoder_mask), each `max_words` long, as the reference builds them."""
    from ..captioning.tokenizer import caption_rows
    rows = caption_rows(tokenizer, caption, max_words)
    return list(rows.input_ids), list(rows.output_ids), list(rows.mask)


def pad_video(feats: np.ndarray, cfg) -> tuple[np.ndarray, np.ndarray]:
    """((max_frames, D) float32, (max_frames,) float32 mask) under the model's convention
    (`c4c.captioning.model.prepare_video`, the same code inference uses: frames beyond `max_frames` are
    dropped from the end; mask 1 on real frames for "frames", all 0 for "repro")."""
    from ..captioning.model import prepare_video
    video, mask = prepare_video(feats, cfg)
    return video[0].numpy(), mask[0].float().numpy()


@dataclass(frozen=True)
class CaptionBatch:
    video: torch.Tensor          # (Bv, T, D) float32: each video of the batch once
    video_mask: torch.Tensor     # (Bv, T) float32
    row_video: torch.Tensor      # (B,) long: caption row -> index into `video`
    input_ids: torch.Tensor      # (B, L) long: [CLS] w1..wn 0..
    decoder_mask: torch.Tensor   # (B, L) float32: 1 on input positions
    target_ids: torch.Tensor     # (B, L) long: w1..wn [SEP] 0..


class CaptionSet:
    """All (video, caption) pairs of one split, encoded once; videos stored once and indexed."""

    def __init__(self, ann: Annotations, features: Mapping[str, np.ndarray], tokenizer, split: str, cfg):
        """`cfg` is the model's CaptionConfig: its mask, max_frames and max_words shape the tensors."""
        if split not in SPLITS:
            raise InputError(f"split must be one of {SPLITS}, got {split!r}")
        self.video_ids = ann.ids(split)
        if not self.video_ids:
            raise InputError(f"{ann.source}: the {split} split is empty")
        missing = [v for v in self.video_ids if v not in features]
        if missing:
            raise InputError(f"the features file has no entry for {len(missing)} {split} video(s) "
                             f"(e.g. {missing[0]!r}); extract features for every annotated video")
        vids, masks = zip(*(pad_video(features[v], cfg) for v in self.video_ids))
        self.video = torch.from_numpy(np.stack(vids))       # (Nv, T, D)
        self.video_mask = torch.from_numpy(np.stack(masks))  # (Nv, T)
        self.refs = [list(ann.captions[v]) for v in self.video_ids]
        rows, owner = [], []
        for i, v in enumerate(self.video_ids):
            for cap in ann.captions[v]:
                rows.append(encode_caption(tokenizer, cap, cfg.max_words))
                owner.append(i)
        enc = torch.tensor(rows, dtype=torch.long)          # (Np, 3, L)
        self.input_ids, self.target_ids = enc[:, 0], enc[:, 1]
        self.decoder_mask = enc[:, 2].float()
        self.owner = torch.tensor(owner, dtype=torch.long)  # pair -> video row (rows grouped by video)
        counts = torch.bincount(self.owner, minlength=len(self.video_ids))
        self.first = torch.cumsum(counts, 0) - counts       # first pair row of each video
        self.counts = counts
        self.max_words = cfg.max_words
        self.trim_frames = cfg.mask == "frames"  # padded slots are masked out, so they can be cut

    def __len__(self) -> int:
        return len(self.owner)

    def epoch_rows(self, generator: torch.Generator | None, per_video: int | None = None) -> torch.Tensor:
        """Pair rows of one epoch, in order. per_video=None: every pair once (the reference's epoch),
        shuffled. per_video=k: every video once with k of its captions drawn afresh each epoch,
        its rows adjacent so a batch encodes each video once."""
        if per_video is None:
            return torch.randperm(len(self), generator=generator) if generator is not None else torch.arange(len(self))
        videos = torch.randperm(len(self.video_ids), generator=generator) if generator is not None \
            else torch.arange(len(self.video_ids))
        out = []
        for v in videos.tolist():
            n = int(self.counts[v])
            pick = torch.randperm(n, generator=generator)[:per_video] if generator is not None else torch.arange(min(n, per_video))
            out.append(self.first[v] + pick)
        return torch.cat(out)

    def batches(self, batch_size: int, generator: torch.Generator | None = None, trim: bool = True,
                per_video: int | None = None, bucket: int = 0) -> Iterator[CaptionBatch]:
        """Batches of `batch_size` caption rows over one epoch (`epoch_rows`); the generator's seed
        fixes the data order. `trim` cuts the word axis to the longest caption of the batch (and the
        frame axis to the longest video under the "frames" mask): exact under the "ignore" loss
        (causal decoder, padded positions carry no loss). `bucket=n` sorts each run of n batches by
        caption length before cutting it into batches, and shuffles those batches: about half the
        word positions of a random batch are padding, sorted ones have almost none."""
        order = self.epoch_rows(generator, per_video)
        starts = list(range(0, len(order), batch_size))
        if bucket > 1 and trim:
            lengths = self.decoder_mask[order].sum(1)
            for c in range(0, len(order), bucket * batch_size):
                chunk = slice(c, c + bucket * batch_size)
                order[chunk] = order[chunk][torch.argsort(lengths[chunk], stable=True)]
            if generator is not None:
                starts = [starts[i] for i in torch.randperm(len(starts), generator=generator).tolist()]
        for start in starts:
            idx = order[start: start + batch_size]
            dm = self.decoder_mask[idx]
            L = int(dm.sum(1).max()) if trim else self.max_words
            uniq, row_video = torch.unique(self.owner[idx], return_inverse=True)
            video, vmask = self.video[uniq], self.video_mask[uniq]
            if trim and self.trim_frames:
                video, vmask = trim_frame_slots(video, vmask)
            yield CaptionBatch(video, vmask, row_video, self.input_ids[idx, :L],
                               dm[:, :L], self.target_ids[idx, :L])

    def n_rows(self, per_video: int | None = None) -> int:
        """Caption rows in one epoch."""
        return len(self) if per_video is None else int(self.counts.clamp(max=per_video).sum())


def trim_frame_slots(video: torch.Tensor, video_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Cut (B, T, D) / (B, T) to the longest real frame count of the batch. Only for the "frames"
    mask: padded slots there get -10000 on every key (exp underflows to exactly 0), so outputs
    at real positions do not change, while the encoder and cross-attention work shrinks by T."""
    n = int(video_mask.sum(1).max().clamp_min(1))
    return video[:, :n], video_mask[:, :n]


def batch_logits(model, batch: CaptionBatch) -> torch.Tensor:
    """Teacher-forced (B, L, V) logits; the video encoder runs once per distinct video of the batch."""
    memory = model.encode(batch.video, batch.video_mask)                  # (Bv, T, H)
    hidden = model.decoder_states(batch.input_ids, memory[batch.row_video], batch.video_mask[batch.row_video],
                                  batch.decoder_mask)[-1]                # (B, L, H)
    return model.logits(hidden)


def caption_loss(logits: torch.Tensor, batch: CaptionBatch, pad_loss: str = "ignore") -> torch.Tensor:
    """Cross-entropy of (B, L, V) logits against the batch targets.

    "ignore" (default): mean over real target tokens only, so the loss scale (hence the effective
    learning rate) does not depend on how much padding a batch has, and no capacity is spent on
    predicting [PAD] after [SEP], which decoding never reads. "reference": the UniVL/reproduction loss,
    mean over all `max_words` positions with padding targets (id 0) counted (reference.md 2.3), for
    re-training parity; use it with untrimmed batches.
    """
    if pad_loss == "reference":
        from ..captioning.model import caption_loss as reference_loss
        return reference_loss(logits, batch.target_ids)
    if pad_loss != "ignore":
        raise InputError(f"pad_loss must be one of {PAD_LOSS_MODES}, got {pad_loss!r}")
    w = batch.decoder_mask.reshape(-1)
    ce = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), batch.target_ids.reshape(-1), reduction="none")
    return (ce * w).sum() / w.sum().clamp_min(1.0)
