"""How a use case reports progress on long work, without knowing who watches: the CLI shows
progress bars on a terminal, the gRPC service streams events, tests watch nothing."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Protocol, TypeVar

__all__ = ["NO_PROGRESS", "Progress", "ProgressSink"]

T = TypeVar("T")
#: Receives the solver's progress events (first_plan, heuristic, incumbent: dicts with
#: kind, objective, best_bound, elapsed_s).
ProgressSink = Callable[[dict], None]


class Progress(Protocol):
    """A watcher of long work."""

    def solving(self, time_limit_s: float) -> AbstractContextManager[ProgressSink]:
        """A sink for one solve's events, open while it runs."""
        ...

    def items(self, items: Iterable[T], desc: str, unit: str) -> Iterable[T]:
        """``items``, reported as they are worked through."""
        ...


class _NoProgress:
    @contextmanager
    def solving(self, time_limit_s: float) -> Iterator[ProgressSink]:
        yield lambda event: None

    def items(self, items: Iterable[T], desc: str, unit: str) -> Iterable[T]:
        return items


#: Progress that nobody watches.
NO_PROGRESS: Progress = _NoProgress()
