"""Pixels of a synthetic scene, in pure numpy.

Shapes are drawn from signed distance functions (anti-aliased over one pixel) built only from
+, -, *, /, sqrt, abs, min and max, which IEEE 754 rounds exactly, so a frame is the same bytes on
any machine; the only trigonometry is per frame, on Python floats. Each frame's camera shake and
noise come from its own random stream (keyed by the frame index), so any subset of frames can be
rendered alone and equals the same frames of a full render.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np

from .rand import Rand
from .scene import BASE_H, BASE_W, Background, Scene

__all__ = ["render_frames"]


def _sd_circle(x, y, r):
    return np.sqrt(x * x + y * y) - r


def _sd_box(x, y, h):
    dx, dy = np.abs(x) - h, np.abs(y) - h
    outside = np.sqrt(np.maximum(dx, 0) ** 2 + np.maximum(dy, 0) ** 2)
    return outside + np.minimum(np.maximum(dx, dy), 0)


def _sd_triangle(x, y, r):
    # Equilateral triangle with y pointing up (after Inigo Quilez's sdEquilateralTriangle).
    k = math.sqrt(3.0)
    x = np.abs(x) - r
    y = y + r / k
    fold = x + k * y > 0
    x, y = np.where(fold, (x - k * y) / 2, x), np.where(fold, (-k * x - y) / 2, y)
    x = x - np.clip(x, -2 * r, 0)
    return -np.sqrt(x * x + y * y) * np.sign(y)


def _sd_rhombus(x, y, bx, by):
    # After Quilez's sdRhombus; half-diagonals bx, by.
    x, y = np.abs(x), np.abs(y)
    h = np.clip(((bx - 2 * x) * bx - (by - 2 * y) * by) / (bx * bx + by * by), -1, 1)
    dx, dy = x - 0.5 * bx * (1 - h), y - 0.5 * by * (1 + h)
    return np.sqrt(dx * dx + dy * dy) * np.sign(x * by + y * bx - bx * by)


def _sd_star(x, y, r, rf=0.45):
    # Five-pointed star by mirror folds (Quilez's sdStar5): no per-pixel trigonometry.
    k1x, k1y = 0.809016994375, -0.587785252292
    x = np.abs(x)
    d = np.maximum(k1x * x + k1y * y, 0) * 2
    x, y = x - d * k1x, y - d * k1y
    d = np.maximum(-k1x * x + k1y * y, 0) * 2
    x, y = x + d * k1x, y - d * k1y
    x = np.abs(x)
    y = y - r
    bax, bay = rf * -k1y, rf * k1x - 1
    h = np.clip((x * bax + y * bay) / (bax * bax + bay * bay), 0, r)
    dx, dy = x - bax * h, y - bay * h
    return np.sqrt(dx * dx + dy * dy) * np.sign(y * bax - x * bay)


def _sdf(shape: str, x, y, r):
    """Signed distance (base units) for shape of nominal radius r; y points down in the image."""
    if shape == "circle":
        return _sd_circle(x, y, r)
    if shape == "square":
        return _sd_box(x, y, r * 0.85)  # about the area of the circle
    if shape == "triangle":
        return _sd_triangle(x, -y, r * 1.15)
    if shape == "diamond":
        return _sd_rhombus(x, y, r * 0.75, r * 1.2)
    return _sd_star(x, -y, r * 1.25)


def _background(bg: Background, h: int, w: int, scale: float, margin: int) -> np.ndarray:
    """float32 [h+2m, w+2m, 3] in 0..255; a margin is kept so the camera can shake over it."""
    ys = ((np.arange(h + 2 * margin) - margin + 0.5) / scale)[:, None]
    xs = ((np.arange(w + 2 * margin) - margin + 0.5) / scale)[None, :]
    c1, c2 = np.array(bg.rgb, np.float64), np.array(bg.rgb2, np.float64)
    coord = {"horizontal": ys + 0 * xs, "vertical": xs + 0 * ys, "diagonal": (xs + ys) / 2}[bg.orientation]
    if bg.kind == "plain":
        t = np.zeros_like(coord)
    elif bg.kind == "gradient":
        extent = {"horizontal": BASE_H, "vertical": BASE_W, "diagonal": (BASE_W + BASE_H) / 2}[bg.orientation]
        t = np.clip(coord / extent, 0, 1)
    elif bg.kind == "striped":
        t = np.floor(coord / (bg.period / 2)) % 2
    elif bg.kind == "checkered":
        t = (np.floor(xs / bg.period + 0 * ys) + np.floor(ys / bg.period)) % 2
    else:  # textured: a coarse random field, bilinearly upsampled (np.interp: exact arithmetic)
        coarse = Rand(bg.texture_key).array((8, 10))
        gy, gx = np.linspace(0, BASE_H, 8), np.linspace(0, BASE_W, 10)
        rows = np.stack([np.interp(xs[0], gx, coarse[i]) for i in range(8)])
        t = np.stack([np.interp(ys[:, 0], gy, rows[:, j]) for j in range(rows.shape[1])], axis=1)
    return (c1 * (1 - t[..., None]) + c2 * t[..., None]).astype(np.float32)


def render_frames(scene: Scene, indices: Iterable[int], size: tuple[int, int] = (BASE_H, BASE_W)) -> np.ndarray:
    """uint8 [n, H, W, 3] RGB frames of `scene` at the given frame indices.

    `size` is (H, W); geometry scales with H / 96, so any size with the base 4:3 ratio shows the
    same picture. Noise is per output pixel.
    """
    h, w = size
    scale = h / BASE_H
    margin = int(math.ceil(2 * scale))
    bg = _background(scene.background, h, w, scale, margin)
    indices = list(indices)
    out = np.empty((len(indices), h, w, 3), np.uint8)
    for n, idx in enumerate(indices):
        if not 0 <= idx < scene.n_frames:
            raise IndexError(f"frame {idx} outside 0..{scene.n_frames - 1}")
        t = idx / scene.fps
        rng = Rand(scene.seed, 2, idx)
        dx = int(round(scene.jitter * scale * (2 * rng.random() - 1)))
        dy = int(round(scene.jitter * scale * (2 * rng.random() - 1)))
        gain = 1 + scene.flicker * (2 * rng.random() - 1)
        img = bg[margin + dy:margin + dy + h, margin + dx:margin + dx + w].copy()  # float32
        for track in scene.tracks:
            x, y, r, angle, rgb = track.state(t, scene.duration_s)
            x, y = x - dx / scale, y - dy / scale  # the camera moved, the world did not
            reach = r * 1.6 + 2
            x0, x1 = max(0, int((x - reach) * scale)), min(w, int((x + reach) * scale) + 1)
            y0, y1 = max(0, int((y - reach) * scale)), min(h, int((y + reach) * scale) + 1)
            if x0 >= x1 or y0 >= y1:
                continue  # entirely off screen
            px = ((np.arange(x0, x1) + 0.5) / scale - x)[None, :]
            py = ((np.arange(y0, y1) + 0.5) / scale - y)[:, None]
            c, s = math.cos(angle), math.sin(angle)
            qx, qy = c * px + s * py, c * py - s * px  # rotate the sample points by -angle
            alpha = np.clip(0.5 - _sdf(track.shape, qx, qy, r) * scale, 0, 1).astype(np.float32)[..., None]
            patch = img[y0:y1, x0:x1]
            img[y0:y1, x0:x1] = patch * (1 - alpha) + np.array(rgb, np.float32) * alpha
        noise = (rng.coarse_array((h, w, 3)) * np.float32(2) - np.float32(1)) * np.float32(scene.noise)
        img *= np.float32(gain)
        img += noise
        out[n] = np.rint(np.clip(img, 0, 255)).astype(np.uint8)
    return out
