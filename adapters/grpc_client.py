"""SchedulerClient: a small typed client for the gridshift gRPC service.

Retries on UNAVAILABLE use gRPC's own retry policy (service config), with exponential backoff.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import grpc
from google.protobuf import json_format
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_status import rpc_status

from gridshift.api.v1 import optimize_pb2 as pb
from gridshift.api.v1 import scheduler_pb2, scheduler_pb2_grpc
from gridshift.optimizer.errors import FieldViolation, InvalidInputError, UpstreamUnavailableError

SERVICE = "gridshift.api.v1.Scheduler"
MAX_MESSAGE_BYTES = 64 * 1024 * 1024
RETRY_SERVICE_CONFIG = json.dumps({"methodConfig": [{
    "name": [{"service": SERVICE}, {"service": "grpc.health.v1.Health"}],
    "retryPolicy": {"maxAttempts": 5, "initialBackoff": "0.1s", "maxBackoff": "2s",
                    "backoffMultiplier": 2, "retryableStatusCodes": ["UNAVAILABLE"]},
}]})


class SchedulerClient:
    """Typed helpers over a channel to `target` (HOST:PORT). Use as a context manager.

    TLS when ``ca`` (the PEM of the CA that signs the server's certificate) or a client
    certificate is given; mutual TLS with ``cert`` and ``key`` (PEM bytes); ``token``: a bearer
    token sent with every call; ``server_name``: the name to check the server's certificate
    for, when it is not the target's host."""

    def __init__(self, target: str, *, retries: bool = True, ca: bytes | None = None,
                 cert: bytes | None = None, key: bytes | None = None,
                 token: str | None = None, server_name: str | None = None) -> None:
        options = [("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
                   ("grpc.max_send_message_length", MAX_MESSAGE_BYTES)]
        if retries:
            options += [("grpc.enable_retries", 1), ("grpc.service_config", RETRY_SERVICE_CONFIG)]
        if server_name:
            options.append(("grpc.ssl_target_name_override", server_name))
        if ca or cert:
            credentials = grpc.ssl_channel_credentials(root_certificates=ca, private_key=key,
                                                       certificate_chain=cert)
            channel = grpc.secure_channel(target, credentials, options=options)
        else:
            channel = grpc.insecure_channel(target, options=options)
        if token:
            channel = grpc.intercept_channel(channel, _BearerToken(token))
        self.channel = channel
        self.stub = scheduler_pb2_grpc.SchedulerStub(self.channel)
        self.health_stub = health_pb2_grpc.HealthStub(self.channel)

    def __enter__(self) -> SchedulerClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.channel.close()

    @staticmethod
    def to_request(request: pb.OptimizeRequest | dict[str, Any]) -> pb.OptimizeRequest:
        """Accepts a message or its JSON-mapping dict."""
        if isinstance(request, pb.OptimizeRequest):
            return request
        return json_format.ParseDict(request, pb.OptimizeRequest())

    def optimize(self, request: pb.OptimizeRequest | dict[str, Any], *,
                 timeout: float | None = None,
                 request_id: str | None = None) -> pb.OptimizeResponse:
        """Unary Optimize; `timeout` becomes the call's deadline."""
        return self.stub.Optimize(self.to_request(request), timeout=timeout,
                                  metadata=_metadata(request_id), wait_for_ready=True)

    def stream_optimize(self, request: pb.OptimizeRequest | dict[str, Any], *,
                        timeout: float | None = None) -> Iterator[scheduler_pb2.OptimizeEvent]:
        """StreamOptimize: progress events, then one event carrying the final response."""
        return self.stub.StreamOptimize(self.to_request(request), timeout=timeout,
                                        wait_for_ready=True)

    def health(self, service: str = "", timeout: float = 5.0) -> str:
        """SERVING, NOT_SERVING, ... for the whole server ("") or one service."""
        reply = self.health_stub.Check(health_pb2.HealthCheckRequest(service=service),
                                       timeout=timeout)
        return health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)


class _BearerToken(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor,
                   grpc.StreamStreamClientInterceptor):
    """Adds ``authorization: Bearer <token>`` to every call."""

    def __init__(self, token: str) -> None:
        self._header = ("authorization", f"Bearer {token}")

    def _details(self, details: Any) -> Any:
        return _CallDetails(details.method, details.timeout,
                            [*(details.metadata or ()), self._header], details.credentials,
                            getattr(details, "wait_for_ready", None),
                            getattr(details, "compression", None))

    def intercept_unary_unary(self, continuation, details, request):
        return continuation(self._details(details), request)

    def intercept_unary_stream(self, continuation, details, request):
        return continuation(self._details(details), request)

    def intercept_stream_stream(self, continuation, details, requests):
        return continuation(self._details(details), requests)


class _CallDetails(grpc.ClientCallDetails):
    def __init__(self, method, timeout, metadata, credentials, wait_for_ready, compression):
        self.method, self.timeout, self.metadata = method, timeout, metadata
        self.credentials, self.wait_for_ready = credentials, wait_for_ready
        self.compression = compression


def _metadata(request_id: str | None) -> tuple[tuple[str, str], ...] | None:
    return (("x-request-id", request_id),) if request_id else None


def domain_error(server: str, exc: grpc.RpcError) -> Exception:
    """The domain error of a failed call: InvalidInputError with the server's field paths for
    INVALID_ARGUMENT, UpstreamUnavailableError (naming the server and the code) otherwise."""
    if exc.code() in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED):
        return PermissionError(f"{server}: {exc.code().name}: {exc.details()}")
    if exc.code() == grpc.StatusCode.INVALID_ARGUMENT:
        status = rpc_status.from_call(exc)
        violations = []
        for detail in status.details if status else []:
            bad = error_details_pb2.BadRequest()
            if detail.Unpack(bad):
                violations += [FieldViolation(v.field, v.description)
                               for v in bad.field_violations]
        return InvalidInputError(violations or [FieldViolation("", exc.details())])
    return UpstreamUnavailableError(f"{server}: {exc.code().name}: {exc.details()}")
