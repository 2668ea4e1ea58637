"""The gRPC Scheduler service: a thin translation layer (proto → domain → optimizer → proto),
bounded concurrency, deadlines and cancellation, health and reflection."""

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
from gridshift.adapters.grpc_errors import ErrorMappingInterceptor, shorten
from gridshift.api.v1 import optimize_pb2 as pb
from gridshift.api.v1 import scheduler_pb2, scheduler_pb2_grpc
from gridshift.optimizer.errors import FieldViolation, InvalidInputError, OverloadedError
from gridshift.optimizer.problem import Problem
from gridshift.optimizer.solve import SolveResult, solve

log = logging.getLogger("gridshift.server")
SERVICE_NAME = scheduler_pb2.DESCRIPTOR.services_by_name["Scheduler"].full_name
# Messages up to 64 MiB each way: a week of 5-minute slots for thousands of jobs fits.
MAX_MESSAGE_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class ServerSettings:
    host: str = "127.0.0.1"
    port: int = 50051
    max_concurrent_solves: int = 2
    max_queued_solves: int = 8
    grace_seconds: float = 30.0
    max_message_bytes: int = MAX_MESSAGE_BYTES
    # Part of a call's remaining time kept back for building and sending the response.
    deadline_margin_s: float = 0.3
    deadline_margin_share: float = 0.1


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


PrepareFn = Callable[[dict[str, Any]], Problem]


class SchedulerServicer(scheduler_pb2_grpc.SchedulerServicer):
    """Optimize and StreamOptimize over an injected `prepare` (request dict → Problem), and the
    forecast queries over an injected `forecasts` object (get_forecasts / best_windows)."""

    def __init__(self, prepare: PrepareFn, settings: ServerSettings,
                 forecasts: Any = None, solve_fn: Callable[..., SolveResult] = solve,
                 scorer: Any = None, plans: Any = None) -> None:
        self._prepare = prepare
        self._plans = plans
        self._solve_fn = solve_fn
        self._scorer = scorer
        self._forecasts = forecasts
        self._settings = settings
        self._slots = SolveSlots(settings.max_concurrent_solves, settings.max_queued_solves)

    def Optimize(self, request: pb.OptimizeRequest, context: grpc.ServicerContext):
        result = self._solve(request, context, on_progress=None)
        return self._planned(request, result)

    def _planned(self, request: pb.OptimizeRequest, result: SolveResult) -> pb.OptimizeResponse:
        """The response, stored with its request when a plan store is configured."""
        response = to_response(result)
        if self._plans is not None:
            self._plans.save(result, response, request_to_dict(request), "grpc")
        return response

    def StreamOptimize(self, request: pb.OptimizeRequest, context: grpc.ServicerContext):
        events: queue.Queue = queue.Queue()
        outcome: dict[str, Any] = {}

        def run() -> None:
            try:
                outcome["result"] = self._solve(request, context, on_progress=events.put)
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
        yield scheduler_pb2.OptimizeEvent(result=self._planned(request, outcome["result"]))

    @staticmethod
    def _required(component: Any, what: str, context: grpc.ServicerContext) -> Any:
        """An injected component, or UNIMPLEMENTED when this server was built without it."""
        if component is None:
            context.abort(grpc.StatusCode.UNIMPLEMENTED, f"{what} is not configured")
        return component

    def _queries(self, context: grpc.ServicerContext) -> Any:
        return self._required(self._forecasts, "forecast querying", context)

    def GetForecast(self, request, context: grpc.ServicerContext):
        start, end = timestamp_or_none(request, "start"), timestamp_or_none(request, "end")
        series = self._queries(context).get_forecasts(list(request.regions), start, end,
                                               request.slot_minutes or 60)
        return forecast_response(series)

    def FindBestWindow(self, request, context: grpc.ServicerContext):
        result = self._queries(context).best_windows(
            list(request.regions), request.duration_minutes,
            timestamp_or_none(request, "window_start"), timestamp_or_none(request, "window_end"))
        return best_window_response(result)

    def _store(self, context: grpc.ServicerContext) -> Any:
        return self._required(self._plans, "the plan store", context)

    def GetPlan(self, request, context: grpc.ServicerContext):
        if not request.plan_id.strip():
            raise InvalidInputError([FieldViolation("plan_id", "required")])
        found = self._store(context).get(request.plan_id)
        if found is None:
            context.abort(grpc.StatusCode.NOT_FOUND, f"no plan {shorten(request.plan_id, 100)!r}")
        return found

    def ListPlans(self, request, context: grpc.ServicerContext):
        return self._store(context).list(request)

    def GetCarbonReport(self, request, context: grpc.ServicerContext):
        return self._store(context).report(request)

    def ScoreSchedules(self, request, context: grpc.ServicerContext):
        scorer = self._required(self._scorer, "scoring", context)
        with self._slots.slot(context.is_active):
            return scorer(request)

    def _solve(self, request: pb.OptimizeRequest, context: grpc.ServicerContext,
               on_progress) -> SolveResult:
        problem = self._prepare(request_to_dict(request))
        with self._slots.slot(context.is_active):
            limit = self._time_limit(problem, context)
            started = time.monotonic()
            result = self._solve_fn(problem, on_progress=on_progress, time_limit_s=limit,
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


def start_server(prepare: PrepareFn, settings: ServerSettings, forecasts: Any = None,
                 solve_fn: Callable[..., SolveResult] = solve,
                 scorer: Any = None, plans: Any = None) -> RunningServer:
    """Build, bind and start the server (port 0 picks a free port)."""
    options = [("grpc.max_receive_message_length", settings.max_message_bytes),
               ("grpc.max_send_message_length", settings.max_message_bytes),
               ("grpc.so_reuseport", 0)]
    threads = settings.max_concurrent_solves + settings.max_queued_solves + 8
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=threads, thread_name_prefix="rpc"),
                         interceptors=[ErrorMappingInterceptor()], options=options,
                         maximum_concurrent_rpcs=threads * 4)
    scheduler_pb2_grpc.add_SchedulerServicer_to_server(
        SchedulerServicer(prepare, settings, forecasts, solve_fn, scorer, plans), server)
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
