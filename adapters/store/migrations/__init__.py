"""Versioned schema migrations of the plan store (Alembic), used programmatically.

No ``alembic.ini`` is needed: :func:`alembic_config` builds the configuration in code, with the
script location inside this package, so migrations run the same from a checkout and from an
installed wheel. ``PlanStore`` runs them to head when it opens a database; to run them by hand::

    gridshift db upgrade|downgrade|current|history [REVISION] [--url URL]

A new revision goes in ``versions/`` as ``NNNN_what.py`` with ``revision = "NNNN"`` and
``down_revision`` the previous one; ``adapters/store/schema.py`` must describe the result (the
tests compare the two).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["SCRIPT_LOCATION", "VERSION_TABLE", "alembic_config", "head_revision"]

SCRIPT_LOCATION = Path(__file__).resolve().parent
# Our own version table, so that another Alembic user of the same database does not collide.
VERSION_TABLE = "plan_store_version"


def alembic_config(connection: Any = None, url: str | None = None) -> Any:
    """An Alembic ``Config`` for these migrations; they run on ``connection`` (a SQLAlchemy
    Connection, inside whatever transaction it has) or else on a new engine for ``url``."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(SCRIPT_LOCATION))
    config.set_main_option("path_separator", "os")
    if url is not None:
        # ConfigParser interpolation: a literal % must be doubled.
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


_HEAD: list[str] = []


def head_revision() -> str:
    """The newest revision of the scripts (read once per process)."""
    if not _HEAD:
        from alembic.script import ScriptDirectory

        head = ScriptDirectory.from_config(alembic_config()).get_current_head()
        if head is None:
            raise RuntimeError(f"no migration scripts under {SCRIPT_LOCATION}")
        _HEAD.append(head)
    return _HEAD[0]
