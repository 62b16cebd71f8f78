"""Sampling one frame per second from a video file (decord), as CLIP4Clip's extractor does.

Two sampling rules (SPEC 1.1):

* ``"exact"``: one frame per second of real time, at t = 0, 1, 2, ... s (t < duration); the frame
  shown at t is index ``round(t * fps)``. A clip shorter than 1 s gives its first frame.
* ``"reference"``: what the reference extractor does with OpenCV: fps truncated to an integer
  (29.97 -> 29), indices ``sec * int(fps)`` for ``sec = 0 .. ceil(N / int(fps))``, dropping the
  out-of-range ones. Slightly faster than 1 fps on NTSC rates; use it to reproduce reference features.

Then, if more than ``max_frames`` remain, ``np.linspace(0, n-1, max_frames, dtype=int)`` picks them
uniformly (the reproduction's ``slice_framepos=2``). Only the kept frames are decoded. Timestamps
are the presentation times of the chosen frames (index / fps), so 29.97 fps gives 1.001 s, 2.002 s, ...
"""

from __future__ import annotations

import math
import os
import re
import sys
import tempfile
import threading
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import InputError, VideoError

__all__ = ["SampledFrames", "sample_frames", "sample_indices", "uniform_subsample", "FPS_MODES"]

FPS_MODES = ("exact", "reference")

# Frames whose shorter side exceeds this are downscaled by the decoder (shorter side -> this value)
# so a 4K clip never lands in memory at full size. CLIP only sees 224 px, so 720 loses nothing
# visible, but the pixels differ slightly from a full-size decode + PIL resize (documented trade-off).
DEFAULT_MAX_SHORT_SIDE = 720

# Header frame rates outside this range are treated as broken metadata.
_FPS_RANGE = (0.1, 1000.0)
_DEFAULT_FPS = 25.0
_STDERR_LOCK = threading.Lock()

# Leading bytes of still-image formats that FFmpeg would otherwise report as "broken metadata".
_IMAGE_MAGIC = {b"\x89PNG": "PNG", b"\xff\xd8\xff": "JPEG", b"BM": "BMP", b"II*\x00": "TIFF", b"MM\x00*": "TIFF"}


@dataclass(frozen=True)
class SampledFrames:
    """The frames chosen from one video, in time order."""

    images: np.ndarray          # uint8 [n, H, W, 3] RGB, decoded frames (downscaled if source was huge)
    timestamps: list[float]     # seconds, presentation time of each frame (= index / fps)
    indices: list[int]          # frame numbers in the file (0-based)
    fps: float                  # frame rate used (header value, or the fallback named in `notes`)
    n_frames_total: int         # frames in the file as the demuxer reports them
    duration_s: float           # n_frames_total / fps
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


def _check_file(path: Path) -> None:
    """Fail early, with a clear message, on paths FFmpeg would only report cryptically."""
    if not path.exists():
        raise VideoError(f"{path}: no such file; check the path")
    if path.is_dir():
        raise VideoError(f"{path}: is a directory; give a video file (mp4, webm, avi, ...)")
    try:
        with open(path, "rb") as f:
            head = f.read(16)
    except PermissionError:
        raise VideoError(f"{path}: permission denied; make the file readable") from None
    except OSError as e:
        raise VideoError(f"{path}: cannot be read ({e.strerror or e}); check the file") from None
    if not head:
        raise VideoError(f"{path}: the file is empty (0 bytes); re-export or re-download the video")
    for magic, kind in _IMAGE_MAGIC.items():
        if head.startswith(magic):
            raise VideoError(f"{path}: is a {kind} image, not a video; give a video file (mp4, webm, avi, ...)")
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        raise VideoError(f"{path}: is a WebP image, not a video; give a video file (mp4, webm, avi, ...)")


@contextmanager
def _captured_stderr():
    """Capture what native code (FFmpeg, decord's C++ logging) writes to file descriptor 2, so a bad
    file yields one clean VideoError line instead of C++ log noise; the text lands in the yielded list.
    Serialised by a lock: interleaved dup2 calls from two threads could lose stderr for good."""
    log: list[str] = []
    with _STDERR_LOCK, tempfile.TemporaryFile() as tmp:
        try:
            sys.stderr.flush()
            saved = os.dup(2)
        except (OSError, ValueError):  # no usable fd 2: nothing to protect
            yield log
            return
        os.dup2(tmp.fileno(), 2)
        try:
            yield log
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            log.append(tmp.read().decode("utf-8", "replace"))


def _ffmpeg_reason(log: str) -> str | None:
    """The FFmpeg/decord complaint in a captured log, without '[mov,mp4 @ 0x..]' or path prefixes."""
    reasons = []
    for line in log.splitlines():
        line = re.sub(r"^(\[[^\]]*\]\s*)+", "", line.strip())  # drop "[hh:mm:ss] file.cc:83:" style prefixes
        line = re.sub(r"^\S+\.cc:\d+:\s*", "", line)
        if line.startswith("ERROR opening:"):
            line = line.rsplit(", ", 1)[-1]
        if line and line not in reasons:
            reasons.append(line)
    return "; ".join(reasons)[:160] or None


def _open_error(path: Path, err: BaseException, log: str = "") -> VideoError:
    text = str(err)
    if "cannot find video stream" in text:
        return VideoError(f"{path}: has no video stream (audio only?); give a file with video")
    if text.startswith("Error reading"):  # decord's message when FFmpeg cannot open the container
        why = _ffmpeg_reason(log) or "FFmpeg does not recognise it as a video container"
    else:
        why = next((ln.strip() for ln in text.splitlines() if ln.strip()), type(err).__name__)[:160]
    return VideoError(f"{path}: cannot be decoded as a video ({why}); check it is a complete video "
                      "file, or re-encode it (e.g. ffmpeg -i IN -c:v libx264 OUT.mp4)")


def _reader(path: Path, width: int = -1, height: int = -1):
    import decord
    err = None
    with _captured_stderr() as log:
        try:
            vr = decord.VideoReader(str(path), ctx=decord.cpu(0), width=width, height=height)
        except (decord.DECORDError, RuntimeError, AssertionError) as e:
            err = e
    if err is not None:
        raise _open_error(path, err, "".join(log)) from None
    return vr


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


def _decode(path: Path, vr, indices: list[int], max_short_side: int | None):
    """Decode `indices` -> (uint8 [n,H,W,3], stored (H, W), note or None)."""
    import decord
    # decord reports the stored size only through a decoded frame. If it is huge, reopen with a
    # decode-time resize so that no other full-size frame is ever materialised.
    try:
        first = vr.next().asnumpy()  # [H, W, 3]
    except (decord.DECORDError, RuntimeError, StopIteration) as e:
        raise _open_error(path, e) from None
    src_h, src_w = int(first.shape[0]), int(first.shape[1])
    del first
    note = None
    if max_short_side is not None and min(src_h, src_w) > max_short_side:
        scale = max_short_side / min(src_h, src_w)
        w, h = max(1, round(src_w * scale)), max(1, round(src_h * scale))
        note = f"frames downscaled while decoding from {src_w}x{src_h} to {w}x{h} (pixels differ slightly from a full-size decode)"
        vr = _reader(path, width=w, height=h)
    try:
        images = vr.get_batch(indices).asnumpy()  # [n, H, W, 3] uint8 RGB
    except (decord.DECORDError, RuntimeError, IndexError, AssertionError) as e:
        why = next((ln.strip() for ln in str(e).splitlines() if ln.strip()), type(e).__name__)[:120]
        raise VideoError(f"{path}: decoding failed ({why}); the file may be truncated or corrupted: "
                         "re-encode it (e.g. ffmpeg -i IN -c:v libx264 OUT.mp4)") from None
    return images, (src_h, src_w), note


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
    vr = _reader(path)
    n_total = len(vr)
    if n_total <= 0:
        raise VideoError(f"{path}: the video has no frames; re-export it")
    fps, fps_note = _frame_rate(vr)
    duration = n_total / fps
    if max_duration_s is not None and duration > max_duration_s:
        raise VideoError(f"{path}: the video is {duration:.1f} s long, over the limit of {max_duration_s:g} s; "
                         f"trim it (e.g. ffmpeg -i IN -t {max_duration_s:g} OUT.mp4) or raise the limit")
    candidates = sample_indices(n_total, fps, fps_mode)
    indices = [candidates[i] for i in uniform_subsample(len(candidates), max_frames)]
    images, src_size, size_note = _decode(path, vr, indices, max_short_side)
    notes = tuple(n for n in (fps_note, size_note) if n)
    for n in notes:
        warnings.warn(f"{path}: {n}", stacklevel=2)
    return SampledFrames(images=images, timestamps=[i / fps for i in indices], indices=indices, fps=fps,
                         n_frames_total=n_total, duration_s=duration, source_size=src_size, notes=notes)
