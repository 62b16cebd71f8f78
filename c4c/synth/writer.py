"""Files made from synthetic videos: H.264 mp4s, an examples folder, MSR-VTT style annotations."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from .video import SPLITS, SplitCounts, SynthVideo, make_scene, make_video, split_ids
from .captions import make_captions

__all__ = ["write_mp4", "write_examples", "write_annotations", "diverse_ids", "MSRVTT_SPLIT_NAMES"]

# MSR-VTT's own split names in MSRVTT_data.json, so readers written for the real file work unchanged.
MSRVTT_SPLIT_NAMES = {"train": "train", "val": "validate", "test": "test"}


def write_mp4(frames: np.ndarray, fps: float, path: str | Path, crf: int = 23) -> Path:
    """Encode uint8 [T, H, W, 3] RGB frames as H.264 (yuv420p) mp4 with imageio-ffmpeg's ffmpeg.

    yuv420p is what browsers and decord play; it needs even width and height.
    """
    import imageio_ffmpeg

    t, h, w, _ = frames.shape
    if h % 2 or w % 2:
        raise ValueError(f"H.264 yuv420p needs even dimensions, got {w}x{h}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part.mp4")
    cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-loglevel", "error", "-f", "rawvideo", "-pix_fmt", "rgb24",
           "-s", f"{w}x{h}", "-r", str(fps), "-i", "-", "-an", "-c:v", "libx264", "-preset", "medium",
           "-crf", str(crf), "-pix_fmt", "yuv420p", "-movflags", "+faststart", "-threads", "1", str(tmp)]
    proc = subprocess.run(cmd, input=np.ascontiguousarray(frames, np.uint8).tobytes(), capture_output=True)
    if proc.returncode != 0:
        tmp.unlink(missing_ok=True)
        raise RuntimeError(f"ffmpeg failed writing {path}: {proc.stderr.decode(errors='replace')[-400:]}")
    os.replace(tmp, path)
    return path


def _events(video_id: str) -> tuple[str, ...]:
    tracks = make_scene(video_id).tracks
    return tuple(sorted(t.event + (f"-{t.direction}" if t.event == "move" else "") for t in tracks))


# Single-event clips in the order examples should show them; a two-object clip comes first.
_SHOWCASE = ("move-left", "recolour", "bounce", "grow", "enter", "spin", "shrink", "leave", "move-right",
             "move-up", "move-down", "still")


def diverse_ids(split: str, n: int, counts: SplitCounts = SplitCounts()) -> list[str]:
    """`n` ids of a split that show as many different events as possible: one two-object clip,
    then one single-object clip per event in _SHOWCASE order (first such id, so deterministic)."""
    ids = split_ids(split, counts)
    events = {vid: _events(vid) for vid in ids}
    pair = next((v for v in ids if len(set(events[v])) == 2), None)
    chosen = [pair] if pair and n else []
    for ev in _SHOWCASE:
        if len(chosen) >= n:
            break
        pick = next((v for v in ids if events[v] == (ev,) and v not in chosen), None)
        if pick:
            chosen.append(pick)
    return chosen + [v for v in ids if v not in chosen][: n - len(chosen)]


def write_examples(video_ids: Iterable[str], out_dir: str | Path, n_captions: int = 20) -> Path:
    """Write `<id>.mp4` for each id and `captions.json` ({file name: {"captions", "label"}})."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    index = {}
    for vid in video_ids:
        video: SynthVideo = make_video(vid, n_captions)
        write_mp4(video.frames, video.fps, out_dir / f"{vid}.mp4")
        index[f"{vid}.mp4"] = {"captions": video.captions, "label": video.label}
    path = out_dir / "captions.json"
    path.write_text(json.dumps(index, indent=1) + "\n")
    return path


def write_annotations(path: str | Path, counts: SplitCounts = SplitCounts(), splits: Iterable[str] = SPLITS,
                      n_captions: int = 20) -> Path:
    """MSR-VTT's `MSRVTT_data.json` layout for synthetic splits (no pixels are rendered):
    {"info", "videos": [{"video_id", "split", "id", "duration_s", "label"}],
     "sentences": [{"video_id", "caption", "sen_id"}]}; split names as MSR-VTT: train/validate/test."""
    videos, sentences = [], []
    for split in splits:
        for vid in split_ids(split, counts):
            scene = make_scene(vid)
            videos.append({"video_id": vid, "split": MSRVTT_SPLIT_NAMES[split], "id": len(videos),
                           "duration_s": round(scene.duration_s, 3), "label": scene.label()})
            for cap in make_captions(scene, n_captions):
                sentences.append({"video_id": vid, "caption": cap, "sen_id": len(sentences)})
    data = {"info": {"description": "c4c synthetic shapes captions (c4c.synth)",
                     "counts": {s: counts.of(s) for s in splits}},
            "videos": videos, "sentences": sentences}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)
    return path
