"""Output files: whole or not at all, and never by replacing a device or a pipe."""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

import pytest

from gridshift.adapters.files import write_atomically


def test_regular_file_is_replaced_whole(tmp_path: Path) -> None:
    target = tmp_path / "plan.json"
    target.write_text("old", encoding="utf-8")
    write_atomically(target, "new")
    assert target.read_text(encoding="utf-8") == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["plan.json"]


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes on this platform")
def test_a_named_pipe_is_written_through_not_replaced(tmp_path: Path) -> None:
    """`-o /dev/null` (or /dev/stdout, or a pipe) once renamed a temporary file onto the
    device: as root that replaced /dev/null itself with a regular file."""
    pipe = tmp_path / "out.pipe"
    os.mkfifo(pipe)
    received: list[bytes] = []
    reader = threading.Thread(target=lambda: received.append(pipe.read_bytes()), daemon=True)
    reader.start()
    write_atomically(pipe, b"report")
    reader.join(10)
    assert received == [b"report"]
    assert stat.S_ISFIFO(os.stat(pipe).st_mode)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.pipe"]
