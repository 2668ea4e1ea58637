"""A benchmark's baseline from another source tree (``--compare-with DIR``), run in the same
benchmark run: DIR's ``gridshift`` package (laid out as installed, e.g. made from
``git archive`` of an older commit, with ``optimizer/``, ``forecasting/`` and ``adapters/``
copied under ``gridshift/``) imported instead of the editable install. Solver worker
processes still import the installed tree's backends."""

from __future__ import annotations

import json
import os
import subprocess
import sys

TREE_VARIABLE = "GRIDSHIFT_BENCH_TREE"


def use_tree_from_environment() -> None:
    """Where this process is a baseline run, import the other tree's gridshift: call it
    before anything imports gridshift (the editable install's import finder would otherwise
    win over sys.path)."""
    tree = os.environ.get(TREE_VARIABLE)
    if tree:
        sys.meta_path[:] = [f for f in sys.meta_path if "editable" not in repr(f).lower()]
        sys.path.insert(0, tree)


def run_script(script: str, args: list[str], tree: str | None = None) -> dict:
    """``python script *args`` in a fresh process, with ``tree``'s gridshift where given: the
    JSON object its last line of output prints. RuntimeError (its stderr's end) if it fails."""
    env = dict(os.environ)
    if tree:
        env[TREE_VARIABLE] = tree
    out = subprocess.run([sys.executable, script, *args], capture_output=True, text=True,
                         env=env, check=False)
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-3000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def warm_kernels() -> dict:
    """Load this process's compiled kernels (compiling them into numba's disk cache where
    they are not there yet): what a script's ``--warm`` run prints."""
    from gridshift.optimizer import insertion_kernels

    return {"kernels": insertion_kernels.kernels() is not None}


def product_and_baseline(script: str, compare_with: str | None) -> list[tuple[str, str | None]]:
    """A benchmark run's configurations, ("product", None) and, where given, ("baseline",
    compare_with). Each tree's kernels are compiled into its disk cache first (as `make
    install` does), so that no timed run waits for a compilation: ``script`` answers
    ``--warm`` with :func:`warm_kernels`."""
    configs = [("product", None)] + ([("baseline", compare_with)] if compare_with else [])
    for _, tree in configs:
        run_script(script, ["--warm"], tree)
    return configs
