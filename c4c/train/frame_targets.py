"""What a backbone frame should show: per-frame ground truth read off the synthetic scene.

Captions need, per frame, which shapes of which colours are where, how big and how turned; the
events are then changes of those over the 1-fps frames (a move is a change of x or y, a spin a
change of orientation, a recolour a change of colour). Contrastive video-caption training alone
never made shape or position decodable from the mini backbone's frame embedding (linear probes at
chance, docs/synthetic-data.md), so pre-training also asks linear heads on that embedding to read
these targets out of every frame. The heads are dropped after training; the embedding keeps what
they needed.

Objects are put in slots by their x position in the frame (slot 0 is the leftmost visible one),
an order that can be seen in a single frame, unlike the scene's track order.

Each patch of the ViT's grid is also labelled with the shape that covers it (0: background), from
the renderer's own signed distance functions: a dense target that teaches the patch tokens what an
outline looks like, which the class token then only has to gather.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..synth.render import _sdf
from ..synth.scene import BASE_H, COLOURS, SHAPES, Scene

__all__ = ["SLOTS", "FrameTargets", "frame_targets", "stack_targets", "SYMMETRY_DEG"]

SLOTS = 2  # a scene has one or two objects
_COLOURS = tuple(COLOURS)
# Rotational symmetry of each shape's outline: orientation is only defined modulo this angle.
SYMMETRY_DEG = {"circle": 0.0, "square": 90.0, "triangle": 120.0, "diamond": 180.0, "star": 72.0}
_CROP_X0, _CROP_W = 16.0, 96.0  # the square centre crop of the 128x96 canvas that the backbone sees


@dataclass(frozen=True)
class FrameTargets:
    """Targets of one or many frames (leading axis n); slot arrays are [n, SLOTS]."""
    present: np.ndarray    # float32 [n, shapes * colours]: multi-hot of the visible (shape, colour) pairs
    exists: np.ndarray     # float32 [n, SLOTS]: the slot holds a visible object
    shape: np.ndarray      # int64 [n, SLOTS]: index in SHAPES (0 where the slot is empty)
    colour: np.ndarray     # int64 [n, SLOTS]: index in COLOURS, the colour shown at that time
    geometry: np.ndarray   # float32 [n, SLOTS, 3]: x, y in -1..1 of the crop, radius / 20 base px
    turn: np.ndarray       # float32 [n, SLOTS, 2]: cos, sin of the orientation over its symmetry period
    turnable: np.ndarray   # float32 [n, SLOTS]: 1 where orientation is defined (not a circle)
    patches: np.ndarray    # int64 [n, grid * grid]: 1 + index in SHAPES of the shape covering each patch, 0 = none


def _colour_at(track, t: float, duration: float) -> str:
    return track.colour if t / duration < track.uc else (track.colour_to or track.colour)


def _patch_labels(scene: Scene, t: float, grid: int) -> np.ndarray:
    """int64 [grid * grid]: the shape covering each patch's centre (later tracks are drawn on top)."""
    step = _CROP_W / grid
    c = (np.arange(grid) + 0.5) * step
    px, py = _CROP_X0 + c[None, :], c[:, None]  # patch centres in base units, row-major like the ViT
    out = np.zeros((grid, grid), np.int64)
    for tr in scene.tracks:
        x, y, r, angle, _ = tr.state(t, scene.duration_s)
        dx, dy = px - x, py - y
        cs, sn = math.cos(angle), math.sin(angle)
        d = _sdf(tr.shape, cs * dx + sn * dy, cs * dy - sn * dx, r)
        # A patch counts when the outline comes within a quarter patch of its centre.
        out[d < step / 4] = 1 + SHAPES.index(tr.shape)
    return out.reshape(-1)


def frame_targets(scene: Scene, index: int, grid: int = 8) -> FrameTargets:
    """The targets of frame `index` of `scene` (n = 1) for a ViT with a `grid` x `grid` patch grid."""
    t = index / scene.fps
    seen = []
    for tr in scene.tracks:
        x, y, r, angle, _ = tr.state(t, scene.duration_s)
        # Visible when its centre is inside the crop: enter/leave clips show the object half out.
        if _CROP_X0 <= x <= _CROP_X0 + _CROP_W and 0.0 <= y <= BASE_H:
            seen.append((x, y, r, angle, tr.shape, _colour_at(tr, t, scene.duration_s)))
    seen.sort(key=lambda o: o[0])
    present = np.zeros((1, len(SHAPES) * len(_COLOURS)), np.float32)
    exists, turnable = np.zeros((1, SLOTS), np.float32), np.zeros((1, SLOTS), np.float32)
    shape, colour = np.zeros((1, SLOTS), np.int64), np.zeros((1, SLOTS), np.int64)
    geometry, turn = np.zeros((1, SLOTS, 3), np.float32), np.zeros((1, SLOTS, 2), np.float32)
    for k, (x, y, r, angle, sh, col) in enumerate(seen[:SLOTS]):
        s, c = SHAPES.index(sh), _COLOURS.index(col)
        present[0, s * len(_COLOURS) + c] = 1.0
        exists[0, k], shape[0, k], colour[0, k] = 1.0, s, c
        geometry[0, k] = ((x - _CROP_X0) / _CROP_W * 2 - 1, y / BASE_H * 2 - 1, r / 20.0)
        if SYMMETRY_DEG[sh]:
            phase = angle * 360.0 / SYMMETRY_DEG[sh]  # one full turn of the phase per symmetry period
            turn[0, k], turnable[0, k] = (math.cos(phase), math.sin(phase)), 1.0
    return FrameTargets(present, exists, shape, colour, geometry, turn, turnable, _patch_labels(scene, t, grid)[None])


def stack_targets(items: list[FrameTargets]) -> FrameTargets:
    """Concatenate per-frame targets along the leading axis."""
    return FrameTargets(*(np.concatenate([getattr(t, f) for t in items]) for f in FrameTargets.__dataclass_fields__))
