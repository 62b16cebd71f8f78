"""Freshly rendered training batches for backbone pre-training: never the same clip twice.

A fixed set of 3,000 clips was memorised by the from-scratch ViT (shape at chance on held-out
clips while training accuracy rose); the generator renders a frame in under a millisecond, so
every step gets clips no step saw before. Batch `step` of run `seed` holds the clips
`pre<seed>_<step * videos + j>`: deterministic, resumable at any step, and disjoint from the
`train_` / `val_` / `test_` ids that decoders are trained and scored on.

Batches are made in a worker process a few steps ahead of the optimiser (a bounded window, so
memory does not grow when rendering is faster than training).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context

import numpy as np

from ..video.preprocess import crop_uint8
from ..synth import make_captions, make_scene
from ..synth.rand import Rand
from ..synth.scene import TWO_OBJECTS
from ..synth.render import render_frames
from .backbone_data import degrade
from .frame_targets import FrameTargets, frame_targets, stack_targets

__all__ = ["Batch", "make_batch", "stream_batches", "clip_id"]


@dataclass(frozen=True, eq=False)
class Batch:
    crops: np.ndarray        # uint8 [F, S, S, 3]
    video_of: np.ndarray     # int64 [F]: which of the batch's videos each frame belongs to
    captions: list[str]      # one reference caption per video
    targets: FrameTargets    # per frame


def clip_id(seed: int, n: int, prefix: str = "pre") -> str:
    """`pre<seed>_<n>` for training clips, `probe<seed>_<n>` for the held-out probe clips."""
    return f"{prefix}{seed}_{n:08d}"


def make_batch(seed: int, step: int, videos: int, frames_per_video: int, size: int, p_jpeg: float,
               prefix: str = "pre", grid: int = 8, two_objects: float = TWO_OBJECTS) -> Batch:
    """Batch `step`: `videos` new clips, `frames_per_video` distinct random frames of each; a clip has
    a second object with chance `two_objects`."""
    crops, video_of, captions, targets = [], [], [], []
    for j in range(videos):
        scene = make_scene(clip_id(seed, step * videos + j, prefix), two_objects)
        rng = Rand(scene.seed, 4)  # stream 4: which frames and caption; independent of the content
        k = min(frames_per_video, scene.n_frames)
        picks = sorted(rng.shuffled(range(scene.n_frames))[:k])
        aug = Rand(scene.seed, 3)
        for frame, idx in zip(render_frames(scene, picks), picks):
            crops.append(crop_uint8(degrade(frame, aug, p_jpeg), size))
            targets.append(frame_targets(scene, idx, grid))
            video_of.append(j)
        caps = make_captions(scene)
        captions.append(caps[rng.integer(len(caps))])
    return Batch(np.stack(crops), np.asarray(video_of, np.int64), captions, stack_targets(targets))


def stream_batches(seed: int, start: int, stop: int, videos: int, frames_per_video: int, size: int,
                   p_jpeg: float, grid: int = 8, workers: int = 1, ahead: int = 4,
                   two_objects: float = TWO_OBJECTS) -> Iterator[Batch]:
    """Batches start..stop-1 in order, made by `workers` processes (0: in this process)."""
    args = (videos, frames_per_video, size, p_jpeg, "pre", grid, two_objects)
    if workers <= 0:
        for step in range(start, stop):
            yield make_batch(seed, step, *args)
        return
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as ex:
        window: deque = deque()
        nxt = start
        while window or nxt < stop:
            while nxt < stop and len(window) < ahead:
                window.append(ex.submit(make_batch, seed, nxt, *args))
                nxt += 1
            yield window.popleft().result()
