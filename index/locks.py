"""A readers-writer lock: searches run together, changes run alone."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager


class ReadWriteLock:
    """Many readers at once, or one writer. Not reentrant.

    Fair both ways: a waiting writer holds off new readers (so changes are not starved by a
    stream of searches), and when a writer finishes, the readers that waited for it go first,
    before the next writer (so a change made of many short writes, such as kb's sliced index
    updates, lets searches in between its slices instead of taking the lock back at once).
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._readers = 0
        self._writing = False
        self._writers_waiting = 0
        self._readers_waiting = 0
        self._readers_turn = 0  # readers let in ahead of waiting writers after a write

    @contextmanager
    def reading(self) -> Iterator[None]:
        with self._cond:
            self._readers_waiting += 1
            try:
                while self._writing or (self._writers_waiting and not self._readers_turn):
                    self._cond.wait()
            finally:
                self._readers_waiting -= 1
            if self._readers_turn:
                self._readers_turn -= 1
            self._readers += 1
        try:
            yield
        finally:
            with self._cond:
                self._readers -= 1
                if self._readers == 0:
                    self._cond.notify_all()

    @contextmanager
    def writing(self) -> Iterator[None]:
        with self._cond:
            self._writers_waiting += 1
            while self._writing or self._readers or (self._readers_turn and self._readers_waiting):
                self._cond.wait()
            self._writers_waiting -= 1
            self._writing = True
        try:
            yield
        finally:
            with self._cond:
                self._writing = False
                self._readers_turn = self._readers_waiting
                self._cond.notify_all()
