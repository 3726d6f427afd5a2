"""CPU time of processes from /proc (Linux): per process group, per process tree, and of the machine."""

from __future__ import annotations

import os
from pathlib import Path

TICK = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rfind(")") + 2:].split()  # fields from 3 (state) on: [1] ppid, [2] pgrp, [11..14] times


def _all() -> dict[int, list[str]]:
    out = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _stat(int(entry))
            if fields:
                out[int(entry)] = fields
    return out


def _secs(fields: list[str], children: bool) -> float:
    ticks = int(fields[11]) + int(fields[12]) + ((int(fields[13]) + int(fields[14])) if children else 0)
    return ticks / TICK


def group_secs(pgid: int) -> float:
    """User + system seconds of the live processes of process group `pgid` (and their waited-for children)."""
    return sum(_secs(f, True) for f in _all().values() if int(f[2]) == pgid)


def tree_secs(pid: int) -> float:
    """`pid` with its waited-for children, plus its live children (e.g. a postmaster and its backends)."""
    procs = _all()
    own = procs.get(pid)
    return (_secs(own, True) if own else 0.0) + sum(_secs(f, False) for f in procs.values() if int(f[1]) == pid)


def machine() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, all cores."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    total = sum(values[:8])  # up to steal; guest time is already counted in user
    return (total - idle) / TICK, total / TICK


class Meter:
    """CPU cores used by named process groups/trees between start() and stop(), and the machine's busy cores;
    `counters` (name: read function) are reported as their difference, not per second."""

    def __init__(self, groups: dict[str, int], trees: dict[str, int], counters: dict | None = None):
        self.groups, self.trees = groups, trees
        self.counters = counters or {}

    def read(self) -> dict[str, float]:
        values = {name: group_secs(pgid) for name, pgid in self.groups.items()}
        values.update({name: tree_secs(pid) for name, pid in self.trees.items()})
        values["client (this process)"] = sum(os.times()[:2])
        busy, total = machine()
        values["_busy"], values["_total"] = busy, total
        values.update({f"#{name}": read() for name, read in self.counters.items()})
        return values

    def start(self) -> None:
        self._t0 = os.times().elapsed
        self._before = self.read()

    def stop(self) -> dict[str, float]:
        """{name: cores used}, plus "machine busy" (cores of all processes, other users' included)."""
        after = self.read()
        wall = max(os.times().elapsed - self._t0, 1e-9)
        out = {name: (after[name] - self._before[name]) / wall for name in after if name[0] not in "_#"}
        cores = os.cpu_count() or 1
        span = after["_total"] - self._before["_total"]
        out["machine busy"] = cores * (after["_busy"] - self._before["_busy"]) / span if span > 0 else None
        out.update({name[1:]: after[name] - self._before[name] for name in after if name.startswith("#")})
        return out
