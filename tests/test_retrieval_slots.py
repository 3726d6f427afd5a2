"""At most `retrieval_slots()` retrievals run at once; the others wait, and say so in `timings_ms.queue`."""

from __future__ import annotations

import threading
import time

from helpers import add_text, retrieve, wait_indexed  # noqa: F401  (the fixtures' helpers)

from kb.services import retrieval
from kb.services.retrieval import Retriever, Stopwatch


def test_retrievals_beyond_the_slots_wait_their_turn():
    retriever = Retriever.__new__(Retriever)
    retriever._slots = threading.BoundedSemaphore(2)
    running, peak, lock = [0], [0], threading.Lock()
    queued: list[float] = []

    def fake(clock: Stopwatch, *args, **kwargs):
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        time.sleep(0.05)
        with lock:
            running[0] -= 1
        queued.append(clock.timings()["queue"])
        return clock.timings()

    retriever._retrieve = fake
    threads = [threading.Thread(target=retriever.retrieve, args=(None, "q")) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert peak[0] == 2
    assert sorted(queued)[-1] >= 80  # the last pair waited for two pairs before it (2 x 50 ms)
    assert sorted(queued)[0] < 40


def test_at_least_two_slots(monkeypatch):
    monkeypatch.setattr(retrieval.os, "sched_getaffinity", lambda pid: {0})
    assert retrieval.retrieval_slots() == 2
    monkeypatch.setattr(retrieval.os, "sched_getaffinity", lambda pid: set(range(6)))
    assert retrieval.retrieval_slots() == 6


def test_responses_report_the_queue_stage(client):
    add_text(client, "Close the isolation valve before draining the heating circuit.", "valve")
    timings = retrieve(client, "isolation valve")["timings_ms"]
    assert timings["queue"] >= 0 and timings["total"] >= timings["queue"]
