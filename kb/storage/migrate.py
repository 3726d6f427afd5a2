"""Schema migrations (Alembic) run at start-up: safe when several processes start at once.

The whole upgrade runs in one write transaction holding the dialect's migration lock, so a second
process waits and then finds the schema current. A database written before migrations existed
(tables, no `alembic_version`) is recognised at revision 0001 and upgraded in place.
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect

from .database import Database

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).with_name("migrations")


def alembic_config(connection=None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


@functools.lru_cache(maxsize=1)
def head_revision() -> str:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def current_revision(db: Database) -> str | None:
    with db.read() as tx:
        return MigrationContext.configure(tx).get_current_revision()


def migrate(db: Database, revision: str = "head") -> None:
    """Bring the schema to `revision` (the newest by default)."""
    with db.write() as tx:
        db.dialect.lock_for_migration(tx)
        current = MigrationContext.configure(tx).get_current_revision()
        if current is not None and revision == "head" and current == head_revision():
            return
        if current is None and "documents" in inspect(tx).get_table_names():
            log.info("database %s predates migrations: taking it as revision 0001 and upgrading it", db.url)
        command.upgrade(alembic_config(tx), revision)


def open_database(url: str) -> Database:
    """The database at `url`, its schema created or upgraded to the current revision."""
    db = Database(url)
    migrate(db)
    return db
