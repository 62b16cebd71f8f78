"""Long synthetic videos with known scene changes, for testing and benchmarking scene detection.

`write_cut_video` concatenates synthetic clips (video.py) into one H.264 file at a common frame rate and
returns the true change times (`write_clips`: clips of given lengths, for cuts at chosen times). Kinds
of change:

* ``hard``: a cut between two unrelated clips;
* ``same_bg``: a cut to another clip drawn over the previous clip's background (a new shot of the
  same set: only the objects change);
* ``fade``: a 1-second cross-fade between two clips (the truth is the fade's middle);
* ``black``: a fade out to black and in again over 1 s (truth: the middle);
* ``static``: one still frame, no change at all (only false detections can happen).

Frames are rendered and encoded clip by clip, so a 10-minute 640x360 video never sits in memory.
"""

from __future__ import annotations

import dataclasses
import subprocess
from pathlib import Path

import numpy as np

from .rand import Rand, seed_of
from .render import render_frames
from .video import make_scene

__all__ = ["CUT_KINDS", "write_cut_video", "write_clips"]

CUT_KINDS = ("hard", "same_bg", "fade", "black", "static")
FADE_S = 1.0


class _Encoder:
    """ffmpeg (imageio-ffmpeg's) reading raw RGB frames on stdin, writing H.264 yuv420p mp4."""

    def __init__(self, path: Path, size: tuple[int, int], fps: float, preset: str = "veryfast",
                 gop: int | None = None):
        import imageio_ffmpeg
        h, w = size
        # x264's default keyframe interval is 250 frames (25 s at 10 fps); damaged-data tests need a
        # keyframe soon after the damage, as real cameras and encoders put one every 1-10 s.
        keyint = ["-g", str(gop)] if gop else []
        self.proc = subprocess.Popen(
            [imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-loglevel", "error", "-f", "rawvideo", "-pix_fmt", "rgb24",
             "-s", f"{w}x{h}", "-r", str(fps), "-i", "-", "-an", "-c:v", "libx264", "-preset", preset, "-crf", "23",
             *keyint, "-pix_fmt", "yuv420p", "-threads", "1", str(path)], stdin=subprocess.PIPE, stderr=subprocess.PIPE)

    def write(self, frames: np.ndarray) -> None:
        self.proc.stdin.write(np.ascontiguousarray(frames, np.uint8).tobytes())

    def close(self) -> None:
        _, err = self.proc.communicate()
        if self.proc.returncode != 0:
            raise RuntimeError(f"ffmpeg failed: {err.decode(errors='replace')[-400:]}")


def _clip(video_id: str, size: tuple[int, int], fps: float, background=None, seconds: float | None = None):
    """A synthetic clip resampled to `fps` (nearest earlier source frame), optionally on another background."""
    scene = make_scene(video_id)
    if background is not None:
        scene = dataclasses.replace(scene, background=background)
    duration = seconds or scene.duration_s
    n_out = max(1, int(round(duration * fps)))
    src = np.minimum((np.arange(n_out) / fps * scene.fps).astype(int), scene.n_frames - 1)
    native = render_frames(scene, range(int(src.max()) + 1), size)
    return scene, native[src]


def write_cut_video(path: str | Path, kind: str, seed: str = "cuts", n_clips: int = 6,
                    size: tuple[int, int] = (144, 256), fps: float = 25.0, total_s: float | None = None,
                    preset: str = "veryfast", gop: int | None = None) -> list[float]:
    """Write a video of `n_clips` clips (or clips until `total_s` seconds) joined by `kind` changes;
    return the true change times in seconds. `size` is (H, W), even; `gop`: frames between keyframes."""
    if kind not in CUT_KINDS:
        raise ValueError(f"unknown cut kind {kind!r}; choose one of {', '.join(CUT_KINDS)}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = Rand(seed_of(f"cuts:{seed}:{kind}"))
    enc = _Encoder(path, size, fps, preset, gop)
    cuts, k, prev_bg = [], 0, None
    fade_n = int(round(FADE_S * fps))
    try:
        if kind == "static":
            _, frames = _clip(f"{seed}_{kind}_0", size, fps)
            n = int(round((total_s or 30.0) * fps))
            for lo in range(0, n, 250):
                enc.write(np.repeat(frames[:1], min(250, n - lo), axis=0))
            return []
        written, pending, fades = 0, None, kind in ("fade", "black")
        while (k < n_clips) if total_s is None else (written / fps < total_s):
            bg = prev_bg if (kind == "same_bg" and prev_bg is not None) else None
            # Clips of 3..12 s (the generator's range), so consecutive changes are >= 2 s apart.
            scene, frames = _clip(f"{seed}_{kind}_{k}_{rng.integer(10**6)}", size, fps, background=bg)
            if total_s is not None:
                frames = frames[: max(fade_n + 1, int(round(total_s * fps)) - written)]
            if k == 0:
                out = frames
            elif not fades:
                cuts.append(round(written / fps, 3))
                out = frames
            else:
                # The previous clip's held-back last frames blend into this clip's first ones.
                a, b = pending.astype(np.float32), frames[:fade_n].astype(np.float32)
                w = ((np.arange(fade_n) + 0.5) / fade_n)[:, None, None, None]
                mixed = a * (1 - w) + b * w if kind == "fade" else np.where(w < 0.5, a * (1 - 2 * w), b * (2 * w - 1))
                cuts.append(round((written + fade_n / 2) / fps, 3))
                out = np.concatenate([np.clip(mixed, 0, 255).astype(np.uint8), frames[fade_n:]])
            if fades:
                out, pending = out[:-fade_n], out[-fade_n:]
            enc.write(out)
            written += len(out)
            prev_bg, k = scene.background, k + 1
        if pending is not None:
            enc.write(pending)
    finally:
        enc.close()
    return cuts


def write_clips(path: str | Path, durations: list[float], seed: str = "clips", size: tuple[int, int] = (96, 128),
                fps: float = 10.0, gop: int | None = None) -> list[float]:
    """Write unrelated clips of the given `durations` (s) joined by hard cuts, and return the cut times:
    cuts exactly where a test wants them (in the first or last second, every second)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    enc = _Encoder(path, size, fps, gop=gop)
    cuts, written = [], 0
    try:
        for k, seconds in enumerate(durations):
            _, frames = _clip(f"{seed}_clip_{k}", size, fps, seconds=seconds)
            if k:
                cuts.append(round(written / fps, 3))
            enc.write(frames)
            written += len(frames)
    finally:
        enc.close()
    return cuts
