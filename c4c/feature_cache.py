"""A small in-memory LRU cache of (frames, features) per (file content, sampling settings).

Re-running a video with another metric, beam size or decoder subset (what the app's controls do)
then skips decoding and the backbone. Keys hash the file's bytes, not its name, so an upload saved
under a new temporary name still hits, and an edited file never does."""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any, Hashable

__all__ = ["FeatureCache"]


class FeatureCache:
    def __init__(self, max_entries: int = 32):
        self.max_entries = max_entries  # frames are kept too (for the app's gallery): keep this small
        self._items: OrderedDict[Hashable, Any] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: Hashable) -> Any | None:
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                self.hits += 1
                return self._items[key]
            self.misses += 1
            return None

    def put(self, key: Hashable, value: Any) -> None:
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.max_entries:
                self._items.popitem(last=False)

    def __len__(self) -> int:
        return len(self._items)
