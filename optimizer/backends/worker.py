"""A solver worker process: `python -m optimizer.backends.worker`.

Reads pickled solve jobs from stdin, runs them, and writes pickled messages — ("progress",
objective, bound, elapsed, values), then ("result", BackendResult) or ("error", text) — to a
private copy of its original stdout. fd 1 itself is pointed at stderr so that anything a solver
library prints cannot corrupt the message stream.

A job is (backend, model, options): "highs" or "cpsat" on a MilpModel, or "ruin_recreate" on
(problem, plan), a second local search beside the caller's (its progress values are plans).
"""

from __future__ import annotations

import os
import pickle
import sys
import time


def main() -> int:
    messages = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    from gridshift.optimizer.backends.cpsat import solve_cpsat
    from gridshift.optimizer.backends.highs import solve_highs

    requests = sys.stdin.buffer
    while True:
        try:
            backend, model, kwargs = pickle.load(requests)
        except EOFError:
            return 0
        kwargs = _time_left(kwargs)

        def progress(objective, bound, elapsed, values=None) -> None:
            pickle.dump(("progress", objective, bound, elapsed, values), messages)
            messages.flush()

        try:
            if backend == "ruin_recreate":
                reply = ("result", _ruin_and_recreate(model, progress, **kwargs))
            else:
                solver = solve_highs if backend == "highs" else solve_cpsat
                reply = ("result", solver(model, on_progress=progress, **kwargs))
        except Exception as exc:  # noqa: BLE001 - reported to the parent, which raises it
            reply = ("error", f"{type(exc).__name__}: {exc}")
        pickle.dump(reply, messages)
        messages.flush()


def _time_left(kwargs: dict) -> dict:
    """The job's options with its time limit counted from when the parent sent it
    (``sent_at``, time.monotonic(): the same clock in every process of the machine), not from
    now: a worker started for the job spends a few tenths of a second importing its
    solvers first, which a 1-2 s call cannot spare."""
    sent_at = kwargs.pop("sent_at", None)
    if sent_at is not None and "time_limit_s" in kwargs:
        waited_s = max(0.0, time.monotonic() - sent_at)
        kwargs = dict(kwargs, time_limit_s=max(0.05, kwargs["time_limit_s"] - waited_s))
    return kwargs


def _ruin_and_recreate(job: tuple, progress, *, time_limit_s: float, seed: int,
                       report: bool = True, **options) -> tuple:
    """A ruin-and-recreate search (optimizer/ruin_recreate.py) on ``job`` = (problem, plan):
    each new best plan goes out as progress (its objective, the plan) unless ``report`` is
    false; returns (the best plan, the search's summary). ``options``: ruin_and_recreate's
    ``movable``, ``temperatures``, ``ideal``."""
    from gridshift.optimizer.ruin_recreate import ruin_and_recreate

    problem, plan = job
    began = time.monotonic()

    def improved(better, objective: float) -> None:
        progress(objective, float("-inf"), time.monotonic() - began, better)

    best, stats = ruin_and_recreate(problem, plan, began + time_limit_s, seed=seed,
                                    on_improve=improved if report else None, **options)
    return best, stats.summary()


if __name__ == "__main__":
    sys.exit(main())
