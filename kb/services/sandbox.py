"""Parse untrusted files (and raw text) in a child process, so a parser that hangs, crashes or eats memory
cannot take the server down: the child is killed at the time limit and capped in memory.

Children fork from a clean `forkserver` process that has preloaded the parsers (not torch,
not the server's threads), so starting one costs milliseconds. They do not re-run the parent's
`__main__` (multiprocessing's default): for `kb serve` that is the `kb` script, which imports the whole
server, once per child.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import resource
from collections.abc import Callable
from multiprocessing import spawn
from multiprocessing.connection import Connection

import ingest
from ingest.errors import CorruptDocument, DocumentTooLarge, IngestError, ParseTimeout

_CONTEXT = mp.get_context("forkserver")
_CONTEXT.set_forkserver_preload(["ingest", *ingest.converters.preload_modules()])
_PROCESS_NAME = "kb-parse-sandbox"
_preparation_data = spawn.get_preparation_data


def _sandbox_preparation_data(name: str) -> dict:
    """What a child of ours is prepared with: the parent's data without its main module (the child runs
    only `ingest` code, found by import). Other processes are prepared as multiprocessing does."""
    data = _preparation_data(name)
    if name == _PROCESS_NAME:
        data.pop("init_main_from_path", None)
        data.pop("init_main_from_name", None)
    return data


spawn.get_preparation_data = _sandbox_preparation_data


def _child(conn: Connection, parse: Callable[..., ingest.ParsedDocument], args: tuple, kwargs: dict,
           memory_bytes: int) -> None:
    os.nice(10)  # parsing yields the CPU to queries, as background indexing does
    if memory_bytes:
        resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    try:
        conn.send(("ok", parse(*args, **kwargs)))
    except IngestError as exc:
        conn.send(("error", _describe(exc)))
    except MemoryError:
        conn.send(("error", _describe(DocumentTooLarge(
            "the file needs more memory to parse than the limit allows (KB_PARSE_MEMORY_MB)"))))
    except BaseException as exc:  # never let the child die silently
        conn.send(("error", _describe(CorruptDocument(f"the file could not be parsed: {type(exc).__name__}: {exc}"))))
    finally:
        conn.close()


def _describe(exc: IngestError) -> tuple[type[IngestError], str, list[str] | None]:
    # Sent as parts, not pickled whole: exceptions with extra constructor arguments do not unpickle.
    return type(exc), exc.message, getattr(exc, "supported", None)


def _rebuild(cls: type[IngestError], message: str, supported: list[str] | None) -> IngestError:
    return cls(message, supported) if supported is not None else cls(message)


def parse_isolated(
    data: bytes,
    filename: str | None = None,
    content_type: str | None = None,
    *,
    limits: ingest.ParseLimits | None = None,
    timeout_secs: float = 60.0,
    memory_bytes: int = 2_000_000_000,
) -> ingest.ParsedDocument:
    """`ingest.parse` in a killable child process with a time and memory limit."""
    return _isolated(ingest.parse, (data, filename, content_type), {"limits": limits or ingest.ParseLimits()},
                     timeout_secs, memory_bytes)


def parse_text_isolated(
    text: str, fmt: str = "txt", *, timeout_secs: float = 60.0, memory_bytes: int = 2_000_000_000
) -> ingest.ParsedDocument:
    """`ingest.parse_text` (raw text as plain text, Markdown or HTML) in the same kind of child process:
    text sent by a client is as untrusted as a file."""
    return _isolated(ingest.parse_text, (text, fmt), {}, timeout_secs, memory_bytes)


def _isolated(parse: Callable[..., ingest.ParsedDocument], args: tuple, kwargs: dict, timeout_secs: float,
              memory_bytes: int) -> ingest.ParsedDocument:
    receiver, sender = _CONTEXT.Pipe(duplex=False)
    process = _CONTEXT.Process(target=_child, args=(sender, parse, args, kwargs, memory_bytes), daemon=True,
                               name=_PROCESS_NAME)
    process.start()
    sender.close()
    try:
        if not receiver.poll(timeout_secs):
            raise ParseTimeout(
                f"parsing this file took longer than {timeout_secs:g} s and was stopped; "
                "the file may be malformed or too complex — split it or convert it to PDF or text"
            )
        try:
            status, payload = receiver.recv()
        except EOFError:
            raise CorruptDocument(
                f"the parser crashed on this file (exit code {process.exitcode}); it may be damaged or hostile"
            ) from None
    finally:
        if process.is_alive():
            process.kill()
        process.join(5)
        receiver.close()
    if status == "error":
        raise _rebuild(*payload)
    return payload
