"""A real local Ray cluster for the tests: ``ray start --head --block`` with logical GPUs, on
free ports and its own temporary folder, stopped by signalling its process group (never
``ray stop``, which would stop every Ray cluster on the machine)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def why_no_ray() -> str:
    """'' when a local Ray head can be started here, else why not."""
    try:
        import ray  # noqa: F401
        from ray.job_submission import JobSubmissionClient  # noqa: F401
    except ImportError as exc:
        return f"Ray's Jobs API is not installed ({exc}); make test installs gridshift[ray]"
    if not (Path(sys.executable).parent / "ray").exists() and not shutil.which("ray"):
        return "the `ray` command is not installed beside this Python"
    return ""


@dataclass
class RayHead:
    """A running head: its dashboard (Jobs API) address and GPUs."""

    address: str
    gpus: int
    process: subprocess.Popen
    temp_dir: str
    log: Any = None

    def stop(self) -> None:
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(5)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)
        except ProcessLookupError:
            pass
        if self.log is not None:
            self.log.close()
        shutil.rmtree(self.temp_dir, ignore_errors=True)


def start_head(gpus: int, timeout_s: float = 90.0) -> RayHead:
    """Start a head with ``gpus`` logical GPUs and wait until its node reports them;
    RuntimeError with the head's log when it does not come up."""
    ray_bin = Path(sys.executable).parent / "ray"
    command = str(ray_bin) if ray_bin.exists() else "ray"
    temp_dir = tempfile.mkdtemp(prefix="gsray", dir="/tmp")   # short: Ray's socket paths
    dashboard = _free_port()
    log = open(Path(temp_dir) / "head.log", "w")  # noqa: SIM115 - kept open for the head
    process = subprocess.Popen(
        [command, "start", "--head", "--block", "--port", str(_free_port()),
         "--dashboard-host", "127.0.0.1", "--dashboard-port", str(dashboard),
         # Every port its own, so that two heads (and anyone else's Ray) can run side by side.
         "--ray-client-server-port", str(_free_port()),
         "--dashboard-agent-listen-port", str(_free_port()),
         "--dashboard-agent-grpc-port", str(_free_port()),
         "--metrics-export-port", str(_free_port()),
         "--runtime-env-agent-port", str(_free_port()),
         "--node-manager-port", str(_free_port()), "--object-manager-port", str(_free_port()),
         "--num-gpus", str(gpus), "--num-cpus", "4", "--temp-dir", temp_dir,
         "--disable-usage-stats", "--include-dashboard", "true"],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        env={**os.environ, "RAY_USAGE_STATS_ENABLED": "0"})
    head = RayHead(f"http://127.0.0.1:{dashboard}", gpus, process, temp_dir, log)
    deadline = time.monotonic() + timeout_s
    from gridshift.adapters.ray_jobs import RayJobs, RayUnavailable

    jobs = RayJobs(head.address, attempts=1, timeout_s=5)
    while time.monotonic() < deadline:
        if process.poll() is not None:
            break
        try:
            if jobs.gpus() == gpus:
                return head
        except RayUnavailable:
            pass
        time.sleep(0.5)
    text = (Path(temp_dir) / "head.log").read_text(errors="replace")[-3000:]
    head.stop()
    raise RuntimeError(f"the Ray head did not come up in {timeout_s:.0f} s:\n{text}")
