"""A solver worker process: `python -m optimizer.backends.worker`.

Reads pickled solve jobs from stdin, runs them, and writes pickled messages — ("progress",
objective, bound, elapsed, values), then ("result", BackendResult) or ("error", text) — to a
private copy of its original stdout. fd 1 itself is pointed at stderr so that anything a solver
library prints cannot corrupt the message stream.
"""

from __future__ import annotations

import os
import pickle
import sys


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

        def progress(objective, bound, elapsed, values=None) -> None:
            pickle.dump(("progress", objective, bound, elapsed, values), messages)
            messages.flush()

        solver = solve_highs if backend == "highs" else solve_cpsat
        try:
            reply = ("result", solver(model, on_progress=progress, **kwargs))
        except Exception as exc:  # noqa: BLE001 - reported to the parent, which raises it
            reply = ("error", f"{type(exc).__name__}: {exc}")
        pickle.dump(reply, messages)
        messages.flush()


if __name__ == "__main__":
    sys.exit(main())
