"""A throwaway PostgreSQL cluster for tests: initdb + pg_ctl in a temporary folder, listening on
a free loopback port, trust authentication, stopped and deleted at the end.

PostgreSQL refuses to run as root; when the tests run as root the server runs as an unprivileged
user (``postgres`` where the Debian package created it, else ``nobody``), which owns the folder.
:func:`start_cluster` raises :class:`ClusterUnavailable` with the reason when it cannot start one
(no initdb, no unprivileged user, initdb or the server failing).
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["ClusterUnavailable", "PgCluster", "find_pg_bin", "start_cluster"]

USER = "gridshift"
# Fast and small: the data is thrown away anyway.
SERVER_OPTIONS = ("-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
                  "-c shared_buffers=16MB -c max_connections=60 -c max_wal_size=64MB "
                  "-c listen_addresses=127.0.0.1 -c log_min_messages=warning")


class ClusterUnavailable(RuntimeError):
    """No throwaway cluster can be started here; the message says why."""


def find_pg_bin() -> Path | None:
    """The folder with initdb and pg_ctl: from PATH, else the newest /usr/lib/postgresql/*/bin."""
    on_path = shutil.which("initdb")
    if on_path:
        folder = Path(on_path).resolve().parent
        if (folder / "pg_ctl").exists():
            return folder
        if shutil.which("pg_ctl"):
            return Path(on_path).parent
    candidates = []
    for initdb in glob.glob("/usr/lib/postgresql/*/bin/initdb"):
        folder = Path(initdb).parent
        try:
            version = float(folder.parent.name)
        except ValueError:
            continue
        if (folder / "pg_ctl").exists():
            candidates.append((version, folder))
    return max(candidates)[1] if candidates else None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _unprivileged_user() -> pwd.struct_passwd | None:
    for name in ("postgres", "nobody"):
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            continue
        if entry.pw_uid != 0:
            return entry
    return None


@dataclass
class PgCluster:
    """A running throwaway cluster; ``url(db)`` for SQLAlchemy, ``create_database`` for a fresh
    database per test."""

    bin_dir: Path
    base: Path
    port: int
    run_as: pwd.struct_passwd | None
    _databases: int = field(default=0)

    @property
    def data_dir(self) -> Path:
        return self.base / "data"

    @property
    def log_file(self) -> Path:
        return self.base / "server.log"

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://{USER}@127.0.0.1:{self.port}/{database}"

    def create_database(self, prefix: str = "test") -> str:
        """A new empty database; its URL."""
        import psycopg

        self._databases += 1
        name = f"{prefix}_{self._databases}"
        with psycopg.connect(host="127.0.0.1", port=self.port, user=USER, dbname="postgres",
                             autocommit=True, connect_timeout=10) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self) -> None:
        """Stop the server (immediate: the data is thrown away) and delete the folder."""
        try:
            _run(self, [str(self.bin_dir / "pg_ctl"), "-D", str(self.data_dir), "-m",
                        "immediate", "-w", "-t", "30", "stop"], check=False)
        finally:
            shutil.rmtree(self.base, ignore_errors=True)


def _run(cluster_or_user: Any, argv: list[str], check: bool = True,
         timeout: float = 120) -> subprocess.CompletedProcess[str]:
    user = cluster_or_user.run_as if isinstance(cluster_or_user, PgCluster) else cluster_or_user
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C", "LANG": "C",
           "TZ": "UTC"}
    kwargs: dict[str, Any] = {}
    if user is not None:
        env["HOME"] = tempfile.gettempdir()
        kwargs.update(user=user.pw_uid, group=user.pw_gid, extra_groups=[])
    result = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout,
                            stdin=subprocess.DEVNULL, **kwargs)
    if check and result.returncode != 0:
        output = (result.stdout + result.stderr).strip()
        raise ClusterUnavailable(f"{Path(argv[0]).name} failed ({result.returncode}): "
                                 f"{output[-800:]}")
    return result


def start_cluster(attempts: int = 3) -> PgCluster:
    """initdb + start a cluster on a free port; ClusterUnavailable with the reason otherwise."""
    bin_dir = find_pg_bin()
    if bin_dir is None:
        raise ClusterUnavailable("PostgreSQL server binaries (initdb, pg_ctl) not found on PATH "
                                 "or in /usr/lib/postgresql/*/bin; `make test` installs Debian's "
                                 "postgresql package where apt-get is available as root")
    run_as = None
    if os.geteuid() == 0:
        run_as = _unprivileged_user()
        if run_as is None:
            raise ClusterUnavailable("running as root and no unprivileged user (postgres or "
                                     "nobody) to run PostgreSQL as")
    # Directly under the temporary folder: the server's user must reach it (pytest's own
    # temporary folders are private to root).
    base = Path(tempfile.mkdtemp(prefix="gridshift-pg-"))
    try:
        if run_as is not None:
            os.chown(base, run_as.pw_uid, run_as.pw_gid)
        os.chmod(base, 0o700)
        cluster = PgCluster(bin_dir=bin_dir, base=base, port=0, run_as=run_as)
        _run(cluster, [str(bin_dir / "initdb"), "-D", str(cluster.data_dir), "-U", USER,
                       "--auth=trust", "--encoding=UTF8", "--locale=C", "--no-sync"])
        last = ""
        for _ in range(attempts):
            cluster.port = _free_port()
            options = f"-p {cluster.port} -k {base} {SERVER_OPTIONS}"
            result = _run(cluster, [str(bin_dir / "pg_ctl"), "-D", str(cluster.data_dir),
                                    "-l", str(cluster.log_file), "-o", options, "-w",
                                    "-t", "60", "start"], check=False)
            if result.returncode == 0 and _accepts(cluster.port):
                return cluster
            last = (result.stdout + result.stderr).strip() + "\n" + cluster.log_tail()
            _run(cluster, [str(bin_dir / "pg_ctl"), "-D", str(cluster.data_dir), "-m",
                           "immediate", "stop"], check=False)
        raise ClusterUnavailable(f"the PostgreSQL server did not start: {last[-800:]}")
    except ClusterUnavailable:
        shutil.rmtree(base, ignore_errors=True)
        raise
    except (OSError, subprocess.SubprocessError) as exc:
        shutil.rmtree(base, ignore_errors=True)
        raise ClusterUnavailable(f"cannot start a throwaway PostgreSQL cluster: {exc}") from exc


def _accepts(port: int, timeout_s: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1.0):
                return True
        except OSError:
            time.sleep(0.05)
    return False
