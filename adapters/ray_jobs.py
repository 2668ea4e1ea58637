"""A Ray cluster, through its Jobs API (``ray.job_submission.JobSubmissionClient``): its GPUs,
submitting a job with entrypoint resources, and a job's status.

``address`` is the cluster's dashboard (``http://head:8265``). Every call is retried with
exponential backoff (tenacity) when the cluster cannot be reached or answers with a server
error, and then raises :class:`RayUnavailable`, so that the caller changes nothing that round.
Submitting is idempotent: the gate's submission id is Ray's ``submission_id``, and a second
submit of an id Ray already holds returns it instead of failing (the answer to the first one
may have been lost). Ray is the optional extra ``ray``; without it :class:`RayUnavailable`
says how to install it. A cluster with token authentication is reached with this machine's
token where one exists (:mod:`gridshift.adapters.ray_auth`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from gridshift.adapters.ray_auth import join_with_token_if_any

__all__ = ["RayJobState", "RayJobs", "RayUnavailable", "ray_available"]

log = logging.getLogger("gridshift.ray")

#: Ray's job statuses that are final.
FINAL_STATUSES = ("SUCCEEDED", "FAILED", "STOPPED")


class RayUnavailable(RuntimeError):
    """The Ray cluster could not be reached or refused a call after the retries."""


class _Transient(Exception):
    """A failure worth retrying (connection refused, timeout, a server error)."""


def ray_available() -> str:
    """'' when Ray's Jobs API can be imported, else why not (with the fix)."""
    try:
        from ray.job_submission import JobSubmissionClient  # noqa: F401
    except ImportError as exc:
        return f"Ray's Jobs API is not installed ({exc}): pip install 'gridshift[ray]'"
    return ""


@dataclass(frozen=True)
class RayJobState:
    """A Ray job as the Jobs API reports it."""

    submission_id: str
    status: str                  # PENDING, RUNNING, SUCCEEDED, FAILED, STOPPED
    submitted_at: datetime | None
    ended_at: datetime | None
    message: str = ""

    @property
    def final(self) -> bool:
        return self.status in FINAL_STATUSES


def _ms(value: Any) -> datetime | None:
    return datetime.fromtimestamp(value / 1000, UTC) if value else None


class RayJobs:
    """One Ray cluster's Jobs API (``address``: its dashboard URL)."""

    def __init__(self, address: str, *, timeout_s: float = 30.0, attempts: int = 4,
                 backoff_s: float = 0.5,
                 client_factory: Callable[[str], Any] | None = None) -> None:
        self.address = address
        self.timeout_s, self.attempts, self.backoff_s = timeout_s, attempts, backoff_s
        self._client_factory = client_factory
        self._client: Any = None
        self._joined = False

    def __repr__(self) -> str:
        return f"RayJobs({self.address!r})"

    # -- the calls ----------------------------------------------------------------------------

    def gpus(self) -> int:
        """The GPUs of the cluster's live nodes (logical GPUs: what Ray schedules with)."""
        def call() -> int:
            from ray.util.state import list_nodes

            nodes = list_nodes(address=self.address, filters=[("state", "=", "ALIVE")],
                               timeout=int(self.timeout_s), raise_on_missing_output=False)
            return int(sum((n.resources_total or {}).get("GPU", 0) for n in nodes))
        return self._retry("read the cluster's GPUs", call)

    def submit(self, submission_id: str, entrypoint: str, *, gpus: float,
               runtime_env: dict[str, Any] | None = None,
               metadata: dict[str, str] | None = None) -> str:
        """Submit a job holding ``gpus`` GPUs for its entrypoint; Ray's submission id. An id
        Ray holds already is not submitted again."""
        def call() -> str:
            client = self._connect()
            try:
                return client.submit_job(entrypoint=entrypoint, submission_id=submission_id,
                                         entrypoint_num_gpus=gpus, runtime_env=runtime_env,
                                         metadata=metadata)
            except RuntimeError as exc:
                if "already exists" in str(exc) or "already been used" in str(exc):
                    log.info("job %s is on the cluster already", submission_id)
                    return submission_id
                raise
        return self._retry(f"submit job {submission_id}", call)

    def state(self, submission_id: str) -> RayJobState | None:
        """The job's status and times; None when the cluster does not know the id."""
        def call() -> RayJobState | None:
            client = self._connect()
            try:
                info = client.get_job_info(submission_id)
            except RuntimeError as exc:
                if "does not exist" in str(exc) or "404" in str(exc):
                    return None
                raise
            status = getattr(info.status, "value", str(info.status))
            return RayJobState(submission_id, str(status), _ms(info.start_time),
                               _ms(info.end_time), info.message or "")
        return self._retry(f"read job {submission_id}", call)

    # -- plumbing -----------------------------------------------------------------------------

    def _connect(self) -> Any:
        if self._client is None:
            if self._client_factory is not None:
                self._client = self._client_factory(self.address)
            else:
                from ray.job_submission import JobSubmissionClient

                self._client = JobSubmissionClient(self.address)
        return self._client

    def _retry(self, action: str, call: Callable[[], Any]) -> Any:
        if why := ray_available():
            raise RayUnavailable(why)
        if not self._joined:
            join_with_token_if_any()
            self._joined = True

        def attempt() -> Any:
            try:
                return call()
            except (ConnectionError, TimeoutError, OSError) as exc:
                self._client = None
                raise _Transient(str(exc)) from exc
            except RuntimeError as exc:
                if _server_side(exc):
                    self._client = None
                    raise _Transient(str(exc)) from exc
                raise RayUnavailable(f"{action} at {self.address}: {exc}") from exc
            except Exception as exc:  # noqa: BLE001 - Ray's client raises many kinds
                if type(exc).__module__.startswith(("requests", "urllib3", "aiohttp", "ray")):
                    self._client = None
                    raise _Transient(f"{type(exc).__name__}: {exc}") from exc
                raise

        retrying = Retrying(retry=retry_if_exception_type(_Transient),
                            stop=stop_after_attempt(self.attempts),
                            wait=wait_exponential(multiplier=self.backoff_s, max=10),
                            reraise=True)
        try:
            return retrying(attempt)
        except _Transient as exc:
            raise RayUnavailable(f"could not {action} at {self.address} after "
                                 f"{self.attempts} attempts: {_short(str(exc))}") from None


def _server_side(exc: RuntimeError) -> bool:
    text = str(exc)
    return any(f"status code {code}" in text for code in (500, 502, 503, 504)) or \
        "Failed to connect" in text or "Connection" in text


def _short(text: str) -> str:
    line = text.strip().splitlines()[0] if text.strip() else text
    return line if len(line) <= 300 else line[:297] + "..."
