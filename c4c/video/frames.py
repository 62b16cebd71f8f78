"""Sampling one frame per second from a video file (decord), as CLIP4Clip's extractor does.

Two sampling rules (reference.md 1.1):

* ``"exact"``: one frame per second of real time, at t = 0, 1, 2, ... s (t < duration); the frame
  shown at t is index ``round(t * fps)``. A clip shorter than 1 s gives its first frame. For a
  variable-frame-rate file (frame times off the constant-rate grid by more than half a frame), the
  frame shown at t is the last one whose presentation time is <= t, from the demuxer's index.
* ``"reference"``: what the reference extractor does with OpenCV: fps truncated to an integer
  (29.97 -> 29), indices ``sec * int(fps)`` for ``sec = 0 .. ceil(N / int(fps))``, dropping the
  out-of-range ones. Slightly faster than 1 fps on NTSC rates; use it to reproduce reference features.

Then, if more than ``max_frames`` remain, ``np.linspace(0, n-1, max_frames, dtype=int)`` picks them
uniformly (the reproduction's ``slice_framepos=2``). Only the kept frames are decoded. Timestamps
are the presentation times of the chosen frames (index / fps), so 29.97 fps gives 1.001 s, 2.002 s, ...

Opening a file (what may reach FFmpeg, remuxing, error messages) is in probe.py.
"""

from __future__ import annotations

import math
import os
import warnings
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError, VideoError
from ..settings import FPS_MODES
from .probe import _REENCODE, _check_file, _clean, _open, _open_error, _probe_size, _reader

__all__ = ["SampledFrames", "sample_frames", "sample_indices", "uniform_subsample", "FPS_MODES"]


# Frames whose shorter side exceeds this are downscaled by the decoder (shorter side -> this value)
# so a 4K clip never lands in memory at full size. CLIP only sees 224 px, so 720 loses nothing
# visible, but the pixels differ slightly from a full-size decode + PIL resize (documented trade-off).
DEFAULT_MAX_SHORT_SIDE = 720

# Header frame rates outside this range are treated as broken metadata.
_FPS_RANGE = (0.1, 1000.0)
_DEFAULT_FPS = 25.0
# Larger frames are refused: even decoded straight to 720p, the decoder holds a few full-size frames per
# thread (a 16K frame is 200 MB in YUV). 8192x8192 admits 8K UHD and DCI 8K with room to spare.
_MAX_PIXELS = 8192 * 8192
# decord 0.6 returns mis-shaped frames for a few narrow output widths (8, 12, 16, 24, 48, 72 px, ...):
# such videos are decoded at this width instead (CLIP resizes to 224 px anyway).
_SAFE_WIDTH = 96
# Sequential H.264 decoding is effectively single-threaded (decord's decoder threads barely help: its CPU
# time equals its wall time), so a long video's sampled frames are split into contiguous runs decoded by
# one reader each, at once. Below this many frames a second reader's open and seek cost more than it saves.
_SPLIT_MIN_FRAMES = 250



@dataclass(frozen=True)
class SampledFrames:
    """The frames chosen from one video, in time order."""

    images: np.ndarray          # uint8 [n, H, W, 3] RGB, decoded frames (downscaled if source was huge)
    timestamps: list[float]     # seconds, presentation time of each frame (= index / fps)
    indices: list[int]          # frame numbers in the file (0-based)
    fps: float                  # frame rate used (header value, or the fallback named in `notes`)
    n_frames_total: int         # frames in the file as the demuxer reports them
    duration_s: float           # n_frames_total / fps (variable frame rate: from the frame times)
    source_size: tuple[int, int] = (0, 0)   # (H, W) of the stored frames before any downscaling
    notes: tuple[str, ...] = ()             # anything unusual (fps fallback, downscaling), one line each


def sample_indices(n_frames: int, fps: float, fps_mode: str = "exact") -> list[int]:
    """Frame indices at one per second, before the `max_frames` cut (pure; see module docstring)."""
    if n_frames <= 0:
        return []
    if fps_mode == "exact":
        duration = n_frames / fps
        secs = range(max(1, math.ceil(duration)))  # t = 0, 1, ... < duration; at least t = 0
        return sorted({min(n_frames - 1, int(round(t * fps))) for t in secs})
    if fps_mode == "reference":
        step = max(1, int(fps))  # reference truncates (29.97 -> 29); < 1 fps would divide by zero there
        total = (n_frames + step - 1) // step
        return [s * step for s in range(total + 1) if s * step < n_frames]
    raise InputError(f"unknown fps mode {fps_mode!r}; use one of {', '.join(FPS_MODES)}")


def uniform_subsample(n: int, max_frames: int | None) -> list[int]:
    """Positions 0..n-1 to keep: all if n <= max_frames, else linspace(0, n-1, max_frames) floored."""
    if max_frames is None or n <= max_frames:
        return list(range(n))
    return np.linspace(0, n - 1, num=max_frames, dtype=int).tolist()


def _sane_fps(header_fps: float, n_frames: int, end_time_s: float | None) -> tuple[float, str | None]:
    """The header fps if plausible, else frames / stream duration, else a default (with a note why)."""
    if math.isfinite(header_fps) and _FPS_RANGE[0] <= header_fps <= _FPS_RANGE[1]:
        return float(header_fps), None
    if end_time_s and math.isfinite(end_time_s) and end_time_s > 0:
        derived = n_frames / end_time_s
        if _FPS_RANGE[0] <= derived <= _FPS_RANGE[1]:
            return derived, f"header frame rate {header_fps!r} is not plausible; using {derived:.3f} fps from frame timestamps"
    return _DEFAULT_FPS, f"header frame rate {header_fps!r} is not plausible and timestamps are unusable; assuming {_DEFAULT_FPS:g} fps"


def _frame_rate(vr) -> tuple[float, str | None]:
    import decord
    try:
        header_fps = float(vr.get_avg_fps())
    except (decord.DECORDError, RuntimeError, ZeroDivisionError):
        header_fps = float("nan")
    end_time = None
    if not (math.isfinite(header_fps) and _FPS_RANGE[0] <= header_fps <= _FPS_RANGE[1]):
        try:  # frame timestamps come from the demuxer index: no decoding
            end_time = float(vr.get_frame_timestamp(len(vr) - 1)[1])
        except (decord.DECORDError, RuntimeError, IndexError):
            end_time = None
    return _sane_fps(header_fps, len(vr), end_time)


def _frame_times(vr, fps: float) -> np.ndarray | None:
    """Presentation times (s, first frame at 0) when they leave the constant-rate grid of `fps` by
    more than half a frame (variable frame rate, or a header rate that is wrong), else None."""
    import decord
    n = len(vr)
    if n < 2:
        return None
    try:
        pts = np.asarray(vr.get_frame_timestamp(range(n)), dtype=np.float64)[:, 0]
    except (decord.DECORDError, RuntimeError, IndexError, ValueError):
        return None
    pts = pts - pts[0]
    if not np.all(np.isfinite(pts)) or not np.all(np.diff(pts) > 0):
        return None  # no usable index: keep the constant-rate rule
    if not _FPS_RANGE[0] <= (n - 1) / pts[-1] <= _FPS_RANGE[1]:
        return None  # implausible times (a broken time base): the header rate or its fallback is better
    if np.abs(pts - np.arange(n) / fps).max() <= 0.5 / fps:
        return None  # constant frame rate (within half a frame): index / fps is exact enough
    return pts


def _vfr_indices(pts: np.ndarray) -> list[int]:
    """One per second of a VFR file: the frame on screen at t = 0, 1, 2, ... (last pts <= t)."""
    secs = np.arange(max(1, math.ceil(_vfr_duration(pts) - 1e-3)))  # decord times are float32: 1 ms slack
    return sorted({int(i) for i in np.searchsorted(pts, secs + 1e-6, side="right") - 1})


def _vfr_duration(pts: np.ndarray) -> float:
    """Last frame's time plus one average frame duration."""
    return float(pts[-1] * len(pts) / (len(pts) - 1))


def _decord_errors():
    import decord
    return (decord.DECORDError, RuntimeError, IndexError, AssertionError, StopIteration)


def _batch(vr, indices: list[int]):
    """get_batch -> (uint8 [n,H,W,3] or None when decord mis-shapes them, error or None)."""
    try:
        images = vr.get_batch(indices).asnumpy()
    except _decord_errors() as e:
        if "size must exactly match" in str(e) or "from_size == to_size" in str(e):
            return None, None
        return None, e
    if images.ndim != 4 or images.shape[-1] != 3:
        return None, None
    return images, None


def _split_batch(vr, indices: list[int], reopen, n_total: int):
    """`_batch`, with long videos decoded as contiguous runs of `indices` on several readers at once.

    Each extra reader seeks to the keyframe before its run and decodes from there: the same pixels as
    one reader going through (tested), in about 1/parts of the wall time plus up to one GOP per extra
    reader. Parts follow the process's thread budget (`cpu.thread_workers`: 1 thread, 1 part).
    Any failure in a part falls back to one reader, whose error handling then applies."""
    from ..cpu import run_threads, thread_workers
    parts = thread_workers(len(indices) // 4) if n_total >= _SPLIT_MIN_FRAMES else 1
    if parts <= 1:
        return _batch(vr, indices)
    n = len(indices)
    runs = [indices[k * n // parts:(k + 1) * n // parts] for k in range(parts)]
    try:
        readers = [vr] + [reopen() for _ in range(parts - 1)]
    except VideoError:
        return _batch(vr, indices)
    out: list = [None] * parts
    run_threads(lambda k: out.__setitem__(k, _batch(readers[k], runs[k])), parts, name="c4c-frames",
                torch_threads=False)
    if all(images is not None for images, _ in out):
        return np.concatenate([images for images, _ in out]), None
    return _batch(reopen(), indices)  # a part failed: redo it all on a fresh reader, the usual way


def _decode(src: Path, path: Path, vr, indices: list[int], max_short_side: int | None,
            size: tuple[int, int] | None, n_total: int = 0):
    """Decode `indices` -> (uint8 [n,H,W,3], the indices decoded, stored (H, W), notes).

    `src` is the file decord reads (the video, or its remux), `path` the name for messages, `size`
    the displayed (W, H) from the header when known."""
    notes = []
    if size is None:  # no header probe: learn the size from one decoded frame (it may be full size)
        try:
            first = vr.next().asnumpy()  # [H, W, 3] (or mis-shaped: only H, W are used)
        except _decord_errors() as e:
            raise _open_error(path, e) from None
        size = (int(first.shape[1]), int(first.shape[0]))
        del first
    src_w, src_h = size
    if src_w * src_h > _MAX_PIXELS:
        raise VideoError(f"{path}: frames of {src_w}x{src_h} ({src_w * src_h / 1e6:.0f} megapixels) are over the "
                         f"limit of {_MAX_PIXELS / 1e6:.0f}; downscale it (e.g. ffmpeg -i IN -vf scale=-2:720 OUT.mp4)")
    target = (-1, -1)
    if max_short_side is not None and min(src_h, src_w) > max_short_side:
        scale = max_short_side / min(src_h, src_w)
        target = (max(2, round(src_w * scale)), max(2, round(src_h * scale)))
        notes.append(f"frames downscaled while decoding from {src_w}x{src_h} to {target[0]}x{target[1]} "
                     "(pixels differ slightly from a full-size decode)")
        vr = _reader(src, *target, shown_as=path)
    images, err = _split_batch(vr, indices, lambda: _reader(src, *target, shown_as=path), n_total)
    if images is None and err is None:  # decord's narrow-frame bug: decode at a safe width instead
        w = target[0] if target[0] > 0 else src_w
        h = target[1] if target[1] > 0 else src_h
        target = (_SAFE_WIDTH, max(2, 2 * round(h * _SAFE_WIDTH / w / 2)))
        notes.append(f"frames decoded at {target[0]}x{target[1]} instead of {w}x{h} (decord cannot return "
                     "frames of that width)")
        vr = _reader(src, *target, shown_as=path)
        images, err = _batch(vr, indices)
        if images is None and err is None:
            raise VideoError(f"{path}: the decoder returned frames of an unexpected shape; {_REENCODE}")
    kept = list(indices)
    if err is not None:  # damaged data: decode the sampled frames one by one and keep what decodes
        frames, kept = [], []
        for i in indices:
            one, e = _batch(vr, [i])
            if one is not None:
                frames.append(one[0])
                kept.append(i)
            else:
                vr = _reader(src, *target, shown_as=path)  # a failed decode can leave the reader unusable
        if not frames:
            raise VideoError(f"{path}: decoding failed ({_clean(str(err)) or type(err).__name__}); the file "
                             f"is truncated or corrupted: {_REENCODE}")
        images = np.stack(frames)
        if len(kept) < len(indices):
            notes.append(f"{len(indices) - len(kept)} of {len(indices)} sampled frames could not be decoded "
                         f"(damaged data: {_clean(str(err))}); captioned from the other {len(kept)}")
    return images, kept, (src_h, src_w), notes


def second_grid(path: Path, vr, fps_mode: str, max_duration_s: float | None):
    """(n_frames, fps, fps note, frame times or None, duration s, indices of the 1-fps frames) of an
    opened reader; VideoError for a video with no frames or over `max_duration_s`, before decoding."""
    n_total = len(vr)
    if n_total <= 0:
        raise VideoError(f"{path}: the video has no frames; re-export it")
    fps, fps_note = _frame_rate(vr)
    pts = _frame_times(vr, fps) if fps_mode == "exact" else None
    duration = n_total / fps if pts is None else _vfr_duration(pts)
    if max_duration_s is not None and duration > max_duration_s:
        raise VideoError(f"{path}: the video is {duration:.1f} s long, over the limit of {max_duration_s:g} s; "
                         f"trim it (e.g. ffmpeg -i IN -t {max_duration_s:g} OUT.mp4) or raise the limit")
    indices = _vfr_indices(pts) if pts is not None else sample_indices(n_total, fps, fps_mode)
    return n_total, fps, fps_note, pts, duration, indices


def sample_frames(path: str | os.PathLike, max_frames: int | None = 20, fps_mode: str = "exact",
                  max_duration_s: float | None = None,
                  max_short_side: int | None = DEFAULT_MAX_SHORT_SIDE) -> SampledFrames:
    """Decode one frame per second of `path` (at most `max_frames`, picked uniformly) as RGB uint8.

    `fps_mode` "exact" samples at whole seconds of real time; "reference" reproduces the reference
    extractor's integer-fps indices exactly. `max_duration_s` rejects longer videos before any
    decoding. Frames with a shorter side above `max_short_side` are downscaled while decoding (None:
    never). Raises VideoError for anything that is not a readable video.
    """
    if fps_mode not in FPS_MODES:
        raise InputError(f"unknown fps mode {fps_mode!r}; use one of {', '.join(FPS_MODES)}")
    if max_frames is not None and max_frames < 1:
        raise InputError(f"max_frames must be at least 1 (got {max_frames})")
    path = Path(path)
    _check_file(path)
    with ExitStack() as stack:
        src, vr, open_note = _open(path, stack, max_duration_s)
        n_total, fps, fps_note, pts, duration, candidates = second_grid(path, vr, fps_mode, max_duration_s)
        indices = [candidates[i] for i in uniform_subsample(len(candidates), max_frames)]
        size = _probe_size(src)
        images, indices, src_size, decode_notes = _decode(src, path, vr, indices, max_short_side, size, n_total)
    vfr_note = None if pts is None else (f"frame times do not follow the header's {fps:g} fps (variable frame rate); "
                                         "frames chosen by their presentation times")
    notes = tuple(n for n in (open_note, fps_note, vfr_note, *decode_notes) if n)
    for n in notes:
        warnings.warn(f"{path}: {n}", stacklevel=2)
    times = [float(pts[i]) for i in indices] if pts is not None else [i / fps for i in indices]
    return SampledFrames(images=images, timestamps=times, indices=indices, fps=fps,
                         n_frames_total=n_total, duration_s=duration, source_size=src_size, notes=notes)
