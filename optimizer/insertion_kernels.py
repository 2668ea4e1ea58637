"""Compiled kernels of the insertion step (optimizer/greedy.py): a job's cheapest contiguous
start and an interruptible job's cheapest runs, over all its allowed sites, and the update of
the fleet's free GPUs and load when a job is put in or taken out.

Ruin and recreate spends two thirds of its time inserting jobs, on arrays of a few sites by
a few dozen slots, where NumPy's cost per call outweighs the arithmetic: compiled with
numba (optimizer/insertion_jit.py), a contiguous insertion runs about 17 times faster and a
search makes 3-4 times the steps in its time.
The kernels do the same floating-point operations in the same order as the NumPy versions
in greedy.py (no fast-math, no reassociation), so they choose the same placement at the same
cost, ties included (tests/test_insertion.py checks both against the same references).

Compiled code is cached on disk (numba's cache: next to optimizer/insertion_jit.py, or the
user's cache directory where that is read-only; the Docker image compiles it when built).
Where numba is missing or cannot compile, :func:`kernels` returns None (with a warning in the
log) and greedy.py runs its NumPy versions.
"""

from __future__ import annotations

import logging
import threading
from typing import NamedTuple

import numpy as np

from gridshift.optimizer.recreation_status import DONE

log = logging.getLogger(__name__)

__all__ = ["Kernels", "kernels", "kernels_within", "loaded", "warm_up"]


class Kernels(NamedTuple):
    """The compiled functions (optimizer/insertion_jit.py and, for the search loop of
    ruin and recreate, optimizer/annealing_jit.py document their arguments)."""

    best_contiguous: object
    best_interruptible: object
    add_run: object
    move_jobs: object
    feasible_options: object
    recreate_retrying: object
    anneal: object
    objective: object


_lock = threading.Lock()
_tried = False                            # whether kernels() has tried to load them
_warming = threading.Event()              # a warm-up thread has been started
_done = threading.Event()                 # kernels() has tried (loaded or failed)
#: The kernels once loaded, else None (not yet tried, numba missing, or failed): what the
#: insertion reads on every call; it never waits for them.
loaded: Kernels | None = None


def kernels() -> Kernels | None:
    """The compiled kernels, compiled (or loaded from the cache) on first use; None where
    numba is unavailable or failed to compile."""
    global loaded, _tried
    with _lock:
        if not _tried:
            loaded = _load()
            _tried = True
            _done.set()
    return loaded


def kernels_within(timeout_s: float) -> Kernels | None:
    """The compiled kernels if they are loaded, or load within `timeout_s` seconds (in a
    background thread, which goes on where they take longer: compiling them without numba's
    disk cache takes about 30 s); None for now otherwise. From the disk cache they load in
    well under a second."""
    if _tried:
        return loaded
    warm_up()
    _done.wait(timeout_s)
    return loaded


def warm_up() -> None:
    """Compile (or load) the kernels in a background thread (a long-lived process, such as
    the service, at its start), so that no solve waits for them; insertions before then
    run the NumPy versions."""
    if _tried or _warming.is_set():
        return
    _warming.set()
    threading.Thread(target=kernels, name="gridshift-jit-warm-up", daemon=True).start()


def _load() -> Kernels | None:
    try:
        compiled = _compile()
        _smoke_test(compiled)
        return compiled
    except Exception as exc:       # numba missing, no cache locator, a compiler error
        log.warning("compiled insertion kernels unavailable (%s: %s); using NumPy",
                    type(exc).__name__, exc)
        return None


def _smoke_test(compiled: Kernels) -> None:
    """Run each kernel once on a tiny case (compiles it, or loads it from the cache)."""
    free = np.full((1, 4), 2, dtype=np.int64)
    zeros = np.zeros((1, 4))
    coef = np.array([[3.0, 1.0, 2.0, 4.0]])
    sites = np.zeros(1, dtype=np.int64)
    kw, cap = np.ones(1), np.full(1, np.inf)
    row, start, cost = compiled.best_contiguous(free, zeros, zeros, coef, sites, kw, cap, 1,
                                                1.0, 0, 4, 2, np.zeros(0))
    if (row, start, cost) != (0, 1, 3.0):
        raise RuntimeError(f"contiguous kernel self-test gave {(row, start, cost)}")
    row, slots, cost = compiled.best_interruptible(free, zeros, zeros, coef, sites, kw, cap, 1,
                                                   1.0, 0, 4, 2, 1, np.zeros(0))
    if row != 0 or list(slots) != [1, 2] or cost != 3.0:
        raise RuntimeError(f"interruptible kernel self-test gave {(row, list(slots), cost)}")
    load = np.zeros((1, 4))
    compiled.add_run(free, load, 0, 1, 3, 1, 2.5)
    if list(free[0]) != [2, 1, 1, 2] or list(load[0]) != [0.0, 2.5, 2.5, 0.0]:
        raise RuntimeError(f"add_run self-test gave {list(free[0])}, {list(load[0])}")
    one = np.ones(1, dtype=np.int64)
    jobs = (np.zeros((1, 1), dtype=np.int64), one, np.ones((1, 1)), np.full((1, 1), np.inf),
            one, np.zeros(1, dtype=np.int64), np.full(1, 4, dtype=np.int64), 2 * one, one,
            np.zeros(1, dtype=np.bool_), np.zeros(1), False)
    site, slots = np.zeros(1, dtype=np.int64), np.zeros((1, 2), dtype=np.int64)
    where, lo, hi = np.full(1, -1, dtype=np.int64), np.zeros(1, np.int64), np.zeros(1, np.int64)
    status = compiled.recreate_retrying(free, load, zeros, coef, 1.0, jobs,
                                        np.zeros(1, dtype=np.int64), np.inf, 2, where, slots,
                                        lo, hi, np.ones(1), np.ones(1), site, slots)
    if (status, where[0], lo[0], hi[0]) != (DONE, 0, 1, 3) or list(free[0]) != [2, 0, 0, 2]:
        raise RuntimeError(f"recreate_retrying self-test gave {(status, where[0], lo[0])}")
    compiled.move_jobs(free, load, np.zeros(1, dtype=np.int64), where, slots, 2 * one, one,
                       np.ones(1), np.ones(1), -1)
    if list(free[0]) != [2, 1, 1, 2]:
        raise RuntimeError(f"move_jobs self-test gave {list(free[0])}")
    options = np.zeros(1, dtype=np.int64)
    compiled.feasible_options(free, load, jobs, np.zeros(1, dtype=np.int64), options)
    if options[0] != 3:          # starts 0, 1 and 2 of a 2-slot job in 4 free slots
        raise RuntimeError(f"feasible_options self-test gave {options[0]}")
    _smoke_test_annealing(compiled)


def _smoke_test_annealing(compiled: Kernels) -> None:
    """Three one-slot, one-GPU jobs of 1 kW on a site of 2 GPUs whose slots cost 3, 1, 2, 4:
    from slots 0, 0 and 3 (10) a few steps reach 1, 1 and 2 (4)."""
    n, ints = 3, np.int64
    coef = np.array([[3.0, 1.0, 2.0, 4.0]])
    free, load = np.array([[0, 2, 2, 1]], dtype=ints), np.zeros((1, 4))
    load[0] = [2.0, 0.0, 0.0, 1.0]
    site, start = np.zeros(n, dtype=ints), np.array([0, 0, 3], dtype=ints)
    ones, one_each = np.ones(n), np.ones(n, dtype=ints)
    sched = (free, load, np.zeros((1, 4)), coef, 1.0, coef.copy(), site, start.copy(),
             start + 1, start.reshape(n, 1).copy(), one_each, one_each, ones, np.ones(1),
             np.ones(n, dtype=np.bool_), np.zeros(n), False)
    jobs = (np.zeros((n, 1), dtype=ints), one_each, np.ones((n, 1)), np.full((n, 1), np.inf),
            one_each, np.zeros(n, dtype=ints), np.full(n, 4, dtype=ints), one_each, one_each,
            np.zeros(n, dtype=np.bool_), np.zeros(n), False)
    ruin = (np.ones((n, 1), dtype=np.bool_), np.cumsum(np.full(4, 0.25)),
            np.concatenate([[[0.0]], np.cumsum(coef, axis=1)], axis=1), np.ones(n))
    work = (np.zeros(n, ints), np.zeros(n, ints), np.zeros(n), np.zeros(n, ints),
            np.zeros(n, ints), np.zeros(n), np.zeros(n), np.zeros(n, ints), np.zeros(n, ints),
            np.zeros((n, 1), ints), site.copy(), start.reshape(n, 1).copy(), np.zeros(n, ints),
            np.zeros((n, 1), ints))
    values = np.full(2, compiled.objective(sched))
    counts, by_kind = np.zeros(4, dtype=ints), np.zeros((5, 2), dtype=ints)
    compiled.anneal(np.array([7], dtype=np.uint64), sched, jobs, ruin, np.ones(5), work, 30,
                    0.0, 2, 3, 2, values, counts, by_kind)
    if values[1] != 4.0 or sorted(work[11][:, 0]) != [1, 1, 2] or counts[0] != 30:
        raise RuntimeError(f"annealing self-test gave {values[1]}, {sorted(work[11][:, 0])}")


def _compile() -> Kernels:
    from gridshift.optimizer import annealing_jit, insertion_jit

    return Kernels(insertion_jit.best_contiguous, insertion_jit.best_interruptible,
                   insertion_jit.add_run, insertion_jit.move_jobs,
                   insertion_jit.feasible_options, insertion_jit.recreate_retrying,
                   annealing_jit.anneal, annealing_jit.objective)
