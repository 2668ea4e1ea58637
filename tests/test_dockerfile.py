"""The Dockerfile's default command and HEALTHCHECK, run for real without Docker.

The Dockerfile is parsed; the command its ENTRYPOINT + CMD would run is started here as a
process (0.0.0.0 → 127.0.0.1 and port 50051 → 0, so no fixed port is used), the HEALTHCHECK
command is run against the port it prints, and SIGTERM must make the server exit 0.
"""

from __future__ import annotations

import json
import os
import queue
import shlex
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from conftest import PROJECT_ROOT

DOCKERFILE = PROJECT_ROOT / "Dockerfile"
PORT = "50051"
START_TIMEOUT_S = 120
STOP_TIMEOUT_S = 60


@dataclass
class Dockerfile:
    instructions: list[tuple[str, str]] = field(default_factory=list)

    @classmethod
    def parse(cls, text: str) -> Dockerfile:
        """Instructions with their arguments; comments dropped, continuations joined."""
        parsed = cls()
        pending = ""
        for raw in text.splitlines():
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            if line.endswith("\\"):
                pending += line[:-1] + " "
                continue
            line, pending = pending + line, ""
            if line.strip():
                keyword, _, args = line.strip().partition(" ")
                parsed.instructions.append((keyword.upper(), args.strip()))
        return parsed

    def all(self, keyword: str) -> list[str]:
        return [args for kw, args in self.instructions if kw == keyword]

    def last(self, keyword: str) -> str | None:
        found = self.all(keyword)
        return found[-1] if found else None

    def command(self) -> list[str]:
        """What the container runs by default: ENTRYPOINT + CMD (exec forms)."""
        entrypoint = _exec_form(self.last("ENTRYPOINT") or "[]")
        cmd = _exec_form(self.last("CMD") or "[]")
        return entrypoint + cmd

    def healthcheck(self) -> tuple[dict[str, str], list[str]]:
        """HEALTHCHECK's options and its command."""
        args = self.last("HEALTHCHECK")
        assert args is not None, "the Dockerfile has no HEALTHCHECK"
        options: dict[str, str] = {}
        while args.startswith("--"):
            option, _, args = args.partition(" ")
            name, _, value = option[2:].partition("=")
            options[name] = value
            args = args.strip()
        keyword, _, command = args.partition(" ")
        assert keyword.upper() == "CMD", f"HEALTHCHECK {args!r}"
        return options, _exec_form(command.strip())


def _exec_form(args: str) -> list[str]:
    """An exec-form (JSON array) argument list; the shell form is run by /bin/sh -c."""
    if args.startswith("["):
        value = json.loads(args)
        assert isinstance(value, list) and all(isinstance(a, str) for a in value), args
        return value
    return ["/bin/sh", "-c", args]


def _seconds(value: str) -> float:
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    for unit in sorted(units, key=len, reverse=True):
        if value.endswith(unit):
            return float(value[: -len(unit)]) * units[unit]
    return float(value)


def _local(argv: list[str]) -> list[str]:
    """The image's `gridshift` is this environment's console script (or the module)."""
    assert argv and argv[0] == "gridshift", f"expected a gridshift command, got {argv}"
    script = Path(sys.executable).with_name("gridshift")
    prefix = [str(script)] if script.exists() else [sys.executable, "-m", "gridshift.cli"]
    return prefix + argv[1:]


def _replace_option(argv: list[str], option: str, old: str, new: str) -> list[str]:
    out = list(argv)
    for i, arg in enumerate(out[:-1]):
        if arg == option:
            assert out[i + 1] == old, f"{option} {out[i + 1]!r}, expected {old!r}"
            out[i + 1] = new
            return out
        if arg.startswith(option + "="):
            assert arg == f"{option}={old}", arg
            out[i] = f"{option}={new}"
            return out
    raise AssertionError(f"{option} not in {shlex.join(argv)}")


@pytest.fixture(scope="module")
def dockerfile() -> Dockerfile:
    return Dockerfile.parse(DOCKERFILE.read_text(encoding="utf-8"))


def test_image_shape(dockerfile: Dockerfile) -> None:
    assert PORT in dockerfile.last("EXPOSE").split(), "port 50051 is not exposed"
    user = dockerfile.last("USER")
    assert user is not None and user.split(":")[0] not in {"root", "0"}, \
        f"the image must not run as root (USER {user})"
    assert any("pip install ." in run for run in dockerfile.all("RUN"))
    assert not any("protoc" in run for run in dockerfile.all("RUN")), \
        "the generated code is committed; the build must not run protoc"
    command = dockerfile.command()
    assert command == ["gridshift", "serve", "--host", "0.0.0.0", "--port", PORT], command
    options, health = dockerfile.healthcheck()
    assert health == ["gridshift", "health", "--server", f"127.0.0.1:{PORT}"], health
    assert _seconds(options.get("timeout", "30s")) >= 5, options
    # The sources the image installs from are copied, and include the generated code.
    copied = " ".join(dockerfile.all("COPY"))
    for path in ("pyproject.toml", "setup.py", "optimizer", "forecasting", "adapters", "gridshift"):
        assert path in copied, f"{path} is not copied into the image"
    assert (PROJECT_ROOT / "gridshift" / "api" / "v1" / "scheduler_pb2_grpc.py").exists()


def test_default_command_serves_passes_healthcheck_and_stops_on_sigterm(
        dockerfile: Dockerfile, tmp_path: Path) -> None:
    serve = _replace_option(dockerfile.command(), "--host", "0.0.0.0", "127.0.0.1")
    serve = _local(_replace_option(serve, "--port", PORT, "0"))
    env = {k: v for k, v in os.environ.items() if k != "GRIDSHIFT_LOG_LEVEL"}
    stderr_path = tmp_path / "serve.stderr"
    with stderr_path.open("w") as stderr:
        server = subprocess.Popen(serve, cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                                  stderr=stderr, text=True)
    try:
        lines: queue.Queue = queue.Queue()
        threading.Thread(target=lambda: lines.put(server.stdout.readline()), daemon=True).start()
        try:
            line = lines.get(timeout=START_TIMEOUT_S)
        except queue.Empty:
            pytest.fail(f"no start line in {START_TIMEOUT_S} s: {stderr_path.read_text()}")
        assert line.startswith("gridshift serving on 127.0.0.1:"), \
            (line, stderr_path.read_text())
        port = int(line.rsplit(":", 1)[1])

        options, health = dockerfile.healthcheck()
        health = _local(_replace_option(health, "--server", f"127.0.0.1:{PORT}",
                                        f"127.0.0.1:{port}"))
        started = time.monotonic()
        check = subprocess.run(health, cwd=tmp_path, env=env, capture_output=True, text=True,
                               timeout=START_TIMEOUT_S)
        took = time.monotonic() - started
        assert check.returncode == 0, (check.stdout, check.stderr)
        assert check.stdout.strip() == "SERVING", check.stdout
        # Docker counts a check that outlives --timeout as failed.
        assert took < _seconds(options.get("timeout", "30s")), f"health check took {took:.1f} s"

        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=STOP_TIMEOUT_S) == 0, stderr_path.read_text()

        # Once stopped, the same health check fails (and says why) instead of hanging.
        after = subprocess.run(health, cwd=tmp_path, env=env, capture_output=True, text=True,
                               timeout=START_TIMEOUT_S)
        assert after.returncode != 0 and after.stderr.strip(), (after.stdout, after.stderr)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait(timeout=STOP_TIMEOUT_S)
        server.stdout.close()


def test_parser_reads_continuations_and_shell_forms() -> None:
    parsed = Dockerfile.parse(
        "FROM x\n# comment\nHEALTHCHECK --interval=5s \\\n  # inside\n  --timeout=3s \\\n"
        "  CMD gridshift health\nCMD [\"a\", \"b\"]\nENTRYPOINT [\"e\"]\n")
    assert parsed.command() == ["e", "a", "b"]
    options, command = parsed.healthcheck()
    assert options == {"interval": "5s", "timeout": "3s"}
    assert command == ["/bin/sh", "-c", "gridshift health"]
    assert _seconds("1m") == 60 and _seconds("500ms") == 0.5
