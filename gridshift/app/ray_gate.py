"""A job gate for Ray: jobs go to the gate instead of straight to a Ray cluster; the gate plans
when and on which cluster each runs, and submits it there (Jobs API, with its GPUs as
entrypoint resources) at its planned start.

- **Queue.** Submissions are kept in the plan store (table ``gate_submissions``), so a gate
  that restarts, or several processes that submit while one gate runs, lose nothing. States:
  ``waiting`` (held by the gate), ``submitted`` (handed to Ray), ``running``, ``done``.
- **Planning.** Each round re-plans when a submission has arrived since the last plan (or a
  running job overran its estimate): the waiting jobs, with the gate's submitted and running
  jobs as committed load (from their start, for their duration estimate or longer while they
  still run). A job planned before is announced there, so that a re-plan moves it only when
  that saves more than ``move_weight`` kg CO2e.
- **Handing over.** A waiting job is submitted when its planned start has come, to its planned
  cluster, and only while the gate's jobs there leave its GPUs free — unless holding it longer
  would miss its deadline, in which case it goes and Ray queues it.
- **Failures.** Planning fails (gridshift's solver or store down): waiting jobs are released at
  their own times (now, or their earliest start) to their first allowed cluster. A job the plan
  cannot place is released the same way, with the reason. A cluster that cannot be reached:
  nothing changes for its jobs this round; the next round tries again.
"""

from __future__ import annotations

import logging
import math
import re
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from gridshift.adapters.ray_jobs import RayJobs, RayJobState, RayUnavailable
from gridshift.adapters.store import GateSubmission, JobRun, PlanStore, StoreError
from gridshift.app.scheduler_plans import PlanFn, gpu_power_kw_of, utc_text
from gridshift.optimizer.errors import FieldViolation, InvalidInputError

__all__ = ["STATES", "JobSubmission", "RayCluster", "RayGate", "RoundOutcome", "clusters_of"]

log = logging.getLogger("gridshift.ray")

STATES = ("waiting", "submitted", "running", "done")
#: Keys of a sites-file entry that are Ray's, not the request's.
RAY_KEYS = ("ray_address", "gpu_power_kw")
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


@dataclass(frozen=True)
class RayCluster:
    """A site as a Ray cluster: the request's site fields, its Jobs API address, kW per GPU."""

    site: dict[str, Any]
    address: str
    gpu_power_kw: float

    @property
    def name(self) -> str:
        return str(self.site["id"])


def clusters_of(entries: list[dict[str, Any]]) -> list[RayCluster]:
    """RayClusters of a sites file's entries (each with ``ray_address``); InvalidInputError
    naming the bad ones."""
    out, problems = [], []
    for i, entry in enumerate(entries):
        power = gpu_power_kw_of(entry, i, problems)
        if power is None:
            continue
        address = entry.get("ray_address")
        if not isinstance(address, str) or not address.startswith(("http://", "https://")):
            problems.append(FieldViolation(
                f"sites[{i}].ray_address", "must be the cluster's dashboard URL "
                f"(http://HEAD:8265), got {address!r}"))
            continue
        site = {k: v for k, v in entry.items() if k not in RAY_KEYS}
        out.append(RayCluster(site, address.rstrip("/"), power))
    if problems:
        raise InvalidInputError(problems)
    return out


@dataclass(frozen=True)
class JobSubmission:
    """A job for the gate: what to run, its GPUs and duration estimate, when it may start and
    must end, where it may run."""

    entrypoint: str
    gpus: int
    duration_minutes: int
    deadline: datetime | None = None
    clusters: tuple[str, ...] = ()           # allowed clusters; empty: any
    earliest_start: datetime | None = None   # None: when submitted
    team: str = ""
    submission_id: str = ""                  # "": the gate names it
    runtime_env: dict[str, Any] | None = None

    def spec(self) -> dict[str, Any]:
        """The submission as JSON values (what the store keeps)."""
        out: dict[str, Any] = {"entrypoint": self.entrypoint, "gpus": self.gpus,
                               "duration_minutes": self.duration_minutes,
                               "clusters": list(self.clusters), "team": self.team}
        if self.deadline is not None:
            out["deadline"] = utc_text(self.deadline)
        if self.earliest_start is not None:
            out["earliest_start"] = utc_text(self.earliest_start)
        if self.runtime_env:
            out["runtime_env"] = self.runtime_env
        return out


def _when(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text.replace("Z", "+00:00")) if text else None


@dataclass
class RoundOutcome:
    """What one round of the gate did."""

    plan_id: str = ""
    planned: int = 0
    submitted: list[str] = field(default_factory=list)
    finished: list[str] = field(default_factory=list)
    released: list[str] = field(default_factory=list)   # at their own times (no plan)
    error: str = ""                                      # planning failed
    unreachable: list[str] = field(default_factory=list)  # clusters


class RayGate:
    """The gate over one or more Ray clusters. ``submit`` queues a job; ``round`` refreshes,
    re-plans and hands over what is due; ``run`` does rounds until stopped."""

    def __init__(self, store: PlanStore, clusters: list[RayCluster], plan: PlanFn, *,
                 jobs_of: Callable[[RayCluster], RayJobs] | None = None,
                 horizon_minutes: int = 24 * 60, slot_minutes: int = 15,
                 time_limit_s: float = 10.0, move_weight: float = 0.5,
                 forecasts: list[dict[str, Any]] | None = None,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC),
                 allow_no_clusters: bool = False) -> None:
        if not clusters and not allow_no_clusters:
            raise InvalidInputError([FieldViolation("sites", "no Ray cluster to gate")])
        self.store, self.clusters, self._plan = store, {c.name: c for c in clusters}, plan
        make = jobs_of or (lambda c: RayJobs(c.address))
        self._jobs = {c.name: make(c) for c in clusters}
        self.horizon_minutes, self.slot_minutes = horizon_minutes, slot_minutes
        self.time_limit_s, self.move_weight = time_limit_s, move_weight
        self.forecasts = forecasts or []
        self.clock = clock
        self._overran: set[str] = set()
        self._lock = threading.Lock()

    # -- the queue ----------------------------------------------------------------------------

    def submit(self, job: JobSubmission) -> GateSubmission:
        """Queue a job (checked first: InvalidInputError naming each bad field); it is planned
        at the next round."""
        now = self.clock()
        self._check(job, now)
        sub = GateSubmission(job.submission_id or f"gridshift-{uuid.uuid4().hex[:12]}", now,
                             job.spec())
        self.store.add_submission(sub)
        log.info("job %s queued (%d GPUs, %d min)", sub.submission_id, job.gpus,
                 job.duration_minutes)
        return sub

    def list(self, states: tuple[str, ...] | None = None) -> list[GateSubmission]:
        """The gate's submissions (in these states), oldest first."""
        return self.store.submissions(states)

    def _check(self, job: JobSubmission, now: datetime) -> None:
        bad: list[FieldViolation] = []
        if not isinstance(job.entrypoint, str) or not job.entrypoint.strip():
            bad.append(FieldViolation("entrypoint", "empty: the command Ray should run"))
        if isinstance(job.gpus, bool) or not isinstance(job.gpus, int) or job.gpus < 1:
            bad.append(FieldViolation("gpus", f"must be a whole number ≥ 1, got {job.gpus!r}"))
        if isinstance(job.duration_minutes, bool) or not isinstance(job.duration_minutes, int) \
                or job.duration_minutes < 1:
            bad.append(FieldViolation("duration_minutes", "must be a whole number of minutes "
                                      f"≥ 1, got {job.duration_minutes!r}"))
        unknown = [c for c in job.clusters if c not in self.clusters]
        if unknown:
            bad.append(FieldViolation("clusters", f"unknown {', '.join(map(repr, unknown))}; "
                                      f"the gate has {', '.join(sorted(self.clusters))}"))
        if job.submission_id and not _ID.match(job.submission_id):
            bad.append(FieldViolation("submission_id", "1-128 letters, digits, '_', '.' or "
                                      "'-', starting with a letter or digit"))
        for name in ("deadline", "earliest_start"):
            moment = getattr(job, name)
            if moment is not None and (moment.tzinfo is None or moment.utcoffset() is None):
                bad.append(FieldViolation(name, "must carry a time zone (UTC offset)"))
        if not bad and job.deadline is not None:
            start = max(job.earliest_start or now, now)
            if job.deadline < start + timedelta(minutes=job.duration_minutes):
                bad.append(FieldViolation("deadline", f"{utc_text(job.deadline)} leaves less "
                                          f"than its {job.duration_minutes} min after "
                                          f"{utc_text(start)}"))
        if bad:
            raise InvalidInputError(bad)

    # -- a round ------------------------------------------------------------------------------

    def round(self) -> RoundOutcome:
        """Refresh the submitted jobs' states, re-plan if needed, submit what is due."""
        with self._lock:
            outcome = RoundOutcome()
            now = self.clock()
            self._refresh(now, outcome)
            waiting = self.store.submissions(("waiting",))
            if waiting and self._needs_plan(waiting, now):
                self._replan(waiting, now, outcome)
                waiting = self.store.submissions(("waiting",))
            self._hand_over(waiting, self.clock(), outcome)
            return outcome

    def run(self, interval_s: float, stop: threading.Event | None = None,
            on_round: Callable[[RoundOutcome], None] | None = None) -> None:
        """Rounds every ``interval_s`` seconds until ``stop`` is set; a round that fails
        (store down) is logged and the next one tries again."""
        stop = stop or threading.Event()
        while not stop.is_set():
            try:
                outcome = self.round()
                if on_round is not None:
                    on_round(outcome)
            except StoreError as exc:
                log.error("round skipped, the plan store failed: %s", exc)
            stop.wait(interval_s)

    # -- refreshing ---------------------------------------------------------------------------

    def _refresh(self, now: datetime, outcome: RoundOutcome) -> None:
        changed, runs = [], []
        for sub in self.store.submissions(("submitted", "running")):
            try:
                state = self._jobs[sub.cluster].state(sub.submission_id) \
                    if sub.cluster in self._jobs else None
            except RayUnavailable as exc:
                self._unreachable(sub.cluster, exc, outcome)
                continue
            if self._apply_state(sub, state, now):
                changed.append(sub)
                if sub.state == "done":
                    outcome.finished.append(sub.submission_id)
                    if sub.started_at is not None and sub.ended_at:
                        runs.append(JobRun(sub.submission_id, sub.cluster, sub.started_at,
                                           max(sub.ended_at, sub.started_at), "ray"))
        self.store.update_submissions(changed)
        if runs:
            self.store.save_runs(runs)

    def _apply_state(self, sub: GateSubmission, state: RayJobState | None,
                     now: datetime) -> bool:
        """Update ``sub`` from Ray's report; whether anything changed."""
        if state is None:
            sub.state, sub.scheduler_status, sub.ended_at = "done", "UNKNOWN", now
            sub.note = f"cluster {sub.cluster} no longer knows this job"
            return True
        before = (sub.state, sub.scheduler_status)
        sub.scheduler_status = state.status
        if state.status == "RUNNING" and sub.state == "submitted":
            sub.state, sub.started_at = "running", now     # first seen running
        if state.final:
            sub.state = "done"
            sub.ended_at = state.ended_at or now
            if sub.started_at is None and state.status == "SUCCEEDED":
                sub.started_at = sub.submitted_at
            sub.note = state.message[:300]
        return (sub.state, sub.scheduler_status) != before

    def _unreachable(self, cluster: str, exc: Exception, outcome: RoundOutcome) -> None:
        if cluster not in outcome.unreachable:
            log.warning("cluster %s unreachable, nothing changed there this round: %s",
                        cluster, exc)
            outcome.unreachable.append(cluster)

    # -- planning -----------------------------------------------------------------------------

    def _in_horizon(self, sub: GateSubmission, now: datetime) -> bool:
        """Whether the job can be planned now: it may start now, or it fits in the horizon
        (a job that may only start later is planned once it does)."""
        earliest = _when(sub.spec.get("earliest_start"))
        return earliest is None or earliest <= now or earliest + timedelta(
            minutes=sub.spec["duration_minutes"]) <= now + timedelta(minutes=self.horizon_minutes)

    def _needs_plan(self, waiting: list[GateSubmission], now: datetime) -> bool:
        if any(s.planned_start is None and self._in_horizon(s, now) for s in waiting):
            return True
        overran = {s.submission_id for s in self.store.submissions(("running",))
                   if s.started_at is not None
                   and now > s.started_at + timedelta(minutes=s.spec["duration_minutes"])}
        fresh = overran - self._overran
        self._overran = overran
        return bool(fresh)

    def _replan(self, waiting: list[GateSubmission], now: datetime,
                outcome: RoundOutcome) -> None:
        request, capacity = self.request(waiting, now, outcome)
        if not request["jobs"] or all("committed_site" in j for j in request["jobs"]):
            return
        planned = [s for s in waiting if self._allowed(s, capacity) and self._in_horizon(s, now)]
        try:
            plan_id, placed, left_out = self._plan(request)
        except Exception as exc:  # noqa: BLE001 - the failure policy: release at own times
            log.error("planning failed, releasing waiting jobs at their own times: %s", exc)
            outcome.error = f"{type(exc).__name__}: {exc}"
            self._release(planned, now, f"gridshift planning failed ({outcome.error}): "
                          "released at its own time", capacity, outcome)
            return
        outcome.plan_id, outcome.planned = plan_id, len(placed)
        for sub in planned:
            if sub.submission_id in placed:
                sub.cluster, sub.planned_start = placed[sub.submission_id]
                sub.plan_id, sub.note = plan_id, ""
        self.store.update_submissions([s for s in planned if s.submission_id in placed])
        left = [s for s in planned if s.submission_id in left_out]
        for sub in left:
            self._release([sub], now, f"not placed ({left_out[sub.submission_id]}): released "
                          "at its own time", capacity, outcome)

    def _release(self, subs: list[GateSubmission], now: datetime, note: str,
                 capacity: dict[str, int], outcome: RoundOutcome) -> None:
        for sub in subs:
            allowed = self._allowed(sub, capacity)
            sub.cluster = allowed[0] if allowed else (sub.spec["clusters"] or
                                                      sorted(self.clusters))[0]
            sub.planned_start = max(_when(sub.spec.get("earliest_start")) or now, now)
            sub.note = note
            outcome.released.append(sub.submission_id)
        self.store.update_submissions(subs)

    def _allowed(self, sub: GateSubmission, capacity: dict[str, int]) -> list[str]:
        names = sub.spec.get("clusters") or sorted(self.clusters)
        return [n for n in names if n in capacity]

    def request(self, waiting: list[GateSubmission], now: datetime,
                outcome: RoundOutcome | None = None) -> tuple[dict[str, Any], dict[str, int]]:
        """This round's OptimizeRequest (a dict) and the GPUs of the clusters it could read."""
        outcome = outcome or RoundOutcome()
        step = timedelta(minutes=self.slot_minutes)
        start = datetime.fromtimestamp(math.floor(now.timestamp() / step.total_seconds())
                                       * step.total_seconds(), UTC)
        capacity = self._capacities(outcome)
        sites = [{**c.site, "gpu_capacity": capacity[c.name]}
                 for c in self.clusters.values() if c.name in capacity]
        jobs = [self._committed(s, start, now) for s in
                self.store.submissions(("submitted", "running")) if s.cluster in capacity]
        jobs += [self._waiting(s, capacity, now) for s in waiting
                 if self._allowed(s, capacity) and self._in_horizon(s, now)]
        request = {"horizon": {"start": utc_text(start), "slot_minutes": self.slot_minutes,
                               "slots": self.horizon_minutes // self.slot_minutes},
                   "sites": sites, "jobs": jobs,
                   "objective": {"move_weight": self.move_weight},
                   "options": {"allow_partial": True, "time_limit_seconds": self.time_limit_s}}
        if self.forecasts:
            request["forecasts"] = self.forecasts
        return request, capacity

    def _capacities(self, outcome: RoundOutcome) -> dict[str, int]:
        out = {}
        for name, cluster in self.clusters.items():
            if "gpu_capacity" in cluster.site:
                out[name] = int(cluster.site["gpu_capacity"])
                continue
            try:
                out[name] = self._jobs[name].gpus()
            except RayUnavailable as exc:
                self._unreachable(name, exc, outcome)
        return out

    def _power_kw(self, sub: GateSubmission, cluster: str) -> float:
        return round(sub.spec["gpus"] * self.clusters[cluster].gpu_power_kw, 6)

    def _committed(self, sub: GateSubmission, horizon_start: datetime,
                   now: datetime) -> dict[str, Any]:
        began = sub.started_at or sub.submitted_at or now
        minutes = sub.spec["duration_minutes"]
        # Still running past its estimate: it holds its GPUs at least one more slot.
        floor = math.ceil((max(now, horizon_start) - began).total_seconds() / 60) \
            + self.slot_minutes
        return {"id": sub.submission_id, "gpus": sub.spec["gpus"],
                "power_kw": self._power_kw(sub, sub.cluster),
                "duration_minutes": max(minutes, floor), "team": sub.spec.get("team", ""),
                "committed_site": sub.cluster, "committed_start": utc_text(began)}

    def _waiting(self, sub: GateSubmission, capacity: dict[str, int],
                 now: datetime) -> dict[str, Any]:
        allowed = self._allowed(sub, capacity)
        earliest = max(_when(sub.spec.get("earliest_start")) or now, now)
        out: dict[str, Any] = {"id": sub.submission_id, "gpus": sub.spec["gpus"],
                               "power_kw": self._power_kw(sub, allowed[0]),
                               "duration_minutes": sub.spec["duration_minutes"],
                               "team": sub.spec.get("team", ""), "allowed_sites": allowed,
                               "earliest_start": utc_text(earliest)}
        if sub.spec.get("deadline"):
            out["deadline"] = sub.spec["deadline"]
        if sub.planned_start is not None and sub.planned_start > now and sub.plan_id \
                and sub.cluster in allowed:
            out["announced_site"], out["announced_start"] = sub.cluster, \
                utc_text(sub.planned_start)
        return out

    # -- handing over -------------------------------------------------------------------------

    def _hand_over(self, waiting: list[GateSubmission], now: datetime,
                   outcome: RoundOutcome) -> None:
        in_flight: dict[str, int] = {}
        for sub in self.store.submissions(("submitted", "running")):
            in_flight[sub.cluster] = in_flight.get(sub.cluster, 0) + sub.spec["gpus"]
        due = sorted((s for s in waiting if s.planned_start is not None
                      and s.planned_start <= now and s.cluster in self._jobs),
                     key=lambda s: (s.planned_start, s.created_at))
        for sub in due:
            if sub.cluster in outcome.unreachable:
                continue
            gpus = sub.spec["gpus"]
            if not self._fits(sub, in_flight, now):
                continue
            try:
                self._jobs[sub.cluster].submit(
                    sub.submission_id, sub.spec["entrypoint"], gpus=gpus,
                    runtime_env=sub.spec.get("runtime_env"),
                    metadata={"gridshift_plan": sub.plan_id or "none",
                              "gridshift_team": sub.spec.get("team", "")})
            except RayUnavailable as exc:
                self._unreachable(sub.cluster, exc, outcome)
                continue
            sub.state, sub.submitted_at = "submitted", self.clock()
            self.store.update_submissions([sub])
            in_flight[sub.cluster] = in_flight.get(sub.cluster, 0) + gpus
            outcome.submitted.append(sub.submission_id)
            log.info("job %s submitted to %s (planned %s)", sub.submission_id, sub.cluster,
                     utc_text(sub.planned_start))

    def _fits(self, sub: GateSubmission, in_flight: dict[str, int], now: datetime) -> bool:
        """Whether the gate's jobs on the cluster leave this job's GPUs free; if not, it waits
        (and the next round re-plans it) unless waiting would miss its deadline."""
        cluster = self.clusters[sub.cluster]
        capacity = cluster.site.get("gpu_capacity")
        if capacity is None:
            try:
                capacity = self._jobs[sub.cluster].gpus()
            except RayUnavailable:
                return False
        if in_flight.get(sub.cluster, 0) + sub.spec["gpus"] <= int(capacity):
            return True
        deadline = _when(sub.spec.get("deadline"))
        latest = deadline - timedelta(minutes=sub.spec["duration_minutes"]) if deadline else None
        if latest is not None and now >= latest - timedelta(minutes=self.slot_minutes):
            sub.note = "its cluster's GPUs are busy but its deadline is near: submitted, Ray " \
                       "queues it"
            return True
        sub.planned_start = None       # re-planned next round
        self.store.update_submissions([sub])
        return False
