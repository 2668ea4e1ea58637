"""Fuzzing the gRPC service from outside: every method gets random bytes, truncated and
bit-flipped valid messages, invalid UTF-8 in strings, and unknown groups nested past the
parser's depth limit, sent raw (no client-side serialisation). Prints the status codes by kind
of input; any INTERNAL or UNKNOWN is a bug (a message that cannot be parsed is the client's
fault: INVALID_ARGUMENT).

    .venv/bin/python bench/fuzz.py [--calls 1200] [--seed 1] [--target HOST:PORT]

Without --target, a server is started in-process on a loopback port with a temporary store.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import grpc
from google.protobuf import json_format

from gridshift.api.v1 import forecast_pb2, plans_pb2, scoring_pb2
from gridshift.api.v1 import optimize_pb2 as pb

SERVICE = "/gridshift.api.v1.Scheduler/"
STREAMING = {"StreamOptimize"}
START = "2026-06-15T00:00:00Z"


def optimize_request() -> pb.OptimizeRequest:
    return json_format.ParseDict({
        "horizon": {"start": START, "slot_minutes": 60, "slots": 6},
        "sites": [{"id": "a", "region": "R", "gpu_capacity": 8, "solar_kwp": 5}],
        "jobs": [{"id": "j1", "team": "research", "gpus": 4, "power_kw": 3,
                  "duration_minutes": 120},
                 {"id": "j2", "team": "research", "gpus": 2, "power_kw": 1.5,
                  "duration_minutes": 60, "interruptible": True}],
        "forecasts": [{"region": "R", "start": START, "slot_minutes": 60,
                       "carbon_intensity": [300, 250, 120, 80, 90, 200],
                       "carbon_intensity_p10": [250, 200, 100, 60, 70, 150],
                       "carbon_intensity_p90": [350, 300, 150, 100, 120, 250]}],
        "options": {"time_limit_seconds": 1, "backend": "GREEDY"},
    }, pb.OptimizeRequest())


def valid_messages() -> dict[str, bytes]:
    """A valid request of every method, serialised."""
    start = datetime(2026, 6, 15, tzinfo=UTC)
    forecast = forecast_pb2.GetForecastRequest(regions=["US-CAL-CISO"], slot_minutes=60)
    end = datetime(2026, 6, 16, tzinfo=UTC)
    forecast.start.FromDatetime(start)
    forecast.end.FromDatetime(end)
    window = forecast_pb2.FindBestWindowRequest(regions=["US-CAL-CISO"], duration_minutes=120)
    window.window_start.FromDatetime(start)
    window.window_end.FromDatetime(end)
    score = scoring_pb2.ScoreSchedulesRequest(problem=optimize_request(), scenarios=4)
    candidate = score.candidates.add(name="now")
    for job_id, hours in (("j1", 2), ("j2", 1)):
        placed = candidate.assignments.add(job_id=job_id, site_id="a")
        placed.start.FromDatetime(start)
        placed.end.FromDatetime(start + timedelta(hours=hours))
    report = plans_pb2.GetCarbonReportRequest(format="csv", team="research")
    report.start.FromDatetime(start)
    report.end.FromDatetime(end)
    return {name: message.SerializeToString() for name, message in {
        "Optimize": optimize_request(), "StreamOptimize": optimize_request(),
        "GetForecast": forecast, "FindBestWindow": window, "ScoreSchedules": score,
        "GetPlan": plans_pb2.GetPlanRequest(plan_id="0123456789abcdef"),
        "ListPlans": plans_pb2.ListPlansRequest(page_size=5, team="research"),
        "GetCarbonReport": report}.items()}


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def mutations(valid: bytes, rng: random.Random) -> Iterator[tuple[str, bytes]]:
    """Endless (kind, bytes) of broken inputs derived from a valid message."""
    kinds: list[tuple[str, Callable[[], bytes]]] = [
        ("random", lambda: rng.randbytes(rng.randint(1, 400))),
        ("truncated", lambda: valid[:rng.randint(1, max(1, len(valid) - 1))]),
        ("bit-flipped", lambda: _flip(valid, rng)),
        ("invalid-utf8", lambda: valid + b"\x0a\x04\xff\xfe\xc3\x28"),  # field 1, bad bytes
        ("deep-groups", lambda: _varint(99 << 3 | 3) * rng.randint(101, 400)),
        ("huge-length", lambda: b"\x1a" + _varint(2**31 - 1) + b"x"),
        ("valid", lambda: valid),
    ]
    while True:
        kind, make = rng.choice(kinds)
        yield kind, make()


def _flip(data: bytes, rng: random.Random) -> bytes:
    out = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        i = rng.randrange(len(out))
        out[i] ^= 1 << rng.randrange(8)
    return bytes(out)


def fuzz(target: str, calls: int, seed: int, timeout: float = 5.0,
         metadata: tuple = ()) -> Counter:
    """Send ``calls`` fuzzed calls spread over every method; Counter of (method, kind, code)."""
    rng = random.Random(seed)
    valid = valid_messages()
    streams = {name: mutations(data, rng) for name, data in valid.items()}
    names = sorted(valid)
    codes: Counter = Counter()
    with grpc.insecure_channel(target, options=[
            ("grpc.max_send_message_length", 64 * 2**20)]) as channel:
        for i in range(calls):
            name = names[i % len(names)]
            kind, payload = next(streams[name])
            path = SERVICE + name
            try:
                if name in STREAMING:
                    call = channel.unary_stream(path)
                    for _ in call(payload, timeout=timeout, metadata=metadata):
                        pass
                else:
                    channel.unary_unary(path)(payload, timeout=timeout, metadata=metadata)
                code = "OK"
            except grpc.RpcError as exc:
                code = exc.code().name
            codes[(name, kind, code)] += 1
    return codes


@contextmanager
def local_server() -> Iterator[str]:
    from gridshift.adapters.store import PlanStore
    from gridshift.bootstrap import build_app
    from gridshift.service.servicer import start_server
    from gridshift.settings import ServerSettings, load_settings

    with tempfile.TemporaryDirectory() as tmp:
        settings = load_settings(environ={"GRIDSHIFT_DATA_DIR": tmp, "HOME": tmp})
        app = build_app(settings, store=PlanStore(f"sqlite:///{tmp}/plans.sqlite"))
        server = start_server(app, ServerSettings(port=0, max_concurrent_solves=2,
                                                  max_queued_solves=16))
        try:
            yield f"127.0.0.1:{server.port}"
        finally:
            server.server.stop(0).wait()
            app.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=1200)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--target", help="HOST:PORT of a running plaintext server")
    args = parser.parse_args()
    started = time.monotonic()
    if args.target:
        codes = fuzz(args.target, args.calls, args.seed)
    else:
        with local_server() as target:
            codes = fuzz(target, args.calls, args.seed)
    by_code: Counter = Counter()
    by_kind: dict[str, Counter] = {}
    for (_name, kind, code), n in codes.items():
        by_code[code] += n
        by_kind.setdefault(kind, Counter())[code] += n
    print(f"{sum(codes.values())} fuzzed calls on {len({k[0] for k in codes})} methods in "
          f"{time.monotonic() - started:.1f} s")
    print("by code: " + ", ".join(f"{c} {n}" for c, n in by_code.most_common()))
    for kind, counter in sorted(by_kind.items()):
        print(f"  {kind:<13} " + ", ".join(f"{c} {n}" for c, n in counter.most_common()))
    bad = by_code["INTERNAL"] + by_code["UNKNOWN"]
    print("no INTERNAL or UNKNOWN" if not bad else f"{bad} INTERNAL/UNKNOWN: bugs")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
