"""The two halves of captioning one video, split where a batch run puts a process boundary.

`decode()` (CPU, no models: runs in DataLoader workers or Ray tasks) samples the frames and crops
them to the backbone's size as uint8 (4x smaller to ship than float pixels). `caption_decoded()`
(where the models live: the main process or a Ray actor) normalises, embeds and runs the decoders
and the vote through `Pipeline.caption_video` itself, so a batch result is the very result
`python -m c4c caption VIDEO` gives, whichever engine or worker count produced it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from ..pipeline import CaptionSettings, Pipeline
from ..result import CaptionResult

__all__ = ["Decoded", "decode", "caption_decoded", "BatchPipeline"]


@dataclass
class Decoded:
    """One video after the CPU half: frames cropped and ready for the backbone, or the error."""
    index: int                      # position in the run's list (for ordering and progress)
    video: str                      # path as recorded in the output
    frames: object = None           # SampledFrames with `images` emptied (timestamps, indices, fps, ...)
    crops: np.ndarray | None = None  # uint8 [n, S, S, 3], S = backbone image size
    timings: dict[str, float] = field(default_factory=dict)
    error: BaseException | None = None


def decode(index: int, video: str, settings: CaptionSettings, image_size: int, open_path: str | None = None) -> Decoded:
    """Sample and crop one video; never raises for a bad video (the error travels in the result).
    `open_path` is what to open if it differs from the recorded `video` (absolute path on Ray)."""
    from ..video.frames import sample_frames
    from ..video.preprocess import crop_uint8
    timings: dict[str, float] = {}
    if settings.segments != "none":
        # Segmented runs decode every second in chunks next to the models (c4c/segments.py), so that
        # memory stays bounded on long videos; nothing to do here.
        return Decoded(index, video, frames=open_path or video)
    try:
        t = time.perf_counter()
        frames = sample_frames(open_path or video, max_frames=settings.max_frames, fps_mode=settings.fps_mode,
                               max_duration_s=settings.max_duration_s)
        timings["decode"] = time.perf_counter() - t
        t = time.perf_counter()
        # preprocess() = normalize(stack(crop_uint8)); the normalisation happens on the model side.
        crops = np.stack([crop_uint8(im, image_size) for im in frames.images])
        timings["preprocess"] = time.perf_counter() - t
        return Decoded(index, video, replace(frames, images=np.zeros((0,), np.uint8)), crops, timings)
    except Exception as e:  # noqa: BLE001 - recorded as the video's error line, the run goes on
        return Decoded(index, video, error=e)


class BatchPipeline(Pipeline):
    """A Pipeline whose `features()` takes a video decoded elsewhere (`self.item`): everything after
    decoding, and the result object itself, is Pipeline's own code."""

    def __init__(self, pipe: Pipeline):
        super().__init__(pipe.zoo, feature_cache=None)
        self.item: Decoded | None = None

    def features(self, video, settings, timings=None):
        from ..video.preprocess import normalize
        item = self.item
        assert item is not None and item.crops is not None
        timings = {} if timings is None else timings
        timings.update(item.timings)
        t = time.perf_counter()
        pixels = normalize(item.crops)                      # float32 [n, 3, S, S]
        timings["preprocess"] = timings.get("preprocess", 0.0) + time.perf_counter() - t
        t = time.perf_counter()
        feats = self.zoo.backbone.embed(pixels.to(self.device)).float().cpu().numpy()  # (n, E)
        timings["backbone"] = time.perf_counter() - t
        return item.frames, feats


def caption_decoded(pipe: BatchPipeline, item: Decoded, settings: CaptionSettings) -> CaptionResult:
    """The model half for one decoded video (raises what Pipeline raises)."""
    if item.error is not None:
        raise item.error
    if settings.segments != "none":  # `frames` holds the path to open (decode() did nothing)
        from ..segments import caption_segments
        result = caption_segments(pipe, item.frames, settings)[0]
        return replace(result, video=item.video)
    pipe.item = item
    try:
        return pipe.caption_video(item.video, settings)[0]
    finally:
        pipe.item = None


def zoo_image_size(zoo_dir: str | Path) -> int:
    """The backbone's input size, read off its checkpoint without building the model."""
    from ..vision.backbone import arch_from_state_dict, vision_keys
    from ..checkpoints import load_state_dict
    from ..zoo import read_manifest
    m = read_manifest(zoo_dir)
    path = Path(zoo_dir) / m["backbone"]["file"]
    return arch_from_state_dict(vision_keys(load_state_dict(path)), path).image_size
