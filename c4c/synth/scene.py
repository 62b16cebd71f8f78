"""What happens in a synthetic video: the scene is drawn from a seed, before any pixel exists.

A scene is one or two shapes, each with one event, over a background, seen by a slightly shaky,
noisy camera. Every event is expressed with the same few numbers (start/end position and radius
over a time window, a colour switch time, a spin rate, a bounce), so the renderer needs no
per-event code. Geometry is in *base units*: pixels of the 128x96 base canvas.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .rand import Rand

__all__ = ["BASE_W", "BASE_H", "TWO_OBJECTS", "SHAPES", "COLOURS", "BACKGROUND_COLOURS", "EVENTS", "Background", "Track",
           "Scene", "sample_scene"]

TWO_OBJECTS = 0.4  # the data sets' chance of drawing a second object; ~32 % of clips get one (placement can fail)
BASE_W, BASE_H = 128, 96  # base canvas; 4:3 like most MSR-VTT clips

SHAPES = ("circle", "square", "triangle", "diamond", "star")
# Saturated object colours (RGB); a per-video jitter keeps the model from memorising exact values.
COLOURS = {"red": (215, 35, 35), "green": (40, 170, 60), "blue": (35, 75, 215), "yellow": (240, 215, 30),
           "orange": (245, 130, 20), "purple": (135, 45, 175), "white": (240, 240, 240), "black": (20, 20, 20)}
# Background base colours, deliberately muted or extreme so the objects stand out.
BACKGROUND_COLOURS = {"gray": (125, 125, 125), "black": (18, 18, 18), "white": (235, 235, 235),
                      "beige": (222, 205, 165), "dark blue": (25, 35, 85), "dark green": (25, 70, 40),
                      "brown": (105, 70, 40)}
BACKGROUND_KINDS = ("plain", "gradient", "striped", "checkered", "textured")
EVENTS = ("move", "bounce", "grow", "shrink", "recolour", "enter", "leave", "spin", "still")
_EVENT_WEIGHTS = (0.30, 0.08, 0.10, 0.10, 0.10, 0.10, 0.10, 0.08, 0.04)
# Rotational symmetry (degrees) of each shape: a spin must not be a multiple of it per second,
# or the 1-fps samples would show a shape that never turns.
_SYMMETRY = {"square": 90.0, "triangle": 120.0, "diamond": 180.0, "star": 72.0}
_MIN_CONTRAST = 110.0  # RGB distance between an object and every background tone
_EXTENT = 1.35         # farthest reach of any shape from its centre, in radii (triangle: 2/sqrt(3) * 1.15)
_CROP_X0, _CROP_X1 = 16.0, 112.0  # the square centre crop of the 4:3 base canvas


@dataclass(frozen=True)
class Background:
    kind: str                          # one of BACKGROUND_KINDS
    name: str                          # base colour name (mentioned in captions only when plain)
    rgb: tuple[float, float, float]    # first tone
    rgb2: tuple[float, float, float]   # second tone (gradient end, stripe/check colour, texture tint)
    orientation: str                   # "horizontal" | "vertical" | "diagonal"
    period: float                      # stripe/check period in base units
    texture_key: int                   # seed of the texture's noise field


@dataclass(frozen=True)
class Track:
    """One object: its look and its event as numbers; `state(t)` says where and how it is."""
    shape: str
    colour: str
    colour_to: str | None              # colour after a recolour event
    rgb0: tuple[float, float, float]
    rgb1: tuple[float, float, float]
    size: str | None                   # "small" | "medium" | "large"; None when the size changes
    event: str
    direction: str | None              # move: left/right/up/down; enter: from side; leave: to side
    p0: tuple[float, float]            # position (x, y) before the event window
    p1: tuple[float, float]            # position after it
    r0: float                          # radius before / after the window
    r1: float
    u0: float                          # event window as fractions of the duration
    u1: float
    uc: float                          # colour switch time (fraction); 2.0 = never
    angle0: float                      # radians
    omega: float                       # spin rate, radians per second
    bounce_h: float                    # bounce height (base units); 0 = no bounce
    bounce_p: float                    # bounce period (s)

    def state(self, t: float, duration: float) -> tuple[float, float, float, float, tuple[float, float, float]]:
        """(x, y, radius, angle, rgb) at time t seconds."""
        u = t / duration
        a = 0.0 if u <= self.u0 else 1.0 if u >= self.u1 else (u - self.u0) / (self.u1 - self.u0)
        x = self.p0[0] + (self.p1[0] - self.p0[0]) * a
        y = self.p0[1] + (self.p1[1] - self.p0[1]) * a
        if self.bounce_h:
            y -= self.bounce_h * abs(math.sin(math.pi * t / self.bounce_p))
        r = self.r0 + (self.r1 - self.r0) * a
        rgb = self.rgb0 if u < self.uc else self.rgb1
        return x, y, r, self.angle0 + self.omega * t, rgb

    def label(self) -> dict:
        out = {"shape": self.shape, "colour": self.colour, "size": self.size, "event": self.event}
        if self.direction:
            out["direction"] = self.direction
        if self.colour_to:
            out["colour_to"] = self.colour_to
        return out


@dataclass(frozen=True)
class Scene:
    video_id: str
    seed: int
    fps: int
    n_frames: int
    background: Background
    tracks: tuple[Track, ...]
    jitter: float      # camera shake amplitude in base units
    noise: float       # sensor noise amplitude in 8-bit levels (uniform, +-noise)
    flicker: float     # relative brightness flicker amplitude

    @property
    def duration_s(self) -> float:
        return self.n_frames / self.fps

    def label(self) -> dict:
        """A plain, JSON-ready description of the scene, for debugging and evaluation."""
        bg = self.background
        return {"video_id": self.video_id, "fps": self.fps, "n_frames": self.n_frames,
                "duration_s": round(self.duration_s, 3),
                "background": {"kind": bg.kind, "colour": bg.name, "orientation": bg.orientation},
                "objects": [t.label() for t in self.tracks],
                "camera": {"jitter": round(self.jitter, 2), "noise": round(self.noise, 2)}}


def _distance(a, b) -> float:
    return math.sqrt(sum((x - y) ** 2 for x, y in zip(a, b)))


def _jitter_rgb(rng: Rand, rgb) -> tuple[float, float, float]:
    return tuple(min(255.0, max(0.0, c + rng.uniform(-12, 12))) for c in rgb)


def _background(rng: Rand) -> Background:
    kind = rng.weighted(BACKGROUND_KINDS, (0.35, 0.2, 0.15, 0.15, 0.15))
    name = rng.choice(list(BACKGROUND_COLOURS))
    rgb = _jitter_rgb(rng, BACKGROUND_COLOURS[name])
    if kind == "gradient":
        rgb2 = _jitter_rgb(rng, BACKGROUND_COLOURS[rng.choice([n for n in BACKGROUND_COLOURS if n != name])])
    else:  # a second tone of the same colour: lighter or darker
        shift = rng.uniform(30, 55) * (1 if sum(rgb) < 380 else -1)
        rgb2 = tuple(min(255.0, max(0.0, c + shift)) for c in rgb)
    return Background(kind, name, rgb, rgb2, rng.choice(("horizontal", "vertical", "diagonal")),
                      rng.uniform(8, 14), rng.integer(2 ** 31))


def _object_colour(rng: Rand, bg: Background, exclude: set[str]) -> str:
    ok = [n for n, c in COLOURS.items() if n not in exclude
          and min(_distance(c, bg.rgb), _distance(c, bg.rgb2)) > _MIN_CONTRAST]
    return rng.choice(ok)


def _track(rng: Rand, bg: Background, duration: float, exclude: set[str]) -> Track:
    event = rng.weighted(EVENTS, _EVENT_WEIGHTS)
    shape = rng.choice(SHAPES if event != "spin" else SHAPES[1:])  # a spinning circle looks still
    colour = _object_colour(rng, bg, exclude)
    colour_to = _object_colour(rng, bg, exclude | {colour}) if event == "recolour" else None
    size = rng.choice(("small", "medium", "large"))
    # Sizes are chosen so that a small shape still spans ~1.5 patches of the 64 px / patch 8 backbone.
    r = {"small": rng.uniform(9, 11), "medium": rng.uniform(12.5, 15), "large": rng.uniform(16.5, 19.5)}[size]
    W, H = BASE_W, BASE_H
    # Keep every shape whole inside the square centre crop the backbone sees (x in 16..112).
    xlo, xhi = (lambda rr: _CROP_X0 + _EXTENT * rr + 2), (lambda rr: _CROP_X1 - _EXTENT * rr - 2)
    ylo, yhi = (lambda rr: _EXTENT * rr + 3), (lambda rr: H - _EXTENT * rr - 3)
    p = (rng.uniform(xlo(r), xhi(r)), rng.uniform(ylo(r), yhi(r)))
    p0 = p1 = p
    r0 = r1 = r
    u0, u1 = rng.uniform(0, 0.2), rng.uniform(0.75, 1.0)
    direction, uc, omega, bh, bp = None, 2.0, 0.0, 0.0, 1.0
    if event == "move":
        direction = rng.choice(("left", "right", "up", "down"))
        if direction in ("left", "right"):  # start on one side, travel 35-60 base px towards the other
            x0, d = rng.uniform(min(76.0, xhi(r)), xhi(r)), rng.uniform(35, 60)
            x1 = max(x0 - d, xlo(r))
            x0, x1 = (x0, x1) if direction == "left" else (W - x0, W - x1)
            p0, p1 = (x0, p[1]), (x1, p[1])
        else:
            y0, d = rng.uniform(min(60.0, yhi(r)), yhi(r)), rng.uniform(30, 50)
            y1 = max(y0 - d, ylo(r))
            y0, y1 = (y0, y1) if direction == "up" else (H - y0, H - y1)
            p0, p1 = (p[0], y0), (p[0], y1)
    elif event == "bounce":
        floor = yhi(r) - rng.uniform(0, 8)
        p0 = p1 = (p[0], floor)
        bh = min(rng.uniform(22, 40), floor - ylo(r))
        # Periods near 1 s would alias to a ball resting on the floor in every 1-fps sample.
        bp = rng.uniform(0.6, 0.9) if rng.chance(0.5) else rng.uniform(1.2, 1.6)
    elif event in ("grow", "shrink"):
        size, k = None, rng.uniform(1.8, 2.3)
        small = rng.uniform(7.5, 9.5)
        big = small * k
        p0 = p1 = (rng.uniform(xlo(big), xhi(big)), rng.uniform(ylo(big), yhi(big)))
        r0, r1 = (small, big) if event == "grow" else (big, small)
    elif event == "recolour":
        uc = rng.uniform(0.3, 0.7)
    elif event in ("enter", "leave"):
        direction = rng.choice(("left", "right", "top", "bottom"))
        inside = p
        out = _EXTENT * r + 3  # wholly outside the frame
        outside = {"left": (-out, p[1]), "right": (W + out, p[1]), "top": (p[0], -out), "bottom": (p[0], H + out)}[direction]
        if event == "enter":
            p0, p1, u0, u1 = outside, inside, rng.uniform(0, 0.15), rng.uniform(0.45, 0.75)
        else:
            p0, p1, u0, u1 = inside, outside, rng.uniform(0.1, 0.3), rng.uniform(0.5, 0.8)
    elif event == "spin":
        turn = _SYMMETRY[shape] * rng.uniform(0.2, 0.4)  # degrees per second
        omega = math.radians(turn) * (1 if rng.chance(0.5) else -1)
    return Track(shape, colour, colour_to, _jitter_rgb(rng, COLOURS[colour]),
                 _jitter_rgb(rng, COLOURS[colour_to or colour]), size, event, direction, p0, p1, r0, r1,
                 u0, u1, uc, rng.uniform(0, 2 * math.pi) if shape != "circle" else 0.0, omega, bh, bp)


def _apart(a: Track, b: Track, duration: float) -> bool:
    """True if the two objects never overlap at a few probe times (crossing later is allowed)."""
    for u in (0.0, 0.25, 0.5, 0.75, 1.0):
        xa, ya, ra, _, _ = a.state(u * duration, duration)
        xb, yb, rb, _, _ = b.state(u * duration, duration)
        if _distance((xa, ya), (xb, yb)) < (ra + rb) * 1.2 + 3:
            return False
    return True


def sample_scene(video_id: str, seed: int, two_objects: float = TWO_OBJECTS) -> Scene:
    """Draw the whole scene for one video from its seed (stream 0 of the video's key). `two_objects`:
    the chance of a second object; only its threshold changes, so every other draw stays the same."""
    rng = Rand(seed, 0)
    fps = rng.choice((4, 5, 6, 8))
    n_frames = max(3 * fps, round(rng.uniform(3.0, 12.0) * fps))
    duration = n_frames / fps
    bg = _background(rng)
    tracks = [_track(rng, bg, duration, set())]
    if rng.chance(two_objects):
        for _ in range(50):  # rejection sampling for a second, non-overlapping object
            other = _track(rng, bg, duration, {tracks[0].colour, tracks[0].colour_to or ""})
            if _apart(tracks[0], other, duration):
                tracks.append(other)
                break
    jitter = rng.uniform(0.4, 1.5) if rng.chance(0.6) else 0.0
    return Scene(video_id, seed, fps, n_frames, bg, tuple(tracks), jitter, rng.uniform(2, 10), rng.uniform(0, 0.04))
