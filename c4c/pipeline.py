"""Video file -> CaptionResult: the whole CLIP4Caption inference path over one model zoo.

frames (1 fps, <= max_frames) -> CLIP preprocessing -> backbone embeddings (n, E) -> every decoder's
beam search -> leave-one-out ensemble -> CaptionResult. Models are loaded once (`Zoo`) and only
read afterwards, so one Pipeline serves concurrent requests; each call keeps its state local.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from .errors import InputError
from .result import CaptionResult, model_captions, plain_pairwise
from .settings import CaptionSettings

__all__ = ["CaptionSettings", "Pipeline", "pick_device"]

Progress = Callable[[float, str], None]  # (fraction done, stage description)


def pick_device(device: str = "auto") -> str:
    """'auto' -> 'cuda' when a GPU is visible, else 'cpu'."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def file_sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


class Pipeline:
    """All of c4c's inference over one zoo. Build once, call `caption()` many times."""

    def __init__(self, zoo, feature_cache=None):
        self.zoo = zoo
        self.device = zoo.device
        self.cache = feature_cache

    @classmethod
    def from_zoo(cls, folder: str | Path | None = None, device: str = "auto", cache_size: int = 32) -> Pipeline:
        from .features.cache import FeatureCache
        from .zoo import Zoo, default_zoo_dir
        zoo = Zoo(folder or default_zoo_dir(), device=pick_device(device))
        return cls(zoo, FeatureCache(cache_size) if cache_size else None)

    def features(self, video: str | Path, settings: CaptionSettings, timings: dict[str, float] | None = None):
        """(SampledFrames, float32 (n, E) embeddings) for a video, through the cache when one is set."""
        from .video.frames import sample_frames
        from .video.preprocess import preprocess
        timings = {} if timings is None else timings
        t = time.perf_counter()
        digest = file_sha256(video) if Path(video).is_file() and os.access(video, os.R_OK) else ""
        timings["hash"] = time.perf_counter() - t
        key = None
        if self.cache is not None and digest:
            # What decides the features: the file's bytes, the backbone's weights (hashed once), the
            # sampling settings, and the decode/crop settings this method uses (their defaults).
            from .video.frames import DEFAULT_MAX_SHORT_SIDE
            key = (digest, self.zoo.backbone.fingerprint, settings.max_frames, settings.fps_mode,
                   settings.max_duration_s, DEFAULT_MAX_SHORT_SIDE, "c4c-crop")
        if key is not None and (hit := self.cache.get(key)) is not None:
            timings.update(decode=0.0, preprocess=0.0, backbone=0.0)
            return hit
        t = time.perf_counter()
        frames = sample_frames(video, max_frames=settings.max_frames, fps_mode=settings.fps_mode,
                               max_duration_s=settings.max_duration_s)
        timings["decode"] = time.perf_counter() - t
        t = time.perf_counter()
        pixels = preprocess(frames.images, size=self.zoo.backbone.image_size)
        timings["preprocess"] = time.perf_counter() - t
        t = time.perf_counter()
        feats = self.zoo.backbone.embed(pixels.to(self.device)).float().cpu().numpy()
        timings["backbone"] = time.perf_counter() - t
        if key is not None:
            self.cache.put(key, (frames, feats))
        return frames, feats

    def caption_features(self, feats: np.ndarray, settings: CaptionSettings = CaptionSettings(),
                         progress: Progress | None = None, timings: dict[str, float] | None = None):
        """Every participating decoder's hypothesis for (n, E) features, then the ensemble vote.
        Returns (names, hypotheses, EnsembleOutcome)."""
        from .captioning.model import prepare_video
        from .captioning.decoding import beam_search_many
        from .vote.ensemble import score_ensemble
        timings = {} if timings is None else timings
        names = list(settings.decoders or self.zoo.names)
        feats_t = torch.as_tensor(np.asarray(feats, dtype=np.float32))
        if feats_t.ndim != 2 or feats_t.shape[0] == 0:
            raise InputError(f"features must be a non-empty (n, d) array, got shape {tuple(feats_t.shape)}")
        t = time.perf_counter()
        if progress:
            progress(0.5, f"decoders {', '.join(names)}")
        # All decoders at once: their steps interleave over single-threaded workers (decoding.py).
        models = [self.zoo.decoders[name] for name in names]
        inputs = [prepare_video(feats_t, m.cfg) for m in models]
        hyps = [h[0] for h in beam_search_many(models, [v.to(self.device) for v, _ in inputs],
                                               [m.to(self.device) for _, m in inputs], beam=settings.beam,
                                               max_words=settings.max_words, precision=settings.precision,
                                               bos_id=self.zoo.tokenizer.bos_id, eos_id=self.zoo.tokenizer.eos_id)]
        timings["captioning"] = time.perf_counter() - t
        if progress:
            progress(0.9, "ensemble vote")
        t = time.perf_counter()
        texts = [self.zoo.tokenizer.decode(h.ids) for h in hyps]
        outcome = score_ensemble(texts, self.zoo.idf, select=settings.metric, metrics=settings.computed_metrics())
        timings["ensemble"] = time.perf_counter() - t
        return names, hyps, texts, outcome

    def grounding(self, feats: np.ndarray, texts: list[str]) -> list[float] | None:
        """Each caption's cosine with the video's meanP embedding (vote/grounding.py); None without a text tower."""
        if self.zoo.text_tower is None:
            return None
        from .vote.grounding import grounding_scores
        return grounding_scores(feats, self.zoo.text_tower.encode(texts))

    def check(self, settings: CaptionSettings) -> CaptionSettings:
        """The settings to run: select "auto" resolved to this zoo's rule, then CaptionSettings.check,
        and InputError for a grounding rule on a zoo without a text tower."""
        from .zoo import default_select
        settings = settings.resolve(default_select(self.zoo.manifest))
        settings.check(self.zoo.names)
        if settings.select != "consensus" and self.zoo.text_tower is None:
            raise InputError(f"--select {settings.select} needs grounding, but {self.zoo.no_grounding}; "
                             "use --select consensus")
        return settings

    def choose(self, feats: np.ndarray, texts: list[str], outcome, settings: CaptionSettings):
        """(Selection, grounding per caption or None) of one video's or segment's captions under the
        settings' (resolved) rule; the combined rule's w is the zoo's tuned one."""
        from .vote.selection import select
        grounding = self.grounding(feats, texts)
        weight = float(self.zoo.selection.get("combined_weight", 1.0))
        return select(outcome, grounding, settings.select, weight), grounding

    def selection_record(self, sel) -> dict:
        """What a result stores about a Selection (CaptionResult.selection, Segment.selection)."""
        return {"consensus_winner": int(sel.consensus_winner),
                "weight": float(self.zoo.selection.get("combined_weight", 1.0)),
                "decided_by": sel.decided_by, "scores": [round(x, 6) for x in sel.scores]}

    def caption_video(self, video: str | Path, settings: CaptionSettings = CaptionSettings(),
                      progress: Progress | None = None):
        """(CaptionResult, SampledFrames) for one video file; with settings.segments, a caption per segment
        too (c4c/segments.py), and SampledFrames of the whole-video caption's frames."""
        settings = self.check(settings)
        if settings.segments != "none":
            from .segments import caption_segments
            return caption_segments(self, video, settings, progress)
        timings: dict[str, float] = {}
        t0 = time.perf_counter()
        if progress:
            progress(0.05, "reading frames")
        frames, feats = self.features(video, settings, timings)
        names, hyps, texts, outcome = self.caption_features(feats, settings, progress, timings)
        t = time.perf_counter()
        sel, grounding = self.choose(feats, texts, outcome, settings)
        timings["grounding"] = time.perf_counter() - t
        timings["total"] = time.perf_counter() - t0
        captions = model_captions(names, hyps, texts, outcome, sel, grounding)
        result = CaptionResult(
            video=str(video),
            timestamps=[float(x) for x in frames.timestamps],
            frame_indices=[int(x) for x in frames.indices],
            captions=captions,
            winner=int(sel.winner),
            metric=settings.metric,
            tie_break=outcome.tie_break if sel.rule == "consensus" else sel.tie_break,
            pairwise=plain_pairwise(outcome.pairwise),
            idf=self.zoo.idf.describe(),
            timings={k: round(v, 4) for k, v in timings.items()},
            settings={**settings.record(), "decoders": names, "device": self.device},
            zoo=self.zoo.summary(),
            video_info={"fps": float(frames.fps), "duration_s": float(frames.duration_s),
                        "n_frames_total": int(frames.n_frames_total), "notes": list(frames.notes)},
            select=settings.select,
            selection={**self.selection_record(sel), "no_grounding": self.zoo.no_grounding},
        )
        if progress:
            progress(1.0, "done")
        return result, frames

    def caption(self, video: str | Path, settings: CaptionSettings = CaptionSettings(),
                progress: Progress | None = None) -> CaptionResult:
        """Caption one video file with every (chosen) decoder and return the ensemble's result."""
        return self.caption_video(video, settings, progress)[0]
