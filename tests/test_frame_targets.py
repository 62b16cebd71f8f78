"""Per-frame targets of backbone pre-training, the fresh-clip stream and the read-out heads."""

from __future__ import annotations

import numpy as np
import torch

from c4c.synth import make_scene
from c4c.synth.scene import SHAPES
from c4c.synth.render import render_frames
from c4c.train.clip_stream import clip_id, make_batch, stream_batches
from c4c.train.frame_heads import FrameHeads, targets_to_torch
from c4c.train.frame_targets import frame_targets


def _scene_with(n_objects: int, event: str | None = None):
    for i in range(2000):
        s = make_scene(f"targets_{i}")
        if len(s.tracks) == n_objects and (event is None or s.tracks[0].event == event):
            return s
    raise AssertionError("no such scene in 2000 ids")


def test_one_object_targets_follow_the_scene():
    s = _scene_with(1, "move")
    tr = s.tracks[0]
    first, last = frame_targets(s, 0), frame_targets(s, s.n_frames - 1)
    assert first.exists[0].tolist() == [1.0, 0.0]
    assert SHAPES[first.shape[0, 0]] == tr.shape
    assert first.present[0].sum() == 1.0
    dx = last.geometry[0, 0, 0] - first.geometry[0, 0, 0]
    dy = last.geometry[0, 0, 1] - first.geometry[0, 0, 1]
    expected = {"left": dx < -0.3, "right": dx > 0.3, "up": dy < -0.3, "down": dy > 0.3}
    assert expected[tr.direction], (tr.direction, dx, dy)  # image y grows downwards


def test_slots_are_ordered_left_to_right_and_patches_are_covered():
    s = _scene_with(2)
    t = frame_targets(s, 0, grid=8)
    if t.exists[0].sum() == 2:
        assert t.geometry[0, 0, 0] <= t.geometry[0, 1, 0]
    shown = {SHAPES[t.shape[0, k]] for k in range(2) if t.exists[0, k]}
    assert set(np.unique(t.patches[0][t.patches[0] > 0]) - 1) <= {SHAPES.index(x) for x in shown} | \
        {SHAPES.index(tr.shape) for tr in s.tracks}
    assert (t.patches[0] > 0).sum() >= 1 and (t.patches[0] == 0).sum() > 32  # an object, mostly background


def test_patch_labels_sit_where_the_pixels_are():
    s = _scene_with(1, "still")
    frame = render_frames(s, [0])[0][:, 16:112].astype(float)  # the square centre crop, 96 x 96
    t = frame_targets(s, 0, grid=8)
    labels = t.patches[0].reshape(8, 8)
    # Per 12x12 block: distance of its mean colour from the background's corner block.
    blocks = frame.reshape(8, 12, 8, 12, 3).mean(axis=(1, 3))
    bg = np.median(blocks.reshape(-1, 3), axis=0)
    diff = np.linalg.norm(blocks - bg, axis=-1)
    assert diff[labels > 0].mean() > 3 * diff[labels == 0].mean()


def test_batches_are_deterministic_fresh_and_streamable():
    a = make_batch(3, 5, videos=3, frames_per_video=2, size=32, p_jpeg=0.5)
    b = make_batch(3, 5, videos=3, frames_per_video=2, size=32, p_jpeg=0.5)
    assert np.array_equal(a.crops, b.crops) and a.captions == b.captions
    assert a.crops.shape[1:] == (32, 32, 3) and a.video_of.tolist() == [0, 0, 1, 1, 2, 2]
    c = make_batch(3, 6, videos=3, frames_per_video=2, size=32, p_jpeg=0.5)
    assert not np.array_equal(a.crops, c.crops)  # the next step shows new clips
    assert clip_id(3, 15) == "pre3_00000015" and not clip_id(0, 1).startswith(("train_", "val_", "test_"))
    streamed = list(stream_batches(3, 5, 7, 3, 2, 32, 0.5, workers=0))
    assert len(streamed) == 2 and np.array_equal(streamed[0].crops, a.crops)


def test_heads_learn_a_fixed_batch_and_score_it():
    torch.manual_seed(0)
    batch = make_batch(1, 0, videos=8, frames_per_video=2, size=32, p_jpeg=0.0, grid=4)
    t = targets_to_torch(batch.targets)
    emb = torch.randn(16, 32, requires_grad=True)
    tokens = torch.randn(16, 16, 64, requires_grad=True)
    heads = FrameHeads(32, 64)
    opt = torch.optim.Adam([emb, tokens, *heads.parameters()], lr=0.05)
    first = (heads.loss(emb, t) + heads.patch_loss(tokens, t)).item()
    for _ in range(150):
        loss = heads.loss(emb, t) + heads.patch_loss(tokens, t)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.2 * first
    scores = heads.scores(emb, t)
    assert scores["shape"] == 100.0 and scores["colour"] == 100.0 and scores["pos_px"] < 3
