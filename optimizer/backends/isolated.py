"""Run an exact backend in a worker process so that it can be stopped from outside.

Solver libraries do not always notice a time limit or an interrupt promptly (HiGHS can spend
seconds in phases that poll nothing). The worker streams every improved solution back; when
the caller cancels, or the hard wall-clock limit passes, the worker is killed and the last
incumbent is returned — so a cancelled or overrunning solve frees its slot at once.

Workers are plain subprocesses (`python -m optimizer.backends.worker`), never forks of the
caller, so they inherit no threads (gRPC) and need no `__main__` guard. Idle workers are kept
warm and reused; a killed one is replaced.
"""

from __future__ import annotations

import logging
import math
import pickle
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from gridshift.optimizer.backends import BackendResult, ProgressCallback
from gridshift.optimizer.milp import MilpModel
from gridshift.optimizer.plan import Plan
from gridshift.optimizer.problem import Problem

log = logging.getLogger(__name__)

# Extra time a solver gets past its own time limit before it is killed: a share of the limit,
# within bounds. HiGHS does not look at the clock in presolve: on a week of hourly slots for
# 300 jobs (24,000 columns) its presolve took 1.8 s of a 2 s limit, and a flat 0.5 s of grace
# let a 3 s call end at 3.4 s. Killing it costs the call nothing but the worker's restart: the
# worker has streamed every improved solution already.
KILL_GRACE_S = 0.5
KILL_GRACE_MIN_S = 0.1
KILL_GRACE_SHARE = 0.05
MAX_IDLE_WORKERS = 4


class _Worker:
    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "gridshift.optimizer.backends.worker"], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=None)
        self.messages: queue.Queue = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        stream = self.process.stdout
        while True:
            try:
                self.messages.put(pickle.load(stream))
            except Exception:  # noqa: BLE001 - EOF or a killed worker ends the stream
                self.messages.put(("eof",))
                return

    def send(self, payload: tuple) -> None:
        pickle.dump(payload, self.process.stdin)
        self.process.stdin.flush()

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=5)
        for stream in (self.process.stdin, self.process.stdout):
            try:
                stream.close()
            except OSError:
                pass


_idle: list[_Worker] = []
_idle_lock = threading.Lock()


def _acquire() -> _Worker:
    with _idle_lock:
        while _idle:
            worker = _idle.pop()
            if worker.process.poll() is None:
                return worker
    return _Worker()


def _release(worker: _Worker) -> None:
    with _idle_lock:
        if len(_idle) < MAX_IDLE_WORKERS and worker.process.poll() is None:
            _idle.append(worker)
            return
    worker.kill()


def shutdown() -> None:
    """End the idle workers (they also end by themselves when this process exits)."""
    with _idle_lock:
        workers, _idle[:] = list(_idle), []
    for worker in workers:
        worker.process.stdin.close()
        worker.process.wait(timeout=10)
        worker.process.stdout.close()


def prewarm(count: int = 1) -> None:
    """Start idle workers ahead of the first solve (a server calls this at start-up)."""
    workers = [_Worker() for _ in range(count)]
    for w in workers:
        _release(w)


def solve_isolated(backend: str, model: MilpModel, *, time_limit_s: float,
                   on_progress: ProgressCallback | None = None,
                   stop_flag: Callable[[], bool] | None = None, **kwargs: Any) -> BackendResult:
    """Solve in a worker; returns the solver's result, or the last incumbent when the solve is
    cancelled (stop_flag) or overruns time_limit_s + :func:`kill_grace_s`."""
    started = time.monotonic()
    outcome, last = _run_in_worker((backend, model, dict(kwargs, time_limit_s=time_limit_s)),
                                   started + time_limit_s + kill_grace_s(time_limit_s),
                                   on_progress, stop_flag)
    if outcome == "result":
        return last
    objective, bound, _, values = last or (math.nan, -math.inf, 0.0, None)
    status = "feasible" if values is not None else "no_solution"
    return BackendResult(status, values, objective, bound, time.monotonic() - started,
                         f"{backend}: {outcome}; last incumbent returned")


def kill_grace_s(time_limit_s: float) -> float:
    """Seconds an exact solver may run past `time_limit_s` before its worker is killed."""
    return min(KILL_GRACE_S, max(KILL_GRACE_MIN_S, KILL_GRACE_SHARE * time_limit_s))


@dataclass(frozen=True)
class IsolatedSearch:
    """What a search in a worker process gave: its best plan and a summary for the detail;
    ``failure`` is why the worker failed (``plan`` is then the plan it started from)."""

    plan: Plan
    summary: str
    failure: str | None = None


def recreate_isolated(problem: Problem, plan: Plan, *, time_limit_s: float, seed: int,
                      on_improve: Callable[[Plan, float], None] | None = None,
                      stop_flag: Callable[[], bool] | None = None,
                      **options) -> IsolatedSearch:
    """Ruin and recreate (optimizer/ruin_recreate.py) from ``plan`` in a worker process, for
    a second search beside one in this process. Cancelled or overrunning, the best plan it
    reported is returned (``plan`` if none); a worker that fails costs the second search
    only (``plan`` back, ``failure`` says why). ``options`` go to ruin_and_recreate
    (``movable``, ``temperatures``, ``ideal``); without ``on_improve`` the worker sends no
    plan until its last."""
    def improved(objective: float, _bound: float, _elapsed: float, better: Plan) -> None:
        if on_improve is not None:
            on_improve(better, objective)

    try:
        outcome, last = _run_in_worker(
            ("ruin_recreate", (problem, plan), {"time_limit_s": time_limit_s, "seed": seed,
                                                "report": on_improve is not None, **options}),
            time.monotonic() + time_limit_s + KILL_GRACE_S, improved, stop_flag)
    except RuntimeError as exc:
        log.warning("the second search failed, the first goes on alone: %s", exc)
        return IsolatedSearch(plan, f"second search failed ({exc})", failure=str(exc))
    if outcome == "result":
        return IsolatedSearch(*last)
    return IsolatedSearch(last[3] if last else plan, f"second search {outcome}")


def _run_in_worker(job: tuple, hard_deadline: float, on_progress, stop_flag
                   ) -> tuple[str, Any]:
    """Send ``job`` to a worker and follow it: ("result", the result), or the reason it was
    ended ("cancelled", "killed at the wall-clock limit") and the last progress message's
    (objective, bound, elapsed, values), None if there was none. A worker that fails or
    ends without a result raises RuntimeError."""
    worker = _acquire()
    name, payload, options = job
    # The worker counts the time limit from now, not from when it is ready (worker._time_left).
    worker.send((name, payload, dict(options, sent_at=time.monotonic())))
    last = None
    while True:
        if stop_flag is not None and stop_flag():
            reason = "cancelled"
            break
        if time.monotonic() > hard_deadline:
            reason = "killed at the wall-clock limit"
            break
        try:
            message = worker.messages.get(timeout=0.05)
        except queue.Empty:
            continue
        if message[0] == "progress":
            last = message[1:]
            if on_progress is not None:
                on_progress(*last)
        elif message[0] == "result":
            _release(worker)
            return "result", message[1]
        elif message[0] == "error":
            _release(worker)
            raise RuntimeError(f"{job[0]} solver failed: {message[1]}")
        else:
            worker.kill()
            raise RuntimeError(f"{job[0]} solver process ended without a result "
                               f"(exit code {worker.process.poll()})")
    worker.kill()
    return reason, last
