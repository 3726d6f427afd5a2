"""py-spy on a running process: record collapsed stacks for a while, then the frames that take the most samples."""

from __future__ import annotations

import signal
import subprocess
from collections import Counter
from pathlib import Path

from . import REPO

PY_SPY = REPO / ".venv" / "bin" / "py-spy"


class Recording:
    """`py-spy record --format raw` of `pid` from start to stop() (`gil`: only samples holding the GIL)."""

    def __init__(self, pid: int, output: Path, gil: bool = False, idle: bool = False):
        self.output = output
        command = [str(PY_SPY), "record", "-p", str(pid), "-o", str(output), "--format", "raw", "--rate", "100",
                   "--nonblocking"] + (["--gil"] if gil else []) + (["--idle"] if idle else [])
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def stop(self) -> None:
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)


def top_frames(raw: Path, n: int = 25) -> tuple[int, list[tuple[str, int, int]]]:
    """(samples, [(frame, inclusive samples, self samples)]) of a raw py-spy file, the most inclusive first."""
    inclusive: Counter = Counter()
    own: Counter = Counter()
    total = 0
    for line in raw.read_text(errors="replace").split("\n"):
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = stack.split(";")
        k = int(count)
        total += k
        for frame in set(frames[1:]):  # frames[0] is the process / thread
            inclusive[frame] += k
        own[frames[-1]] += k
    return total, [(f, c, own[f]) for f, c in inclusive.most_common(n)]
