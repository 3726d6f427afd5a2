"""The read/write lock: exclusive writes, and readers let in between consecutive writes."""

from __future__ import annotations

import threading

from index.locks import ReadWriteLock


def test_writes_exclude_reads_and_readers_go_between_consecutive_writes():
    lock = ReadWriteLock()
    order: list[str] = []
    reader_waiting, first_write_may_end = threading.Event(), threading.Event()

    def writer() -> None:
        with lock.writing():
            order.append("write 1")
            first_write_may_end.wait(10)
        with lock.writing():  # taken straight back, as a sliced change does
            order.append("write 2")

    def reader() -> None:
        reader_waiting.set()
        with lock.reading():
            order.append("read")

    writing = threading.Thread(target=writer)
    writing.start()
    while not order:
        pass
    reading = threading.Thread(target=reader)
    reading.start()
    reader_waiting.wait(10)
    while lock._readers_waiting == 0:  # the reader is queued behind the first write
        pass
    first_write_may_end.set()
    writing.join(10)
    reading.join(10)
    assert order == ["write 1", "read", "write 2"]


def test_a_waiting_writer_holds_off_new_readers():
    lock = ReadWriteLock()
    order: list[str] = []
    first_read_may_end = threading.Event()

    def long_read() -> None:
        with lock.reading():
            order.append("read 1")
            first_read_may_end.wait(10)

    def write() -> None:
        with lock.writing():
            order.append("write")

    def late_read() -> None:
        with lock.reading():
            order.append("read 2")

    first = threading.Thread(target=long_read)
    first.start()
    while not order:
        pass
    writer = threading.Thread(target=write)
    writer.start()
    while lock._writers_waiting == 0:
        pass
    late = threading.Thread(target=late_read)
    late.start()
    while lock._readers_waiting == 0:
        pass
    first_read_may_end.set()
    for thread in (first, writer, late):
        thread.join(10)
    assert order == ["read 1", "write", "read 2"]
