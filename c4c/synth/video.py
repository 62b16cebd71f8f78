"""Synthetic videos by id: `make_video("test_00003")` is the same clip and captions everywhere.

Ids are `<split>_<index:05d>`; the split's clips are indices 0..count-1, so a tiny split (CI) is a
prefix of the full one. Default sizes mirror MSR-VTT's proportions in miniature (see SplitCounts).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .captions import make_captions
from .rand import seed_of
from .render import render_frames
from .scene import BASE_H, BASE_W, TWO_OBJECTS, Scene, sample_scene

__all__ = ["GENERATOR_VERSION", "SynthVideo", "SplitCounts", "SPLITS", "make_scene", "make_video", "render_seconds",
           "sample_seconds", "second_indices", "split_ids"]

SPLITS = ("train", "val", "test")
GENERATOR_VERSION = "c4c-synth-v1"  # part of every seed: bump it when the generator's output changes


@dataclass(frozen=True)
class SplitCounts:
    """Videos per split."""
    train: int = 5000  # decoder training videos: enough for the combinations of shape, colour and event
    val: int = 300     # per-epoch retrieval / caption checks
    test: int = 500    # final scores and the shipped examples

    def of(self, split: str) -> int:
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")
        return getattr(self, split)


@dataclass(frozen=True, eq=False)
class SynthVideo:
    video_id: str
    frames: np.ndarray           # uint8 [T, H, W, 3] RGB
    fps: int
    captions: list[str]          # reference captions, distinct, lower case, no punctuation
    label: dict = field(repr=False)  # structured ground truth (Scene.label())

    @property
    def duration_s(self) -> float:
        return len(self.frames) / self.fps


def split_ids(split: str, counts: SplitCounts = SplitCounts()) -> list[str]:
    """The video ids of a split, in order: `train_00000`, `train_00001`, ..."""
    return [f"{split}_{i:05d}" for i in range(counts.of(split))]


def make_scene(video_id: str, two_objects: float = TWO_OBJECTS) -> Scene:
    """The scene (no pixels) of a video id; any string is a valid id. `two_objects` other than the
    default draws a different mix (the backbone's training clips only; every split uses the default)."""
    return sample_scene(video_id, seed_of(f"{GENERATOR_VERSION}:{video_id}"), two_objects)


def second_indices(n_frames: int, fps: float, max_frames: int | None = None) -> list[int]:
    """Frame indices at t = 0, 1, 2, ... s (index round(t * fps)), the inference sampler's rule;
    more than `max_frames` are thinned uniformly as the reference does (linspace, floor)."""
    idx = []
    t = 0
    while (i := int(round(t * fps))) < n_frames:
        idx.append(i)
        t += 1
    if max_frames is not None and len(idx) > max_frames:
        keep = np.linspace(0, len(idx) - 1, num=max_frames, dtype=int)
        idx = [idx[k] for k in keep]
    return idx


def make_video(video_id: str, n_captions: int = 20, size: tuple[int, int] = (BASE_H, BASE_W)) -> SynthVideo:
    """Render every frame of a video and write its captions. `size` is (H, W)."""
    scene = make_scene(video_id)
    frames = render_frames(scene, range(scene.n_frames), size)
    return SynthVideo(video_id, frames, scene.fps, make_captions(scene, n_captions), scene.label())


def sample_seconds(video: SynthVideo, max_frames: int | None = None) -> np.ndarray:
    """The 1-fps frames (uint8 [n, H, W, 3]) of a rendered video."""
    return video.frames[second_indices(len(video.frames), video.fps, max_frames)]


def render_seconds(video_id: str, max_frames: int | None = None,
                   size: tuple[int, int] = (BASE_H, BASE_W)) -> np.ndarray:
    """Only the 1-fps frames, rendered directly (several times faster than make_video);
    equal to `sample_seconds(make_video(video_id))`."""
    scene = make_scene(video_id)
    return render_frames(scene, second_indices(scene.n_frames, scene.fps, max_frames), size)
