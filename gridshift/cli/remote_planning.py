"""Planning on a gridshift server for the scheduler integrations (`slurm sync|agent --server`,
`ray gate --server`): the request goes over gRPC, the plan comes back checked by the
independent checker against the forecasts the server used, as the integrations' PlanFn."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC
from typing import Any

from gridshift.app.scheduler_plans import PlanFn
from gridshift.cli.plan import _request_message, remote_summary, time_limit_of

__all__ = ["server_plan"]

#: Seconds a call may take beyond the solver's time limit (forecasts, queueing, the network).
CALL_MARGIN_S = 60.0
#: Seconds to wait for the server to accept a connection before the round gives up on it
#: (the call itself waits for a ready channel, which would otherwise be the whole deadline).
CONNECT_TIMEOUT_S = 10.0


def server_plan(connect: Callable[[], Any], target: str) -> PlanFn:
    """A PlanFn that plans on the server at ``target`` (``connect()``: a SchedulerClient to
    it). A server that cannot be reached, or a plan that fails the checker, raises: the
    integration's failure policy takes over (jobs go at their own times)."""
    def plan(request: dict[str, Any]):
        import grpc  # only with --server

        from gridshift.adapters.grpc_client import domain_error
        from gridshift.optimizer.errors import UpstreamUnavailableError

        message = _request_message(request)
        with connect() as client:
            try:
                grpc.channel_ready_future(client.channel).result(timeout=CONNECT_TIMEOUT_S)
            except grpc.FutureTimeoutError:
                raise UpstreamUnavailableError(
                    f"gridshift server {target} did not accept a connection within "
                    f"{CONNECT_TIMEOUT_S:.0f} s") from None
            try:
                response = client.optimize(
                    message, timeout=time_limit_of(request, None) + CALL_MARGIN_S)
            except grpc.RpcError as exc:
                raise domain_error(target, exc) from None
        remote_summary(request, response)    # PlanCheckError when the checker disagrees
        committed = {j["id"] for j in request["jobs"] if "committed_site" in j}
        placed = {a.job_id: (a.site_id, a.start.ToDatetime(tzinfo=UTC))
                  for a in response.assignments if a.job_id not in committed}
        left = {u.job_id: u.reason for u in response.unscheduled}
        return response.plan_id, placed, left
    return plan
