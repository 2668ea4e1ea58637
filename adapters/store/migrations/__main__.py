"""Run the plan store's migrations by hand.

    python -m adapters.store.migrations [--url URL] upgrade [REVISION]   (default: head)
    python -m adapters.store.migrations [--url URL] downgrade REVISION   ("base": drop all)
    python -m adapters.store.migrations [--url URL] current
    python -m adapters.store.migrations history

URL: as PlanStore takes it (default: GRIDSHIFT_DB_URL, else the SQLite file in the data dir).
"""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m adapters.store.migrations",
                                     description="plan store schema migrations")
    parser.add_argument("--url", default=None, help="database URL (default: GRIDSHIFT_DB_URL "
                        "or the SQLite file in the data directory)")
    parser.add_argument("command", choices=["upgrade", "downgrade", "current", "history"])
    parser.add_argument("revision", nargs="?", default=None)
    args = parser.parse_args(argv)

    if args.command == "history":
        from alembic.script import ScriptDirectory

        from gridshift.adapters.store.migrations import alembic_config

        for script in ScriptDirectory.from_config(alembic_config()).walk_revisions():
            print(f"{script.down_revision or 'base'} -> {script.revision}: {script.doc}")
        return 0

    from gridshift.adapters.store.plan_store import PlanStore, StoreError

    if args.command == "downgrade" and not args.revision:
        parser.error("downgrade needs a revision (or 'base')")
    try:
        with PlanStore(args.url, migrate=False) as store:
            if args.command == "upgrade":
                store.upgrade(args.revision or "head")
            elif args.command == "downgrade":
                store.downgrade(args.revision)
            print(f"{store.url}: {store.schema_revision() or 'base'}")
    except StoreError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
