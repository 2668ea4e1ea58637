"""Wall time of forecast resolution when a provider misbehaves (issue 19).

Loopback doubles of the providers (``tests/providers/fake_servers.py``) stand in for the real
APIs; gridshift is wired exactly as ``gridshift forecast`` / ``gridshift serve`` wire it, with
the production HTTP client (10 s per socket read, 4 retries), not the tests' fast one.

Scenarios (``--scenarios``, default all):

* ``hung``: ``gridshift forecast --region DE`` while Electricity Maps accepts the connection and
  never answers; the chain is Electricity Maps, cache, embedded profile.
* ``grpc``: ``Optimize`` over gRPC with a 60 s deadline for sites in US-CAL-CISO and
  US-TEX-ERCO while Electricity Maps hangs and WattTime (next in their chains) is healthy.
* ``retry-after``: the DE forecast while Electricity Maps answers every request 429 with
  ``Retry-After: 20``.
* ``trickle``: the DE forecast while Electricity Maps sends its answer 16 bytes every 2 s.

Each scenario stops waiting after ``--cap`` seconds (reported as ``> cap``). Run from the
repository root: ``python bench/hung_provider.py [--scenarios hung,grpc] [--cap 150]``.
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from providers.fake_servers import ElectricityMapsServer, WattTimeServer  # noqa: E402

from gridshift.bootstrap import build_app  # noqa: E402
from gridshift.settings import ServerSettings, load_settings  # noqa: E402

TOKEN = "bench-emaps-token"


def _app(data_dir: str, em: ElectricityMapsServer, wt: WattTimeServer | None = None):
    env = {"GRIDSHIFT_DATA_DIR": data_dir, "HOME": data_dir,
           "GRIDSHIFT_EMAPS_URL": f"{em.url}/v3", "GRIDSHIFT_EMAPS_TOKEN": TOKEN}
    if wt is not None:
        env.update({"GRIDSHIFT_WATTTIME_URL": wt.url, "GRIDSHIFT_WATTTIME_USER": wt.username,
                    "GRIDSHIFT_WATTTIME_PASSWORD": wt.password})
    return build_app(load_settings(environ=env), store=None)


def _capped(cap_s: float, work) -> tuple[float, str]:
    """(wall seconds, outcome) of ``work()``, giving up waiting after ``cap_s``."""
    box: dict[str, str] = {}

    def run() -> None:
        try:
            box["outcome"] = work()
        except Exception as exc:  # noqa: BLE001 - reported, not raised
            box["outcome"] = f"{type(exc).__name__}: {str(exc)[:160]}"

    started = time.monotonic()
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(cap_s)
    took = time.monotonic() - started
    return took, box.get("outcome", f"still waiting after {cap_s:.0f} s (gave up)")


def _hour() -> datetime:
    return datetime.now(UTC).replace(minute=0, second=0, microsecond=0)


def _forecast(data_dir: str, em: ElectricityMapsServer):
    app = _app(data_dir, em)

    def work() -> str:
        (series,) = app.queries.get_forecasts(["DE"], _hour(), _hour() + timedelta(hours=24), 60)
        return (f"provider {series.provider}, fallback {series.fallback}; "
                f"{series.detail[:150]}")

    return work


def hung(cap_s: float, data_dir: str) -> tuple[float, str]:
    with ElectricityMapsServer(TOKEN, timeout_delay_s=3600) as em:
        em.inject("timeout", times=None)
        return _capped(cap_s, _forecast(data_dir, em))


def retry_after(cap_s: float, data_dir: str) -> tuple[float, str]:
    with ElectricityMapsServer(TOKEN) as em:
        em.inject("429", times=None, retry_after="20")
        return _capped(cap_s, _forecast(data_dir, em))


def trickle(cap_s: float, data_dir: str) -> tuple[float, str]:
    with ElectricityMapsServer(TOKEN) as em:
        em.inject("trickle", times=None)
        return _capped(cap_s, _forecast(data_dir, em))


def grpc_optimize(cap_s: float, data_dir: str) -> tuple[float, str]:
    import grpc

    from gridshift.adapters.grpc_client import SchedulerClient
    from gridshift.service.servicer import start_server

    start = _hour()
    request = {"horizon": {"start": start.strftime("%Y-%m-%dT%H:%M:%SZ"), "slots": 12},
               "sites": [{"id": "ca", "region": "US-CAL-CISO", "gpu_capacity": 8},
                         {"id": "tx", "region": "US-TEX-ERCO", "gpu_capacity": 8}],
               "jobs": [{"id": "a", "gpus": 4, "power_kw": 3, "duration_minutes": 120},
                        {"id": "b", "gpus": 4, "power_kw": 2, "duration_minutes": 180}],
               "options": {"time_limit_seconds": 10}}
    with ElectricityMapsServer(TOKEN, timeout_delay_s=3600,
                               zones=("US-CAL-CISO", "US-TEX-ERCO")) as em, \
            WattTimeServer(regions=("CAISO_NORTH", "ERCOT_OTHER")) as wt:
        em.inject("timeout", times=None)
        running = start_server(_app(data_dir, em, wt), ServerSettings(port=0))
        try:
            with SchedulerClient(f"127.0.0.1:{running.port}") as client:
                def work() -> str:
                    try:
                        response = client.optimize(request, timeout=60)
                    except grpc.RpcError as exc:
                        return f"{exc.code().name}: {exc.details()[:120]}"
                    used = ", ".join(f"{p.region} {p.provider}" for p in response.provenance)
                    return f"{pb_status(response)}; {used}"

                return _capped(cap_s, work)
        finally:
            running.server.stop(0)


def pb_status(response) -> str:
    from gridshift.api.v1 import optimize_pb2 as pb

    return pb.PlanStatus.Name(response.status)


SCENARIOS = {"hung": hung, "grpc": grpc_optimize, "retry-after": retry_after,
             "trickle": trickle}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenarios", default=",".join(SCENARIOS))
    parser.add_argument("--cap", type=float, default=150.0,
                        help="seconds to wait for one scenario before giving up")
    args = parser.parse_args()
    print(f"python {platform.python_version()} on {platform.machine()}, "
          f"{platform.node() or 'host'}; gridshift from {Path(build_app.__code__.co_filename)}")
    for name in args.scenarios.split(","):
        with tempfile.TemporaryDirectory() as data_dir:
            took, outcome = SCENARIOS[name](args.cap, data_dir)
        print(f"{name:12s} {took:7.1f} s  {outcome}", flush=True)


if __name__ == "__main__":
    main()
