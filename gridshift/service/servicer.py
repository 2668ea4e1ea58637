"""The gRPC Scheduler service: a thin translation layer (protobuf → codec → application →
codec → protobuf), bounded concurrency, deadlines and cancellation, health and reflection."""

from __future__ import annotations

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
from grpc_reflection.v1alpha import reflection

from gridshift.adapters.codec import request_to_dict, to_response
from gridshift.adapters.forecast_codec import (
    best_window_response,
    forecast_response,
    timestamp_or_none,
)
from gridshift.adapters.plan_codec import get_plan_response, report_response, summary_of
from gridshift.adapters.scoring_codec import candidates_of, score_response
from gridshift.adapters.store import PlanFilter
from gridshift.api.v1 import optimize_pb2 as pb
from gridshift.api.v1 import plans_pb2, scheduler_pb2, scheduler_pb2_grpc
from gridshift.app.application import App
from gridshift.app.planning import PlanOutcome
from gridshift.app.plans import PlanArchive
from gridshift.app.reports import build_report
from gridshift.app.scoring import score_candidates
from gridshift.optimizer.errors import FieldViolation, InvalidInputError, OverloadedError
from gridshift.optimizer.problem import Problem
from gridshift.optimizer.solve import SolveResult
from gridshift.service.errors import ErrorMappingInterceptor, shorten
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


class SchedulerServicer(scheduler_pb2_grpc.SchedulerServicer):
    """Every RPC of the Scheduler service over one application (:class:`~gridshift.app.App`);
    a server built without a plan store answers the stored-plan RPCs UNIMPLEMENTED."""

    def __init__(self, app: App, settings: ServerSettings) -> None:
        self._app = app
        self._settings = settings
        self._slots = SolveSlots(settings.max_concurrent_solves, settings.max_queued_solves)

    def Optimize(self, request: pb.OptimizeRequest, context: grpc.ServicerContext):
        data = request_to_dict(request)
        return self._planned(data, self._solve(data, context, on_progress=None))

    def _planned(self, data: dict[str, Any], result: SolveResult) -> pb.OptimizeResponse:
        """The response, stored with its request when a plan store is configured."""
        outcome: PlanOutcome = self._app.planner.keep(result, data, "grpc")
        response = to_response(result, outcome.plan_id)
        if outcome.store_error:
            response.solver.status_detail += f"; not stored: {shorten(outcome.store_error, 300)}"
        return response

    def StreamOptimize(self, request: pb.OptimizeRequest, context: grpc.ServicerContext):
        data = request_to_dict(request)
        events: queue.Queue = queue.Queue()
        outcome: dict[str, Any] = {}

        def run() -> None:
            try:
                outcome["result"] = self._solve(data, context, on_progress=events.put)
            except BaseException as exc:  # noqa: BLE001 - re-raised in the handler thread
                outcome["error"] = exc
            finally:
                events.put(None)

        worker = threading.Thread(target=run, daemon=True)
        worker.start()
        while (event := events.get()) is not None:
            if "objective" in event:
                yield scheduler_pb2.OptimizeEvent(progress=_progress(event))
        worker.join()
        if "error" in outcome:
            raise outcome["error"]
        yield scheduler_pb2.OptimizeEvent(result=self._planned(data, outcome["result"]))

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
        return get_plan_response(record)

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
        records, token = archive.list(flt, request.page_size or 50, request.page_token or None)
        return plans_pb2.ListPlansResponse(plans=[summary_of(r) for r in records],
                                           next_page_token=token or "")

    def GetCarbonReport(self, request, context: grpc.ServicerContext):
        report = build_report(self._archive(context), timestamp_or_none(request, "start"),
                              timestamp_or_none(request, "end"), request.team or None,
                              request.site or None, request.format or "json",
                              request.list_superseded)
        return report_response(report)

    def ScoreSchedules(self, request, context: grpc.ServicerContext):
        candidates = candidates_of(request.candidates)
        data = request_to_dict(request.problem)
        with self._slots.slot(context.is_active):
            table = score_candidates(self._app.planner, data, candidates, request.scenarios,
                                     request.seed)
        return score_response(table)

    def _solve(self, data: dict[str, Any], context: grpc.ServicerContext,
               on_progress) -> SolveResult:
        problem = self._app.planner.prepare(data, time_budget_s=self._planning_budget(context))
        with self._slots.slot(context.is_active):
            limit = self._time_limit(problem, context)
            started = time.monotonic()
            result = self._app.planner.solve(problem, on_progress=on_progress,
                                             time_limit_s=limit,
                                             stop_flag=lambda: not context.is_active())
            log.info("solved %d jobs: %s, objective %.3f, gap %.4f, %.2f s (limit %.2f s)",
                     problem.n_jobs, result.status, result.objective, result.gap,
                     time.monotonic() - started, limit)
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

    def drain(self, grace_seconds: float) -> threading.Event:
        """Stop taking calls (health NOT_SERVING) and let in-flight ones finish."""
        self.health.enter_graceful_shutdown()
        log.info("draining: health NOT_SERVING, up to %.0f s for in-flight calls", grace_seconds)
        return self.server.stop(grace_seconds)


def start_server(app: App, settings: ServerSettings) -> RunningServer:
    """Build, bind and start the server for ``app`` (port 0 picks a free port)."""
    options = [("grpc.max_receive_message_length", settings.max_message_bytes),
               ("grpc.max_send_message_length", settings.max_message_bytes),
               ("grpc.so_reuseport", 0)]
    threads = settings.max_concurrent_solves + settings.max_queued_solves + 8
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=threads, thread_name_prefix="rpc"),
                         interceptors=[ErrorMappingInterceptor()], options=options,
                         maximum_concurrent_rpcs=threads * 4)
    scheduler_pb2_grpc.add_SchedulerServicer_to_server(
        SchedulerServicer(app, settings), server)
    health_servicer = health.HealthServicer(experimental_non_blocking=True)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        (SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME), server)
    port = server.add_insecure_port(f"{settings.host}:{settings.port}")
    if port == 0:
        raise OSError(f"cannot listen on {settings.host}:{settings.port}")
    server.start()
    for name in ("", SERVICE_NAME):
        health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    log.info("listening on %s:%d", settings.host, port)
    return RunningServer(server, port, health_servicer)
