"""Who a call comes from and what it may do: bearer tokens and client-certificate identities
(from the principals file), the permission each method needs, per-principal rate limits, and
the team checks the servicer applies to requests, plans and reports.

Health is open to everyone. Without a principals file there is no authentication: every call
comes from the anonymous principal, which may do everything (a development set-up; the server
refuses to listen beyond loopback like that unless told ``allow_insecure``)."""

from __future__ import annotations

import contextvars
import logging
import threading
import time
from collections.abc import Iterable
from pathlib import Path

import grpc

from gridshift.adapters.principals import Principal, Principals, read_principals
from gridshift.optimizer.errors import GridshiftError, OverloadedError

log = logging.getLogger("gridshift.server")

ANONYMOUS = Principal(name="anonymous", teams=None, permissions=frozenset({"admin"}))
#: The permission each method needs (any of them); methods not named need "admin".
METHOD_PERMISSIONS: dict[str, tuple[str, ...]] = {
    "Optimize": ("plan",), "StreamOptimize": ("plan",), "ScoreSchedules": ("plan",),
    "GetForecast": ("plan", "read"), "FindBestWindow": ("plan", "read"),
    "GetPlan": ("read",), "ListPlans": ("read",), "GetCarbonReport": ("read",),
}
OPEN_SERVICES = ("/grpc.health.v1.Health/",)

principal_var: contextvars.ContextVar[Principal] = contextvars.ContextVar(
    "principal", default=ANONYMOUS)


class Unauthenticated(GridshiftError):
    """No credentials, or credentials no principal has (UNAUTHENTICATED)."""


class PermissionDenied(GridshiftError):
    """An authenticated principal asked for what it may not do (PERMISSION_DENIED)."""


class Guard:
    """Authenticates calls, checks the method's permission and the principal's rate limit.
    ``tokens_file`` None: no authentication. ``reload()`` re-reads the file (SIGHUP); a file
    that no longer reads keeps the principals it had (logged)."""

    def __init__(self, tokens_file: str | None = None, *, rate_per_s: float = 0.0,
                 burst: int = 20, certificates: bool = False) -> None:
        self._file = tokens_file or None
        self._certificates = certificates
        self._principals: Principals | None = read_principals(self._file) if self._file \
            else None
        self._limiter = RateLimiter(rate_per_s, burst) if rate_per_s > 0 else None

    @property
    def authenticating(self) -> bool:
        return self._principals is not None

    def reload(self) -> None:
        if not self._file:
            return
        try:
            self._principals = read_principals(self._file)
            log.info("principals reloaded from %s", Path(self._file).name)
        except Exception as exc:  # noqa: BLE001 - keep serving with the principals we had
            log.error("principals file not reloaded, keeping the previous one: %s", exc)

    def admit(self, method: str, context: grpc.ServicerContext) -> Principal | None:
        """The caller's principal (None for open services); raises Unauthenticated,
        PermissionDenied or OverloadedError (rate limit)."""
        if method.startswith(OPEN_SERVICES):
            return None
        principal = self._authenticate(context)
        name = method.rsplit("/", 1)[-1]
        needed = METHOD_PERMISSIONS.get(name, ("admin",)) if method.startswith(
            "/gridshift.") else ("admin",)
        if not any(principal.may(p) for p in needed):
            raise PermissionDenied(f"{principal.name} may not call {name} (needs "
                                   f"{' or '.join(needed)} permission)")
        if self._limiter is not None:
            key = principal.name if self.authenticating else _peer_host(context)
            wait = self._limiter.take(key)
            if wait > 0:
                raise OverloadedError(f"rate limit of {self._limiter.rate:g} calls/s for "
                                      f"{principal.name}: retry in {wait:.2f} s")
        return principal

    def _authenticate(self, context: grpc.ServicerContext) -> Principal:
        if self._principals is None:
            return ANONYMOUS
        token = _bearer_token(context)
        if token is not None:
            principal = self._principals.for_token(token)
            if principal is None:
                raise Unauthenticated("the bearer token is not known")
            return principal
        identities = _certificate_identities(context) if self._certificates else []
        if identities:
            principal = self._principals.for_certificate(identities)
            if principal is None:
                raise Unauthenticated(f"client certificate {identities[0]!r} is not a "
                                      "known principal")
            return principal
        raise Unauthenticated("credentials required: a bearer token (authorization: Bearer "
                              "...) or a client certificate")


class RateLimiter:
    """A token bucket per key: ``rate`` calls a second, bursts of ``burst``."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate, self.burst = rate, burst
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def take(self, key: str) -> float:
        """0 when a call is allowed now, else the seconds until one is."""
        now = time.monotonic()
        with self._lock:
            tokens, at = self._buckets.get(key, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - at) * self.rate)
            if tokens >= 1.0:
                self._buckets[key] = (tokens - 1.0, now)
                return 0.0
            self._buckets[key] = (tokens, now)
            return (1.0 - tokens) / self.rate


def _bearer_token(context: grpc.ServicerContext) -> str | None:
    for key, value in context.invocation_metadata() or ():
        if key == "authorization" and isinstance(value, str):
            scheme, _, token = value.partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise Unauthenticated("authorization metadata must be 'Bearer <token>'")
            return token.strip()
    return None


def _certificate_identities(context: grpc.ServicerContext) -> list[str]:
    """The verified client certificate's common name and subject alternative names."""
    auth = context.auth_context() or {}
    out: list[str] = []
    for key in ("x509_common_name", "x509_subject_alternative_name"):
        out += [v.decode("utf-8", "replace") for v in auth.get(key, [])]
    return list(dict.fromkeys(out))


def _peer_host(context: grpc.ServicerContext) -> str:
    peer = context.peer() or ""
    return peer.rsplit(":", 1)[0]


def check_teams(principal: Principal, teams: Iterable[str], what: str) -> None:
    """PermissionDenied naming the teams of ``what`` that are not the principal's."""
    if principal.all_teams:
        return
    foreign = sorted({t for t in teams if not principal.sees_team(t)})
    if foreign:
        shown = ", ".join(repr(t) if t else "(no team)" for t in foreign[:5])
        raise PermissionDenied(f"{principal.name} may not act for the team(s) {shown} of "
                               f"{what} (its teams: {', '.join(sorted(principal.teams or ()))})")
