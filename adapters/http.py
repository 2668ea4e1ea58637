"""HTTP for the forecast providers: one small client with timeouts, retries and redaction.

Every request goes through :class:`HttpClient` (or a session from :func:`make_session`):

* **Timeouts on every call.** ``timeout_s`` bounds the TCP connect and every socket read, and
  ``total_timeout_s`` the whole call: connects, reads, retries and the waits between them. A
  caller can shorten it further for everything inside a :func:`deadline_scope` (the forecast
  service gives each provider its share of the resolution's time budget). At the deadline the
  socket read in progress is cut (a body trickled in a few bytes at a time is not waited for),
  no retry is started whose wait (backoff or ``Retry-After``) would pass it, and the error says
  so.
* **Retries with exponential backoff and jitter** (urllib3 ``Retry`` mounted through requests'
  ``HTTPAdapter``) on connection errors, read timeouts, connection resets and HTTP 429, 500,
  502, 503, 504. Retry ``k`` (1-based) waits ``min(backoff_max_s, backoff_s * 2**(k-1))`` plus
  ``U(0, jitter_s)``; a ``Retry-After`` header (seconds or HTTP date) replaces that wait, capped
  at ``retry_after_max_s``. None of the providers documents ``Retry-After``, so it is honoured
  when present and never required.
* **Body-level retries.** A 2xx answer whose body arrives truncated, is cut off by the peer, or
  is not valid JSON is fetched again (same backoff, same ``retries`` budget): those are usually
  transient network faults.
* **Then a clear error.** :class:`HttpError` carries the HTTP status (``None`` for transport
  failures) and a short, human-readable ``reason`` that names the failure class and, for HTTP
  errors, the provider's own error message. Every reason and every log line written here goes
  through :func:`redact` with the client's secrets; raw requests exceptions never escape.

Tests shrink ``backoff_s``/``retry_after_max_s`` to milliseconds and ``timeout_s`` to ~0.3 s.
"""

from __future__ import annotations

import base64
import html
import json
import logging
import random
import re
import socket
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from itertools import takewhile
from typing import Any
from urllib.parse import quote, quote_plus, urlsplit, urlunsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import (
    ConnectTimeoutError,
    MaxRetryError,
    NewConnectionError,
    ProtocolError,
    ReadTimeoutError,
    ResponseError,
)
from urllib3.util.retry import Retry
from urllib3.util.timeout import Timeout

__all__ = [
    "DEFAULT_TIMEOUT_S",
    "DEFAULT_TOTAL_TIMEOUT_S",
    "RETRY_STATUSES",
    "HttpClient",
    "HttpError",
    "ProviderRetry",
    "TimeoutSession",
    "basic_auth_header_value",
    "deadline_scope",
    "get_logger",
    "make_session",
    "redact",
]

log = logging.getLogger("gridshift.adapters.http")

DEFAULT_TIMEOUT_S = 10.0
#: The longest one call may take, retries and waits included (a caller's deadline_scope may
#: shorten it).
DEFAULT_TOTAL_TIMEOUT_S = 30.0
#: HTTP statuses that are retried (with backoff, honouring Retry-After when present).
RETRY_STATUSES: frozenset[int] = frozenset({429, 500, 502, 503, 504})
REDACTED = "***"
USER_AGENT = "gridshift/0.1 (energy-aware scheduler; forecast adapters)"
_MAX_REASON_CHARS = 200
#: The largest response body read (a provider's answers are well under 1 MiB); a larger one
#: is refused unread instead of filling the service's memory.
MAX_RESPONSE_BYTES = 32 * 2**20


# --------------------------------------------------------------------------------------------
# Deadlines
# --------------------------------------------------------------------------------------------

#: The deadline (time.monotonic()) of every HTTP call made in this context, or None.
_SCOPE_DEADLINE: ContextVar[float | None] = ContextVar("gridshift_http_scope", default=None)


@contextmanager
def deadline_scope(deadline: float | None) -> Iterator[None]:
    """Every :meth:`HttpClient.get_json` call inside ends by ``deadline`` (a
    ``time.monotonic()`` instant) at the latest; nested scopes keep the earlier deadline.
    ``None`` adds no limit. The scope belongs to the current thread (context)."""
    outer = _SCOPE_DEADLINE.get()
    if deadline is None:
        effective = outer
    else:
        effective = deadline if outer is None else min(outer, deadline)
    token = _SCOPE_DEADLINE.set(effective)
    try:
        yield
    finally:
        _SCOPE_DEADLINE.reset(token)


@dataclass
class _Call:
    """The deadline of one get_json call, and why retrying stopped short of it (if it did)."""

    deadline: float
    budget_s: float
    #: Set when a retry was not started because its wait would pass the deadline.
    cut_short: str = ""
    #: Set when the watchdog cut a read at the deadline.
    cut_read: bool = False

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def describe(self) -> str:
        return f"the call's {self.budget_s:.3g} s deadline"


_CURRENT_CALL: ContextVar[_Call | None] = ContextVar("gridshift_http_call", default=None)


class _DeadlineTimeout(Timeout):
    """A urllib3 timeout whose connect and read timeouts never reach past a deadline: every
    attempt (urllib3 retries inside one request reuse the timeout) gets at most what is left."""

    def __init__(self, connect: float, read: float, deadline: float) -> None:
        super().__init__(connect=connect, read=read)
        self._deadline = deadline

    def clone(self) -> _DeadlineTimeout:
        return _DeadlineTimeout(self._connect, self._read, self._deadline)  # type: ignore

    def _capped(self, value: Any) -> Any:
        left = max(0.001, self._deadline - time.monotonic())
        return left if not isinstance(value, int | float) else min(float(value), left)

    @property
    def connect_timeout(self) -> Any:
        return self._capped(super().connect_timeout)

    @property
    def read_timeout(self) -> Any:
        return self._capped(super().read_timeout)


class _Watchdog:
    """Shuts a response's socket down at a deadline, so that a read blocked on a peer that
    trickles its body (each recv succeeding before the per-read timeout) returns at once."""

    def __init__(self, response: requests.Response, call: _Call) -> None:
        self._sock = _socket_of(response)
        self._call = call
        self._lock = threading.Lock()
        self._done = False
        self._timer: threading.Timer | None = None
        if self._sock is not None:
            self._timer = threading.Timer(max(0.0, call.left()), self._fire)
            self._timer.daemon = True
            self._timer.start()

    def _fire(self) -> None:
        with self._lock:
            if self._done:
                return
            self._call.cut_read = True
            try:
                self._sock.shutdown(socket.SHUT_RDWR)  # type: ignore[union-attr]
            except OSError:
                pass

    def cancel(self) -> None:
        with self._lock:
            self._done = True
        if self._timer is not None:
            self._timer.cancel()


def _socket_of(response: requests.Response) -> socket.socket | None:
    """The socket a streamed response reads from: its connection's, or (when http.client
    handed the socket over to the response, as for ``Connection: close``) its file's."""
    connection = getattr(response.raw, "connection", None)
    sock = getattr(connection, "sock", None)
    if not isinstance(sock, socket.socket):
        fp = getattr(getattr(response.raw, "_fp", None), "fp", None)
        sock = getattr(getattr(fp, "raw", None), "_sock", None)
    return sock if isinstance(sock, socket.socket) else None


# --------------------------------------------------------------------------------------------
# Redaction
# --------------------------------------------------------------------------------------------

def redact(text: object, secrets: Iterable[str | None]) -> str:
    """``str(text)`` with every secret (and its URL-encoded forms) replaced by ``***``.

    Empty and ``None`` secrets are ignored; longer secrets are replaced first so that a secret
    containing another one is removed whole.
    """
    out = str(text)
    variants: set[str] = set()
    for secret in secrets:
        if not secret:
            continue
        variants.update({secret, quote(secret, safe=""), quote_plus(secret)})
    for variant in sorted(variants, key=len, reverse=True):
        if variant:
            out = out.replace(variant, REDACTED)
    return out


def basic_auth_header_value(username: str, password: str) -> str:
    """The base64 part of an HTTP Basic ``Authorization`` header (registered as a secret)."""
    return base64.b64encode(f"{username}:{password}".encode()).decode("ascii")


class _RedactingFilter(logging.Filter):
    """Removes registered secrets from log records of the HTTP stack (urllib3, gridshift)."""

    def __init__(self) -> None:
        super().__init__()
        self._secrets: set[str] = set()
        self._lock = threading.Lock()

    def add(self, secrets: Iterable[str | None]) -> None:
        with self._lock:
            self._secrets.update(s for s in secrets if s)

    def filter(self, record: logging.LogRecord) -> bool:
        secrets = tuple(self._secrets)
        if not secrets:
            return True
        try:
            message = record.getMessage()
        except Exception:  # a broken format string is not ours to fix; leave it
            return True
        cleaned = redact(message, secrets)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


_LOG_FILTER = _RedactingFilter()
for _name in ("urllib3.connectionpool", "urllib3.util.retry", "urllib3.response",
              "gridshift.adapters.http"):
    logging.getLogger(_name).addFilter(_LOG_FILTER)


def get_logger(name: str) -> logging.Logger:
    """A logger whose records are scrubbed of every secret registered with an HttpClient."""
    logger = logging.getLogger(name)
    if _LOG_FILTER not in logger.filters:
        logger.addFilter(_LOG_FILTER)
    return logger


# --------------------------------------------------------------------------------------------
# Retry policy and session
# --------------------------------------------------------------------------------------------

class ProviderRetry(Retry):
    """urllib3 ``Retry`` with a backoff on the first retry too, jitter, and a float cap on
    ``Retry-After`` that also tolerates a malformed header (falls back to the backoff)."""

    def __init__(self, *args: Any, retry_after_max_s: float = 60.0, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.retry_after_max_s = float(retry_after_max_s)

    def new(self, **kw: Any) -> ProviderRetry:
        """A copy (urllib3 makes one per retry) that keeps ``retry_after_max_s``."""
        new = super().new(**kw)
        new.retry_after_max_s = self.retry_after_max_s
        return new

    def get_backoff_time(self) -> float:
        """``backoff_factor * 2**(n-1) + U(0, backoff_jitter)``, capped at ``backoff_max``."""
        consecutive = len(list(takewhile(lambda h: h.redirect_location is None,
                                         reversed(self.history))))
        if consecutive == 0:
            return 0.0
        value = self.backoff_factor * (2 ** (consecutive - 1))
        if self.backoff_jitter:
            value += random.random() * self.backoff_jitter
        return float(max(0.0, min(self.backoff_max, value)))

    def increment(self, method: str | None = None, url: str | None = None,
                  response: Any = None, error: Exception | None = None, _pool: Any = None,
                  _stacktrace: Any = None) -> ProviderRetry:
        """As ``Retry.increment``, and no retry whose wait would pass the call's deadline:
        MaxRetryError instead (for a retryable status, the response is then returned)."""
        new = super().increment(method, url, response, error, _pool, _stacktrace)
        call = _CURRENT_CALL.get()
        if call is None:
            return new
        if call.left() <= 0.01:
            if response is not None:
                call.cut_short = f"not retried: {call.describe()} has passed"
            raise MaxRetryError(_pool, url or "", error or ResponseError(call.cut_short))
        wait = 0.0
        if response is not None and self.respect_retry_after_header:
            wait = new.get_retry_after(response) or 0.0
        what = "Retry-After wait" if wait else "backoff"
        wait = wait or new.get_backoff_time()
        if wait >= call.left():
            call.cut_short = (f"not retried: a {what} of {wait:.3g} s would pass "
                              f"{call.describe()}")
            raise MaxRetryError(_pool, url or "", error or ResponseError(call.cut_short))
        return new

    def parse_retry_after(self, retry_after: str) -> float:
        """Seconds to wait, capped at ``retry_after_max_s``; 0 (use the backoff) if malformed."""
        try:
            seconds = super().parse_retry_after(retry_after)
        except Exception:
            return 0.0
        return float(min(max(seconds, 0.0), self.retry_after_max_s))


class TimeoutSession(requests.Session):
    """A ``requests.Session`` that applies a default timeout to every request and strips the
    provider's secret headers (not only ``Authorization``) on a redirect to another host."""

    def __init__(self, timeout_s: float = DEFAULT_TIMEOUT_S,
                 sensitive_headers: Iterable[str] = ()) -> None:
        super().__init__()
        self.timeout_s = float(timeout_s)
        self.sensitive_headers = {h.lower() for h in sensitive_headers}

    def request(self, method: str | bytes, url: str | bytes, *args: Any,  # type: ignore[override]
                **kwargs: Any) -> requests.Response:
        """As ``Session.request``; ``timeout`` defaults to ``(timeout_s, timeout_s)``."""
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = (self.timeout_s, self.timeout_s)
        return super().request(method, url, *args, **kwargs)

    def rebuild_auth(self, prepared_request: requests.PreparedRequest,
                     response: requests.Response) -> None:
        """Drop secret headers when a redirect leaves the original host."""
        super().rebuild_auth(prepared_request, response)
        if response.request is not None and self.should_strip_auth(
                str(response.request.url), str(prepared_request.url)):
            for name in list(prepared_request.headers):
                if name.lower() in self.sensitive_headers:
                    del prepared_request.headers[name]


def make_session(provider: str, *, timeout_s: float = DEFAULT_TIMEOUT_S, retries: int = 4,
                 backoff_s: float = 0.5, jitter_s: float | None = None,
                 backoff_max_s: float = 30.0, retry_after_max_s: float = 60.0,
                 status_forcelist: Iterable[int] = RETRY_STATUSES,
                 sensitive_headers: Iterable[str] = ()) -> TimeoutSession:
    """A session for one provider: default timeout, urllib3 retries, JSON ``Accept`` header.

    ``retries`` counts retries (so at most ``retries + 1`` attempts) of each kind: connect
    errors, read errors (timeouts, resets) and retryable statuses. ``jitter_s`` defaults to
    ``backoff_s``. After the last retry on a retryable status the final response is returned
    (``raise_on_status=False``) so that the caller can report the provider's error message.
    """
    session = TimeoutSession(timeout_s, sensitive_headers)
    retry = ProviderRetry(
        total=retries, connect=retries, read=retries, status=retries, other=0,
        backoff_factor=backoff_s,
        backoff_jitter=backoff_s if jitter_s is None else jitter_s,
        backoff_max=backoff_max_s,
        retry_after_max_s=retry_after_max_s,
        status_forcelist=frozenset(status_forcelist),
        allowed_methods=frozenset({"GET", "HEAD"}),
        respect_retry_after_header=True,
        raise_on_status=False,
        raise_on_redirect=False,
    )
    adapter = HTTPAdapter(max_retries=retry)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.headers.update({"Accept": "application/json", "User-Agent": USER_AGENT})
    session.provider = provider  # type: ignore[attr-defined]
    return session


# --------------------------------------------------------------------------------------------
# Errors and the client
# --------------------------------------------------------------------------------------------

class HttpError(Exception):
    """A provider request that failed after its retries. ``status`` is the final HTTP status
    (``None`` for transport failures and malformed bodies); ``reason`` is redacted text."""

    def __init__(self, provider: str, reason: str, status: int | None = None,
                 body: Any = None) -> None:
        self.provider = provider
        self.reason = reason
        self.status = status
        #: The parsed error body (JSON) when there was one; never includes request secrets.
        self.body = body
        super().__init__(f"{provider}: {reason}")


_BODY_ERRORS = (requests.exceptions.ChunkedEncodingError,
                requests.exceptions.ContentDecodingError)


class HttpClient:
    """GET-and-parse-JSON for one provider, with timeouts, retries and redacted errors.

    ``secrets`` (tokens, passwords) are removed from every error reason and log line; more
    can be registered later with :meth:`add_secrets` (e.g. a freshly issued bearer token).
    Thread-safe enough for the adapters: the session is shared, state is per call.
    """

    def __init__(self, provider: str, *, timeout_s: float = DEFAULT_TIMEOUT_S, retries: int = 4,
                 backoff_s: float = 0.5, jitter_s: float | None = None,
                 backoff_max_s: float = 30.0, retry_after_max_s: float = 60.0,
                 secrets: Iterable[str | None] = (), sensitive_headers: Iterable[str] = (),
                 session: requests.Session | None = None,
                 total_timeout_s: float = DEFAULT_TOTAL_TIMEOUT_S) -> None:
        self.provider = provider
        self.timeout_s = float(timeout_s)
        self.total_timeout_s = float(total_timeout_s)
        self.retries = int(retries)
        self.backoff_s = float(backoff_s)
        self.jitter_s = self.backoff_s if jitter_s is None else float(jitter_s)
        self.backoff_max_s = float(backoff_max_s)
        self._secrets: set[str] = set()
        self.session = session if session is not None else make_session(
            provider, timeout_s=timeout_s, retries=retries, backoff_s=backoff_s,
            jitter_s=jitter_s, backoff_max_s=backoff_max_s,
            retry_after_max_s=retry_after_max_s, sensitive_headers=sensitive_headers)
        self.add_secrets(secrets)

    # -- secrets -------------------------------------------------------------------------
    def add_secrets(self, secrets: Iterable[str | None]) -> None:
        """Register more strings that must never appear in errors or logs."""
        fresh = [s for s in secrets if s]
        self._secrets.update(fresh)
        _LOG_FILTER.add(fresh)

    def add_sensitive_headers(self, names: Iterable[str]) -> None:
        """Headers to strip when a redirect leaves the original host."""
        if isinstance(self.session, TimeoutSession):
            self.session.sensitive_headers.update(n.lower() for n in names)

    def redact(self, text: object) -> str:
        """``text`` with this client's secrets removed."""
        return redact(text, self._secrets)

    # -- requests ------------------------------------------------------------------------
    def get_json(self, url: str, *, params: Mapping[str, Any] | None = None,
                 headers: Mapping[str, str] | None = None,
                 auth: tuple[str, str] | None = None) -> Any:
        """GET ``url`` and return the parsed JSON body of a 2xx answer.

        The whole call (connects, reads, retries, waits) ends within ``total_timeout_s`` or
        the enclosing :func:`deadline_scope`, whichever comes first.

        Raises :class:`HttpError` after the retries: ``status`` set for a non-2xx answer
        (its reason includes the provider's error message), ``None`` for a timeout, a
        connection failure, a body that is not valid JSON or a deadline that passed.
        """
        now = time.monotonic()
        deadline = now + self.total_timeout_s
        scope = _SCOPE_DEADLINE.get()
        if scope is not None:
            deadline = min(deadline, scope)
        call = _Call(deadline, max(0.0, deadline - now))
        if call.left() <= 0:
            raise HttpError(self.provider, "not asked: the time budget was already spent")
        token = _CURRENT_CALL.set(call)
        try:
            return self._get_json(url, call, params=params, headers=headers, auth=auth)
        finally:
            _CURRENT_CALL.reset(token)

    def _get_json(self, url: str, call: _Call, *, params: Mapping[str, Any] | None,
                  headers: Mapping[str, str] | None, auth: tuple[str, str] | None) -> Any:
        attempts = self.retries + 1
        last_body_problem = ""
        for attempt in range(attempts):
            response = self._send(url, call, params=params, headers=headers, auth=auth)
            watchdog = _Watchdog(response, call)
            try:
                try:
                    content = _read_capped(response, self.provider)
                except (*_BODY_ERRORS, requests.exceptions.ConnectionError) as exc:
                    if call.cut_read or call.left() <= 0:
                        raise HttpError(self.provider, self.redact(
                            f"timed out: the response body was still arriving when "
                            f"{call.describe()} passed")) from None
                    last_body_problem = (
                        f"response body cut off ({_transport_cause(exc)})")
                else:
                    if not 200 <= response.status_code < 300:
                        raise self._status_error(response, content, call)
                    try:
                        return json.loads(content.decode(response.encoding or "utf-8"))
                    except (ValueError, UnicodeDecodeError):
                        last_body_problem = ("malformed JSON response (truncated or invalid, "
                                             f"{len(content)} bytes)")
            finally:
                watchdog.cancel()
                response.close()
            if attempt + 1 < attempts:
                delay = min(self.backoff_max_s, self.backoff_s * (2 ** attempt))
                delay += random.random() * self.jitter_s
                if delay >= call.left():
                    raise HttpError(self.provider, self.redact(
                        f"{last_body_problem}; not retried: a backoff of {delay:.3g} s "
                        f"would pass {call.describe()}"))
                log.warning("%s: %s; retrying in %.3f s (attempt %d of %d)", self.provider,
                            self.redact(last_body_problem), delay, attempt + 2, attempts)
                time.sleep(delay)
        raise HttpError(self.provider, self.redact(
            f"{last_body_problem}; gave up after {attempts} attempts"))

    def _send(self, url: str, call: _Call, *, params: Mapping[str, Any] | None,
              headers: Mapping[str, str] | None,
              auth: tuple[str, str] | None) -> requests.Response:
        log.debug("%s: GET %s", self.provider, self.redact(_strip_query(url)))
        timeout = _DeadlineTimeout(self.timeout_s, self.timeout_s, call.deadline)
        try:
            return self.session.get(url, params=params, headers=dict(headers or {}), auth=auth,
                                    timeout=timeout, stream=True)
        except requests.exceptions.RequestException as exc:
            cause = _transport_cause(exc)
            if call.cut_short:
                reason = f"{cause}; {call.cut_short}"
            elif call.left() <= 0.01:
                reason = f"{cause}: no answer within {call.describe()}"
            else:
                reason = (f"{cause} after {self.retries + 1} attempts "
                          f"(timeout {self.timeout_s:g} s per attempt)")
            reason = self.redact(reason)
            log.warning("%s: %s", self.provider, reason)
            raise HttpError(self.provider, reason) from None

    def _status_error(self, response: requests.Response, content: bytes,
                      call: _Call | None = None) -> HttpError:
        body: Any = None
        try:
            body = json.loads(content.decode(response.encoding or "utf-8"))
        except (ValueError, UnicodeDecodeError):
            body = None
        message = _error_message(body, content)
        status = response.status_code
        label = f"HTTP {status}" + (f" {response.reason}" if response.reason else "")
        retried = _retry_count(response)
        if status == 429:
            reason = f"rate limited ({label})"
        elif status in RETRY_STATUSES:
            reason = f"upstream error ({label})"
        else:
            reason = label
        if retried:
            reason += f" after {retried} retries"
        if message:
            reason += f": {message}"
        if call is not None and call.cut_short and status in RETRY_STATUSES:
            reason += f"; {call.cut_short}"
        reason = self.redact(reason)
        log.warning("%s: %s", self.provider, reason)
        return HttpError(self.provider, reason, status=status,
                         body=body if isinstance(body, dict | list) else None)

    # -- lifecycle -----------------------------------------------------------------------
    def close(self) -> None:
        """Close the pooled connections."""
        self.session.close()

    def __enter__(self) -> HttpClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _read_capped(response: requests.Response, provider: str) -> bytes:
    """The whole body, or HttpError once it passes MAX_RESPONSE_BYTES (not retried: the same
    URL would answer the same)."""
    declared = response.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > MAX_RESPONSE_BYTES:
        raise HttpError(provider, f"response of {int(declared):,} bytes is larger than "
                                  f"{MAX_RESPONSE_BYTES:,}; not read")
    chunks, total = [], 0
    for chunk in response.iter_content(chunk_size=64 * 1024):
        total += len(chunk)
        if total > MAX_RESPONSE_BYTES:
            raise HttpError(provider, f"response larger than {MAX_RESPONSE_BYTES:,} bytes; "
                                      "not read")
        chunks.append(chunk)
    return b"".join(chunks)


def _strip_query(url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


def _retry_count(response: requests.Response) -> int:
    retries = getattr(response.raw, "retries", None)
    history = getattr(retries, "history", None) or ()
    return len(history)


def _transport_cause(exc: BaseException) -> str:
    """A short, secret-free description of a transport failure."""
    seen: set[int] = set()
    stack: list[BaseException | None] = [exc]
    while stack:
        err = stack.pop()
        if err is None or id(err) in seen:
            continue
        seen.add(id(err))
        if isinstance(err, NewConnectionError):  # (a ConnectTimeoutError subclass in urllib3)
            return "connection refused or unreachable"
        if isinstance(err, (requests.exceptions.Timeout, ReadTimeoutError, ConnectTimeoutError,
                            TimeoutError)):
            return "timed out"
        if isinstance(err, ConnectionResetError):
            return "connection reset by peer"
        if isinstance(err, MaxRetryError):
            stack.append(err.reason)
            continue
        if isinstance(err, ProtocolError):
            inner = [a for a in err.args if isinstance(a, BaseException)]
            if any(isinstance(a, ConnectionResetError) for a in inner):
                return "connection reset by peer"
            text = str(err).lower()
            if "incompleteread" in text or "incomplete" in text:
                return "incomplete read"
            stack.extend(inner)
            if not inner:
                return "connection aborted"
            continue
        stack.extend(a for a in err.args if isinstance(a, BaseException))
        stack.extend([err.__cause__, err.__context__])
    return f"request failed ({type(exc).__name__})"


def _error_message(body: Any, content: bytes) -> str:
    """The provider's own error text from the documented error shapes, else a text excerpt."""
    text = ""
    if isinstance(body, dict):
        err = body.get("error")
        if isinstance(err, dict):  # UK CI: {"error": {"code", "message"}}
            text = str(err.get("message") or err.get("code") or "")
        elif isinstance(body.get("reason"), str):  # Open-Meteo: {"error": true, "reason"}
            text = body["reason"]
        elif body.get("message") or body.get("msg"):  # WattTime: {"error","message"|"msg"}
            text = str(body.get("message") or body.get("msg"))
        elif isinstance(err, str):  # Electricity Maps: {"error": "Invalid auth-token"}
            text = err
        elif isinstance(body.get("detail"), list):  # FastAPI 422
            text = "; ".join(str(d.get("msg", d)) if isinstance(d, dict) else str(d)
                             for d in body["detail"])
        elif isinstance(body.get("detail"), str):
            text = body["detail"]
    elif body is None and content:
        raw = content[:2000].decode("utf-8", errors="replace")
        raw = re.sub(r"<(script|style)[^>]*>.*?</\1>", " ", raw, flags=re.S | re.I)
        text = html.unescape(re.sub(r"<[^>]+>", " ", raw))
    text = " ".join(text.split())
    if len(text) > _MAX_REASON_CHARS:
        text = text[:_MAX_REASON_CHARS - 3] + "..."
    return text
