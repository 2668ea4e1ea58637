"""Progress display for long CLI work: a tqdm bar over the solver's time budget on a terminal,
plain log lines when stderr is not a terminal. :data:`TERMINAL` is the CLI's
:class:`~gridshift.app.progress.Progress` for the use cases."""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

log = logging.getLogger("gridshift.progress")


@contextmanager
def solve_progress(time_limit_s: float, enabled: bool = True) -> Iterator[Callable[[dict], None]]:
    """Yields a progress sink for optimizer.solve events (first_plan, heuristic, incumbent)."""
    if not enabled:
        yield lambda event: None
        return
    if not sys.stderr.isatty():
        yield _log_event
        return
    from tqdm import tqdm

    bar = tqdm(total=round(time_limit_s, 1), unit="s", desc="solving", file=sys.stderr,
               bar_format="{desc}: {bar} {n:.1f}/{total:.1f} s{postfix}", leave=False)
    started = time.monotonic()
    done = threading.Event()

    def tick() -> None:
        while not done.wait(0.25):
            bar.n = min(bar.total, time.monotonic() - started)
            bar.refresh()

    def sink(event: dict) -> None:
        if "objective" in event:
            bound = event.get("best_bound")
            bar.set_postfix_str(f"objective {event['objective']:,.2f}"
                                + (f", bound {bound:,.2f}" if bound is not None
                                   and bound > -1e300 else ""))

    thread = threading.Thread(target=tick, daemon=True)
    thread.start()
    try:
        yield sink
    finally:
        done.set()
        thread.join()
        bar.close()


def _log_event(event: dict) -> None:
    if "objective" in event:
        log.info("%s after %.2f s: objective %.3f", event["kind"], event["elapsed_s"],
                 event["objective"])


def bar(items, desc: str, unit: str):
    """Iterate with a progress bar on a terminal, plain log lines otherwise."""
    items = list(items)
    if sys.stderr.isatty():
        from tqdm import tqdm

        return tqdm(items, desc=desc, unit=unit, file=sys.stderr, leave=False)

    def logged():
        for i, item in enumerate(items, 1):
            log.info("%s: %d/%d (%s)", desc, i, len(items), item)
            yield item
    return logged()


class TerminalProgress:
    """The use cases' Progress on the command line: bars on a terminal, log lines otherwise."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled

    def solving(self, time_limit_s: float):
        return solve_progress(time_limit_s, self.enabled)

    def items(self, items, desc: str, unit: str):
        return bar(items, desc, unit) if self.enabled else items


TERMINAL = TerminalProgress()
