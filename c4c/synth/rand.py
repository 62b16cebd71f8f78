"""A small random source whose stream is the same on every machine and numpy version.

numpy's `Generator` methods (normal, choice, ...) are allowed to change their streams between
versions (NEP 19); the raw 64-bit output of a bit generator and `SeedSequence` are not. So every
draw here is built from `PCG64.random_raw()` alone, and keys are turned into seeds with SHA-256
(Python's `hash()` is salted per process).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import TypeVar

import numpy as np

__all__ = ["Rand", "seed_of"]

T = TypeVar("T")

# 53 random bits give every double in [0, 1) on a uniform grid, as numpy's own `random()` does.
_SCALE = 2.0 ** -53


def seed_of(text: str) -> int:
    """A 128-bit integer seed derived from a string, identical on every machine."""
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:16], "little")


class Rand:
    """Deterministic draws keyed by integers, e.g. `Rand(seed, 2, frame_index)`."""

    def __init__(self, *key: int):
        self._bits = np.random.PCG64(np.random.SeedSequence([int(k) for k in key]))

    def random(self) -> float:
        """A float in [0, 1)."""
        return (int(self._bits.random_raw()) >> 11) * _SCALE

    def uniform(self, low: float, high: float) -> float:
        return low + (high - low) * self.random()

    def integer(self, n: int) -> int:
        """An int in [0, n)."""
        return min(int(self.random() * n), n - 1)

    def chance(self, p: float) -> bool:
        return self.random() < p

    def choice(self, items: Sequence[T]) -> T:
        return items[self.integer(len(items))]

    def weighted(self, items: Sequence[T], weights: Sequence[float]) -> T:
        """One item, drawn with probability proportional to its weight."""
        x = self.random() * sum(weights)
        for item, w in zip(items, weights):
            x -= w
            if x < 0:
                return item
        return items[-1]

    def shuffled(self, items: Sequence[T]) -> list[T]:
        out = list(items)
        for i in range(len(out) - 1, 0, -1):  # Fisher-Yates
            j = self.integer(i + 1)
            out[i], out[j] = out[j], out[i]
        return out

    def array(self, shape: tuple[int, ...]) -> np.ndarray:
        """float64 array of uniforms in [0, 1)."""
        n = int(np.prod(shape))
        raw = self._bits.random_raw(n) if n else np.zeros(0, np.uint64)
        return ((raw >> np.uint64(11)).astype(np.float64) * _SCALE).reshape(shape)

    def coarse_array(self, shape: tuple[int, ...]) -> np.ndarray:
        """float32 array of 16-bit uniforms in [0, 1): four per raw draw, for per-pixel noise."""
        n = int(np.prod(shape))
        # Little-endian bytes, then 16-bit words: the same numbers on machines of either byte order.
        words = self._bits.random_raw((n + 3) // 4).astype("<u8").view("<u2")[:n]
        return (words.astype(np.float32) * np.float32(1 / 65536)).reshape(shape)
