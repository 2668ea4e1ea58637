"""Output files written whole or not at all."""

from __future__ import annotations

import contextlib
from pathlib import Path


def write_atomically(path: Path | str, data: str | bytes) -> None:
    """Write to a temporary name beside `path`, then rename: a crash never leaves half a file.
    On failure the temporary file is removed and the OSError re-raised."""
    target = Path(path)
    tmp = target.with_name(f".{target.name}.tmp")
    try:
        if isinstance(data, bytes):
            tmp.write_bytes(data)
        else:
            tmp.write_text(data, encoding="utf-8")
        tmp.replace(target)
    except OSError:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise
