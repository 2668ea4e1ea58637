"""A throwaway one-node Slurm cluster for tests: munged, slurmctld and slurmd on localhost,
in a temporary folder, on free ports.

The node has 8 GPUs as GRES (``AutoDetect=off``; gres.conf needs device files, and character
devices made with mknod stand in for them) and two partitions, ``west`` and ``east``, over it.
``SchedulerParameters=sched_interval=5,bf_interval=5`` makes a released job start within
seconds of its StartTime. Finished jobs are written to a filetxt job-completion log (no
accounting database needed). Debian's ``slurm-wlm`` and ``munge`` provide the daemons;
:func:`start_cluster` raises :class:`ClusterUnavailable` with the reason when it cannot start
one (binaries missing, not root, a daemon failing).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = ["ClusterUnavailable", "SlurmCluster", "start_cluster"]

GPUS = 8
PARTITIONS = ("west", "east")
DAEMONS = ("munged", "mungekey", "slurmctld", "slurmd", "sbatch", "squeue", "scontrol")


class ClusterUnavailable(RuntimeError):
    """No throwaway cluster can be started here; the message says why."""


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _which(name: str) -> str | None:
    return shutil.which(name) or next((str(Path(d) / name) for d in ("/usr/sbin", "/sbin")
                                       if (Path(d) / name).exists()), None)


@dataclass
class SlurmCluster:
    root: Path
    processes: list[subprocess.Popen]

    @property
    def conf(self) -> str:
        return str(self.root / "slurm.conf")

    @property
    def jobcomp_log(self) -> Path:
        return self.root / "log" / "jobcomp.txt"

    def env(self) -> dict[str, str]:
        return {**os.environ, "SLURM_CONF": self.conf}

    def run(self, *args: str, check: bool = True) -> str:
        done = subprocess.run(list(args), capture_output=True, text=True, env=self.env(),
                              timeout=60, check=False)
        if check and done.returncode != 0:
            raise RuntimeError(f"{' '.join(args)}: {done.stderr.strip()}")
        return done.stdout

    def submit(self, *options: str, wrap: str = "sleep 30") -> str:
        """sbatch with options; the job id."""
        return self.run("sbatch", "--parsable", f"--chdir={self.root}",
                        f"--output={self.root}/log/job-%j.out", *options, "--wrap",
                        wrap).strip().split(";")[0]

    def log_tail(self, lines: int = 30) -> str:
        out = []
        for name in ("slurmctld.log", "slurmd.log"):
            path = self.root / "log" / name
            if path.exists():
                out += path.read_text(errors="replace").splitlines()[-lines:]
        return "\n".join(out)

    def stop(self) -> None:
        for process in reversed(self.processes):
            if process.poll() is None:
                process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
        shutil.rmtree(self.root, ignore_errors=True)


def _conf(root: Path, host: str, ports: tuple[int, int]) -> str:
    partitions = "\n".join(
        f"PartitionName={p} Nodes={host} MaxTime=INFINITE State=UP OverSubscribe=FORCE:16"
        f"{' Default=YES' if i == 0 else ''}" for i, p in enumerate(PARTITIONS))
    return f"""ClusterName=gridshift-test
SlurmctldHost={host}(127.0.0.1)
SlurmUser=root
SlurmdUser=root
SlurmctldPort={ports[0]}
SlurmdPort={ports[1]}
AuthType=auth/munge
AuthInfo=socket={root}/munge.socket
CredType=cred/munge
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool
SlurmctldPidFile={root}/slurmctld.pid
SlurmdPidFile={root}/slurmd.pid
SlurmctldLogFile={root}/log/slurmctld.log
SlurmdLogFile={root}/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=5,bf_interval=5
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
DefMemPerCPU=1
GresTypes=gpu
ReturnToService=2
MpiDefault=none
JobCompType=jobcomp/filetxt
JobCompLoc={root}/log/jobcomp.txt
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
NodeName={host} NodeAddr=127.0.0.1 CPUs={os.cpu_count() or 2} RealMemory=1000 Gres=gpu:{GPUS} State=UNKNOWN
{partitions}
"""  # noqa: E501 - slurm.conf lines


def start_cluster() -> SlurmCluster:
    """Start the cluster and wait until the node is idle; ClusterUnavailable otherwise."""
    missing = [d for d in DAEMONS if _which(d) is None]
    if missing:
        raise ClusterUnavailable(f"Slurm or munge is not installed ({', '.join(missing)} "
                                 "missing; Debian's slurm-wlm and munge provide them)")
    if os.geteuid() != 0:
        raise ClusterUnavailable("the test cluster runs its daemons as root (SlurmUser=root)")
    root = Path(tempfile.mkdtemp(prefix="gridshift-slurm-"))
    host = socket.gethostname().split(".")[0]
    processes: list[subprocess.Popen] = []
    cluster = SlurmCluster(root, processes)
    try:
        for folder in ("state", "spool", "log", "dev"):
            (root / folder).mkdir()
        for k in range(GPUS):
            os.mknod(root / "dev" / f"gpu{k}", 0o600 | 0o020000, os.makedev(1, 3))
        (root / "gres.conf").write_text(
            f"AutoDetect=off\nNodeName={host} Name=gpu File={root}/dev/gpu[0-{GPUS - 1}]\n")
        (root / "slurm.conf").write_text(_conf(root, host, (_free_port(), _free_port())))
        subprocess.run([_which("mungekey"), "--create", f"--keyfile={root}/munge.key"],
                       check=True, capture_output=True, timeout=30)
        os.chmod(root / "munge.key", 0o400)
        processes.append(subprocess.Popen(
            [_which("munged"), "-F", f"--socket={root}/munge.socket",
             f"--key-file={root}/munge.key", f"--pid-file={root}/munged.pid",
             f"--log-file={root}/munged.log", f"--seed-file={root}/munged.seed", "-f"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        _wait(lambda: (root / "munge.socket").exists(), 15, "munged did not start")
        env = cluster.env()
        processes.append(subprocess.Popen([_which("slurmctld"), "-D", "-i", "-f", cluster.conf],
                                          env=env, stdout=subprocess.DEVNULL,
                                          stderr=subprocess.DEVNULL))
        _wait(lambda: _ok(cluster, "scontrol", "ping"), 30, "slurmctld did not answer")
        processes.append(subprocess.Popen([_which("slurmd"), "-D", "-f", cluster.conf, "-N",
                                           host], env=env, stdout=subprocess.DEVNULL,
                                          stderr=subprocess.DEVNULL))
        _wait(lambda: "idle" in cluster.run("sinfo", "-h", "-o", "%T", check=False), 60,
              "the node did not come up idle")
        return cluster
    except (OSError, subprocess.SubprocessError, RuntimeError) as exc:
        tail = cluster.log_tail()
        cluster.stop()
        if isinstance(exc, ClusterUnavailable):
            raise
        raise ClusterUnavailable(f"cannot start a Slurm test cluster: {exc}\n{tail}") from None


def _ok(cluster: SlurmCluster, *args: str) -> bool:
    try:
        cluster.run(*args)
        return True
    except RuntimeError:
        return False


def _wait(condition, timeout_s: float, message: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.3)
    raise ClusterUnavailable(message)
