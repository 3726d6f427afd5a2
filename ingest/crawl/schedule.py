"""When each host may be asked again: the politeness clock of a crawl (or a sync pass).

Times are wall-clock seconds (`time.time()`), so a schedule saved with the frontier still
holds after a restart. A wait is never longer than the delay that caused it, so a clock
that jumps backwards cannot stall the crawl.
"""

from __future__ import annotations

import time
from collections.abc import Callable


class HostSchedule:
    def __init__(self, next_allowed: dict[str, tuple[float, float]] | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self._next: dict[str, tuple[float, float]] = dict(next_allowed or {})  # host -> (at, delay)
        self.clock = clock

    def wait_seconds(self, host: str) -> float:
        """Seconds to wait before the next request to `host` (0 if it may be asked now)."""
        at, delay = self._next.get(host, (0.0, 0.0))
        return max(0.0, min(at - self.clock(), delay))

    def record(self, host: str, delay: float) -> None:
        """A request to `host` just finished; the next one may start `delay` seconds from now."""
        self._next[host] = (self.clock() + delay, delay)

    def to_dict(self) -> dict[str, list[float]]:
        return {host: [at, delay] for host, (at, delay) in self._next.items()}

    @classmethod
    def from_dict(cls, data: dict[str, list[float]], clock: Callable[[], float] = time.time) -> HostSchedule:
        return cls({host: (float(at), float(delay)) for host, (at, delay) in data.items()}, clock)
