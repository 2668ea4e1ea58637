"""Prometheus metrics of one gridshift process, in a registry of its own (no module-level
state): gRPC calls by method and code with their latency, solves running and queued, solve
time and gap, forecast resolutions by provider and outcome (fallbacks, stale serves, cache
hits, errors), plan-store latency, and the emissions planned and saved.

`gridshift serve` exposes them on an HTTP port of their own (:meth:`Metrics.serve`); a nightly
run writes them to a node-exporter textfile or pushes them to a Pushgateway
(:meth:`Metrics.write`)."""

from __future__ import annotations

import math
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    push_to_gateway,
    start_http_server,
    write_to_textfile,
)

from gridshift.optimizer.accounting import savings

__all__ = ["Metrics"]

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
_GAP_BUCKETS = (0.0, 1e-4, 1e-3, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0)


class Metrics:
    """The process's metrics; every method is safe to call from any thread."""

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.calls = Counter("gridshift_grpc_calls", "gRPC calls by method and status code",
                             ["method", "code"], registry=r)
        self.call_seconds = Histogram("gridshift_grpc_call_seconds", "gRPC call latency",
                                      ["method"], buckets=_LATENCY_BUCKETS, registry=r)
        self.solves_running = Gauge("gridshift_solves_running", "planning calls in a solve "
                                    "slot (validating, fetching forecasts or solving)",
                                    registry=r)
        self.solves_queued = Gauge("gridshift_solves_queued", "planning calls waiting for a "
                                   "solve slot", registry=r)
        self.solves = Counter("gridshift_solves", "solves by status", ["status"], registry=r)
        self.solve_seconds = Histogram("gridshift_solve_seconds", "solve wall time",
                                       buckets=_LATENCY_BUCKETS, registry=r)
        self.solve_gap = Histogram("gridshift_solve_gap", "relative gap of the plans returned",
                                   buckets=_GAP_BUCKETS, registry=r)
        self.forecasts = Counter("gridshift_forecast_resolutions", "forecast resolutions by "
                                 "provider and outcome (ok, cache_hit, fallback, stale, error)",
                                 ["provider", "outcome"], registry=r)
        self.store_seconds = Histogram("gridshift_store_seconds", "plan store: time to store "
                                       "a plan", ["outcome"], buckets=_LATENCY_BUCKETS,
                                       registry=r)
        self.plans = Counter("gridshift_plans", "plans made, by whether they were stored",
                             ["stored"], registry=r)
        self.emissions_planned = Counter("gridshift_emissions_planned_kg", "emissions of the "
                                         "plans made (kg CO2e, forecast)", registry=r)
        self.emissions_saved = Counter("gridshift_emissions_saved_kg", "emissions saved against "
                                       "the FIFO baseline on the jobs both place (kg CO2e)",
                                       registry=r)

    # -- the service ---------------------------------------------------------------------

    def call_finished(self, method: str, code: str, seconds: float) -> None:
        self.calls.labels(method, code).inc()
        self.call_seconds.labels(method).observe(seconds)

    def solve_queued(self, delta: int) -> None:
        self.solves_queued.inc(delta)

    def solve_running(self, delta: int) -> None:
        self.solves_running.inc(delta)

    def solve_finished(self, result: Any, seconds: float) -> None:
        self.solves.labels(result.status).inc()
        self.solve_seconds.observe(seconds)
        if result.status != "INFEASIBLE" and math.isfinite(result.gap):
            self.solve_gap.observe(max(0.0, result.gap))

    # -- planning, the store, forecasts --------------------------------------------------

    def plan_kept(self, result: Any, stored: bool, store_seconds: float | None) -> None:
        self.plans.labels("yes" if stored else "no").inc()
        if store_seconds is not None:
            self.store_seconds.labels("ok" if stored else "error").observe(store_seconds)
        if result.status == "INFEASIBLE":
            return
        planned = result.figures.totals.emissions_kg
        if math.isfinite(planned):
            self.emissions_planned.inc(max(0.0, planned))
        saved = savings(result.figures, result.baseline_figures).saved_kg
        if math.isfinite(saved) and saved > 0:
            self.emissions_saved.inc(saved)

    def forecast(self, provider: str, outcome: str) -> None:
        self.forecasts.labels(provider, outcome).inc()

    # -- exposition ----------------------------------------------------------------------

    def serve(self, host: str, port: int) -> tuple[Any, int]:
        """An HTTP endpoint (/metrics) on its own port (0: any free one); (server, port)."""
        server, _thread = start_http_server(port, addr=host, registry=self.registry)
        return server, server.server_address[1]

    def write(self, textfile: str = "", pushgateway: str = "", job: str = "gridshift") -> None:
        """Write to a node-exporter textfile and/or push to a Pushgateway (nightly runs)."""
        if textfile:
            write_to_textfile(textfile, self.registry)
        if pushgateway:
            push_to_gateway(pushgateway, job=job, registry=self.registry, timeout=10)
