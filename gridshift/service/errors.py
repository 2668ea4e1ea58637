"""One server interceptor around every call: it gives the call a request id (from
`x-request-id` metadata or a new one) for logs and for the caller, parses the request itself
(a message that cannot be parsed is the client's fault: INVALID_ARGUMENT, never INTERNAL),
refuses new calls while the server drains (UNAVAILABLE), lets the guard authenticate and
authorise it (UNAUTHENTICATED, PERMISSION_DENIED, rate limits), maps domain errors to status
codes, and ends it with one audit log line (principal, method, code, plan id) and its metrics.
With tracing on, each call but health checks is one SERVER span (its parent the caller's span
when the metadata carries a W3C ``traceparent``), ended with the call's status: any code but
OK marks it as an error.

invalid input → INVALID_ARGUMENT, the field paths of the first 10 problems in the message and
in google.rpc.BadRequest details (then how many more there are); overload →
RESOURCE_EXHAUSTED; upstream unavailable → UNAVAILABLE; cancelled → CANCELLED; anything else →
INTERNAL with only the request id in the message (the traceback is logged server-side).
"""

from __future__ import annotations

import contextvars
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from gridshift.adapters.tracing import NO_TRACING, NoTracing, Tracing
from gridshift.optimizer.errors import (
    ErrorCategory,
    FieldViolation,
    GridshiftError,
    InvalidInputError,
)
from gridshift.service.auth import Guard, PermissionDenied, Unauthenticated, principal_var

log = logging.getLogger("gridshift.server")
audit_log = logging.getLogger("gridshift.audit")
request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")

_CODES = {
    ErrorCategory.INVALID_INPUT: code_pb2.INVALID_ARGUMENT,
    ErrorCategory.OVERLOADED: code_pb2.RESOURCE_EXHAUSTED,
    ErrorCategory.UNAVAILABLE: code_pb2.UNAVAILABLE,
    ErrorCategory.DEADLINE: code_pb2.DEADLINE_EXCEEDED,
    ErrorCategory.INFEASIBLE: code_pb2.FAILED_PRECONDITION,
    ErrorCategory.CANCELLED: code_pb2.CANCELLED,
}
_SERVICE_CODES = {Unauthenticated: code_pb2.UNAUTHENTICATED,
                  PermissionDenied: code_pb2.PERMISSION_DENIED}


@dataclass
class CallRecord:
    """What the audit line and the metrics say of a call; the servicer fills ``plan_id`` and
    reads ``request_bytes`` (the size of the request message as received)."""

    method: str
    request_id: str
    principal: str = "-"
    plan_id: str = ""
    request_bytes: int = 0
    code: str = "OK"
    #: The status message of a call that failed (for its span).
    message: str = ""


call_var: contextvars.ContextVar[CallRecord | None] = contextvars.ContextVar("call", default=None)


def note_plan_id(plan_id: str) -> None:
    """The plan id the current call made or read, for its audit line."""
    record = call_var.get()
    if record is not None:
        record.plan_id = plan_id


class CallObserver(Protocol):
    """Told of every finished call (metrics)."""

    def call_finished(self, method: str, code: str, seconds: float) -> None: ...


class RequestIdFilter(logging.Filter):
    """Adds the current call's request id to every log record."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get()
        return True


# The status travels in trailing metadata, which clients cap (grpc: 8 KB soft, 16 KB hard): a
# request with thousands of problems must still arrive as INVALID_ARGUMENT, so only the first
# ones are sent, each cut to MAX_TEXT_CHARS (at most about 7 KB in all).
MESSAGE_VIOLATIONS = 10
DETAIL_VIOLATIONS = 10
MAX_TEXT_CHARS = 150


def status_for(exc: BaseException, request_id: str) -> status_pb2.Status:
    """The rich status a domain error (or a bug) maps to."""
    if isinstance(exc, InvalidInputError):
        return _invalid_argument(exc)
    for kind, code in _SERVICE_CODES.items():
        if isinstance(exc, kind):
            return status_pb2.Status(code=code, message=shorten(str(exc), 2000))
    if isinstance(exc, GridshiftError) and exc.category in _CODES:
        return status_pb2.Status(code=_CODES[exc.category], message=shorten(str(exc), 2000))
    return status_pb2.Status(code=code_pb2.INTERNAL,
                             message=f"internal error (request id {request_id})")


def _invalid_argument(exc: InvalidInputError) -> status_pb2.Status:
    """Every field path up to MESSAGE_VIOLATIONS in the message and DETAIL_VIOLATIONS in the
    BadRequest details, then how many more there are."""
    bad = error_details_pb2.BadRequest()
    for v in exc.violations[:DETAIL_VIOLATIONS]:
        bad.field_violations.add(field=shorten(v.field), description=shorten(v.problem))
    detail = any_pb2.Any()
    detail.Pack(bad)
    shown = [shorten(str(v)) for v in exc.violations[:MESSAGE_VIOLATIONS]]
    more = len(exc.violations) - len(shown)
    message = "invalid request: " + "; ".join(shown) + (
        f"; ... and {more} more problem(s)" if more else "")
    return status_pb2.Status(code=code_pb2.INVALID_ARGUMENT, message=message, details=[detail])


def shorten(text: str, limit: int = MAX_TEXT_CHARS) -> str:
    """``text``, cut to ``limit`` characters with its full length noted (for status messages,
    which travel in size-capped metadata)."""
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


class ErrorMappingInterceptor(grpc.ServerInterceptor):
    """Wraps every handler; see the module docstring. ``guard``: authentication and limits
    (None: every call admitted); ``observer``: metrics; ``draining``: set when the server
    shuts down (new calls but health's are then UNAVAILABLE); ``tracing``: a span per call."""

    def __init__(self, guard: Guard | None = None, observer: CallObserver | None = None,
                 draining: threading.Event | None = None,
                 tracing: Tracing | NoTracing = NO_TRACING) -> None:
        self._guard = guard
        self._observer = observer
        self._draining = draining or threading.Event()
        self._tracing = tracing

    def intercept_service(self, continuation: Callable, handler_call_details: Any) -> Any:
        handler = continuation(handler_call_details)
        if handler is None:
            return None
        method = handler_call_details.method
        parse = handler.request_deserializer
        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(
                self._unary(handler.unary_unary, method, parse),
                request_deserializer=None, response_serializer=handler.response_serializer)
        if handler.unary_stream is not None:
            return grpc.unary_stream_rpc_method_handler(
                self._stream(handler.unary_stream, method, parse),
                request_deserializer=None, response_serializer=handler.response_serializer)
        if handler.stream_stream is not None:   # server reflection
            return grpc.stream_stream_rpc_method_handler(
                self._stream(handler.stream_stream, method, None),
                request_deserializer=parse, response_serializer=handler.response_serializer)
        return handler

    def _unary(self, behaviour: Callable, method: str, parse: Callable | None) -> Callable:
        def wrapped(request: Any, context: grpc.ServicerContext) -> Any:
            tokens, record, started, span = self._begin(context, method, request)
            try:
                self._admit(method, context)
                return behaviour(_parsed(request, parse, method), context)
            except Exception as exc:  # noqa: BLE001 - the one place errors become statuses
                record.code = _abort(context, exc, method)
            finally:
                self._end(context, record, started, tokens, span)
        return wrapped

    def _stream(self, behaviour: Callable, method: str, parse: Callable | None) -> Callable:
        def wrapped(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
            tokens, record, started, span = self._begin(context, method, request)
            try:
                self._admit(method, context)
                yield from behaviour(_parsed(request, parse, method) if parse else request,
                                     context)
            except Exception as exc:  # noqa: BLE001 - the one place errors become statuses
                record.code = _abort(context, exc, method)
            finally:
                self._end(context, record, started, tokens, span)
        return wrapped

    def _begin(self, context: grpc.ServicerContext, method: str, request: Any
               ) -> tuple[tuple, CallRecord, float, Any]:
        metadata = dict(context.invocation_metadata() or ())
        request_id = str(metadata.get("x-request-id") or uuid.uuid4().hex[:16])[:64]
        context.send_initial_metadata((("x-request-id", request_id),))
        record = CallRecord(method=method, request_id=request_id,
                            request_bytes=len(request) if isinstance(request, bytes) else 0)
        tracing = NO_TRACING if method.startswith("/grpc.health.") else self._tracing
        span = tracing.start_call(method, metadata)
        return ((request_id_var.set(request_id), call_var.set(record)), record,
                time.monotonic(), span)

    def _admit(self, method: str, context: grpc.ServicerContext) -> None:
        if self._draining.is_set() and not method.startswith("/grpc.health."):
            raise _ShuttingDown("the server is shutting down; retry on another instance")
        if self._guard is not None:
            principal = self._guard.admit(method, context)
            if principal is not None:
                principal_var.set(principal)
                record = call_var.get()
                if record is not None:
                    record.principal = principal.name

    def _end(self, context: grpc.ServicerContext, record: CallRecord, started: float,
             tokens: tuple, span: Any) -> None:
        seconds = time.monotonic() - started
        if record.code == "OK":
            code = _context_code(context)
            record.code = code.name if code is not None else (
                "OK" if context.is_active() or not _cancelled(context) else "CANCELLED")
        if not record.method.startswith("/grpc.health."):
            audit_log.info("call %s %s by %s: %s%s", record.method.rsplit("/", 1)[-1],
                           record.request_id, record.principal, record.code,
                           f" plan {record.plan_id}" if record.plan_id else "",
                           extra={"principal": record.principal, "method": record.method,
                                  "code": record.code, "plan_id": record.plan_id,
                                  "peer": context.peer(),
                                  "duration_ms": round(1000 * seconds, 1)})
        if self._observer is not None:
            self._observer.call_finished(record.method, record.code, seconds)
        principal = principal_var.get()
        span.finish(record.code, _STATUS_NUMBERS.get(record.code, 2), record.message,
                    request_id=record.request_id, principal=record.principal,
                    principal_teams=None if principal.teams is None or record.principal == "-"
                    else ",".join(sorted(principal.teams)),
                    request_bytes=record.request_bytes, plan_id=record.plan_id or None)
        request_id_var.reset(tokens[0])
        call_var.reset(tokens[1])


class _ShuttingDown(GridshiftError):
    category = ErrorCategory.UNAVAILABLE


def _parsed(request: Any, parse: Callable | None, method: str) -> Any:
    """The request message of the bytes received; InvalidInputError when they are not one
    (random or truncated bytes, invalid UTF-8 in a string, nesting past the parser's limit)."""
    if parse is None or not isinstance(request, bytes):
        return request
    try:
        return parse(request)
    except Exception as exc:  # noqa: BLE001 - DecodeError, RecursionError, ValueError, ...
        name = method.rsplit("/", 1)[-1]
        raise InvalidInputError([FieldViolation(
            "", f"malformed message: the {len(request)} bytes sent to {name} are not a valid "
                f"request message ({shorten(str(exc) or type(exc).__name__, 200)})")]) from None


def _context_code(context: grpc.ServicerContext) -> grpc.StatusCode | None:
    code = getattr(context, "code", None)
    try:
        return code() if callable(code) else None
    except Exception:  # noqa: BLE001 - a context without the accessor
        return None


def _context_details(context: grpc.ServicerContext) -> str:
    """The status message set by context.abort() ("" where it cannot be read)."""
    try:
        details = context.details() if callable(getattr(context, "details", None)) else ""
    except Exception:  # noqa: BLE001 - a context without the accessor
        return ""
    return details.decode("utf-8", "replace") if isinstance(details, bytes) else str(details or "")


def _cancelled(context: grpc.ServicerContext) -> bool:
    """Whether the client cancelled the call (or its deadline passed): the servicer context's
    state, where this gRPC version keeps it; False where it cannot be told."""
    state = getattr(context, "_state", None)
    return getattr(state, "client", None) == "cancelled"


def _abort(context: grpc.ServicerContext, exc: Exception, method: str) -> str:
    """Ends the call with the status ``exc`` maps to; returns the code's name."""
    if _is_abort(exc):
        code = _context_code(context)
        if code is not None:
            call = call_var.get()
            if call is not None:
                call.code = code.name
                call.message = _context_details(context)
        raise exc
    status = status_for(exc, request_id_var.get())
    if status.code == code_pb2.INTERNAL:
        log.error("unexpected error in %s", method, exc_info=exc)
    else:
        log.info("%s failed: %s", method, status.message)
    name = grpc.StatusCode(_GRPC_CODES[status.code]).name if status.code in _GRPC_CODES \
        else "UNKNOWN"
    call = call_var.get()
    if call is not None:
        call.code = name
        call.message = status.message
    context.abort_with_status(rpc_status.to_status(status))
    return name


_GRPC_CODES = {c.value[0]: c.value for c in grpc.StatusCode}
#: The number of each status code by name (a span's rpc.grpc.status_code).
_STATUS_NUMBERS = {c.name: c.value[0] for c in grpc.StatusCode}


def _is_abort(exc: Exception) -> bool:
    # context.abort() raises a bare Exception after setting the status; let it through.
    return type(exc) is Exception and not exc.args
