"""The HTTP layer: timeouts, retries with backoff/jitter, Retry-After, body faults, redaction."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests
from urllib3.util.retry import RequestHistory

from gridshift.adapters import http as http_module
from gridshift.adapters.http import (
    HttpClient,
    HttpError,
    ProviderRetry,
    basic_auth_header_value,
    deadline_scope,
    make_session,
    redact,
)

from .fake_servers import JsonServer

SECRET = "tok-9f8e7d6c5b4a-secret"


@pytest.fixture
def server() -> Iterator[JsonServer]:
    with JsonServer(timeout_delay_s=1.0) as srv:
        yield srv


@pytest.fixture
def client() -> Iterator[HttpClient]:
    with HttpClient("generic", timeout_s=0.3, retries=2, backoff_s=0.001,
                    retry_after_max_s=0.05, secrets=[SECRET]) as http:
        yield http


def test_success_parses_json(server: JsonServer, client: HttpClient) -> None:
    assert client.get_json(f"{server.url}/ok") == {"ok": True, "n": 1}


def test_timeout_applies_to_every_call(server: JsonServer) -> None:
    server.inject("timeout", times=None)
    with HttpClient("generic", timeout_s=0.2, retries=0, backoff_s=0.001) as http:
        t0 = time.monotonic()
        with pytest.raises(HttpError) as err:
            http.get_json(f"{server.url}/ok")
        assert time.monotonic() - t0 < 0.9
    assert err.value.status is None
    assert "timed out" in err.value.reason


# --- total deadline of a call (issue 19) -----------------------------------------------------


def test_a_trickled_body_is_cut_at_the_calls_deadline() -> None:
    """Every socket read succeeds (16 bytes every 0.2 s, far inside the 5 s read timeout), so
    only a deadline on the whole call stops it: the answer (~300 bytes) would take ~4 s; the
    call gives up at its 1 s total. Before, the per-read timeout was the only limit and a
    body trickled in over minutes was waited for."""
    with JsonServer() as server, HttpClient("generic", timeout_s=5, retries=3, backoff_s=0.01,
                                            total_timeout_s=1.0) as http:
        server.trickle_interval_s = 0.2
        server.inject("trickle", times=None)
        t0 = time.monotonic()
        with pytest.raises(HttpError) as err:
            http.get_json(f"{server.url}/headers")
        took = time.monotonic() - t0
    assert took < 1.6
    assert "still arriving" in err.value.reason and "1 s deadline" in err.value.reason
    assert server.count("/headers") == 1          # not fetched again: no time left


def test_a_hung_server_costs_the_total_deadline_not_retries_times_the_timeout() -> None:
    """5 s per read and 4 retries allowed (up to ~25 s); the 1 s deadline ends the call."""
    with JsonServer(timeout_delay_s=30) as server, HttpClient(
            "generic", timeout_s=5, retries=4, backoff_s=0.01, total_timeout_s=1.0) as http:
        server.inject("timeout", times=None)
        t0 = time.monotonic()
        with pytest.raises(HttpError) as err:
            http.get_json(f"{server.url}/ok")
        took = time.monotonic() - t0
    assert 0.9 < took < 1.6
    assert "no answer within the call's 1 s deadline" in err.value.reason


def test_a_deadline_scope_shortens_every_call_inside_it() -> None:
    with JsonServer(timeout_delay_s=30) as server, HttpClient(
            "generic", timeout_s=5, retries=4, backoff_s=0.01) as http:
        server.inject("timeout", times=None)
        t0 = time.monotonic()
        with deadline_scope(time.monotonic() + 0.5), pytest.raises(HttpError):
            http.get_json(f"{server.url}/ok")
        assert time.monotonic() - t0 < 1.0
        with deadline_scope(time.monotonic() - 1), pytest.raises(HttpError) as err:
            http.get_json(f"{server.url}/ok")
    assert "not asked" in err.value.reason


def test_no_retry_waits_past_the_deadline_for_retry_after() -> None:
    """A 429 with Retry-After: 20 (under the 60 s cap) and a 2 s deadline: the call ends at
    once with the provider's answer and says why it did not wait (before: 20 s per retry)."""
    with JsonServer() as server, HttpClient("generic", timeout_s=5, retries=4,
                                            retry_after_max_s=60, total_timeout_s=2) as http:
        server.inject("429", times=None, retry_after="20")
        t0 = time.monotonic()
        with pytest.raises(HttpError) as err:
            http.get_json(f"{server.url}/ok")
        assert time.monotonic() - t0 < 0.5
    assert err.value.status == 429
    assert "Retry-After wait of 20 s would pass the call's 2 s deadline" in err.value.reason
    assert server.count("/ok") == 1


def test_session_default_timeout(server: JsonServer) -> None:
    server.inject("timeout", times=None)
    session = make_session("generic", timeout_s=0.2, retries=0, backoff_s=0.001)
    with session, pytest.raises(requests.exceptions.ConnectionError):
        # No timeout argument: the session's default (0.2 s) applies.
        session.get(f"{server.url}/ok")


@pytest.mark.parametrize("fault", ["timeout", "reset", "429", "500", "503", "truncated",
                                   "short_body"])
def test_transient_fault_is_retried(server: JsonServer, client: HttpClient, fault: str) -> None:
    server.inject(fault, times=2)
    assert client.get_json(f"{server.url}/ok") == {"ok": True, "n": 3}
    assert server.count("/ok") == 3


@pytest.mark.parametrize(("fault", "status", "words"), [
    ("timeout", None, "timed out"),
    ("reset", None, "connection reset"),
    ("429", 429, "rate limited (HTTP 429"),
    ("500", 500, "upstream error (HTTP 500"),
    ("truncated", None, "malformed JSON"),
    ("short_body", None, "cut off"),
])
def test_persistent_fault_gives_clear_error(server: JsonServer, client: HttpClient,
                                            caplog: pytest.LogCaptureFixture, fault: str,
                                            status: int | None, words: str) -> None:
    caplog.set_level(logging.DEBUG)
    server.inject(fault, times=None)
    with pytest.raises(HttpError) as err:
        client.get_json(f"{server.url}/ok", headers={"auth-token": SECRET})
    assert err.value.status == status
    assert words in err.value.reason
    assert server.count("/ok") == 3  # 1 try + 2 retries
    assert SECRET not in str(err.value)
    assert SECRET not in caplog.text


def test_status_error_carries_provider_message_and_is_not_retried(
        server: JsonServer, client: HttpClient) -> None:
    with pytest.raises(HttpError) as err:
        client.get_json(f"{server.url}/status/403")
    assert err.value.status == 403
    assert "status 403 as asked" in err.value.reason
    assert server.count("/status") == 1


def test_retry_after_is_honoured(server: JsonServer) -> None:
    server.inject("429", times=1, retry_after="1")
    with HttpClient("generic", timeout_s=2, retries=2, backoff_s=0.001,
                    retry_after_max_s=5) as http:
        t0 = time.monotonic()
        assert http.get_json(f"{server.url}/ok")["ok"]
        assert time.monotonic() - t0 >= 0.95


def test_retry_after_is_capped(server: JsonServer) -> None:
    server.inject("503", times=1, retry_after="3600")
    with HttpClient("generic", timeout_s=2, retries=2, backoff_s=0.001,
                    retry_after_max_s=0.1) as http:
        t0 = time.monotonic()
        assert http.get_json(f"{server.url}/ok")["ok"]
        assert time.monotonic() - t0 < 1.0


def test_malformed_retry_after_falls_back_to_backoff(server: JsonServer,
                                                     client: HttpClient) -> None:
    server.inject("429", times=1, retry_after="soon, maybe")
    assert client.get_json(f"{server.url}/ok")["ok"]


def test_backoff_is_exponential_with_jitter_and_capped() -> None:
    retry = ProviderRetry(total=5, backoff_factor=0.1, backoff_jitter=0.0, backoff_max=0.5)
    step = RequestHistory("GET", "/x", None, 500, None)
    waits = [retry.new(history=(step,) * n).get_backoff_time() for n in range(5)]
    assert waits == pytest.approx([0.0, 0.1, 0.2, 0.4, 0.5])
    jittered = ProviderRetry(total=5, backoff_factor=0.1, backoff_jitter=0.05)
    samples = {jittered.new(history=(step,) * 2).get_backoff_time() for _ in range(20)}
    assert all(0.2 <= s <= 0.25 for s in samples) and len(samples) > 1
    assert jittered.new(history=(step,)).retry_after_max_s == jittered.retry_after_max_s


def test_html_error_body_is_summarised(server: JsonServer, client: HttpClient) -> None:
    with pytest.raises(HttpError) as err:
        client.get_json(f"{server.url}/html")
    assert "malformed JSON" in err.value.reason


def test_connection_refused_is_an_http_error() -> None:
    with JsonServer() as srv:
        url = f"{srv.url}/ok"
    with HttpClient("generic", timeout_s=0.3, retries=1, backoff_s=0.001) as http, \
            pytest.raises(HttpError) as err:
        http.get_json(url)
    assert err.value.status is None
    assert "refused" in err.value.reason or "failed" in err.value.reason


def test_secret_header_is_dropped_on_cross_host_redirect(server: JsonServer) -> None:
    with JsonServer() as other, HttpClient("generic", timeout_s=1, retries=0,
                                           sensitive_headers=["auth-token"]) as http:
        target = f"{other.url.replace('127.0.0.1', 'localhost')}/headers"
        body = http.get_json(f"{server.url}/redirect", params={"to": target},
                             headers={"auth-token": SECRET})
        assert "auth-token" not in body["headers"]
        same_host = http.get_json(f"{server.url}/redirect", params={"to": "/headers"},
                                  headers={"auth-token": SECRET})
        assert same_host["headers"]["auth-token"] == SECRET


def test_redact() -> None:
    assert redact("token=abc123 and abc123", ["abc123"]) == "token=*** and ***"
    assert redact("p%40ss and p@ss", ["p@ss"]) == "*** and ***"
    assert redact("nothing", [None, ""]) == "nothing"
    assert redact("abcdef", ["abc", "abcdef"]) == "***"
    header = basic_auth_header_value("user", "pw")
    assert redact(f"Basic {header}", [header]) == "Basic ***"


def test_logs_are_scrubbed(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    with HttpClient("generic", secrets=["s3cr3t-value"]):
        logging.getLogger("urllib3.connectionpool").warning("url /x?key=s3cr3t-value")
    assert "s3cr3t-value" not in caplog.text
    assert "key=***" in caplog.text


ITEMS = 2**20


class _BigBodyHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    calls = 0

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        type(self).calls += 1
        body = b"[" + b"1," * (ITEMS - 1) + b"1]"      # about 2 MiB of valid JSON
        pieces = [body[i:i + 65_536] for i in range(0, len(body), 65_536)]
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        if self.path == "/declared":
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            for piece in pieces:
                self.wfile.write(piece)
            return
        self.send_header("Transfer-Encoding", "chunked")   # no length given
        self.end_headers()
        for piece in pieces:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
        self.wfile.write(b"0\r\n\r\n")

    def log_message(self, *args: object) -> None:
        pass


@pytest.mark.parametrize("path", ["/declared", "/chunked"])
def test_oversized_body_is_refused_unread_and_not_retried(monkeypatch, path: str) -> None:
    """A body past MAX_RESPONSE_BYTES (2 MiB served, 1 MiB allowed here) is refused instead
    of being read whole into the service's memory, with or without a Content-Length."""
    monkeypatch.setattr(http_module, "MAX_RESPONSE_BYTES", 2**20)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _BigBodyHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    _BigBodyHandler.calls = 0
    try:
        with HttpClient("generic", timeout_s=5, retries=2, backoff_s=0.001) as http:
            with pytest.raises(HttpError) as err:
                http.get_json(f"http://127.0.0.1:{server.server_address[1]}{path}")
            assert "larger than 1,048,576" in err.value.reason and "not read" in err.value.reason
            monkeypatch.setattr(http_module, "MAX_RESPONSE_BYTES", 4 * 2**20)
            body = http.get_json(f"http://127.0.0.1:{server.server_address[1]}{path}")
            assert len(body) == ITEMS
        assert _BigBodyHandler.calls == 2      # refused once, not retried; then read
    finally:
        server.shutdown()
        server.server_close()
