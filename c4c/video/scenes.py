"""Scene changes and the segments they make.

Two detectors, compared by `benchmarks/segments_detectors.py` (results in benchmarks/README.md):

* `embedding_cuts`: a change-point rule on the 1-fps CLIP embeddings that captioning computes anyway
  (no extra decoding). A cut between seconds t and t+1 shows as a cosine distance between their
  embeddings far above the distances around it; the rule keeps local maxima that stand out from the
  local median by `ratio` and exceed `min_distance`. Its times are midway between two samples, so
  within 0.5 s of the cut.
* `pyscenedetect_cuts`: PySceneDetect's ContentDetector on every frame (optional dependency
  `scenedetect`; frame-exact, but it decodes the whole video a second time).

`plan_segments` turns cuts into spans no shorter than `min_s` (the stronger of two close cuts is kept)
and no longer than `max_s` (longer spans are split into equal parts).
"""

from __future__ import annotations

import math
import os

import numpy as np

from ..errors import InputError

__all__ = ["Cut", "embedding_cuts", "pyscenedetect_cuts", "every_cuts", "plan_segments", "DETECTORS"]

DETECTORS = ("embedding", "pyscenedetect")
Cut = tuple[float, float]  # (time s, strength: larger = surer; forced boundaries are inf)

# Defaults of the embedding rule, chosen on the benchmark's videos (benchmarks/segments_detectors.py).
RATIO = 3.0          # a cut's distance is at least this many times the local median distance ...
MIN_DISTANCE = 0.05  # ... and at least this (cosine distance, 0..2) in absolute terms
WINDOW = 8           # seconds either side for the local median


def consecutive_distances(feats: np.ndarray) -> np.ndarray:
    """Cosine distance between each pair of consecutive rows of (n, E) embeddings -> (n-1,)."""
    x = np.asarray(feats, dtype=np.float64)
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    return 1.0 - np.sum(x[1:] * x[:-1], axis=1)


def embedding_cuts(feats: np.ndarray, times: list[float], ratio: float = RATIO,
                   min_distance: float = MIN_DISTANCE, window: int = WINDOW) -> list[Cut]:
    """Cuts in 1-fps embeddings (rows in time order at `times` s): see the module docstring."""
    d = consecutive_distances(feats)
    cuts = []
    for k in range(len(d)):
        left, right = d[max(0, k - window):k], d[k + 1:k + 1 + window]
        around = np.concatenate([left, right])
        if d[k] < min_distance:
            continue
        if (k > 0 and d[k - 1] > d[k]) or (k + 1 < len(d) and d[k + 1] >= d[k]):
            continue  # not a local maximum: a fade's peak is counted once
        # The median of the neighbours without the other peaks: cuts a second or two apart must not
        # hide each other, so the larger half of the neighbourhood is left out.
        base = float(np.median(np.sort(around)[: max(1, len(around) // 2)])) if len(around) else 0.0
        if d[k] >= ratio * base:
            cuts.append(((times[k] + times[k + 1]) / 2, float(d[k] / max(base, 1e-6))))
    return cuts


def pyscenedetect_cuts(path: str | os.PathLike, threshold: float = 27.0, adaptive: bool = False) -> list[Cut]:
    """PySceneDetect's cut times (s) for a video file (ContentDetector, or AdaptiveDetector)."""
    try:
        import scenedetect
    except ImportError:
        raise InputError("the pyscenedetect detector needs PySceneDetect: pip install scenedetect-headless") from None
    detector = scenedetect.AdaptiveDetector() if adaptive else scenedetect.ContentDetector(threshold=threshold)
    scenes = scenedetect.detect(os.fspath(path), detector)
    return [(float(start.get_seconds()), 1.0) for start, _ in scenes[1:]]


def every_cuts(duration: float, seconds: float) -> list[Cut]:
    """Boundaries every `seconds` s (every:SECONDS), as forced cuts."""
    n = math.ceil(duration / seconds - 1e-9)
    return [(k * seconds, math.inf) for k in range(1, n)]


def plan_segments(cuts: list[Cut], duration: float, min_s: float, max_s: float | None) -> list[tuple[float, float]]:
    """Cuts -> (start, end) spans covering [0, duration).

    Cuts are taken strongest first; one closer than `min_s` to a kept cut or to either end of the
    video is dropped (forced cuts, strength inf, are always kept). Spans longer than `max_s` are then
    split into equal parts."""
    kept = [c for c, s in cuts if math.isinf(s) and 0 < c < duration]
    for c, s in sorted((c for c in cuts if not math.isinf(c[1])), key=lambda c: -c[1]):
        if min(c, duration - c) < min_s or any(abs(c - k) < min_s for k in kept):
            continue
        kept.append(c)
    edges = [0.0, *sorted(set(kept)), float(duration)]
    spans = []
    for a, b in zip(edges[:-1], edges[1:]):
        parts = max(1, math.ceil((b - a) / max_s - 1e-9)) if max_s else 1
        spans += [(a + (b - a) * i / parts, a + (b - a) * (i + 1) / parts) for i in range(parts)]
    return [(round(a, 3), round(b, 3)) for a, b in spans]
