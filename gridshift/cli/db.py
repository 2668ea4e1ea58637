"""`gridshift db upgrade|downgrade|current|history`: the plan store's schema migrations by
hand (the store migrates to the newest schema itself when it opens)."""

from __future__ import annotations

import argparse
import sys

from gridshift.adapters.store.migrations import alembic_config
from gridshift.cli.common import EXIT_INTERNAL, EXIT_INVALID, EXIT_OK, settings_of


def run(args: argparse.Namespace) -> int:
    if args.db_command == "history":
        from alembic.script import ScriptDirectory

        for script in ScriptDirectory.from_config(alembic_config()).walk_revisions():
            print(f"{script.down_revision or 'base'} -> {script.revision}: {script.doc}")
        return EXIT_OK
    from gridshift.adapters.store.plan_store import PlanStore, StoreError

    if args.db_command == "downgrade" and not args.revision:
        print("gridshift: downgrade needs a revision (or 'base')", file=sys.stderr)
        return EXIT_INVALID
    url = args.url or settings_of(args).store_url
    try:
        with PlanStore(url, migrate=False) as store:
            if args.db_command == "upgrade":
                store.upgrade(args.revision or "head")
            elif args.db_command == "downgrade":
                store.downgrade(args.revision)
            print(f"{store.url}: {store.schema_revision() or 'base'}")
    except StoreError as exc:
        print(f"gridshift: {exc}", file=sys.stderr)
        return EXIT_INTERNAL
    return EXIT_OK
