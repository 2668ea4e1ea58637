"""HiGHS keeps one thread scheduler per process, and rebuilding it for another thread count
broke every other Python thread that had run HiGHS before (model status "Not Set" ever
after). A server runs tiny solves in-process on several gRPC threads with per-request worker
counts, so runs from several threads with different counts must all solve. Run in a fresh
interpreter: the scheduler is process-wide state."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent

SCENARIO = """
import queue, sys, threading
sys.path.insert(0, "bench")
from instances import InstanceSpec, make_request
from gridshift.optimizer.backends.highs import solve_highs
from gridshift.optimizer.milp import build_milp
from gridshift.optimizer.parsing import parse_request
from gridshift.optimizer.problem import build_problem

spec = InstanceSpec("t", jobs=8, sites=2, slots=24, seed=1)
model = build_milp(build_problem(parse_request(make_request(spec))))
jobs, results = queue.Queue(), queue.Queue()

def other_thread():
    while True:
        workers = jobs.get()
        results.put(solve_highs(model, time_limit_s=20, relative_gap=1e-6,
                                workers=workers).status)

threading.Thread(target=other_thread, daemon=True).start()

def here(workers):
    return solve_highs(model, time_limit_s=20, relative_gap=1e-6, workers=workers).status

def there(workers):
    jobs.put(workers)
    return results.get()

print(here(1), there(2), here(2), here(1), there(1), there(2))
"""


def test_runs_from_several_threads_with_different_thread_counts_all_solve() -> None:
    run = subprocess.run([sys.executable, "-c", SCENARIO], cwd=PROJECT_ROOT,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["optimal"] * 6
