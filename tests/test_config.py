"""Server settings: the [server] table of the config file, then GRIDSHIFT_* environment
variables, then flags (later ones win); every bad value is refused with its name."""

from __future__ import annotations

from pathlib import Path

import pytest

from gridshift.config import load_server_settings
from gridshift.optimizer.errors import InvalidInputError


@pytest.fixture(autouse=True)
def no_server_environment(monkeypatch) -> None:
    for name in ("HOST", "PORT", "MAX_CONCURRENT_SOLVES", "MAX_QUEUED_SOLVES", "GRACE_SECONDS",
                 "MAX_MESSAGE_BYTES", "DEADLINE_MARGIN_S", "DEADLINE_MARGIN_SHARE"):
        monkeypatch.delenv(f"GRIDSHIFT_{name}", raising=False)


def config(tmp_path: Path, text: str) -> str:
    path = tmp_path / "gridshift.toml"
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_file_then_environment_then_flags(tmp_path: Path, monkeypatch) -> None:
    path = config(tmp_path, '[server]\nport = 6000\nmax_queued_solves = 3\ngrace_seconds = 5\n'
                            'host = "0.0.0.0"\n')
    monkeypatch.setenv("GRIDSHIFT_MAX_QUEUED_SOLVES", "7")
    monkeypatch.setenv("GRIDSHIFT_GRACE_SECONDS", "2.5")
    settings = load_server_settings(path, {"grace_seconds": 1.0, "port": None})
    assert (settings.host, settings.port, settings.max_queued_solves, settings.grace_seconds) == (
        "0.0.0.0", 6000, 7, 1.0)


@pytest.mark.parametrize(("where", "name", "value", "words"), [
    ("file", "port", "70000", "within 0..65535"),
    ("env", "port", "http", "expected int"),
    ("file", "max_concurrent_solves", "2.5", "expected int"),
    ("env", "max_concurrent_solves", "0", "at least 1"),
    ("file", "max_queued_solves", "-1", "at least 0"),
    ("env", "grace_seconds", "nan", "expected float"),
    ("file", "grace_seconds", "true", "expected float"),
    ("file", "max_message_bytes", "10", "within 1024.."),
    ("env", "deadline_margin_share", "1.5", "within 0..0.9"),
])
def test_bad_values_are_named(tmp_path: Path, monkeypatch, where: str, name: str, value: str,
                              words: str) -> None:
    path = None
    if where == "file":
        path = config(tmp_path, f"[server]\n{name} = {value}\n")
    else:
        monkeypatch.setenv(f"GRIDSHIFT_{name.upper()}", value)
    with pytest.raises(InvalidInputError) as info:
        load_server_settings(path)
    [violation] = info.value.violations
    assert violation.field == name and words in violation.problem


def test_unknown_setting_and_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError) as info:
        load_server_settings(config(tmp_path, "[server]\nprot = 5\n"))
    assert [v.field for v in info.value.violations] == ["[server].prot"]
    with pytest.raises(InvalidInputError, match="cannot read"):
        load_server_settings(config(tmp_path, "[server\n"))
