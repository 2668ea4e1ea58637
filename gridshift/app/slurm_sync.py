"""Carrying plans out on Slurm: read the opted-in pending jobs and what runs, plan them with
the running jobs as committed load, and move each pending job to its planned partition and
start time (``scontrol update``), releasing held ones.

- **Opting in.** A pending job takes part when it carries the marker: a comment containing
  ``gridshift`` by default (``--comment=gridshift``), or a QOS or partition name.
- **Sites** are partitions: the sites file of ``gridshift nightly`` with, per site,
  ``partition`` (default: the site id) and ``gpu_power_kw`` (a job's IT power per GPU, default
  0.7 kW); ``gpu_capacity`` defaults to the GPUs (GRES) of the partition's nodes.
- **Jobs.** GPUs from the job's GRES, duration from its time limit, earliest start from its
  submission (or the begin time it was submitted with), deadline from ``--deadline``, allowed
  sites from its partition list. Running jobs in mapped partitions are committed load. A job
  whose start this agent set before is announced there, so a re-plan moves it only when that
  saves more than ``move_weight`` (kg CO2e).
- **Applying.** Only what differs is changed, so a second sync with nothing new runs no
  command; a released job waiting for Slurm to start it is announced where it is, from now.
  A job the plan leaves out is left as it is, with its reason logged (INFO; one WARNING per
  sync counts them by reason, as a full queue leaves hundreds out every round). A job that
  started or ended while the round was planned is skipped (the next round sees it as it is).
  Plans end each job one slot before its deadline: Slurm cancels a job (state DEADLINE) that
  cannot end by its deadline when it would start, and it starts a released job up to its
  scheduling interval after its StartTime.
- **Failures.** Planning fails (gridshift down): held opted-in jobs are released at their own
  times, nothing else changes. Slurm fails: SlurmUnavailable, nothing changes; the agent
  retries at its next round.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from gridshift.adapters.slurm import SlurmClient, SlurmJob, SlurmJobChanged, slurm_time
from gridshift.adapters.store import JobRun
from gridshift.app.scheduler_plans import PlanFn, gpu_power_kw_of, planner_plan, utc_text
from gridshift.optimizer.errors import FieldViolation, InvalidInputError

__all__ = ["Decision", "SlurmSite", "SlurmSync", "SyncOutcome", "planner_plan", "sites_of"]

log = logging.getLogger("gridshift.slurm")
#: Keys of a sites-file entry that are Slurm's, not the request's.
SLURM_KEYS = ("partition", "gpu_power_kw")


@dataclass(frozen=True)
class SlurmSite:
    """A site as a Slurm partition: the request's site fields, its partition, kW per GPU."""

    site: dict[str, Any]
    partition: str
    gpu_power_kw: float


def sites_of(entries: list[dict[str, Any]]) -> list[SlurmSite]:
    """SlurmSites of a sites file's entries; InvalidInputError naming bad ones."""
    out, problems = [], []
    for i, entry in enumerate(entries):
        power = gpu_power_kw_of(entry, i, problems)
        if power is None:
            continue
        site = {k: v for k, v in entry.items() if k not in SLURM_KEYS}
        out.append(SlurmSite(site, str(entry.get("partition") or entry["id"]), power))
    if problems:
        raise InvalidInputError(problems)
    return out


@dataclass(frozen=True)
class Decision:
    """What the agent did (or would do, dry-run) with one Slurm job."""

    job_id: str
    action: str                  # "moved", "released", "unchanged", "left", "skipped"
    partition: str = ""
    start: datetime | None = None
    reason: str = ""
    commands: tuple[str, ...] = ()


@dataclass
class SyncOutcome:
    plan_id: str = ""
    decisions: list[Decision] = field(default_factory=list)
    error: str = ""              # planning failed: held jobs were released as they are

    def count(self, action: str) -> int:
        return sum(1 for d in self.decisions if d.action == action)


class SlurmSync:
    """One cluster's agent: ``sync()`` once; the CLI's ``slurm agent`` calls it in a loop."""

    def __init__(self, slurm: SlurmClient, sites: list[SlurmSite], plan: PlanFn, *,
                 marker: str = "comment=gridshift", hours: int = 24, slot_minutes: int = 60,
                 time_limit_s: float = 10.0, move_weight: float = 0.5,
                 forecasts: list[dict[str, Any]] | None = None,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC),
                 record_runs: Callable[[list[JobRun]], int] | None = None,
                 jobcomp_log: str | None = None) -> None:
        kind, _, value = marker.partition("=")
        if kind not in ("comment", "qos", "partition") or not value:
            raise InvalidInputError([FieldViolation(
                "--marker", f"must be comment=TEXT, qos=NAME or partition=NAME, got {marker!r}")])
        self.slurm, self.sites, self._plan = slurm, sites, plan
        self.marker = (kind, value)
        self.hours, self.slot_minutes = hours, slot_minutes
        self.time_limit_s, self.move_weight = time_limit_s, move_weight
        self.forecasts = forecasts or []
        self.clock = clock
        self.record_runs, self.jobcomp_log = record_runs, jobcomp_log
        self._by_partition = {s.partition: s for s in sites}

    def opted_in(self, job: SlurmJob) -> bool:
        kind, value = self.marker
        if kind == "comment":
            return value in job.comment
        if kind == "qos":
            return job.qos == value
        return value in job.partitions

    def read_back(self) -> int:
        """Record how the mapped partitions' finished jobs really ran (the job-completion
        log), so that reports show them as run beside as planned; the runs recorded."""
        if self.record_runs is None or not self.jobcomp_log:
            return 0
        runs = [JobRun(r.job_id, self._by_partition[r.partition].site["id"], r.start, r.end)
                for r in self.slurm.runs(self.jobcomp_log)
                if r.partition in self._by_partition and r.end > r.start]
        return self.record_runs(runs) if runs else 0

    def sync(self, dry_run: bool = False) -> SyncOutcome:
        """Plan the opted-in pending jobs and apply the plan (or, dry-run, say what would be
        done); first read back what ran. SlurmUnavailable when Slurm cannot be read; nothing
        is changed then."""
        if not dry_run:
            self.read_back()
        now = self.clock()
        queue = self.slurm.jobs("PENDING,RUNNING")
        pending = [j for j in queue if j.state == "PENDING" and self.opted_in(j)]
        running = [j for j in queue if j.state == "RUNNING"]
        if not pending:
            return SyncOutcome()
        request, skipped = self.request(pending, running, now)
        outcome = SyncOutcome(decisions=skipped)
        if not request["jobs"] or all("committed_site" in j for j in request["jobs"]):
            return outcome
        try:
            outcome.plan_id, placed, left_out = self._plan(request)
        except Exception as exc:  # noqa: BLE001 - the failure policy: release, change nothing
            log.error("planning failed, releasing held jobs at their own times: %s", exc)
            outcome.error = f"{type(exc).__name__}: {exc}"
            outcome.decisions += self._release_held(pending, dry_run)
            return outcome
        for job in pending:
            if job.job_id in placed:
                site_id, start = placed[job.job_id]
                outcome.decisions.append(self._apply(job, site_id, start, now, dry_run))
            elif job.job_id in left_out:
                log.info("job %s left as it is: %s", job.job_id, left_out[job.job_id])
                outcome.decisions.append(Decision(job.job_id, "left",
                                                  reason=left_out[job.job_id]))
        _warn_left_out(outcome.decisions)
        return outcome

    # -- the request -------------------------------------------------------------------------

    def request(self, pending: list[SlurmJob], running: list[SlurmJob], now: datetime
                ) -> tuple[dict[str, Any], list[Decision]]:
        """The OptimizeRequest (a dict) of this round, and the jobs it leaves to Slurm."""
        step = timedelta(minutes=self.slot_minutes)
        start = datetime.fromtimestamp(math.floor(now.timestamp() / step.total_seconds())
                                       * step.total_seconds(), UTC)
        end = start + timedelta(hours=self.hours)
        capacity = self._capacities()
        sites = [{**s.site, "gpu_capacity": s.site["gpu_capacity"] if "gpu_capacity" in s.site
                  else capacity.get(s.partition, 0)} for s in self.sites]
        jobs, skipped = [], []
        for job in running:
            site = self._site_of(job.partitions)
            if site is not None and job.start_time is not None and job.gpus:
                jobs.append(self._job(job, site, committed=True))
        for job in pending:
            allowed = [self._by_partition[p] for p in job.partitions if p in self._by_partition]
            why = self._unplannable(job, allowed, now, end)
            if why:
                skipped.append(Decision(job.job_id, "skipped", reason=why))
                continue
            jobs.append(self._job(job, allowed[0], allowed=allowed, now=now))
        request = {"horizon": {"start": utc_text(start), "slot_minutes": self.slot_minutes,
                               "slots": self.hours * 60 // self.slot_minutes},
                   "sites": sites, "jobs": jobs,
                   "objective": {"move_weight": self.move_weight},
                   "options": {"allow_partial": True, "time_limit_seconds": self.time_limit_s}}
        if self.forecasts:
            request["forecasts"] = self.forecasts
        return request, skipped

    def _capacities(self) -> dict[str, int]:
        if all("gpu_capacity" in s.site for s in self.sites):
            return {}
        return self.slurm.partition_gpus()

    def _site_of(self, partitions: tuple[str, ...]) -> SlurmSite | None:
        return next((self._by_partition[p] for p in partitions if p in self._by_partition), None)

    def _unplannable(self, job: SlurmJob, allowed: list[SlurmSite], now: datetime,
                     end: datetime) -> str:
        if not allowed:
            return f"none of its partitions ({', '.join(job.partitions)}) is a mapped site"
        if job.gpus <= 0:
            return "asks for no GPUs (GRES gpu)"
        if job.time_limit_minutes <= 0:
            return "has no time limit to plan its duration with"
        finish = now + timedelta(minutes=job.time_limit_minutes)
        if job.deadline is not None and job.deadline - self._deadline_margin < finish:
            return "cannot meet its deadline (with a slot to spare) any more: left to Slurm"
        if finish > end:
            return "runs past the planning horizon"
        return ""

    def _job(self, job: SlurmJob, site: SlurmSite, *, allowed: list[SlurmSite] | None = None,
             committed: bool = False, now: datetime | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {"id": job.job_id, "gpus": job.gpus,
                               "power_kw": round(job.gpus * site.gpu_power_kw, 6),
                               "duration_minutes": job.time_limit_minutes,
                               "team": job.comment.split(":")[-1] if ":" in job.comment else ""}
        if committed:
            out.update(committed_site=site.site["id"], committed_start=utc_text(job.start_time))
            return out
        out["allowed_sites"] = [s.site["id"] for s in allowed or [site]]
        if job.deadline is not None:
            out["deadline"] = utc_text(job.deadline - self._deadline_margin)
        announced = job.eligible_time
        if announced is not None and now is not None and len(job.partitions) == 1 \
                and (announced > now or not job.held):
            # A start this agent set before (a begin time in the future), or a released job
            # Slurm is about to start: announced there (from now at the earliest).
            out["announced_site"] = site.site["id"]
            out["announced_start"] = utc_text(max(announced, now))
        return out

    @property
    def _deadline_margin(self) -> timedelta:
        """How long before its deadline a planned job ends (one slot; see the module doc)."""
        return timedelta(minutes=self.slot_minutes)

    # -- applying ----------------------------------------------------------------------------

    def _apply(self, job: SlurmJob, site_id: str, start: datetime, now: datetime,
               dry_run: bool) -> Decision:
        partition = next(s.partition for s in self.sites if s.site["id"] == site_id)
        start = max(start, now)
        same_place = job.partitions == (partition,)
        same_time = job.eligible_time is not None and (
            abs((job.eligible_time - start).total_seconds()) < 60
            or (job.eligible_time <= now and start <= now))    # released, due to start now
        commands: list[list[str]] = []
        if not (same_place and same_time):
            args = ["scontrol", "update", f"JobId={job.job_id}"]
            if not same_time:
                args.append(f"StartTime={slurm_time(start)}")
            if not same_place:
                args.append(f"Partition={partition}")
            commands.append(args)
        if job.held:
            commands.append(["scontrol", "release", job.job_id])
        if not dry_run:
            try:
                if commands and commands[0][1] == "update":
                    self.slurm.update(job.job_id, None if same_time else start,
                                      None if same_place else partition)
                if job.held:
                    self.slurm.release(job.job_id)
            except SlurmJobChanged as exc:
                log.info("job %s changed while this round was planned: %s", job.job_id, exc)
                return Decision(job.job_id, "skipped", reason=f"no longer pending ({exc})")
        action = ("moved" if commands and commands[0][1] == "update" else
                  "released" if job.held else "unchanged")
        return Decision(job.job_id, action, partition, start,
                        commands=tuple(" ".join(c) for c in commands))

    def _release_held(self, pending: list[SlurmJob], dry_run: bool) -> list[Decision]:
        out = []
        for job in pending:
            if job.held:
                if not dry_run:
                    self.slurm.release(job.job_id)
                out.append(Decision(job.job_id, "released",
                                    reason="planning failed: released at its own time",
                                    commands=(f"scontrol release {job.job_id}",)))
        return out


def _warn_left_out(decisions: list[Decision]) -> None:
    """One warning per sync for the jobs left as they are, by reason (an oversubscribed queue
    leaves hundreds out every round for the same reason; each job's is logged at INFO)."""
    by_reason = Counter(d.reason for d in decisions if d.action == "left")
    if not by_reason:
        return
    shown = "; ".join(f"{n} × {reason}" for reason, n in by_reason.most_common(3))
    more = f"; and {len(by_reason) - 3} other reasons" if len(by_reason) > 3 else ""
    log.warning("%d job(s) left as they are, to Slurm: %s%s", sum(by_reason.values()), shown,
                more)
