"""Loopback HTTP servers that speak each forecast provider's documented format.

Each server is a ``ThreadingHTTPServer`` on ``127.0.0.1`` port 0 in a daemon thread (use it as a
context manager). It answers the provider's paths, checks its auth, returns its documented error
bodies, and serves the recorded real responses from ``../shared/data`` where they exist (see
``shared/data/SOURCES.md``); elsewhere, and when ``../shared`` is absent, it generates values in
the same documented format, so the tests run anywhere.

Fault injection: ``server.inject(kind, times=1)`` makes the next ``times`` matching requests
(``None``: all of them) fail with one of :data:`FAULTS`:

* ``timeout``: sleep ``timeout_delay_s`` (past the client's timeout) and close without answering
* ``reset``: close the socket with an RST (connection reset by peer)
* ``429`` (with ``Retry-After`` when ``retry_after`` is given), ``500``, ``503``: the provider's
  error body
* ``truncated``: the first half of the JSON body (honest ``Content-Length``)
* ``short_body``: full ``Content-Length`` announced, half the body sent, connection closed
* ``wrong_units``, ``empty``: the provider's normal answer with wrong units / no data
* ``kg_units``: UK CI and Electricity Maps answer in kg/kWh (values / 1000) under their usual
  (unlabelled) g/kWh fields
* ``trickle``: the normal answer with an honest ``Content-Length``, its body sent
  ``trickle_bytes`` at a time every ``trickle_interval_s`` (every socket read succeeds)
* ``expired_token``: 401 as for an expired or revoked token (WattTime also revokes its tokens)
"""

from __future__ import annotations

import base64
import json
import math
import os
import secrets
import socket
import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from gridshift.adapters.http import HttpClient

PROJECT_ROOT = Path(__file__).resolve().parents[2]
SHARED_DATA = Path(os.environ.get("GRIDSHIFT_SHARED_DATA", PROJECT_ROOT.parent / "shared" / "data"))

FAULTS = ("timeout", "reset", "429", "500", "503", "truncated", "short_body", "wrong_units",
          "empty", "expired_token", "kg_units", "trickle")

Now = Callable[[], datetime]


def fast_client(provider: str, *, timeout_s: float = 0.3, retries: int = 2,
                secrets: tuple[str, ...] = ()) -> HttpClient:
    """An HttpClient for tests: short timeouts, millisecond backoff, Retry-After capped."""
    return HttpClient(provider, timeout_s=timeout_s, retries=retries, backoff_s=0.001,
                      jitter_s=0.001, retry_after_max_s=0.05, secrets=secrets)


def load_sample(*parts: str) -> Any | None:
    """A recorded JSON response from ../shared/data, or None when it is not there."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        return None
    return json.loads(path.read_text(encoding="utf-8"))


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _floor(t: datetime, minutes: int) -> datetime:
    t = t.astimezone(UTC).replace(second=0, microsecond=0)
    return t - timedelta(minutes=(t.hour * 60 + t.minute) % minutes)


def _ceil(t: datetime, minutes: int) -> datetime:
    f = _floor(t, minutes)
    return f if f == t.astimezone(UTC) else f + timedelta(minutes=minutes)


def _parse_dt(text: str) -> datetime | None:
    try:
        t = datetime.fromisoformat(text.strip())
    except ValueError:
        return None
    return t if t.tzinfo is not None else None


@dataclass
class Request:
    """One request the server received (headers with lower-case names)."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]


@dataclass
class Reply:
    """What a route answers: a JSON-able body (or raw bytes/str) and a status."""

    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/json"

    def payload(self) -> bytes:
        """The body as bytes (JSON-encoded unless already bytes or text)."""
        if isinstance(self.body, bytes):
            return self.body
        if isinstance(self.body, str):
            return self.body.encode("utf-8")
        return json.dumps(self.body).encode("utf-8")


@dataclass
class _Fault:
    kind: str
    remaining: int | None
    retry_after: str | None
    path: str | None


class _Handler(BaseHTTPRequestHandler):
    server_version = "fake-provider/1.0"

    def do_GET(self) -> None:
        app: LoopbackServer = self.server.app  # type: ignore[attr-defined]
        split = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(split.query, keep_blank_values=True).items()}
        req = Request("GET", unquote(split.path), query,
                      {k.lower(): v for k, v in self.headers.items()})
        fault = app._take_fault(req)
        if fault is not None and fault.kind == "timeout":
            app.stop_event.wait(app.timeout_delay_s)
            self.close_connection = True
            return
        if fault is not None and fault.kind == "reset":
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                       struct.pack("ii", 1, 0))
            self.connection.close()
            self.close_connection = True
            return
        kind = fault.kind if fault is not None else None
        if kind in ("429", "500", "503"):
            reply = app.error_reply(int(kind), req)
            if fault is not None and fault.retry_after is not None:
                reply.headers["Retry-After"] = fault.retry_after
        else:
            try:
                reply = app.route(req, kind)
            except Exception as exc:  # a bug in the fake: answer 500, keep serving
                reply = app.error_reply(500, req)
                reply.headers["X-Fake-Error"] = type(exc).__name__
        body = reply.payload()
        announced = len(body)
        if kind == "truncated":
            body = body[: max(1, len(body) // 2)]
            announced = len(body)
        elif kind == "short_body":
            body = body[: max(1, len(body) // 2)]
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.content_type)
        self.send_header("Content-Length", str(announced))
        self.send_header("Access-Control-Allow-Origin", "*")
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.end_headers()
        try:
            if kind == "trickle":
                self._trickle(app, body)
            else:
                self.wfile.write(body)
        except OSError:
            pass
        self.close_connection = True

    def _trickle(self, app: LoopbackServer, body: bytes) -> None:
        for at in range(0, len(body), app.trickle_bytes):
            self.wfile.write(body[at:at + app.trickle_bytes])
            self.wfile.flush()
            if app.stop_event.wait(app.trickle_interval_s):
                return

    def log_message(self, format: str, *args: Any) -> None:
        return


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def handle_error(self, request: Any, client_address: Any) -> None:
        return  # a client that gave up (timeout fault) is expected here


class LoopbackServer:
    """Base: lifecycle, request log and fault injection. Subclasses implement :meth:`route`."""

    provider = "generic"

    def __init__(self, *, now: Now | None = None, timeout_delay_s: float = 1.0) -> None:
        self.now = now or _utcnow
        self.timeout_delay_s = timeout_delay_s
        #: The ``trickle`` fault: bytes per write and the pause between writes.
        self.trickle_bytes = 16
        self.trickle_interval_s = 2.0
        self.requests: list[Request] = []
        self.stop_event = threading.Event()
        self._faults: list[_Fault] = []
        self._lock = threading.Lock()
        self._httpd = _HTTPServer(("127.0.0.1", 0), _Handler)
        self._httpd.app = self  # type: ignore[attr-defined]
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------------
    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``."""
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def start(self) -> LoopbackServer:
        """Serve in a daemon thread."""
        self._thread = threading.Thread(target=self._httpd.serve_forever,
                                        kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Wake sleeping (timeout-fault) handlers, stop serving and close the socket."""
        self.stop_event.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> Any:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- faults ------------------------------------------------------------------------------
    def inject(self, kind: str, times: int | None = 1, *, retry_after: str | None = None,
               path: str | None = None) -> None:
        """The next ``times`` requests (``None``: every request) whose path starts with
        ``path`` (default: :meth:`fault_target`) fail with ``kind``."""
        if kind not in FAULTS:
            raise ValueError(f"unknown fault {kind!r}; one of {FAULTS}")
        with self._lock:
            self._faults.append(_Fault(kind, times, retry_after, path))

    def clear_faults(self) -> None:
        """Drop every pending fault."""
        with self._lock:
            self._faults.clear()

    def fault_target(self, req: Request) -> bool:
        """Which requests a fault without ``path`` applies to (default: all)."""
        return True

    def _take_fault(self, req: Request) -> _Fault | None:
        with self._lock:
            self.requests.append(req)
            for fault in self._faults:
                hit = req.path.startswith(fault.path) if fault.path else self.fault_target(req)
                if not hit:
                    continue
                if fault.remaining is not None:
                    fault.remaining -= 1
                    if fault.remaining <= 0:
                        self._faults.remove(fault)
                return fault
        return None

    def count(self, path_prefix: str = "/") -> int:
        """How many requests hit paths starting with ``path_prefix``."""
        return sum(1 for r in self.requests if r.path.startswith(path_prefix))

    # -- provider specifics ------------------------------------------------------------------
    def route(self, req: Request, fault: str | None) -> Reply:
        """The provider's answer to ``req``; ``fault`` is a body-level fault to apply
        (``wrong_units``, ``empty``, ``expired_token``) or None."""
        raise NotImplementedError

    def error_reply(self, status: int, req: Request, message: str | None = None) -> Reply:
        """The provider's documented error body for ``status``."""
        return Reply(status, {"error": message or f"HTTP {status}"})


# ============================================================================================
# A generic JSON server for the HTTP-layer tests
# ============================================================================================

class JsonServer(LoopbackServer):
    """``/ok`` answers ``{"ok": true, "n": <request count>}``; ``/headers`` echoes the request
    headers; ``/redirect?to=URL`` answers 302; ``/status/<code>`` answers that status."""

    provider = "generic"

    def route(self, req: Request, fault: str | None) -> Reply:
        if req.path == "/ok":
            return Reply(200, {"ok": True, "n": self.count("/ok")})
        if req.path == "/headers":
            return Reply(200, {"headers": req.headers})
        if req.path == "/redirect":
            return Reply(302, {}, headers={"Location": req.query.get("to", "/ok")})
        if req.path.startswith("/status/"):
            code = int(req.path.rsplit("/", 1)[1])
            return Reply(code, {"error": "Invalid query parameters",
                                "message": f"status {code} as asked"})
        if req.path == "/html":
            return Reply(200, "<html><body>not json</body></html>", content_type="text/html")
        return Reply(404, {"error": "not found"})


# ============================================================================================
# UK Carbon Intensity (NESO)
# ============================================================================================

UK_REGIONS = {
    1: ("Scottish Hydro Electric Power Distribution", "North Scotland"),
    2: ("SP Distribution", "South Scotland"), 3: ("Electricity North West", "North West England"),
    4: ("NPG North East", "North East England"), 5: ("NPG Yorkshire", "Yorkshire"),
    6: ("SP Manweb", "North Wales & Merseyside"), 7: ("WPD South Wales", "South Wales"),
    8: ("WPD West Midlands", "West Midlands"), 9: ("WPD East Midlands", "East Midlands"),
    10: ("UKPN East", "East England"), 11: ("WPD South West", "South West England"),
    12: ("SSE South", "South England"), 13: ("UKPN London", "London"),
    14: ("UKPN South East", "South East England"), 15: ("England", "England"),
    16: ("Scotland", "Scotland"), 17: ("Wales", "Wales"), 18: ("GB", "GB"),
}
#: Outward codes the fake knows (BH1 is the recorded sample's postcode, served as recorded).
UK_POSTCODES = {"BH1": 11, "BS7": 11, "RG10": 12, "RG41": 12, "SW1": 13, "W1A": 13, "BN3": 13,
                "TF8": 8, "EH1": 2, "CF10": 7, "M1": 3}
_UK_PERIOD = timedelta(minutes=30)
_UK_FUELS = ("biomass", "coal", "imports", "gas", "nuclear", "other", "hydro", "solar", "wind")


def uk_index(value: float) -> str:
    """An index band label (the thresholds are not in the API docs; any label is opaque)."""
    for limit, label in ((60, "very low"), (140, "low"), (200, "moderate"), (270, "high")):
        if value < limit:
            return label
    return "very high"


class UKCarbonIntensityServer(LoopbackServer):
    """``/intensity/...`` and ``/regional/intensity/...`` as documented (no auth).

    National periods of the recorded ``response_national.json`` (2017-10-01T11:30Z →
    2017-10-02T12:00Z) and regional periods of ``response.json`` (region 11 / postcode BH1,
    2020-05-19T20:00Z → 2020-05-20T20:00Z) are served verbatim; other periods are generated.
    """

    provider = "uk-carbon-intensity"

    def __init__(self, *, now: Now | None = None, timeout_delay_s: float = 1.0,
                 use_samples: bool = True) -> None:
        super().__init__(now=now, timeout_delay_s=timeout_delay_s)
        self.national_sample: dict[datetime, dict[str, Any]] = {}
        self.regional_sample: dict[datetime, dict[str, Any]] = {}
        self.regional_sample_meta: dict[str, Any] = {}
        if use_samples:
            national = load_sample("uk-carbon-intensity-api", "response_national.json")
            if national:
                for period in national["data"]:
                    self.national_sample[datetime.fromisoformat(period["from"])] = period
            regional = load_sample("uk-carbon-intensity-api", "response.json")
            if regional:
                meta = regional["data"]
                self.regional_sample_meta = {k: v for k, v in meta.items() if k != "data"}
                for period in meta["data"]:
                    self.regional_sample[datetime.fromisoformat(period["from"])] = period

    # values ------------------------------------------------------------------------------
    @staticmethod
    def generated_forecast(t: datetime, regionid: int = 18) -> int:
        hours = t.hour + t.minute / 60
        return int(round(180 + 70 * math.sin(2 * math.pi * (hours - 10) / 24)
                         + (regionid * 7) % 40 - 20))

    def national_period(self, t0: datetime) -> dict[str, Any]:
        """The national period object starting at ``t0`` (recorded or generated)."""
        if t0 in self.national_sample:
            return self.national_sample[t0]
        forecast = self.generated_forecast(t0)
        published = t0 + 2 * _UK_PERIOD <= self.now()
        actual = forecast + ((int(t0.timestamp()) // 1800) * 37) % 21 - 10 if published else None
        return {"from": _uk_fmt(t0), "to": _uk_fmt(t0 + _UK_PERIOD),
                "intensity": {"forecast": forecast, "actual": actual, "index": uk_index(forecast)}}

    def regional_period(self, regionid: int, t0: datetime) -> dict[str, Any]:
        """The regional period object (forecast only, with a generation mix)."""
        if regionid == self.regional_sample_meta.get("regionid") and t0 in self.regional_sample:
            return self.regional_sample[t0]
        forecast = self.generated_forecast(t0, regionid)
        mix = [{"fuel": f, "perc": p} for f, p in zip(
            _UK_FUELS, (6.0, 0.0, 5.0, 40.0, 15.0, 0.0, 1.0, 8.0, 25.0), strict=True)]
        return {"from": _uk_fmt(t0), "to": _uk_fmt(t0 + _UK_PERIOD),
                "intensity": {"forecast": forecast, "index": uk_index(forecast)},
                "generationmix": mix}

    # routing -----------------------------------------------------------------------------
    def error_reply(self, status: int, req: Request, message: str | None = None) -> Reply:
        code = {400: "400 Bad Request", 404: "404 Not Found", 429: "429 Too Many Requests",
                500: "500 Internal Server Error", 503: "503 Service Unavailable"}.get(
                    status, str(status))
        text = message or {500: "Requested resource not found.",
                           429: "Too many requests, slow down."}.get(status, "Bad request")
        return Reply(status, {"error": {"code": code, "message": text}})

    def route(self, req: Request, fault: str | None) -> Reply:
        parts = [p for p in req.path.split("/") if p]
        if fault == "empty":
            return Reply(200, {})
        scale = _SCALES.get(fault or "", 1)
        if len(parts) == 3 and parts[0] == "intensity":
            periods = self._window(parts[1], parts[2])
            if isinstance(periods, Reply):
                return periods
            return Reply(200, {"data": [_scaled(self.national_period(t), scale)
                                        for t in periods]})
        if len(parts) == 6 and parts[:2] == ["regional", "intensity"]:
            ctype = req.headers.get("content-type")
            if ctype and "json" not in ctype:
                return self.error_reply(400, req, "Unsupported Media Type")
            kind, key = parts[4], parts[5]
            if kind == "regionid":
                if not key.isdigit() or int(key) not in UK_REGIONS:
                    return self.error_reply(400, req, "Invalid region id.")
                regionid = int(key)
            elif kind == "postcode":
                regionid = UK_POSTCODES.get(key.upper(), 0)
                if not regionid:
                    return self.error_reply(400, req, "No postcode match can be found.")
            else:
                return self.error_reply(404, req, "Route not found.")
            periods = self._window(parts[2], parts[3])
            if isinstance(periods, Reply):
                return periods
            recorded = (regionid == self.regional_sample_meta.get("regionid")
                        and bool(self.regional_sample))
            dno, short = UK_REGIONS[regionid]
            head: dict[str, Any] = {"regionid": regionid, "dnoregion": dno, "shortname": short}
            if recorded:
                head.update({k: v for k, v in self.regional_sample_meta.items()
                             if k in ("regionid", "dnoregion", "shortname")})
            if kind == "postcode":
                head["postcode"] = key.upper()
            head["data"] = [_scaled(self.regional_period(regionid, t), scale) for t in periods]
            return Reply(200, {"data": head})
        return self.error_reply(404, req, "Route not found.")

    def _window(self, from_text: str, what: str) -> list[datetime] | Reply:
        start = _parse_dt(from_text)
        if start is None:
            return self.error_reply(400, _NO_REQUEST, f"Invalid datetime: {from_text}")
        start = start.astimezone(UTC)
        first = _ceil(start, 30) - _UK_PERIOD  # the earliest period with to >= from
        if what in ("fw24h", "fw48h"):
            stop = start + timedelta(hours=24 if what == "fw24h" else 48)
        elif what == "pt24h":
            first = _ceil(start - timedelta(hours=24), 30) - _UK_PERIOD
            stop = start
        else:
            to = _parse_dt(what)
            if to is None:
                return self.error_reply(400, _NO_REQUEST, f"Invalid datetime: {what}")
            stop = to.astimezone(UTC)
            if stop - start > timedelta(days=14):
                return self.error_reply(400, _NO_REQUEST,
                                        "The maximum date range is limited to 14 days.")
        out = []
        t = first
        while t < stop:
            out.append(t)
            t += _UK_PERIOD
        return out


_NO_REQUEST = Request("GET", "", {}, {})
#: Value factors of the unit faults: g/kWh sent as mg/kWh, or as kg/kWh.
_SCALES: dict[str, float] = {"wrong_units": 1000, "kg_units": 0.001}


def _uk_fmt(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%MZ")


def _scaled(period: dict[str, Any], scale: float) -> dict[str, Any]:
    if scale == 1:
        return period
    out = json.loads(json.dumps(period))
    for key in ("forecast", "actual"):
        if out["intensity"].get(key) is not None:
            out["intensity"][key] *= scale
    return out


# ============================================================================================
# Electricity Maps v3
# ============================================================================================

class ElectricityMapsServer(LoopbackServer):
    """``/v3/carbon-intensity/{forecast,history,past-range,latest}`` and ``/v3/zones``.

    Needs header ``auth-token``. DE values repeat the recorded day of
    ``carbon_intensity_history.json`` (2024-03-05T20:00Z → 2024-03-06T19:00Z) on every day
    ("re-dated"), so they equal the recording on its own dates; other zones are generated.
    """

    provider = "electricitymaps"

    def __init__(self, token: str = "emaps-test-token-7f3a9", *, now: Now | None = None,
                 timeout_delay_s: float = 1.0, zones: tuple[str, ...] = (
                     "DE", "FR", "GB", "DK-DK2", "US-CAR-DUK"),
                 forecast_starts_next_hour: bool = False, unit_field: str | None = None,
                 use_samples: bool = True) -> None:
        super().__init__(now=now, timeout_delay_s=timeout_delay_s)
        self.token = token
        self.zones = zones
        self.forecast_starts_next_hour = forecast_starts_next_hour
        self.unit_field = unit_field
        self.de_day: list[int] = []
        self.de_start: datetime | None = None
        sample = load_sample("electricitymaps-api", "carbon_intensity_history.json") \
            if use_samples else None
        if sample:
            self.de_day = [item["carbonIntensity"] for item in sample["history"]]
            self.de_start = datetime.fromisoformat(sample["history"][0]["datetime"])

    def value(self, zone: str, t: datetime) -> int:
        """gCO2eq/kWh of ``zone`` for the hour starting at ``t``."""
        if zone == "DE" and self.de_day and self.de_start is not None:
            i = int((t - self.de_start) // timedelta(hours=1)) % len(self.de_day)
            return self.de_day[i]
        base = {"DE": 450, "FR": 60, "GB": 200, "DK-DK2": 160}.get(zone, 300)
        return int(round(base * (1 + 0.25 * math.sin(2 * math.pi * (t.hour - 8) / 24))))

    def error_reply(self, status: int, req: Request, message: str | None = None) -> Reply:
        return Reply(status, {"error": message or {
            429: "Too many requests", 500: "Internal server error",
            503: "Service unavailable"}.get(status, f"HTTP {status}")})

    def _item(self, zone: str, t: datetime, scale: float, full: bool) -> dict[str, Any]:
        item: dict[str, Any] = {"zone": zone} if full else {}
        item["carbonIntensity"] = self.value(zone, t) * scale
        item["datetime"] = _em_fmt(t)
        if full:
            item.update({"updatedAt": _em_fmt(self.now()), "createdAt": _em_fmt(t),
                         "emissionFactorType": "lifecycle", "isEstimated": False,
                         "estimationMethod": None})
        if self.unit_field:
            item["unit"] = self.unit_field
        return item

    def route(self, req: Request, fault: str | None) -> Reply:
        if req.path == "/v3/zones":
            return Reply(200, {z: {"zoneName": z} for z in self.zones})
        if fault == "expired_token" or req.headers.get("auth-token") != self.token:
            return Reply(401, {"error": "Invalid auth-token"})
        zone = req.query.get("zone")
        if not zone:
            return self.error_reply(400, req, "zone, lat/lon or dataCenterProvider required")
        if zone not in self.zones:
            return Reply(403, "Access denied", content_type="text/plain")
        scale = _SCALES.get(fault or "", 1)
        hour = _floor(self.now(), 60)
        base = "/v3/carbon-intensity/"
        if req.path == base + "forecast":
            horizon = int(req.query.get("horizonHours", "24"))
            first = hour + timedelta(hours=1) if self.forecast_starts_next_hour else hour
            items = [] if fault == "empty" else [
                self._item(zone, first + timedelta(hours=i), scale, False)
                for i in range(horizon + (0 if self.forecast_starts_next_hour else 1))]
            body: dict[str, Any] = {"zone": zone, "forecast": items,
                                    "updatedAt": _em_fmt(self.now() - timedelta(minutes=8))}
        elif req.path == base + "history":
            items = [] if fault == "empty" else [
                self._item(zone, hour - timedelta(hours=23 - i), scale, True) for i in range(24)]
            body = {"zone": zone, "history": items}
        elif req.path == base + "past-range":
            start = _parse_dt(req.query.get("start", ""))
            end = _parse_dt(req.query.get("end", ""))
            if start is None or end is None or end <= start:
                return self.error_reply(400, req, "start and end must be ISO datetimes")
            if end - start > timedelta(days=10):
                return self.error_reply(400, req, "Maximum range is 10 days for hourly data")
            t, items = _ceil(start, 60), []
            while t < end and fault != "empty":
                items.append(self._item(zone, t, scale, True))
                t += timedelta(hours=1)
            body = {"zone": zone, "data": items}
        elif req.path == base + "latest":
            body = self._item(zone, hour, scale, True)
        else:
            return self.error_reply(404, req, "Not found")
        if self.unit_field:
            body["unit"] = self.unit_field
        return Reply(200, body)


def _em_fmt(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


# ============================================================================================
# WattTime v3
# ============================================================================================

_NGINX_403 = ("<html>\r\n<head><title>403 Forbidden</title></head>\r\n<body>\r\n"
              "<center><h1>403 Forbidden</h1></center>\r\n<hr><center>nginx</center>\r\n"
              "</body>\r\n</html>\r\n")
#: (region, full name, lat range, lon range) for region-from-loc.
WT_REGIONS = (
    ("CAISO_NORTH", "California ISO Northern", (36.0, 42.0), (-124.5, -119.0)),
    ("PSCO", "Public Service Co of Colorado", (37.0, 41.0), (-109.0, -102.0)),
    ("ISONE_WCMA", "ISONE Western/Central Massachusetts", (42.0, 42.8), (-73.5, -71.5)),
)


class WattTimeServer(LoopbackServer):
    """``/login`` (HTTP Basic → token), ``/v3/forecast``, ``/v3/historical``,
    ``/v3/region-from-loc``; Bearer auth on data routes.

    ``/v3/historical`` serves the recorded example (CAISO_NORTH 2022-07-15T00:00/00:05: 870,
    860 lbs/MWh) at its own times; the forecast's first points are the recorded example's
    (870, re-dated to the current 5-min interval), then a generated 200-1400 lbs/MWh curve.
    """

    provider = "watttime"

    def __init__(self, username: str = "gridshift-user", password: str = "wt-Pa55word-c0ffee",
                 *, now: Now | None = None, timeout_delay_s: float = 1.0,
                 regions: tuple[str, ...] = ("CAISO_NORTH", "PSCO", "ISONE_WCMA"),
                 use_samples: bool = True) -> None:
        super().__init__(now=now, timeout_delay_s=timeout_delay_s)
        self.username, self.password = username, password
        self.regions = regions
        self.issued_tokens: list[str] = []
        self.valid_tokens: set[str] = set()
        self.logins = 0
        self.forecast_head: list[float] = []
        self.historical_sample: dict[tuple[str, datetime], float] = {}
        if use_samples:
            fc = load_sample("watttime-api", "forecasted_emissions_response.json")
            if fc:
                self.forecast_head = [p["value"] for p in fc["data"][0]["forecast"]]
            hist = load_sample("watttime-api", "historical_emissions_response.json")
            if hist:
                region = hist["meta"]["region"]
                for p in hist["data"]:
                    when = datetime.fromisoformat(p["point_time"])
                    self.historical_sample[(region, when)] = p["value"]

    def fault_target(self, req: Request) -> bool:
        return req.path != "/login"

    @staticmethod
    def moer(region: str, t: datetime) -> float:
        """A generated MOER (lbs/MWh): a diurnal curve between about 200 and 1,400."""
        hours = t.hour + t.minute / 60
        offset = {"CAISO_NORTH": 0, "PSCO": 150, "ISONE_WCMA": -100}.get(region, 0)
        return float(round(800 + 550 * math.sin(2 * math.pi * (hours - 9) / 24) + offset))

    def forecast_value(self, region: str, i: int, t: datetime) -> float:
        """Point ``i`` (at ``t``) of the current forecast, lbs/MWh: the recorded example's
        values first, then the generated curve."""
        return self.forecast_head[i] if i < len(self.forecast_head) else self.moer(region, t)

    def error_reply(self, status: int, req: Request, message: str | None = None) -> Reply:
        return Reply(status, {"error": {429: "TOO_MANY_REQUESTS", 500: "INTERNAL_ERROR",
                                        503: "SERVICE_UNAVAILABLE"}.get(status, "ERROR"),
                              "message": message or f"HTTP {status}",
                              "docs": "https://docs.watttime.org/"})

    def route(self, req: Request, fault: str | None) -> Reply:
        if req.path == "/login":
            return self._login(req)
        auth = req.headers.get("authorization", "")
        token = auth[7:] if auth.startswith("Bearer ") else ""
        if fault == "expired_token":
            self.valid_tokens.clear()
        if token not in self.valid_tokens:
            return Reply(401, {"error": "UNAUTHORIZED", "message": "Invalid or expired token; "
                               "call /login again", "docs": "https://docs.watttime.org/"})
        if req.path == "/v3/region-from-loc":
            return self._region_from_loc(req)
        missing = [p for p in ("region", "signal_type") if not req.query.get(p)]
        if missing:
            return Reply(422, {"detail": [{"loc": ["query", p], "msg": "field required",
                                           "type": "value_error.missing"} for p in missing]})
        region, signal = req.query["region"], req.query["signal_type"]
        if region not in self.regions:
            return self.error_reply(403, req, "Invalid scope. You do not have sufficient access "
                                    "to this resource.")
        units = "percentile" if fault == "wrong_units" else "lbs_co2_per_mwh"
        meta: dict[str, Any] = {"data_point_period_seconds": 300, "region": region,
                                "warnings": [], "signal_type": signal,
                                "model": {"date": "2023-03-01"}, "units": units}
        step = timedelta(minutes=5)
        if req.path == "/v3/forecast":
            horizon = int(req.query.get("horizon_hours", "24"))
            if not 0 <= horizon <= 72:
                return self.error_reply(400, req, "horizon_hours must be 0..72")
            first = _floor(self.now(), 5)
            n = max(1, horizon * 12)
            data = []
            for i in range(n if fault != "empty" else 0):
                t = first + i * step
                value = self.forecast_value(region, i, t)
                data.append({"point_time": t.isoformat(), "value": value})
            meta.update({"generated_at_period_seconds": 300, "generated_at": first.isoformat()})
            return Reply(200, {"data": data, "meta": meta})
        if req.path == "/v3/historical":
            start = _parse_dt(req.query.get("start", ""))
            end = _parse_dt(req.query.get("end", ""))
            if start is None or end is None:
                return self.error_reply(400, req, "start and end must be datetimes with a "
                                        "time zone")
            if end - start > timedelta(days=32):
                return self.error_reply(400, req, "at most 32 days per query")
            t, data = _ceil(start, 5), []
            while t <= end and t <= self.now() and fault != "empty":
                value = self.historical_sample.get((region, t), self.moer(region, t))
                data.append({"point_time": t.astimezone(UTC).isoformat(), "value": value})
                t += step
            return Reply(200, {"data": data, "meta": meta})
        return self.error_reply(404, req, "Not found")

    def _login(self, req: Request) -> Reply:
        auth = req.headers.get("authorization", "")
        expected = base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
        if auth != f"Basic {expected}":
            return Reply(403, _NGINX_403, content_type="text/html")
        token = f"wt-token-{len(self.issued_tokens)}-{secrets.token_hex(12)}"
        self.logins += 1
        self.issued_tokens.append(token)
        self.valid_tokens.add(token)
        return Reply(200, {"token": token})

    def _region_from_loc(self, req: Request) -> Reply:
        try:
            lat = float(req.query["latitude"])
            lon = float(req.query["longitude"])
            signal = req.query["signal_type"]
        except (KeyError, ValueError):
            return Reply(422, {"detail": [{"loc": ["query", "latitude"],
                                           "msg": "field required", "type": "missing"}]})
        for region, full, (lat0, lat1), (lon0, lon1) in WT_REGIONS:
            if lat0 <= lat <= lat1 and lon0 <= lon <= lon1:
                return Reply(200, {"region": region, "region_full_name": full,
                                   "signal_type": signal})
        return Reply(404, {"error": "No coverage available for these coordinates and "
                           "signal_type", "latitude": str(lat), "longitude": str(lon),
                           "signal_type": signal})


# ============================================================================================
# Open-Meteo
# ============================================================================================

_OM_VARIABLES = {"shortwave_radiation": "W/m²", "direct_normal_irradiance": "W/m²",
                 "temperature_2m": "°C", "wind_speed_10m": "wind", "wind_speed_80m": "wind",
                 "wind_speed_100m": "wind", "wind_speed_120m": "wind"}
_OM_WIND = {"kmh": ("km/h", 3.6), "ms": ("m/s", 1.0), "mph": ("mp/h", 2.23694),
            "kn": ("kn", 1.94384)}
#: Recorded Berlin values (providers.md §4.5, timezone=GMT): hour → (GHI W/m², temp °C).
OM_BERLIN = {datetime(2023, 1, 1, 10, tzinfo=UTC): (50.0, 14.9),
             datetime(2023, 1, 1, 11, tzinfo=UTC): (76.0, 15.2),
             datetime(2023, 1, 1, 12, tzinfo=UTC): (111.0, 15.8),
             datetime(2023, 1, 1, 13, tzinfo=UTC): (95.0, 15.7)}


class OpenMeteoServer(LoopbackServer):
    """``/v1/forecast`` with ``hourly=``, ``wind_speed_unit``, ``timezone=GMT|UTC``,
    ``start_date``/``end_date`` or ``forecast_days``/``past_days``, ``timeformat``.

    Values are generated (GHI from a clear-sky sun-angle model, wind 100 m around 7 m/s)
    except the recorded Berlin hours of providers.md §4.5.
    """

    provider = "open-meteo"

    def __init__(self, *, now: Now | None = None, timeout_delay_s: float = 1.0,
                 ignore_wind_unit: bool = False) -> None:
        super().__init__(now=now, timeout_delay_s=timeout_delay_s)
        self.ignore_wind_unit = ignore_wind_unit

    @staticmethod
    def ghi(lat: float, lon: float, t_end: datetime) -> float:
        """Clear-sky-like GHI (W/m²): the mean over the hour ending at ``t_end``."""
        for (when, (ghi, _)) in OM_BERLIN.items():
            if t_end == when and abs(lat - 52.52) < 0.1 and abs(lon - 13.42) < 0.1:
                return ghi
        mid = t_end - timedelta(minutes=30)
        doy = mid.timetuple().tm_yday
        decl = math.radians(23.44) * math.sin(2 * math.pi * (284 + doy) / 365)
        solar_hour = mid.hour + mid.minute / 60 + lon / 15.0
        hour_angle = math.radians(15 * (solar_hour - 12))
        phi = math.radians(lat)
        sin_elev = (math.sin(phi) * math.sin(decl)
                    + math.cos(phi) * math.cos(decl) * math.cos(hour_angle))
        return round(max(0.0, 1000.0 * sin_elev ** 1.15) if sin_elev > 0 else 0.0, 1)

    @staticmethod
    def temperature(lat: float, lon: float, t: datetime) -> float:
        """Air temperature at 2 m (°C) at instant ``t``."""
        for (when, (_, temp)) in OM_BERLIN.items():
            if t == when and abs(lat - 52.52) < 0.1 and abs(lon - 13.42) < 0.1:
                return temp
        return round(12 + 6 * math.sin(2 * math.pi * (t.hour + lon / 15 - 9) / 24), 1)

    @staticmethod
    def wind_m_s(t: datetime) -> float:
        """Wind speed at 100 m (m/s) at instant ``t``."""
        hours = t.timestamp() / 3600
        return round(7 + 3.5 * math.sin(2 * math.pi * hours / 30), 2)

    def error_reply(self, status: int, req: Request, message: str | None = None) -> Reply:
        return Reply(status, {"error": True, "reason": message or {
            429: "Minutely API request limit exceeded. Please try again in one minute.",
            503: "The service is overloaded"}.get(status, f"HTTP {status}")})

    def route(self, req: Request, fault: str | None) -> Reply:
        if req.path != "/v1/forecast":
            return self.error_reply(404, req, "Not Found")
        q = req.query
        try:
            lat, lon = float(q["latitude"]), float(q["longitude"])
        except (KeyError, ValueError):
            return self.error_reply(400, req, "Parameter 'latitude' and 'longitude' required")
        if not -90 <= lat <= 90:
            return self.error_reply(400, req, f"Latitude must be in range of -90 to 90°. "
                                    f"Given: {lat}.")
        tz = q.get("timezone", "GMT")
        if tz not in ("GMT", "UTC"):
            return self.error_reply(400, req, "Invalid timezone")
        names = [v for v in q.get("hourly", "").split(",") if v]
        for name in names:
            if name not in _OM_VARIABLES:
                return self.error_reply(400, req, "Cannot initialize ForecastVariable from "
                                        f"invalid String value {name}")
        wind_param = "kmh" if self.ignore_wind_unit else q.get("wind_speed_unit", "kmh")
        if wind_param not in _OM_WIND:
            return self.error_reply(400, req, "Invalid wind_speed_unit")
        wind_label, wind_factor = _OM_WIND[wind_param]
        if ("start_date" in q or "end_date" in q) and "forecast_days" in q:
            return self.error_reply(400, req, "Parameter 'forecast_days' is mutually "
                                    "exclusive with 'start_date' and 'end_date'")
        if "start_date" in q:
            try:
                day0 = datetime.fromisoformat(q["start_date"]).replace(tzinfo=UTC)
                day1 = datetime.fromisoformat(q.get("end_date", q["start_date"])).replace(
                    tzinfo=UTC)
            except ValueError:
                return self.error_reply(400, req, "Invalid date")
            days = (day1 - day0).days + 1
        else:
            forecast_days = int(q.get("forecast_days", "7"))
            if not 0 <= forecast_days <= 16:
                return self.error_reply(400, req, "Forecast days is invalid. Allowed range 0 "
                                        "to 16. Given 16.")
            past = int(q.get("past_days", "0"))
            day0 = _floor(self.now(), 24 * 60) - timedelta(days=past)
            days = forecast_days + past
        times = [day0 + timedelta(hours=h) for h in range(0 if fault == "empty" else days * 24)]
        units: dict[str, str] = {"time": "iso8601"}
        hourly: dict[str, Any] = {}
        unixtime = q.get("timeformat") == "unixtime"
        hourly["time"] = ([int(t.timestamp()) for t in times] if unixtime
                          else [t.strftime("%Y-%m-%dT%H:%M") for t in times])
        if unixtime:
            units["time"] = "unixtime"
        for name in names:
            kind = _OM_VARIABLES[name]
            if name == "shortwave_radiation" or name == "direct_normal_irradiance":
                units[name] = "MJ/m²" if fault == "wrong_units" else "W/m²"
                hourly[name] = [self.ghi(lat, lon, t) for t in times]
            elif kind == "°C":
                units[name] = "°C"
                hourly[name] = [self.temperature(lat, lon, t) for t in times]
            else:
                units[name] = wind_label
                hourly[name] = [round(self.wind_m_s(t) * wind_factor, 2) for t in times]
        return Reply(200, {"latitude": round(lat, 3), "longitude": round(lon, 3),
                           "generationtime_ms": 0.5, "utc_offset_seconds": 0, "timezone": "GMT",
                           "timezone_abbreviation": "GMT", "elevation": 40.0,
                           "hourly_units": units, "hourly": hourly})
