"""Saving changed indexes in the background, and sweeping old index files."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from .loaded import LoadedIndex

log = logging.getLogger(__name__)


class BackgroundSaver:
    """Writes changed indexes to disk off the request path, coalescing quick successive changes.

    A change is written `delay_secs` after it comes in, with every change that came in meanwhile
    (and while a write runs, the next changes wait for it: one writer thread). The files are
    derived data: a crash before a save only means the next process finds no file for the current
    generation and rebuilds it from the stored chunks. The same thread calls `sweep` every
    `sweep_secs` (removing files no longer needed).
    """

    def __init__(self, save, delay_secs: float = 0.1, sweep: Callable[[], None] | None = None,
                 sweep_secs: float = 30.0):
        self._save = save
        self._delay = delay_secs
        self._sweep = sweep
        self._sweep_secs = sweep_secs
        self._next_sweep = time.monotonic() + sweep_secs
        self._dirty: dict[tuple[str, str], LoadedIndex] = {}
        self._cond = threading.Condition()
        self._writing = threading.Lock()
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name="kb-index-saver", daemon=True)
        self._thread.start()

    def schedule(self, key: tuple[str, str], loaded: LoadedIndex) -> None:
        with self._cond:
            self._dirty[key] = loaded
            self._cond.notify()

    def flush(self) -> None:
        """Write every pending change; once this returns, the writes of changes scheduled before are done."""
        with self._writing:  # also waits for a write the thread is doing
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
                    timeout = None if self._sweep is None else self._next_sweep - time.monotonic()
                    if timeout is not None and timeout <= 0:
                        break
                    self._cond.wait(timeout)
                if self._stopped:
                    return
                dirty = bool(self._dirty)
            if dirty:
                time.sleep(self._delay)  # let a burst of changes land, then write once
                self.flush()
            if self._sweep is not None and time.monotonic() >= self._next_sweep:
                try:
                    self._sweep()
                except Exception:
                    log.exception("could not sweep old index files")
                self._next_sweep = time.monotonic() + self._sweep_secs

    def _write(self, key: tuple[str, str], loaded: LoadedIndex) -> None:
        try:
            self._save(key[0], key[1], loaded)
        except Exception:
            log.exception("could not save the index of %s/%s; it will be rebuilt when next loaded", *key)
