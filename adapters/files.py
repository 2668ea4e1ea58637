"""Output files written whole or not at all."""

from __future__ import annotations

import contextlib
from pathlib import Path


def write_atomically(path: Path | str, data: str | bytes) -> None:
    """Write to a temporary name beside `path`, then rename: a crash never leaves half a file.
    On failure the temporary file is removed and the OSError re-raised.

    A `path` that exists and is not a regular file (`/dev/null`, `/dev/stdout`, a named pipe)
    is written directly: renaming onto it would replace the device itself (as root) or fail."""
    target = Path(path)
    if target.exists() and not target.is_file():
        _write(target, data)
        return
    tmp = target.with_name(f".{target.name}.tmp")
    try:
        _write(tmp, data)
        tmp.replace(target)
    except OSError:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise


def _write(path: Path, data: str | bytes) -> None:
    if isinstance(data, bytes):
        path.write_bytes(data)
    else:
        path.write_text(data, encoding="utf-8")
