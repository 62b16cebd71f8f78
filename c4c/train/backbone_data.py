"""Frames and captions for backbone training, rendered once into a uint8 cache.

The 1-fps frames of a synthetic split are rendered, put through a camera-like degradation (half of
them are JPEG round-tripped at a random quality, because at inference the frames come from H.264
mp4s: chroma subsampling and smoothed noise), then resized and centre-cropped exactly as
`c4c.preprocess` does, and kept as uint8 crops [n, S, S, 3]. Normalising a batch is a table lookup
(`c4c.preprocess.normalize`), so an epoch costs no image work at all.
"""

from __future__ import annotations

import io
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ..video.preprocess import crop_uint8
from ..synth import SplitCounts, make_captions, make_scene, second_indices, split_ids
from ..synth.rand import Rand
from ..synth.render import render_frames
from ..synth.video import GENERATOR_VERSION

__all__ = ["FrameSet", "build_frameset", "load_or_build", "degrade"]

_CACHE_VERSION = 1  # bump when the cache layout or the degradation changes


@dataclass(frozen=True, eq=False)
class FrameSet:
    """The 1-fps crops of a list of videos, with their captions."""
    ids: list[str]
    crops: np.ndarray         # uint8 [N, S, S, 3]: every frame of every video, in order
    offsets: np.ndarray       # int64 [V + 1]: frames of video v are crops[offsets[v]:offsets[v+1]]
    captions: list[list[str]]

    def frames_of(self, v: int) -> np.ndarray:
        return self.crops[self.offsets[v]:self.offsets[v + 1]]


def degrade(frame: np.ndarray, rng: Rand, p_jpeg: float = 0.5) -> np.ndarray:
    """Maybe JPEG round-trip a uint8 [H, W, 3] frame (quality 35-90, 4:2:0), like a video codec would."""
    if not rng.chance(p_jpeg):
        return frame
    buf = io.BytesIO()
    Image.fromarray(frame).save(buf, format="JPEG", quality=int(rng.uniform(35, 90)))
    return np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))


def build_frameset(ids: list[str], size: int, max_frames: int = 20, p_jpeg: float = 0.5,
                   progress: bool = True, desc: str = "render") -> FrameSet:
    """Render, degrade and crop the 1-fps frames of `ids` (deterministic per id)."""
    from tqdm import tqdm

    crops, offsets, captions = [], [0], []
    for vid in tqdm(ids, desc=desc, unit="video", disable=not progress, mininterval=1.0):
        scene = make_scene(vid)
        frames = render_frames(scene, second_indices(scene.n_frames, scene.fps, max_frames))
        rng = Rand(scene.seed, 3)  # stream 3: augmentation, independent of content and captions
        crops.extend(crop_uint8(degrade(f, rng, p_jpeg), size) for f in frames)
        offsets.append(offsets[-1] + len(frames))
        captions.append(make_captions(scene))
    return FrameSet(list(ids), np.stack(crops), np.asarray(offsets, np.int64), captions)


def load_or_build(cache_dir: str | Path | None, split: str, n: int, size: int, p_jpeg: float = 0.5,
                  progress: bool = True) -> FrameSet:
    """The FrameSet of the first `n` videos of `split`, from `cache_dir` if there (else built and
    saved there: `<key>.npy` crops + `<key>.json` ids/offsets/captions). `cache_dir=None`: no cache."""
    ids = split_ids(split, SplitCounts(**{s: (n if s == split else 0) for s in ("train", "val", "test")}))
    if cache_dir is None:
        return build_frameset(ids, size, p_jpeg=p_jpeg, progress=progress, desc=f"render {split}")
    key = f"{GENERATOR_VERSION}-frames-v{_CACHE_VERSION}-{split}-{n}-{size}px-jpeg{p_jpeg:g}"
    npy, meta = Path(cache_dir) / f"{key}.npy", Path(cache_dir) / f"{key}.json"
    if npy.exists() and meta.exists():
        m = json.loads(meta.read_text())
        return FrameSet(m["ids"], np.load(npy), np.asarray(m["offsets"], np.int64), m["captions"])
    fs = build_frameset(ids, size, p_jpeg=p_jpeg, progress=progress, desc=f"render {split}")
    npy.parent.mkdir(parents=True, exist_ok=True)
    # Written to temporary names and renamed, so an interrupted build never leaves a half cache.
    np.save(npy.with_suffix(".tmp.npy"), fs.crops)
    meta.with_suffix(".tmp").write_text(json.dumps({"ids": fs.ids, "offsets": fs.offsets.tolist(),
                                                    "captions": fs.captions}))
    os.replace(npy.with_suffix(".tmp.npy"), npy)
    os.replace(meta.with_suffix(".tmp"), meta)
    return fs
