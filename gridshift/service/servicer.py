"""The gRPC Scheduler service: a thin translation layer (protobuf → codec → application →
codec → protobuf), bounded concurrency and memory, deadlines and cancellation, team scoping of
every request, plan and report, health and reflection.

A planning call's whole work (validation, forecasts, solve) runs in one solve slot, and stops
when the call is cancelled or its deadline passes; its plan is stored only while the call is
still there to receive it, and only when GetPlan could return it (the message limit)."""

from __future__ import annotations

import contextvars
import logging
import math
import queue
import threading
import time
from collections.abc import Callable, Iterator
from concurrent import futures
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from gridshift.adapters.codec import request_to_dict, to_response
from gridshift.adapters.forecast_codec import (
    best_window_response,
    forecast_response,
    timestamp_or_none,
)
from gridshift.adapters.plan_codec import get_plan_response, report_response, summary_of
from gridshift.adapters.principals import Principal
from gridshift.adapters.scoring_codec import candidates_of, score_response
from gridshift.adapters.store import PlanFilter, PlanRecord
from gridshift.api.v1 import optimize_pb2 as pb
from gridshift.api.v1 import plans_pb2, scheduler_pb2, scheduler_pb2_grpc
from gridshift.app.application import App
from gridshift.app.planning import PlanOutcome
from gridshift.app.plans import PlanArchive, check_period
from gridshift.app.reports import build_report
from gridshift.app.scoring import score_candidates
from gridshift.optimizer.errors import (
    CancelledError,
    FieldViolation,
    InvalidInputError,
    OverloadedError,
)
from gridshift.optimizer.problem import Problem
from gridshift.optimizer.solve import SolveResult
from gridshift.service.auth import PermissionDenied, check_teams, principal_var
from gridshift.service.errors import call_var, note_plan_id, shorten
from gridshift.settings import ServerSettings

log = logging.getLogger("gridshift.server")
SERVICE_NAME = scheduler_pb2.DESCRIPTOR.services_by_name["Scheduler"].full_name
#: Share of a planning call's remaining time that resolving its forecasts may take (the rest
#: is the solve's); the forecast service's own budget caps it too.
FORECAST_SHARE_OF_DEADLINE = 0.5


class SolveSlots:
    """At most `running` solves at once and `queued` waiting; past that, OverloadedError."""

    def __init__(self, running: int, queued: int) -> None:
        self._semaphore = threading.Semaphore(running)
        self._capacity = running + queued
        self._admitted = 0
        self._lock = threading.Lock()

    @contextmanager
    def slot(self, still_wanted: Callable[[], bool]) -> Iterator[None]:
        with self._lock:
            if self._admitted >= self._capacity:
                raise OverloadedError(f"server busy: {self._admitted} solves running or queued; "
                                      "retry later")
            self._admitted += 1
        try:
            while not self._semaphore.acquire(timeout=0.05):
                if not still_wanted():
                    raise OverloadedError("call ended while queued")
            try:
                yield
            finally:
                self._semaphore.release()
        finally:
            with self._lock:
                self._admitted -= 1


class MemoryBudget:
    """The memory all admitted planning calls may hold together (their estimates); past it a
    call is refused at once with RESOURCE_EXHAUSTED."""

    def __init__(self, total_bytes: int) -> None:
        self.total = total_bytes
        self.held = 0
        self._lock = threading.Lock()

    @contextmanager
    def reserve(self, nbytes: int) -> Iterator[None]:
        with self._lock:
            if self.held + nbytes > self.total:
                raise OverloadedError(
                    f"server busy: this call needs an estimated {_mib(nbytes)} of memory and "
                    f"{_mib(self.held)} of the {_mib(self.total)} budget "
                    "([server].memory_budget_bytes) is held by other calls; retry later")
            self.held += nbytes
        try:
            yield
        finally:
            with self._lock:
                self.held -= nbytes


#: Memory a planning call is estimated to need (bytes): a fixed part, a multiple of its
#: request message (the dict, the parsed request, the response and the stored record), per job
#: and per job x site x slot (the compiled problem's masks and the search's arrays). Measured
#: as peak RSS growth by bench/memory.py; the README's Reliability section has the figures.
CALL_BASE_BYTES = 32 * 1024**2
CALL_BYTES_PER_REQUEST_BYTE = 10
CALL_BYTES_PER_JOB = 8 * 1024
CALL_BYTES_PER_CELL = 12


def call_memory_estimate(request_bytes: int, jobs: int, sites: int, slots: int) -> int:
    """The memory (bytes) a planning call of this size is estimated to need."""
    return (CALL_BASE_BYTES + CALL_BYTES_PER_REQUEST_BYTE * request_bytes
            + CALL_BYTES_PER_JOB * jobs + CALL_BYTES_PER_CELL * jobs * sites * slots)


def _mib(nbytes: float) -> str:
    return f"{nbytes / 1024**2:,.0f} MiB"


class SchedulerServicer(scheduler_pb2_grpc.SchedulerServicer):
    """Every RPC of the Scheduler service over one application (:class:`~gridshift.app.App`);
    a server built without a plan store answers the stored-plan RPCs UNIMPLEMENTED."""

    def __init__(self, app: App, settings: ServerSettings, observer: Any = None) -> None:
        self._app = app
        self._settings = settings
        self._slots = SolveSlots(settings.max_concurrent_solves, settings.max_queued_solves)
        self._memory = MemoryBudget(settings.memory_budget_bytes)
        #: Metrics (gridshift.adapters.metrics.Metrics) or None.
        self._observer = observer

    def Optimize(self, request: pb.OptimizeRequest, context: grpc.ServicerContext):
        self._check_request_teams(request, "request")
        with self._bounded(request, context):
            data, result = self._solve(request, context, on_progress=None)
            return self._planned(request, data, result, context)

    def _planned(self, request: pb.OptimizeRequest, data: dict[str, Any], result: SolveResult,
                 context: grpc.ServicerContext) -> pb.OptimizeResponse:
        """The response, stored with its request when a plan store is configured, the call is
        still there to receive it and GetPlan could return it."""
        if not context.is_active():
            raise CancelledError("the call ended before its plan was sent: not stored")
        planner = self._app.planner
        response = to_response(result)
        record_bytes = request.ByteSize() + response.ByteSize() + 4096
        if planner.archive is not None and record_bytes > self._settings.max_message_bytes:
            outcome = PlanOutcome(result, response.plan_id, store_error=(
                f"its record would be {_mib(record_bytes)}, past the "
                f"{_mib(self._settings.max_message_bytes)} message limit, so GetPlan could not "
                "return it"))
        else:
            outcome = planner.keep(result, data, "grpc")
            response.plan_id = outcome.plan_id
        note_plan_id(outcome.plan_id)
        if outcome.store_error:
            response.solver.status_detail += f"; not stored: {shorten(outcome.store_error, 300)}"
        return response

    def StreamOptimize(self, request: pb.OptimizeRequest, context: grpc.ServicerContext):
        self._check_request_teams(request, "request")
        with self._bounded(request, context):
            events: queue.Queue = queue.Queue()
            outcome: dict[str, Any] = {}

            def run() -> None:
                try:
                    outcome["data"], outcome["result"] = self._solve(
                        request, context, on_progress=events.put)
                except BaseException as exc:  # noqa: BLE001 - re-raised in the handler thread
                    outcome["error"] = exc
                finally:
                    events.put(None)

            # The worker runs in this call's context: its log lines carry the request id.
            worker = threading.Thread(target=contextvars.copy_context().run, args=(run,),
                                      daemon=True)
            worker.start()
            while (event := events.get()) is not None:
                if "objective" in event:
                    yield scheduler_pb2.OptimizeEvent(progress=_progress(event))
            worker.join()
            if "error" in outcome:
                raise outcome["error"]
            data, result = outcome["data"], outcome["result"]
        yield scheduler_pb2.OptimizeEvent(result=self._planned(request, data, result, context))

    @contextmanager
    def _bounded(self, request: pb.OptimizeRequest, context: grpc.ServicerContext
                 ) -> Iterator[None]:
        """The per-call bounds, checked on the message before anything is built (its size,
        jobs x sites x slots, its estimated memory: INVALID_ARGUMENT naming the limit), then
        the call's share of the memory budget held while it runs (RESOURCE_EXHAUSTED)."""
        s = self._settings
        call = call_var.get()
        size = call.request_bytes if call is not None and call.request_bytes else \
            request.ByteSize()
        jobs, sites, slots = len(request.jobs), len(request.sites), request.horizon.slots
        cells = jobs * max(sites, 1) * max(slots, 1)
        estimate = call_memory_estimate(size, jobs, sites, slots)
        self._app.tracing.annotate(
            jobs=jobs, sites=sites, slots=slots,
            teams=",".join(sorted({job.team for job in request.jobs if job.team})[:20]) or None)
        problems = []
        if size > s.max_request_bytes:
            problems.append(FieldViolation("", f"the request is {_mib(size)}, past the "
                                               f"{_mib(s.max_request_bytes)} limit "
                                               "([server].max_request_bytes)"))
        if cells > s.max_cells_per_call:
            problems.append(FieldViolation(
                "jobs", f"{jobs:,} jobs x {sites:,} sites x {slots:,} slots is {cells:,}, past "
                        f"the limit of {s.max_cells_per_call:,} ([server].max_cells_per_call); "
                        "split the request"))
        if not problems and estimate > s.max_call_memory_bytes:
            problems.append(FieldViolation(
                "", f"the request would need an estimated {_mib(estimate)} of memory, past "
                    f"the {_mib(s.max_call_memory_bytes)} limit per call "
                    "([server].max_call_memory_bytes); split it"))
        if problems:
            raise InvalidInputError(problems)
        with self._memory.reserve(estimate):
            yield

    def GetForecast(self, request, context: grpc.ServicerContext):
        start, end = timestamp_or_none(request, "start"), timestamp_or_none(request, "end")
        answers = self._app.queries.get_forecasts(list(request.regions), start, end,
                                                  request.slot_minutes or 60,
                                                  time_budget_s=self._query_budget(context))
        return forecast_response(answers.answer, answers.unavailable)

    def FindBestWindow(self, request, context: grpc.ServicerContext):
        answers = self._app.queries.best_windows(
            list(request.regions), request.duration_minutes,
            timestamp_or_none(request, "window_start"), timestamp_or_none(request, "window_end"),
            time_budget_s=self._query_budget(context))
        return best_window_response(answers.answer, answers.unavailable)

    def _query_budget(self, context: grpc.ServicerContext) -> float | None:
        """A forecast query's time for resolving: the call's remaining time less the margin
        kept for the response (None: no deadline, the service's own budget applies)."""
        remaining = context.time_remaining()
        if remaining is None or not math.isfinite(remaining):
            return None
        s = self._settings
        return max(0.0, remaining - s.deadline_margin_s - s.deadline_margin_share * remaining)

    def _planning_budget(self, context: grpc.ServicerContext) -> float | None:
        """A planning call's time for resolving forecasts: a share of its remaining time."""
        remaining = context.time_remaining()
        if remaining is None or not math.isfinite(remaining):
            return None
        return FORECAST_SHARE_OF_DEADLINE * remaining

    def _check_request_teams(self, request: pb.OptimizeRequest, what: str) -> None:
        """PERMISSION_DENIED when the caller may not plan for a job's team."""
        principal = principal_var.get()
        if not principal.all_teams:
            check_teams(principal, (job.team for job in request.jobs), f"the {what}'s jobs")

    def _archive(self, context: grpc.ServicerContext) -> PlanArchive:
        """The plan archive, or UNIMPLEMENTED when this server stores no plans."""
        if self._app.archive is None:
            context.abort(grpc.StatusCode.UNIMPLEMENTED, "the plan store is not configured")
        return self._app.archive

    def GetPlan(self, request, context: grpc.ServicerContext):
        if not request.plan_id.strip():
            raise InvalidInputError([FieldViolation("plan_id", "required")])
        record = self._archive(context).get(request.plan_id)
        if record is None:
            context.abort(grpc.StatusCode.NOT_FOUND, f"no plan {shorten(request.plan_id, 100)!r}")
        principal = principal_var.get()
        if not principal.all_teams:
            check_teams(principal, plan_teams(record), f"plan {record.plan_id}")
        note_plan_id(record.plan_id)
        response = get_plan_response(record)
        if response.ByteSize() > self._settings.max_message_bytes:
            raise OverloadedError(
                f"plan {record.plan_id} is {_mib(response.ByteSize())}, past the "
                f"{_mib(self._settings.max_message_bytes)} message limit; read it where the "
                "store is, with `gridshift plans show ID --format json`")
        return response

    def ListPlans(self, request, context: grpc.ServicerContext):
        archive = self._archive(context)
        if request.status and request.status not in pb.PlanStatus.values():
            raise InvalidInputError([FieldViolation(
                "status", f"unknown value {request.status} (one of "
                          f"{', '.join(pb.PlanStatus.keys()[1:])})")])
        flt = PlanFilter(start=timestamp_or_none(request, "start"),
                         end=timestamp_or_none(request, "end"), team=request.team or None,
                         site=request.site or None,
                         status=pb.PlanStatus.Name(request.status) if request.status else None)
        principal = principal_var.get()
        if principal.all_teams:
            records, token = archive.list(flt, request.page_size or 50,
                                          request.page_token or None)
        else:
            if flt.team is not None:
                check_teams(principal, [flt.team], "the listing")
            records, token = _visible_page(archive, flt, request.page_size or 50,
                                           request.page_token or None, principal)
        return plans_pb2.ListPlansResponse(plans=[summary_of(r) for r in records],
                                           next_page_token=token or "")

    def GetCarbonReport(self, request, context: grpc.ServicerContext):
        team = request.team or None
        principal = principal_var.get()
        if not principal.all_teams:
            teams = sorted(principal.teams or ())
            if team is None and len(teams) == 1:
                team = teams[0]
            elif team is None:
                raise PermissionDenied(f"{principal.name} sees the reports of its teams only: "
                                       f"name one in team ({', '.join(teams)})")
            check_teams(principal, [team], "the report")
        report = build_report(self._archive(context), timestamp_or_none(request, "start"),
                              timestamp_or_none(request, "end"), team,
                              request.site or None, request.format or "json",
                              request.list_superseded)
        return report_response(report)

    def ScoreSchedules(self, request, context: grpc.ServicerContext):
        self._check_request_teams(request.problem, "problem")
        with self._bounded(request.problem, context):
            candidates = candidates_of(request.candidates)
            data = request_to_dict(request.problem)
            with self._slots.slot(context.is_active):
                table = score_candidates(self._app.planner, data, candidates,
                                         request.scenarios, request.seed)
        return score_response(table)

    def _solve(self, request: pb.OptimizeRequest, context: grpc.ServicerContext,
               on_progress) -> tuple[dict[str, Any], SolveResult]:
        """The request dict and its solve result: conversion, validation, forecasts and the
        solve, all in one slot (a call that ends while queued never starts them) and all
        stopping when the call ends (cancelled, or past its deadline)."""
        def gone() -> bool:
            return not context.is_active()

        observer = self._observer
        queued = began = time.monotonic()
        if observer is not None:
            observer.solve_queued(+1)
        try:
            with self._slots.slot(context.is_active):
                self._app.tracing.annotate(queued_seconds=round(time.monotonic() - began, 6))
                if observer is not None:
                    observer.solve_queued(-1)
                    observer.solve_running(+1)
                    queued = -1.0
                try:
                    if gone():
                        raise CancelledError("the call ended before its request was read")
                    with self._app.tracing.span("decode"):
                        data = request_to_dict(request)
                    return data, self._prepare_and_solve(data, context, on_progress, gone)
                finally:
                    if observer is not None:
                        observer.solve_running(-1)
        finally:
            if observer is not None and queued >= 0:
                observer.solve_queued(-1)

    def _prepare_and_solve(self, data: dict[str, Any], context: grpc.ServicerContext,
                           on_progress, gone: Callable[[], bool]) -> SolveResult:
        problem = self._app.planner.prepare(data, time_budget_s=self._planning_budget(context),
                                            stop_flag=gone)
        limit = self._time_limit(problem, context)
        started = time.monotonic()
        result = self._app.planner.solve(problem, on_progress=on_progress,
                                         time_limit_s=limit, stop_flag=gone)
        took = time.monotonic() - started
        log.info("solved %d jobs: %s, objective %.3f, gap %.4f, %.2f s (limit %.2f s)",
                 problem.n_jobs, result.status, result.objective, result.gap, took, limit)
        if self._observer is not None:
            self._observer.solve_finished(result, took)
        if gone():
            raise CancelledError(f"the call ended while it was being solved ({took:.1f} s)")
        return result

    def _time_limit(self, problem: Problem, context: grpc.ServicerContext) -> float:
        """The request's time limit, cut to the call's deadline minus a safety margin."""
        limit = problem.options.time_limit_seconds
        remaining = context.time_remaining()
        if remaining is None or not math.isfinite(remaining):
            return limit
        s = self._settings
        margin = s.deadline_margin_s + s.deadline_margin_share * remaining
        return max(0.05, min(limit, remaining - margin))


def plan_teams(record: PlanRecord) -> set[str]:
    """The teams of a stored plan's jobs: those of its request (placed or not) and of its job
    rows."""
    jobs = (record.request or {}).get("jobs") if isinstance(record.request, dict) else None
    teams = {str(job.get("team") or "") for job in jobs or () if isinstance(job, dict)}
    return teams | {row.team for row in record.jobs}


#: How many store pages a team-scoped listing reads for one answer page at most (a page may
#: then hold fewer plans than asked; its token goes on from there).
MAX_PAGES_PER_LISTING = 20


def _visible_page(archive: PlanArchive, flt: PlanFilter, size: int, token: str | None,
                  principal: Principal) -> tuple[list[PlanRecord], str | None]:
    """One page of the plans whose every job is of the principal's teams. Each store page read
    is used whole, so the store's token goes on exactly after it."""
    size = max(1, min(size, 500))
    out: list[PlanRecord] = []
    check_period(flt.start, flt.end)
    for _ in range(MAX_PAGES_PER_LISTING):
        try:
            records, token = archive.store.list(flt, size - len(out), token, full=True)
        except ValueError as exc:
            raise InvalidInputError([FieldViolation("page_token", str(exc))]) from None
        out += [r for r in records
                if (teams := plan_teams(r)) and all(principal.sees_team(t) for t in teams)]
        if len(out) >= size or not token:
            break
    return out, token


def _progress(event: dict) -> scheduler_pb2.OptimizeProgress:
    bound = event.get("best_bound")
    has_bound = bound is not None and math.isfinite(bound)
    objective = float(event["objective"])
    gap = (objective - bound) / max(abs(objective), 1e-9) if has_bound else 0.0
    return scheduler_pb2.OptimizeProgress(
        kind=event["kind"], objective=objective, best_bound=bound if has_bound else 0.0,
        has_bound=has_bound, gap=gap, elapsed_seconds=float(event["elapsed_s"]))


@dataclass
class RunningServer:
    server: grpc.Server
    port: int
    health: health.HealthServicer
    draining: threading.Event
    #: Reloads the TLS files and the principals file (SIGHUP).
    reload: Callable[[], None]

    def drain(self, grace_seconds: float, delay_s: float = 0.0) -> threading.Event:
        """Stop taking calls: health NOT_SERVING and new calls UNAVAILABLE at once, the port
        open ``delay_s`` more (so health checkers see NOT_SERVING), then up to
        ``grace_seconds`` for in-flight calls."""
        self.draining.set()
        self.health.enter_graceful_shutdown()
        log.info("draining: health NOT_SERVING, port closing in %.1f s, then up to %.0f s for "
                 "in-flight calls", delay_s, grace_seconds)
        if delay_s > 0:
            time.sleep(delay_s)
        return self.server.stop(grace_seconds)


def start_server(app: App, settings: ServerSettings, *, security: Any = None,
                 observer: Any = None) -> RunningServer:
    """Build, bind and start the server for ``app`` (port 0 picks a free port).
    ``security``: SecuritySettings (TLS, principals, rate limits; None: none of them);
    ``observer``: metrics (calls, solves, plans)."""
    from gridshift.service.auth import Guard
    from gridshift.service.errors import ErrorMappingInterceptor
    from gridshift.service.tls import server_credentials

    options = [("grpc.max_receive_message_length", settings.max_message_bytes),
               ("grpc.max_send_message_length", settings.max_message_bytes),
               ("grpc.so_reuseport", 0)]
    threads = settings.max_concurrent_solves + settings.max_queued_solves + 8
    guard = Guard(security.tokens_file if security else None,
                  rate_per_s=security.rate_limit_per_s if security else 0.0,
                  burst=security.rate_limit_burst if security else 1,
                  certificates=bool(security and security.client_ca))
    _refuse_insecure(settings, security, guard)
    draining = threading.Event()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=threads, thread_name_prefix="rpc"),
                         interceptors=[ErrorMappingInterceptor(guard, observer, draining,
                                                               app.tracing)],
                         options=options, maximum_concurrent_rpcs=threads * 4)
    scheduler_pb2_grpc.add_SchedulerServicer_to_server(
        SchedulerServicer(app, settings, observer), server)
    health_servicer = health.HealthServicer(experimental_non_blocking=True)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    if settings.reflection:
        from gridshift.service.reflection import enable_reflection

        enable_reflection((SERVICE_NAME, health.SERVICE_NAME), server)
    address = f"{settings.host}:{settings.port}"
    credentials = server_credentials(security) if security and security.tls else None
    if credentials is None:
        port = server.add_insecure_port(address)
    else:
        port = server.add_secure_port(address, credentials.credentials)
    if port == 0:
        raise OSError(f"cannot listen on {address}")
    server.start()
    for name in ("", SERVICE_NAME):
        health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    log.info("listening on %s:%d (%s, %s)", settings.host, port,
             "mutual TLS" if security and security.client_ca else
             "TLS" if credentials else "plaintext",
             "principals" if guard.authenticating else "no authentication")

    def reload() -> None:
        guard.reload()
        if credentials is not None:
            credentials.reload()

    return RunningServer(server, port, health_servicer, draining, reload)


_LOOPBACK = ("127.0.0.1", "::1", "localhost", "[::1]")


def _refuse_insecure(settings: ServerSettings, security: Any, guard: Any) -> None:
    """A server reachable beyond loopback needs TLS and principals, unless
    ``allow_insecure``; and TLS settings must be whole."""
    problems = []
    if security is not None:
        if bool(security.tls_cert) != bool(security.tls_key):
            problems.append(FieldViolation("[security].tls_key", "tls_cert and tls_key go "
                                                                  "together"))
        if security.client_ca and not security.tls_cert:
            problems.append(FieldViolation("[security].client_ca", "mutual TLS needs tls_cert "
                                                                    "and tls_key too"))
    exposed = settings.host not in _LOOPBACK
    secure = security is not None and security.tls and guard.authenticating
    if exposed and not secure and not (security is not None and security.allow_insecure):
        problems.append(FieldViolation(
            "[server].host", f"{settings.host} is reachable beyond this machine, so the server "
            "needs TLS ([security].tls_cert, tls_key) and principals ([security].tokens_file); "
            "set [security].allow_insecure (GRIDSHIFT_ALLOW_INSECURE=on) to serve without"))
    if problems:
        from gridshift.settings import InvalidSettingsError

        raise InvalidSettingsError(problems)
