"""Alembic environment of the plan store: runs on the connection PlanStore hands over, or on a
new engine for ``sqlalchemy.url`` (offline mode prints the SQL)."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, pool

from gridshift.adapters.store.migrations import VERSION_TABLE
from gridshift.adapters.store.schema import metadata

config = context.config
OPTIONS = {
    "target_metadata": metadata,
    "version_table": VERSION_TABLE,
    # SQLite cannot ALTER much: autogenerate batch (copy-and-move) operations.
    "render_as_batch": True,
    "compare_type": True,
}


def run_migrations_offline() -> None:
    context.configure(url=config.get_main_option("sqlalchemy.url"), literal_binds=True,
                      dialect_opts={"paramstyle": "named"}, **OPTIONS)
    with context.begin_transaction():
        context.run_migrations()


def _run(connection) -> None:
    context.configure(connection=connection, **OPTIONS)
    # Inside the caller's transaction (PlanStore holds a lock there), this is a no-op.
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = create_engine(config.get_main_option("sqlalchemy.url"), poolclass=pool.NullPool)
    try:
        with engine.connect() as connection:
            _run(connection)
            connection.commit()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
