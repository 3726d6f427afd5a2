"""Which `Dialect` serves a database URL. A new database is one module and one `register_dialect` line."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy.engine import make_url

from .interfaces import Dialect

_DIALECTS: dict[str, Callable[[], Dialect]] = {}


def register_dialect(backend: str, factory: Callable[[], Dialect]) -> None:
    """`backend` is SQLAlchemy's backend name of the URL (`sqlite`, `postgresql`...)."""
    _DIALECTS[backend] = factory


def dialect_for(url: str) -> Dialect:
    backend = make_url(url).get_backend_name()
    if backend not in _DIALECTS:
        raise ValueError(
            f"KB_DATABASE_URL: no kb storage for {backend!r} databases yet; supported: {', '.join(sorted(_DIALECTS))}"
        )
    return _DIALECTS[backend]()


def _register_builtin() -> None:
    from .postgres import PostgresDialect
    from .sqlite import SqliteDialect

    register_dialect("sqlite", SqliteDialect)
    register_dialect("postgresql", PostgresDialect)  # postgresql+psycopg://user@host/database


_register_builtin()
