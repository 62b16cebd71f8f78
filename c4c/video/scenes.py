"""Scene changes and the segments they make.

Detectors, compared by `benchmarks/segments_detectors.py` (results in benchmarks/README.md); `auto_cuts`
(the `auto` default) proposes with the two 1-fps rules and keeps what `confirm_cuts` confirms.

* `embedding_cuts`: a change-point rule on the 1-fps CLIP embeddings that captioning computes anyway
  (no extra decoding). A cut between seconds t and t+1 shows as a cosine distance between their
  embeddings far above the distances around it; the rule keeps local maxima that stand out from the
  local median by `ratio` and exceed `min_distance`. Its times are midway between two samples, so
  within 0.5 s of the cut.
* `pixel_cuts`: most of a 16x24 block-mean picture changes between two 1-fps samples (catches cuts
  between shots the backbone finds alike);
* `dense_cuts`: the pairs `pixel_cuts` passes over because a neighbouring pair changed as much (a pan,
  a flicker, or a cut every second): only the frames between can tell those apart, so each needs
  `confirm_cuts(..., abrupt_only=True)`;
* `confirm_cuts`: decodes the ~fps frames between the two samples around a proposed cut (at 96x64) and
  keeps it when enough of the picture changed (an object's event changes a few per cent of it);
* `pyscenedetect_cuts`: PySceneDetect's ContentDetector on every frame (optional dependency
  `scenedetect`; frame-exact, but it decodes the whole video a second time).

`plan_segments` turns cuts into spans no shorter than `min_s` (the stronger of two close cuts is kept)
and no longer than `max_s` (longer spans are split into equal parts).
"""

from __future__ import annotations

import math
import os

import numpy as np

from pathlib import Path

from ..errors import InputError

__all__ = ["Cut", "auto_cuts", "embedding_cuts", "confirm_cuts", "tiny", "changed_share", "pixel_cuts", "dense_cuts", "merge_cuts", "pyscenedetect_cuts", "every_cuts", "plan_segments", "DETECTORS"]

DETECTORS = ("embedding", "pyscenedetect")
Cut = tuple[float, float]  # (time s, strength: larger = surer; forced boundaries are inf)

# Defaults of the embedding rule, chosen on the benchmark's videos (benchmarks/segments_detectors.py).
RATIO = 3.0          # a cut's distance is at least this many times the local median distance ...
MIN_DISTANCE = 0.05  # ... and at least this (cosine distance, 0..2) in absolute terms
WINDOW = 8           # seconds either side for the local median
MIN_CHANGED = 0.15   # confirm_cuts: at least this share of the picture changed (by > 40 levels) ...
MIN_ABRUPT = 0.9     # ... or a third of that, in one frame step (the step carries 90% of the net change)
MIN_PIXEL_SHARE = 0.5  # pixel_cuts: at least half of the picture changed between two samples
_PROBE_W, _PROBE_H = 96, 64  # confirm_cuts decodes at this size (96: a width decord decodes correctly)


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


def tiny(images: np.ndarray) -> np.ndarray:
    """uint8 [n, H, W, 3] -> float32 [n, 16, 24, 3] block means, for pixel_cuts (cheap: no resampling filter)."""
    n, h, w, _ = images.shape
    hs, ws = max(1, h // 16), max(1, w // 24)
    x = images[:, : hs * 16, : ws * 24].astype(np.float32) if h >= 16 and w >= 24 else \
        np.repeat(np.repeat(images, 16, axis=1), 24, axis=2)[:, : 16 * h, : 24 * w].astype(np.float32)
    hs, ws = x.shape[1] // 16, x.shape[2] // 24
    return x[:, : hs * 16, : ws * 24].reshape(n, 16, hs, 24, ws, 3).mean(axis=(2, 4))


def changed_share(a: np.ndarray, b: np.ndarray) -> float:
    """Share of `tiny` blocks whose colour moved by more than 40 levels in some channel."""
    return float((np.abs(a - b).max(axis=-1) > 40).mean())


def pixel_cuts(shares: list[float], times: list[float], min_share: float = MIN_PIXEL_SHARE) -> list[Cut]:
    """Cuts where most of the picture changes between two 1-fps samples (shares[k]: samples k, k+1)
    and not in the neighbouring pairs (a pan or a flicker changes it every second)."""
    cuts = []
    for k, x in enumerate(shares):
        if x >= min_share and all(x > shares[j] for j in (k - 1, k + 1) if 0 <= j < len(shares)):
            cuts.append(((times[k] + times[k + 1]) / 2, 1.0 + x))
    return cuts


def dense_cuts(shares: list[float], times: list[float], min_share: float = MIN_PIXEL_SHARE) -> list[Cut]:
    """The pairs that changed as much as `pixel_cuts` asks but are not a local maximum of `shares`.

    In a montage (a new scene every second) every pair changes most of the picture, so the pixel rule
    finds only the pairs that happen to change a little more than their neighbours, and the embedding
    rule none (its baseline is the neighbours' distance): 16 one-second clips came out as one 16-s
    segment (tests/test_segments_edges.py). Their strength (1.0) is below every other rule's, so
    `plan_segments` keeps them earliest first: a montage is cut into spans of the minimum length."""
    return [((times[k] + times[k + 1]) / 2, 1.0) for k, x in enumerate(shares)
            if x >= min_share and not all(x > shares[j] for j in (k - 1, k + 1) if 0 <= j < len(shares))]


def merge_cuts(*groups: list[Cut], within: float = 1.0) -> list[Cut]:
    """Union of cut lists; of cuts closer than `within` s, the strongest stays."""
    out: list[Cut] = []
    for c in sorted((c for g in groups for c in g), key=lambda c: -c[1]):
        if all(abs(c[0] - o[0]) >= within for o in out):
            out.append(c)
    return sorted(out)


def _abruptness(frames: np.ndarray) -> tuple[float, float]:
    """(largest frame-to-frame change / net change, share of pixels that changed) over float [m, H, W, 3]
    frames spanning one second: a cut puts the whole change into one step (about 1), motion and fades
    spread it (under 0.3); a fade or a cut changes most pixels, an object's event only a few."""
    steps = np.abs(np.diff(frames, axis=0)).mean(axis=(1, 2, 3))
    net = np.abs(frames[-1] - frames[0])
    return float(steps.max() / max(float(net.mean()), 1e-6)), float((net.max(axis=-1) > 40).mean())


def confirm_cuts(path: str | os.PathLike, cuts: list[Cut], times: list[float], fps: float,
                 min_abrupt: float = MIN_ABRUPT, min_changed: float = MIN_CHANGED,
                 shares: list[float] | None = None, abrupt_only: bool = False) -> list[Cut]:
    """Keep the embedding rule's cuts that the frames confirm.

    The rule sees one frame per second, so an object's event (a shape turning red, entering, growing)
    can look like a scene change. Every frame between the two samples around each cut (e.g. 25 at 25 fps,
    decoded at 96x64) decides: a cut is one abrupt step, or a change of most of the
    picture (a fade, or a cut inside a fast pan); an event is gradual and local.

    With the 1-fps `shares` (`changed_share` of the samples around each cut), a cut whose two samples
    already differ over `min_changed` of the picture is kept without decoding: reopening and seeking
    costs ~0.1 s a cut (x264's keyframes are 10 s apart), most of the detection's time on long videos.

    `abrupt_only` (for `dense_cuts`): only one abrupt step over `min_changed` of the picture counts,
    with no shortcut; a pan spreads its change (measured: 0.2-0.6 of it in the largest step, a cut
    0.97-1.04), and without frames between the samples nothing is kept."""
    import bisect

    from .probe import _reader
    if not cuts:
        return []
    vr = None  # opened at the first cut that needs its frames
    kept = []
    for c, strength in cuts:
        k = bisect.bisect_left(times, c) - 1
        if k < 0 or k + 1 >= len(times):
            continue
        if not abrupt_only and shares is not None and k < len(shares) and shares[k] >= min_changed:
            kept.append((c, strength))
            continue
        if vr is None:
            vr = _reader(Path(path), _PROBE_W, _PROBE_H)
        n = len(vr)
        i0, i1 = min(n - 1, int(round(times[k] * fps))), min(n - 1, int(round(times[k + 1] * fps)))
        try:
            frames = vr.get_batch(list(range(i0, i1 + 1))).asnumpy().astype(np.float32)
        except Exception:  # decord raises several types on damaged data: keep the rule's verdict
            if not abrupt_only:
                kept.append((c, strength))
            continue
        if len(frames) < 3:
            if not abrupt_only:
                kept.append((c, strength))  # under 3 fps there is no "between" to look at
            continue
        abrupt, changed = _abruptness(frames)
        if abrupt_only:
            if abrupt >= min_abrupt and changed >= min_changed:
                kept.append((c, strength))
        elif changed >= min_changed or (abrupt >= min_abrupt and changed >= min_changed / 3):
            kept.append((c, strength))
    return kept


def auto_cuts(path: str | os.PathLike, feats: np.ndarray, times: list[float], shares: list[float],
              fps: float) -> list[Cut]:
    """The `auto` detector: the embedding rule's and the pixel rule's cuts, confirmed by the frames between;
    then the dense pairs that neither proposed, if their frames show a cut."""
    proposed = merge_cuts(embedding_cuts(feats, times), pixel_cuts(shares, times))
    dense = [c for c in dense_cuts(shares, times) if all(abs(c[0] - p[0]) >= 0.5 for p in proposed)]
    return merge_cuts(confirm_cuts(path, proposed, times, fps, shares=shares),
                      confirm_cuts(path, dense, times, fps, abrupt_only=True))


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
    for c, _s in sorted((c for c in cuts if not math.isinf(c[1])), key=lambda c: -c[1]):
        if min(c, duration - c) < min_s or any(abs(c - k) < min_s for k in kept):
            continue
        kept.append(c)
    edges = [0.0, *sorted(set(kept)), float(duration)]
    spans = []
    for a, b in zip(edges[:-1], edges[1:]):
        parts = max(1, math.ceil((b - a) / max_s - 1e-9)) if max_s else 1
        spans += [(a + (b - a) * i / parts, a + (b - a) * (i + 1) / parts) for i in range(parts)]
    return [(round(a, 3), round(b, 3)) for a, b in spans]
