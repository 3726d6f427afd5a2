"""Slow request work on its own threads: uploads (fetching URLs, parsing files and text) run on the
ingest pool (`KB_INGEST_THREADS`), not on the request threads every other call shares, so a
workspace that floods kb with slow uploads never makes another workspace's retrievals wait."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import anyio
from fastapi import FastAPI, Request

T = TypeVar("T")


def open_ingest_pool(app: FastAPI, threads: int) -> None:
    """Call in the app's lifespan (a capacity limiter belongs to the running event loop)."""
    if threads < 1:
        raise ValueError(f"KB_INGEST_THREADS must be at least 1, not {threads}")
    app.state.ingest_pool = anyio.CapacityLimiter(threads)


async def on_ingest_pool(request: Request, work: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """`work(*args, **kwargs)` on a thread of the ingest pool (waiting for a free one)."""
    return await anyio.to_thread.run_sync(functools.partial(work, *args, **kwargs), limiter=request.app.state.ingest_pool)
