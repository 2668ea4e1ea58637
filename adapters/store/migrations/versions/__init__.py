"""Revision scripts (loaded by Alembic from their files; this marker makes the folder part of
the package, so that installing gridshift installs them)."""
