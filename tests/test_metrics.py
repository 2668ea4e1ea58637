"""Prometheus metrics over real HTTP: calls by method and code, latency, solves, forecast
resolutions by provider and outcome, the store, emissions planned and saved; nightly runs write
the same to a textfile."""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import grpc
import pytest
from conftest import PROJECT_ROOT, job, make_app, small_request

from gridshift.adapters.grpc_client import SchedulerClient
from gridshift.adapters.store import PlanStore
from gridshift.service.servicer import start_server
from gridshift.settings import ServerSettings


def scrape(port: int) -> dict[str, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as answer:
        text = answer.read().decode()
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
    return out


def test_the_service_exposes_its_metrics_on_their_own_port(tmp_path: Path) -> None:
    store = PlanStore(f"sqlite:///{tmp_path / 'plans.sqlite'}")
    app = make_app(store=store)
    server = start_server(app, ServerSettings(port=0), observer=app.metrics)
    http, port = app.metrics.serve("127.0.0.1", 0)
    try:
        request = small_request(ci=[300, 250, 120, 80, 90, 200, 280, 320])
        request["jobs"] = [job("j1", gpus=4, power_kw=3, duration_minutes=120),
                           job("j2", gpus=2, duration_minutes=60)]
        request["sites"].append({"id": "b", "region": "US-CAL-CISO", "gpu_capacity": 4})
        with SchedulerClient(f"127.0.0.1:{server.port}") as client:
            client.optimize(request, timeout=30)
            bad = dict(request, jobs=[job("j1", gpus=0)])
            with pytest.raises(grpc.RpcError):
                client.optimize(bad, timeout=30)
        values = scrape(port)
    finally:
        http.shutdown()
        http.server_close()
        server.server.stop(0).wait()
        store.close()
    method = 'method="/gridshift.api.v1.Scheduler/Optimize"'
    assert values[f'gridshift_grpc_calls_total{{code="OK",{method}}}'] == 1
    assert values[f'gridshift_grpc_calls_total{{code="INVALID_ARGUMENT",{method}}}'] == 1
    assert values[f"gridshift_grpc_call_seconds_count{{{method}}}"] == 2
    assert values['gridshift_solves_total{status="OPTIMAL"}'] == 1
    assert values["gridshift_solve_seconds_count"] == 1
    assert values["gridshift_solves_running"] == 0 and values["gridshift_solves_queued"] == 0
    assert values['gridshift_plans_total{stored="yes"}'] == 1
    assert values['gridshift_store_seconds_count{outcome="ok"}'] == 1
    assert values["gridshift_emissions_planned_kg_total"] > 0
    assert "gridshift_emissions_saved_kg_total" in values
    assert any(k.startswith("gridshift_forecast_resolutions_total{") and "US-CAL-CISO" not in k
               and 'outcome="fallback"' in k for k in values), values


def test_a_nightly_run_writes_its_metrics_to_a_textfile(tmp_path: Path) -> None:
    jobs = tmp_path / "jobs.csv"
    jobs.write_text("id,gpus,power_kw,duration_minutes,deadline\nj1,4,5.6,120,\n")
    sites = tmp_path / "sites.yaml"
    sites.write_text("sites:\n  - {id: a, region: US-CAL-CISO, gpu_capacity: 8}\n")
    textfile = tmp_path / "gridshift.prom"
    env = dict(os.environ, GRIDSHIFT_DATA_DIR=str(tmp_path / "data"),
               GRIDSHIFT_METRICS_TEXTFILE=str(textfile))
    env.pop("GRIDSHIFT_DB_URL", None)
    done = subprocess.run([sys.executable, "-m", "gridshift.cli", "nightly", "--jobs",
                           str(jobs), "--sites", str(sites), "--date", "2026-06-15",
                           "--out-dir", str(tmp_path / "out"), "--time-limit", "5"],
                          capture_output=True, text=True, cwd=PROJECT_ROOT, env=env, timeout=180)
    assert done.returncode == 0, done.stderr
    text = textfile.read_text()
    assert 'gridshift_plans_total{stored="yes"} 1.0' in text
    assert "gridshift_emissions_planned_kg_total" in text


def test_the_grafana_dashboard_asks_only_for_metrics_gridshift_exports() -> None:
    import json
    import re

    from gridshift.adapters.metrics import Metrics

    dashboard = json.loads((PROJECT_ROOT / "deploy" / "grafana" / "gridshift.json").read_text())
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum"),
                "gauge": ("",)}
    exported = {family.name + suffix for family in Metrics().registry.collect()
                for suffix in suffixes[family.type]}
    asked = {m for panel in dashboard["panels"] for target in panel["targets"]
             for m in re.findall(r"gridshift_[a-z_]+", target["expr"])}
    assert asked and asked <= exported, asked - exported
