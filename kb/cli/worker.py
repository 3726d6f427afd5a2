"""`kb worker`: the job workers and the scheduler in this process, no HTTP.

With PostgreSQL (`KB_DATABASE_URL=postgresql+psycopg://...`) any number of `kb worker` processes
and of API replicas (`kb serve --workers 0`) share one database and one data directory: workers
claim jobs with `FOR UPDATE SKIP LOCKED` and keep them by heartbeat; a worker that dies (even by
`kill -9`) loses its jobs to another once its heartbeat is stale (`kb.jobs.queue.STALE_SECS`), or
at once to a worker of the same host that sees its pid gone. SIGTERM or SIGINT stop it politely:
it takes no new job, lets running ones finish for `--stop-timeout` seconds, and gives back the rest
(queued again, their attempt not counted).
"""

from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path

import click

from .common import data_dir_option, open_kb


@click.command()
@data_dir_option
@click.option("--workers", default=None, type=int, help="Job threads in this process (env KB_WORKERS, default 1).")
@click.option("--stop-timeout", default=10.0, type=float, show_default=True,
              help="On SIGTERM/SIGINT: seconds running jobs may take to finish before they are given back.")
def worker(data_dir: Path, workers: int | None, stop_timeout: float) -> None:
    """Run background jobs (indexing, crawls, syncs, periodic jobs) until SIGTERM or SIGINT."""
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGTERM, signal.SIGINT)}
    kb = open_kb(data_dir, workers=workers)
    try:
        if kb.settings.jobs.workers < 1:
            raise click.ClickException("kb worker needs at least one job thread (--workers N or KB_WORKERS=N, N >= 1)")
        kb.start_workers()
        click.echo(f"kb worker: {kb.settings.jobs.workers} job thread(s) on {kb.db.dialect.name} "
                   f"database, data in {data_dir.resolve()}")
        sys.stdout.flush()
        while not stop.wait(1.0):
            pass
        click.echo("kb worker: stopping (running jobs finish or are given back)")
        sys.stdout.flush()
        kb.stop_workers(stop_timeout)
    finally:
        kb.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
