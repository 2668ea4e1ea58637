"""Independent tasks on Ray: the executor of backtest sweeps.

:class:`RaySweep` connects to a Ray cluster (``address``: ``host:port`` of a running cluster's
GCS, or ``auto``) or, with no address, starts a local one for the run with ``workers`` CPUs
(stopped again when the sweep ends). Called as an executor it puts each shared input (a
series' data) into the object store once, submits one task per item (one CPU each; at most
``workers`` in flight on a cluster it did not start) and yields the results as they finish.

Ray is the ``ray`` extra (``pip install gridshift[ray]``); without it, :class:`RayUnavailable`
says so. Nothing here stops a cluster it did not start (never ``ray stop``).

Token authentication (Ray >= 2.5x): a cluster that ``ray start`` or ``ray.init`` started on
this machine uses the token in ``~/.ray/auth_token``; connecting to an address, the token is
used where one exists, as ``ray start`` does to join, unless ``RAY_AUTH_MODE`` says
otherwise. Ray sets ``RAY_AUTH_MODE`` in the process that starts or joins a cluster; it is
restored when the sweep ends, so Ray processes started later from this one are not affected.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from types import TracebackType
from typing import Any

from gridshift.adapters.ray_auth import join_with_token_if_any

__all__ = ["RaySweep", "RayUnavailable"]


#: Environment variables Ray or this module set in the driver; restored after a sweep.
_ENV_KEYS = ("RAY_AUTH_MODE", "RAY_USAGE_STATS_ENABLED")


class RayUnavailable(RuntimeError):
    """Ray is not installed, or the cluster cannot be reached or started."""


class RaySweep:
    """A Ray connection for one sweep (a context manager); call it as the sweep's executor."""

    def __init__(self, address: str | None = None, workers: int | None = None) -> None:
        if workers is not None and workers < 1:
            raise ValueError(f"workers must be >= 1; got {workers}")
        self.address = address
        self.workers = workers
        self._ray: Any = None
        self._started = False

    def __enter__(self) -> RaySweep:
        try:
            import ray
        except ImportError as exc:
            raise RayUnavailable(f"Ray is not installed ({exc}); install gridshift[ray]") \
                from None
        self._ray = ray
        self._saved_env = {k: os.environ.get(k) for k in _ENV_KEYS}
        # Workers log to the driver only on error; no usage statistics.
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        if self.address is not None:
            join_with_token_if_any()
        options: dict[str, Any] = {"log_to_driver": False, "include_dashboard": False,
                                   "configure_logging": False}
        try:
            if self.address is None:
                ray.init(address="local", num_cpus=self.workers or os.cpu_count() or 1,
                         **options)
                self._started = True
            else:
                options.pop("include_dashboard")
                ray.init(address=self.address, **options)
        except Exception as exc:  # noqa: BLE001 - Ray raises many kinds; all mean unavailable
            self._restore_env()
            where = self.address or "a local cluster"
            raise RayUnavailable(f"cannot start or reach Ray at {where}: {exc}") from None
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._ray is not None and self._ray.is_initialized():
            self._ray.shutdown()          # stops only the local cluster this sweep started
        self._restore_env()

    def _restore_env(self) -> None:
        for key, value in getattr(self, "_saved_env", {}).items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value

    @property
    def description(self) -> str:
        """Where the tasks run, in words."""
        if self._started:
            return f"a local Ray cluster started for the run ({self.workers or os.cpu_count()} " \
                   "worker CPUs)"
        return f"the Ray cluster at {self.address}"

    def __call__(self, fn: Callable[[Any, Any], Any], items: list[Any],
                 shared: dict[str, Any], key: Callable[[Any], str]) -> Iterator[Any]:
        """Run ``fn(item, shared[key(item)])`` for every item as one Ray task each (one CPU);
        yield the results as they finish. A task's exception is raised here."""
        ray = self._ray
        if ray is None:
            raise RuntimeError("RaySweep is used as a context manager")
        refs = {name: ray.put(value) for name, value in shared.items()}
        task = ray.remote(num_cpus=1, max_retries=0)(fn)
        limit = len(items) if self._started or self.workers is None else self.workers
        waiting = list(items)
        running: list[Any] = []
        while waiting or running:
            while waiting and len(running) < limit:
                item = waiting.pop(0)
                running.append(task.remote(item, refs[key(item)]))
            ready, running = ray.wait(running, num_returns=1)
            yield ray.get(ready[0])
