"""A small in-memory LRU cache of (frames, features) per (file content, backbone, sampling settings).

Re-running a video with another metric, beam size or decoder subset (what the app's controls do)
then skips decoding and the backbone. Keys hash the file's bytes, not its name, so an upload saved
under a new temporary name still hits, and an edited file never does; they also name the backbone's
weights (`Backbone.fingerprint`), so a cache shared by two zoos never mixes their features.

Bounded twice: by entries and by bytes (the decoded frames are kept for the app's gallery and
dominate: 20 frames of 640x360 are 14 MB). A value larger than the byte bound is not stored.
"""

from __future__ import annotations

import dataclasses
import threading
from collections import OrderedDict
from typing import Any
from collections.abc import Hashable

__all__ = ["FeatureCache", "nbytes"]


def nbytes(value: Any) -> int:
    """Bytes held by the arrays/tensors in `value` (tuples, lists, dicts and dataclasses are walked)."""
    if hasattr(value, "nbytes") and not isinstance(value, type):  # numpy arrays, torch tensors
        return int(value.nbytes)
    if isinstance(value, (tuple, list)):
        return sum(nbytes(v) for v in value)
    if isinstance(value, dict):
        return sum(nbytes(v) for v in value.values())
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return sum(nbytes(getattr(value, f.name)) for f in dataclasses.fields(value))
    return 0


class FeatureCache:
    def __init__(self, max_entries: int = 32, max_bytes: int = 256 << 20):
        self.max_entries = max_entries  # at most this many videos
        self.max_bytes = max_bytes      # and at most this many bytes of frames + features in all
        self._items: OrderedDict[Hashable, tuple[Any, int]] = OrderedDict()
        self._lock = threading.Lock()
        self.bytes = 0
        self.hits = 0
        self.misses = 0

    def get(self, key: Hashable) -> Any | None:
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                self.hits += 1
                return self._items[key][0]
            self.misses += 1
            return None

    def put(self, key: Hashable, value: Any) -> None:
        size = nbytes(value)
        with self._lock:
            if key in self._items:
                self.bytes -= self._items.pop(key)[1]
            if size > self.max_bytes or self.max_entries < 1:
                return
            self._items[key] = (value, size)
            self.bytes += size
            while len(self._items) > self.max_entries or self.bytes > self.max_bytes:
                self.bytes -= self._items.popitem(last=False)[1][1]

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self.bytes = 0

    def __len__(self) -> int:
        return len(self._items)
