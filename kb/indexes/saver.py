"""Saving changed indexes in the background."""

from __future__ import annotations

import logging
import threading
import time

from .loaded import LoadedIndex

log = logging.getLogger(__name__)


class BackgroundSaver:
    """Writes changed indexes to disk off the request path, coalescing quick successive changes.

    The files are derived data: a crash before a save only means the next process finds no file
    for the current generation and rebuilds it from the stored chunks.
    """

    def __init__(self, save, delay_secs: float = 1.0):
        self._save = save
        self._delay = delay_secs
        self._dirty: dict[tuple[str, str], LoadedIndex] = {}
        self._cond = threading.Condition()
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name="kb-index-saver", daemon=True)
        self._thread.start()

    def schedule(self, key: tuple[str, str], loaded: LoadedIndex) -> None:
        with self._cond:
            self._dirty[key] = loaded
            self._cond.notify()

    def flush(self) -> None:
        with self._cond:
            pending, self._dirty = self._dirty, {}
        for key, loaded in pending.items():
            self._write(key, loaded)

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify()
        self._thread.join(30)
        self.flush()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._dirty and not self._stopped:
                    self._cond.wait()
                if self._stopped:
                    return
            time.sleep(self._delay)  # let a burst of changes land, then write once
            self.flush()

    def _write(self, key: tuple[str, str], loaded: LoadedIndex) -> None:
        try:
            self._save(key[0], key[1], loaded)
        except Exception:
            log.exception("could not save the index of %s/%s; it will be rebuilt when next loaded", *key)
