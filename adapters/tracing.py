"""OpenTelemetry tracing of one gridshift process (the optional ``tracing`` extra).

:func:`build_tracing` gives a :class:`Tracing` over a tracer provider of its own (nothing
global is set): one SERVER span per gRPC call, its parent taken from the call's W3C
``traceparent`` metadata, and child spans for the work of a plan (validation, site supply,
forecasts, compiling, the solve and each of its phases, risk, storing). When tracing is
switched off, or ``opentelemetry`` is not installed, it gives :data:`NO_TRACING`, whose every
method does nothing, so the rest of gridshift never asks whether tracing is on.

opentelemetry is imported only here, and only when tracing is switched on; the core reports
its phases as ``phase`` progress events (:mod:`gridshift.optimizer.solve`), which
:meth:`Tracing.phase_sink` turns into spans after the fact, with their real start and end.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["EXPORTERS", "NO_TRACING", "NoTracing", "Tracing", "TracingConfig", "build_tracing"]

log = logging.getLogger("gridshift.tracing")

#: Where spans go: an OTLP/gRPC collector, JSON lines on stdout, or nowhere (spans are still
#: made and trace context still propagated).
EXPORTERS = ("otlp", "console", "none")
#: Prefix of gridshift's own span names and attributes.
PREFIX = "gridshift."
#: Progress events that become events on the solve span (with their objective and bound).
_SOLUTION_EVENTS = ("first_plan", "heuristic", "incumbent")

ProgressSink = Callable[[dict], None]


@dataclass(frozen=True)
class TracingConfig:
    """``[tracing]``: switched on or off; the exporter (``otlp``, ``console`` or ``none``); the
    OTLP/gRPC endpoint (``http://host:4317`` for a plaintext collector; empty: the exporter's
    default or ``OTEL_EXPORTER_OTLP_ENDPOINT``); the ``service.name`` of the spans; the share
    of new traces sampled (a call whose caller sent a sampled ``traceparent`` is always
    traced)."""

    enabled: bool = False
    exporter: str = "otlp"
    endpoint: str = ""
    service_name: str = "gridshift"
    sample_ratio: float = 1.0


class _NoSpan:
    """A span that records nothing (tracing off)."""

    def __enter__(self) -> _NoSpan:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def set(self, **attributes: Any) -> None:
        """Nothing."""

    def finish(self, code: str, status_code: int, message: str = "", **attributes: Any
               ) -> None:
        """Nothing."""


_NO_SPAN = _NoSpan()


class NoTracing:
    """Tracing switched off: every method does nothing and costs next to nothing."""

    enabled = False

    def span(self, name: str, **attributes: Any) -> _NoSpan:
        """A span that records nothing."""
        return _NO_SPAN

    def start_call(self, method: str, metadata: Mapping[str, str]) -> _NoSpan:
        """A call span that records nothing."""
        return _NO_SPAN

    def annotate(self, **attributes: Any) -> None:
        """Nothing."""

    def phase_sink(self, on_progress: ProgressSink | None) -> ProgressSink | None:
        """``on_progress`` itself."""
        return on_progress

    def shutdown(self) -> None:
        """Nothing."""


#: The tracing of a process that does not trace.
NO_TRACING = NoTracing()


def _attributes(attributes: Mapping[str, Any]) -> dict[str, Any]:
    """gridshift's attributes under their prefixed names, None left out and anything that is
    not a bool, number or string written as a string."""
    out = {}
    for key, value in attributes.items():
        if value is None:
            continue
        out[PREFIX + key] = value if isinstance(value, bool | int | float | str) else str(value)
    return out


class _Span:
    """An open span: the current one while it is open (a ``with`` block)."""

    def __init__(self, span: Any, context_api: Any, trace_api: Any) -> None:
        self._span = span
        self._context = context_api
        self._trace = trace_api
        self._token: Any = None

    def __enter__(self) -> _Span:
        self._token = self._context.attach(self._trace.set_span_in_context(self._span))
        return self

    def __exit__(self, kind: type | None, exc: BaseException | None, tb: Any) -> None:
        if exc is not None:
            self._span.record_exception(exc)
            self._span.set_status(self._trace.Status(self._trace.StatusCode.ERROR,
                                                     f"{type(exc).__name__}: {exc}"[:500]))
        self._span.end()
        self._context.detach(self._token)

    def set(self, **attributes: Any) -> None:
        """Attributes, named without the ``gridshift.`` prefix."""
        self._span.set_attributes(_attributes(attributes))

    def finish(self, code: str, status_code: int, message: str = "", **attributes: Any
               ) -> None:
        """Ends a call span with its gRPC status (any code but OK is an error) and
        ``attributes``; the span stops being the current one."""
        self._span.set_attributes({"rpc.grpc.status_code": status_code,
                                   **_attributes({"status": code, **attributes})})
        if code != "OK":
            self._span.set_status(self._trace.Status(self._trace.StatusCode.ERROR,
                                                     f"{code}: {message}"[:500]))
        self.__exit__(None, None, None)


class Tracing:
    """Spans of one process, to ``exporter`` (an OpenTelemetry ``SpanExporter``); made by
    :func:`build_tracing`. ``batch``: export in the background (False: as each span ends)."""

    enabled = True

    def __init__(self, config: TracingConfig, exporter: Any | None, *, batch: bool = True
                 ) -> None:
        from opentelemetry import context, trace
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
        from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        self.config = config
        self._context, self._trace = context, trace
        self._provider = TracerProvider(
            resource=Resource.create({"service.name": config.service_name}),
            sampler=ParentBased(TraceIdRatioBased(config.sample_ratio)))
        if exporter is not None:
            processor = BatchSpanProcessor if batch else SimpleSpanProcessor
            self._provider.add_span_processor(processor(exporter))
        self._tracer = self._provider.get_tracer("gridshift")
        self._propagator = TraceContextTextMapPropagator()

    def span(self, name: str, **attributes: Any) -> _Span:
        """A child of the current span (use it in a ``with`` block: it is the current span
        inside, and an exception escaping it marks it as an error)."""
        return _Span(self._tracer.start_span(PREFIX + name, attributes=_attributes(attributes)),
                     self._context, self._trace)

    def start_call(self, method: str, metadata: Mapping[str, str]) -> _Span:
        """The SERVER span of a gRPC call to ``method`` (``/package.Service/Method``), the
        current span until :meth:`_Span.finish`; its parent is the caller's span when the
        call's metadata carries a W3C ``traceparent``."""
        parent = self._propagator.extract(carrier=metadata)
        service, _, name = method.strip("/").rpartition("/")
        span = self._tracer.start_span(
            method.strip("/"), context=parent, kind=self._trace.SpanKind.SERVER,
            attributes={"rpc.system": "grpc", "rpc.service": service, "rpc.method": name})
        return _Span(span, self._context, self._trace).__enter__()

    def annotate(self, **attributes: Any) -> None:
        """Attributes on the current span (named without the ``gridshift.`` prefix)."""
        self._trace.get_current_span().set_attributes(_attributes(attributes))

    def phase_sink(self, on_progress: ProgressSink | None) -> ProgressSink:
        """A progress sink that makes each ``phase`` event of the solve a child span of the
        current span (named ``gridshift.solve.<phase>``, its start and end as they were) and
        each new plan (first plan, heuristic, incumbent) an event on it, then hands every
        event to ``on_progress``."""
        parent = self._trace.get_current_span()
        parent_context = self._trace.set_span_in_context(parent)

        def sink(event: dict) -> None:
            kind = event.get("kind")
            if kind == "phase":
                end_ns = time.time_ns()
                span = self._tracer.start_span(
                    f"{PREFIX}solve.{event.get('phase')}", context=parent_context,
                    start_time=end_ns - int(1e9 * float(event.get("seconds", 0.0))))
                if not event.get("ok", True):
                    span.set_status(self._trace.Status(self._trace.StatusCode.ERROR,
                                                       "the phase raised"))
                span.end(end_time=end_ns)
            elif kind in _SOLUTION_EVENTS:
                parent.add_event(kind, _attributes({
                    key: event.get(key) for key in ("objective", "best_bound", "unplaced",
                                                    "elapsed_s")}))
            if on_progress is not None:
                on_progress(event)

        return sink

    def shutdown(self) -> None:
        """Export what is left and stop."""
        self._provider.shutdown()


def build_tracing(config: TracingConfig, *, exporter: Any | None = None
                  ) -> Tracing | NoTracing:
    """The tracing ``config`` asks for: :data:`NO_TRACING` when it is off or opentelemetry
    (or the OTLP exporter) is not installed (logged). ``exporter``: send the spans to this
    ``SpanExporter`` instead, each as it ends (tests: an in-memory one)."""
    if not config.enabled:
        return NO_TRACING
    try:
        if exporter is not None:
            return Tracing(config, exporter, batch=False)
        return Tracing(config, _exporter(config))
    except ImportError as exc:
        log.warning("tracing is switched on but %s is not installed (pip install "
                    "'gridshift[tracing]'): no spans are made", exc.name or exc)
        return NO_TRACING


def _exporter(config: TracingConfig) -> Any | None:
    if config.exporter == "otlp":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter(endpoint=config.endpoint or None)
    if config.exporter == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return ConsoleSpanExporter(service_name=config.service_name)
    return None
