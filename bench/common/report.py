"""Progress lines, load average, number formats and tables: what every part prints."""

from __future__ import annotations

import os
import sys
import time

T0 = time.monotonic()

def log(message: str) -> None:
    print(f"[{time.monotonic() - T0:7.1f}s] {message}", file=sys.stderr, flush=True)


def loadavg() -> float:
    return round(os.getloadavg()[0], 2)


def ms(x: float | None) -> str:
    return "-" if x is None or x != x else (f"{x:.1f}" if x < 100 else f"{x:.0f}")


def f3(x: float | None) -> str:
    return "-" if x is None else f"{x:.3f}"


def print_table(headers: list[str], rows: list[list[str]]) -> None:
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(headers)]

    def line(cells):
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))

    print(line(headers))
    print("  ".join("-" * w for w in widths))
    for r in rows:
        print(line(r))
