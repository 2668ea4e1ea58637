"""One server interceptor that maps domain errors to gRPC status codes, and gives every call a
request id (from `x-request-id` metadata or a new one) for logs and for the caller.

invalid input → INVALID_ARGUMENT, the field paths of the first 10 problems in the message and
in google.rpc.BadRequest details (then how many more there are); overload →
RESOURCE_EXHAUSTED; upstream unavailable → UNAVAILABLE; anything else → INTERNAL with only the
request id in the message (the traceback is logged server-side).
"""

from __future__ import annotations

import contextvars
import logging
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from gridshift.optimizer.errors import ErrorCategory, GridshiftError, InvalidInputError

log = logging.getLogger("gridshift.server")
request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")

_CODES = {
    ErrorCategory.INVALID_INPUT: code_pb2.INVALID_ARGUMENT,
    ErrorCategory.OVERLOADED: code_pb2.RESOURCE_EXHAUSTED,
    ErrorCategory.UNAVAILABLE: code_pb2.UNAVAILABLE,
    ErrorCategory.DEADLINE: code_pb2.DEADLINE_EXCEEDED,
    ErrorCategory.INFEASIBLE: code_pb2.FAILED_PRECONDITION,
}


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
    """Wraps unary and server-streaming handlers; see the module docstring."""

    def intercept_service(self, continuation: Callable, handler_call_details: Any) -> Any:
        handler = continuation(handler_call_details)
        if handler is None:
            return None
        method = handler_call_details.method
        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(
                self._unary(handler.unary_unary, method),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer)
        if handler.unary_stream is not None:
            return grpc.unary_stream_rpc_method_handler(
                self._stream(handler.unary_stream, method),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer)
        return handler

    def _unary(self, behaviour: Callable, method: str) -> Callable:
        def wrapped(request: Any, context: grpc.ServicerContext) -> Any:
            token = _begin(context)
            try:
                return behaviour(request, context)
            except Exception as exc:  # noqa: BLE001 - the one place errors become statuses
                _abort(context, exc, method)
            finally:
                request_id_var.reset(token)
        return wrapped

    def _stream(self, behaviour: Callable, method: str) -> Callable:
        def wrapped(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
            token = _begin(context)
            try:
                yield from behaviour(request, context)
            except Exception as exc:  # noqa: BLE001 - the one place errors become statuses
                _abort(context, exc, method)
            finally:
                request_id_var.reset(token)
        return wrapped


def _begin(context: grpc.ServicerContext) -> contextvars.Token:
    metadata = dict(context.invocation_metadata() or ())
    request_id = str(metadata.get("x-request-id") or uuid.uuid4().hex[:16])
    context.send_initial_metadata((("x-request-id", request_id),))
    return request_id_var.set(request_id)


def _abort(context: grpc.ServicerContext, exc: Exception, method: str) -> None:
    if _is_abort(exc):
        raise exc
    status = status_for(exc, request_id_var.get())
    if status.code == code_pb2.INTERNAL:
        log.error("unexpected error in %s", method, exc_info=exc)
    else:
        log.info("%s failed: %s", method, status.message)
    context.abort_with_status(rpc_status.to_status(status))


def _is_abort(exc: Exception) -> bool:
    # context.abort() raises a bare Exception after setting the status; let it through.
    return type(exc) is Exception and not exc.args
