"""Loaded indexes within a memory budget: the least recently used leave first."""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict

from .loaded import LoadedIndex

log = logging.getLogger(__name__)


class LoadedCache:
    """Loaded indexes, least recently used first out once their memory passes the budget."""

    def __init__(self, budget_bytes: int):
        self.budget_bytes = budget_bytes
        self._items: OrderedDict[tuple[str, str], LoadedIndex] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[str, str]) -> LoadedIndex | None:
        with self._lock:
            loaded = self._items.get(key)
            if loaded is not None:
                self._items.move_to_end(key)
            return loaded

    def peek(self, key: tuple[str, str]) -> LoadedIndex | None:
        """The loaded index, not counted as a use."""
        with self._lock:
            return self._items.get(key)

    def put(self, key: tuple[str, str], loaded: LoadedIndex) -> None:
        with self._lock:
            self._items[key] = loaded
            self._items.move_to_end(key)
            self._evict(keep=key)

    def pop(self, key: tuple[str, str]) -> None:
        with self._lock:
            self._items.pop(key, None)

    def keys(self) -> list[tuple[str, str]]:
        with self._lock:
            return list(self._items)

    def memory_bytes(self) -> int:
        with self._lock:
            return sum(item.memory_bytes() for item in self._items.values())

    def shrink(self) -> None:
        """Evict after an index grew in place."""
        with self._lock:
            self._evict(keep=None)

    def _evict(self, keep: tuple[str, str] | None) -> None:
        total = sum(item.memory_bytes() for item in self._items.values())
        for key in list(self._items):
            if total <= self.budget_bytes:
                break
            if key == keep:
                continue  # the index in use stays, even alone over budget
            total -= self._items.pop(key).memory_bytes()
            log.info("evicted the index of %s/%s from memory (budget %d bytes)", key[0], key[1], self.budget_bytes)
