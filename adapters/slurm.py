"""Slurm, through its own commands: what is pending and running, the partitions' GPUs, moving
a job's start time and partition, releasing held jobs, and what ran.

Every command runs with the cluster's ``SLURM_CONF`` (when given) and a timeout; a command
that fails (the controller down or busy) is retried with exponential backoff (tenacity) and
then raises :class:`SlurmUnavailable`, so the caller changes nothing that round. Times sent to
Slurm are the controller's local time (Slurm reads ``StartTime=`` that way); times read back
are epoch seconds (JSON) or local timestamps, turned into aware UTC datetimes.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shlex
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential

__all__ = ["SlurmClient", "SlurmJob", "SlurmRun", "SlurmUnavailable", "gpus_of"]

log = logging.getLogger("gridshift.slurm")


class SlurmUnavailable(RuntimeError):
    """A Slurm command failed after its retries (controller down, busy or misconfigured)."""


class SlurmJobChanged(RuntimeError):
    """Slurm refused to change a job because it is no longer pending: it started, ended or
    was cancelled since it was read (not retried: asking again gets the same answer)."""


#: Slurm's answers (slurm_strerror) for a job that is no longer pending.
JOB_CHANGED_MESSAGES = ("no longer pending", "invalid job id", "already completing or completed",
                        "already finished", "job has finished")


@dataclass(frozen=True)
class SlurmJob:
    """A job as squeue reports it."""

    job_id: str
    name: str
    partitions: tuple[str, ...]
    state: str                       # PENDING, RUNNING, ...
    reason: str                      # why pending: JobHeldUser, BeginTime, Priority, ...
    gpus: int
    time_limit_minutes: int
    submit_time: datetime
    eligible_time: datetime | None   # set when it may start (its --begin)
    start_time: datetime | None      # running: when it started
    deadline: datetime | None        # its --deadline
    comment: str = ""
    qos: str = ""

    @property
    def held(self) -> bool:
        return self.reason in ("JobHeldUser", "JobHeldAdmin")


@dataclass(frozen=True)
class SlurmRun:
    """What a finished job did, from the job-completion log."""

    job_id: str
    partition: str
    start: datetime
    end: datetime
    state: str
    gpus: int = 0


@dataclass
class SlurmClient:
    """Slurm's commands for one cluster (``slurm_conf``: its slurm.conf; None: the default)."""

    slurm_conf: str | None = None
    timeout_s: float = 30.0
    attempts: int = 4
    backoff_s: float = 0.5
    bin_dir: str | None = None
    extra_env: Mapping[str, str] = field(default_factory=dict)

    # -- running commands --------------------------------------------------------------------

    def run(self, *args: str) -> str:
        """stdout of a Slurm command, retried; SlurmUnavailable when it keeps failing."""
        retrying = Retrying(stop=stop_after_attempt(self.attempts), reraise=True,
                            wait=wait_exponential(multiplier=self.backoff_s, max=10),
                            retry=retry_if_exception_type(SlurmUnavailable))
        return retrying(self._run_once, args)

    def _run_once(self, args: Sequence[str]) -> str:
        command = [os.path.join(self.bin_dir, args[0]) if self.bin_dir else args[0], *args[1:]]
        env = {**os.environ, **self.extra_env}
        if self.slurm_conf:
            env["SLURM_CONF"] = self.slurm_conf
        try:
            done = subprocess.run(command, capture_output=True, text=True, env=env,
                                  timeout=self.timeout_s, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise SlurmUnavailable(f"{shlex.join(command)}: {exc}") from None
        if done.returncode != 0:
            message = (done.stderr or done.stdout).strip().splitlines()
            why = f"{shlex.join(command)}: exit {done.returncode}: " \
                  f"{message[-1] if message else 'no output'}"
            if any(m in why.lower() for m in JOB_CHANGED_MESSAGES):
                raise SlurmJobChanged(why)
            raise SlurmUnavailable(why)
        return done.stdout

    # -- reading -----------------------------------------------------------------------------

    def jobs(self, states: str = "PENDING,RUNNING") -> list[SlurmJob]:
        """The queue (squeue --json) in the given states."""
        data = json.loads(self.run("squeue", "--json", f"--states={states}") or "{}")
        return [_job_of(j) for j in data.get("jobs", [])
                if str(j.get("job_state", "")) in states.split(",")]

    def partition_gpus(self) -> dict[str, int]:
        """GPUs (GRES ``gpu``) of each partition's nodes."""
        node_gpus = {}
        for record in _records(self.run("scontrol", "show", "node", "-o")):
            node_gpus[record.get("NodeName", "")] = gpus_of(record.get("Gres", ""))
        out = {}
        for record in _records(self.run("scontrol", "show", "partition", "-o")):
            nodes = _expand_nodes(record.get("Nodes", ""))
            out[record.get("PartitionName", "")] = sum(node_gpus.get(n, 0) for n in nodes)
        return out

    def runs(self, jobcomp_log: str | Path) -> list[SlurmRun]:
        """Finished jobs from the filetxt job-completion log (``JobCompLoc``)."""
        path = Path(jobcomp_log)
        if not path.exists():
            return []
        out = []
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            record = dict(_pairs(line))
            if "JobId" not in record or "StartTime" not in record:
                continue
            out.append(SlurmRun(job_id=record["JobId"], partition=record.get("Partition", ""),
                                start=_local_time(record["StartTime"]),
                                end=_local_time(record.get("EndTime", record["StartTime"])),
                                state=record.get("JobState", ""),
                                gpus=gpus_of(record.get("Tres", "") or record.get("Gres", ""))))
        return out

    # -- acting ------------------------------------------------------------------------------

    def update(self, job_id: str, start: datetime | None = None,
               partition: str | None = None) -> list[str]:
        """Move a pending job's earliest start and/or partition; the command run."""
        args = ["scontrol", "update", f"JobId={job_id}"]
        if start is not None:
            args.append(f"StartTime={slurm_time(start)}")
        if partition is not None:
            args.append(f"Partition={partition}")
        self.run(*args)
        return args

    def release(self, job_id: str) -> list[str]:
        args = ["scontrol", "release", job_id]
        self.run(*args)
        return args


def slurm_time(moment: datetime) -> str:
    """A time as Slurm's commands read it: local time, to the second."""
    return moment.astimezone().strftime("%Y-%m-%dT%H:%M:%S")


def gpus_of(text: str) -> int:
    """GPUs in a GRES or TRES string: ``gres:gpu:4``, ``gpu:8``, ``gres/gpu=2``,
    ``gpu:a100:4(S:0-1)``; 0 when none."""
    total = 0
    for part in re.split(r"[,\s]+", text or ""):
        match = re.match(r"^(?:gres[:/])?gpu(?::[\w.-]+)?[:=](\d+)", part)
        if match:
            total += int(match.group(1))
    return total


def _epoch(value: Any) -> datetime | None:
    if isinstance(value, dict):   # newer Slurm: {"set": true, "number": ...}
        value = value.get("number") if value.get("set", True) else None
    if not isinstance(value, int | float) or value <= 0:
        return None
    return datetime.fromtimestamp(value, UTC)


def _job_of(j: dict[str, Any]) -> SlurmJob:
    tres = " ".join(str(j.get(k) or "") for k in ("tres_per_node", "tres_per_job",
                                                  "tres_req_str"))
    limit = j.get("time_limit")
    if isinstance(limit, dict):
        limit = limit.get("number")
    return SlurmJob(
        job_id=str(j.get("job_id")), name=str(j.get("name") or ""),
        partitions=tuple(p for p in str(j.get("partition") or "").split(",") if p),
        state=str(j.get("job_state") or ""), reason=str(j.get("state_reason") or ""),
        gpus=gpus_of(tres), time_limit_minutes=int(limit or 0),
        submit_time=_epoch(j.get("submit_time")) or datetime.now(UTC),
        eligible_time=_epoch(j.get("eligible_time")), start_time=_epoch(j.get("start_time")),
        deadline=_epoch(j.get("deadline")), comment=str(j.get("comment") or ""),
        qos=str(j.get("qos") or ""))


def _pairs(line: str) -> list[tuple[str, str]]:
    """``Key=Value`` pairs of a one-line record (values may not contain spaces)."""
    return [tuple(item.split("=", 1)) for item in line.split() if "=" in item]  # type: ignore[misc]


def _records(text: str) -> list[dict[str, str]]:
    return [dict(_pairs(line)) for line in text.splitlines() if line.strip()]


def _expand_nodes(spec: str) -> list[str]:
    """``vm``, ``node[1-3,5]`` -> node names."""
    out = []
    for part in re.findall(r"[^,\[]+(?:\[[^\]]*\])?", spec or ""):
        match = re.match(r"^(.*)\[(.*)\]$", part)
        if not match:
            out.append(part)
            continue
        prefix, ranges = match.groups()
        for r in ranges.split(","):
            lo, _, hi = r.partition("-")
            width = len(lo)
            for k in range(int(lo), int(hi or lo) + 1):
                out.append(f"{prefix}{k:0{width}d}")
    return [n for n in out if n and n != "(null)"]


def _local_time(text: str) -> datetime:
    """A Slurm timestamp (controller local time, no zone) as aware UTC."""
    return datetime.fromisoformat(text).astimezone(UTC)
