"""Every second of a long video, decoded in chunks, so memory does not grow with its length.

`sample_frames` (frames.py) decodes at most `max_frames` frames at once. Segmented captioning needs one
frame per second over the whole video (a 2-hour video is 7,200 frames: 20 GB at 720p), so this module
decodes the same 1-fps frames in chunks of `chunk` and hands each chunk to a callback, which keeps only
what it needs (the CLIP embeddings). The frames chosen are those of `sample_frames(max_frames=None)`.

A chunk that cannot be decoded (damaged data in the middle of a file) does not end the run: its seconds
are reported as a gap, and decoding goes on with the next chunk on a fresh reader.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError, VideoError
from ..settings import FPS_MODES
from .frames import DEFAULT_MAX_SHORT_SIDE, _decode, second_grid
from .probe import _check_file, _open, _probe_size, _reader

__all__ = ["SecondsInfo", "decode_seconds", "gaps_of"]

# Frames per chunk: 48 frames of 1280x720 RGB are 133 MB; the chunk is what bounds memory.
DEFAULT_CHUNK = 48

OnChunk = Callable[[np.ndarray, list[int], list[float]], None]  # (uint8 [n,H,W,3], indices, seconds)


@dataclass(frozen=True)
class SecondsInfo:
    """What `decode_seconds` found: the whole 1-fps grid, what of it decoded, and why not the rest."""
    fps: float
    n_frames_total: int
    duration_s: float
    indices: list[int]                  # every 1-fps frame index, decoded or not
    timestamps: list[float]             # their presentation times (s)
    decoded: list[bool]                 # per entry of `indices`
    gaps: list[tuple[float, float]]     # (start s, end s) of runs of seconds that could not be decoded
    source_size: tuple[int, int]        # (H, W) before any downscaling
    notes: tuple[str, ...]


def gaps_of(times: list[float], decoded: list[bool], duration: float) -> list[tuple[float, float]]:
    """Runs of undecoded samples -> (start, end) seconds; a run ends where the next decoded sample starts."""
    gaps, start = [], None
    for k, ok in enumerate(decoded):
        if not ok and start is None:
            start = times[k]
        if ok and start is not None:
            gaps.append((start, times[k]))
            start = None
    if start is not None:
        gaps.append((start, duration))
    return [(round(a, 3), round(b, 3)) for a, b in gaps]


def decode_seconds(path: str | os.PathLike, on_chunk: OnChunk, fps_mode: str = "exact",
                   max_duration_s: float | None = None, chunk: int = DEFAULT_CHUNK,
                   max_short_side: int | None = DEFAULT_MAX_SHORT_SIDE,
                   on_start: Callable[[list[int], float], None] | None = None) -> SecondsInfo:
    """Decode one frame per second of `path`, `chunk` frames at a time, calling `on_chunk` with each.

    `on_start(indices, duration_s)` is called once the 1-fps grid of frame indices is known, before any decoding. Raises
    VideoError for a file that is not a readable video or is over `max_duration_s`, and when no
    frame at all decodes; undecodable chunks in between become `gaps`."""
    if fps_mode not in FPS_MODES:
        raise InputError(f"unknown fps mode {fps_mode!r}; use one of {', '.join(FPS_MODES)}")
    path = Path(path)
    _check_file(path)
    notes: list[str] = []
    with ExitStack() as stack:
        src, vr, open_note = _open(path, stack, max_duration_s)
        n_total, fps, fps_note, pts, duration, indices = second_grid(path, vr, fps_mode, max_duration_s)
        times = [float(pts[i]) for i in indices] if pts is not None else [i / fps for i in indices]
        if on_start is not None:
            on_start(list(indices), duration)
        size = _probe_size(src)
        decoded = [False] * len(indices)
        src_size = (0, 0)
        for lo in range(0, len(indices), chunk):
            part = indices[lo:lo + chunk]
            try:
                images, kept, src_size, chunk_notes = _decode(src, path, vr, part, max_short_side, size, n_total)
            except VideoError as e:
                notes.append(f"seconds {times[lo]:.0f}-{times[min(lo + chunk, len(indices)) - 1] + 1:.0f} "
                             f"could not be decoded ({e})")
                vr = _reader(src, shown_as=path)  # a failed decode can leave the reader unusable
                continue
            notes.extend(n for n in chunk_notes if n not in notes)
            keep = set(kept)
            for k in range(lo, lo + len(part)):
                decoded[k] = indices[k] in keep
            on_chunk(images, list(kept), [times[lo + part.index(i)] for i in kept])
            del images
    if not any(decoded):
        raise VideoError(f"{path}: no frame could be decoded ({'; '.join(notes)[:300]})")
    gaps = gaps_of(times, decoded, duration)
    all_notes = tuple(n for n in (open_note, fps_note, *notes) if n)
    for n in all_notes:
        warnings.warn(f"{path}: {n}", stacklevel=2)
    return SecondsInfo(fps=fps, n_frames_total=n_total, duration_s=duration, indices=list(indices),
                       timestamps=times, decoded=decoded, gaps=gaps, source_size=src_size, notes=all_notes)
