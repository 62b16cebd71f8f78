"""c4c.synth: a deterministic generator of short captioned videos (MSR-VTT in miniature).

    >>> v = make_video("test_00003")          # same frames and captions on any machine
    >>> v.frames.shape, v.fps, v.captions[0]  # (T, 96, 128, 3) uint8, 4..8, "a green box rotates ..."
    >>> render_seconds("train_00012")         # only the 1-fps frames, rendered directly
    >>> split_ids("val", SplitCounts(60, 10, 10))

See scene.py (what happens), render.py (pixels), captions.py (grammar), writer.py (files).
"""

from .captions import make_captions
from .scene import Scene
from .video import (SPLITS, SplitCounts, SynthVideo, make_scene, make_video, render_seconds, sample_seconds,
                    second_indices, split_ids)
from .writer import diverse_ids, write_annotations, write_examples, write_mp4

__all__ = ["SPLITS", "Scene", "SplitCounts", "SynthVideo", "diverse_ids", "make_captions", "make_scene",
           "make_video", "render_seconds", "sample_seconds", "second_indices", "split_ids", "write_annotations",
           "write_examples", "write_mp4"]
