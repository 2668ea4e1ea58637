"""`gridshift plan --server`: solve on a remote service, then verify the plan locally with the
independent checker."""

from __future__ import annotations

from typing import Any

import grpc
from google.protobuf import json_format
from grpc_status import rpc_status

from gridshift.adapters.codec import plan_from_response
from gridshift.adapters.grpc_client import SchedulerClient
from gridshift.api.v1 import optimize_pb2 as pb
from gridshift.optimizer.checker import check_plan
from gridshift.optimizer.errors import FieldViolation, InvalidInputError, UpstreamUnavailableError
from gridshift.optimizer.solve import PlanCheckError
from gridshift.planning import apply_overrides, prepare


def plan_remotely(server: str, request: Any, *, time_limit_s: float | None,
                  backend: str | None, timeout_s: float | None) -> tuple[pb.OptimizeResponse, str]:
    """Returns the response and a human summary; raises InvalidInputError for a request the
    server rejects and UpstreamUnavailableError when it cannot be reached or is overloaded."""
    data = apply_overrides(request, time_limit_s=time_limit_s, backend=backend)
    try:
        message = json_format.ParseDict(data, pb.OptimizeRequest())
    except (json_format.ParseError, TypeError, ValueError) as exc:
        raise InvalidInputError([FieldViolation("", f"not an OptimizeRequest: {exc}")]) from None
    with SchedulerClient(server) as client:
        try:
            response = client.optimize(message, timeout=timeout_s)
        except grpc.RpcError as exc:
            raise _domain_error(server, exc) from None
    return response, _summary(prepare(data), response)


def _domain_error(server: str, exc: grpc.RpcError) -> Exception:
    if exc.code() == grpc.StatusCode.INVALID_ARGUMENT:
        status = rpc_status.from_call(exc)
        violations = []
        for detail in status.details if status else []:
            from google.rpc import error_details_pb2

            bad = error_details_pb2.BadRequest()
            if detail.Unpack(bad):
                violations += [FieldViolation(v.field, v.description)
                               for v in bad.field_violations]
        return InvalidInputError(violations or [FieldViolation("", exc.details())])
    return UpstreamUnavailableError(f"{server}: {exc.code().name}: {exc.details()}")


def _summary(problem, response: pb.OptimizeResponse) -> str:
    status = pb.PlanStatus.Name(response.status)
    plan = plan_from_response(problem, response)
    check = check_plan(problem, plan)
    if status == "INFEASIBLE":
        lines = [f"INFEASIBLE: {len(response.unscheduled)} job(s) cannot be placed"]
        return "\n".join(lines + [f"  {u.job_id}: {u.reason}" for u in response.unscheduled])
    if not check.ok:
        raise PlanCheckError("remote plan fails the independent checker: "
                             + "; ".join(check.violations[:3]))
    return "\n".join([
        f"status {status} ({response.solver.backend}, remote) in "
        f"{response.solver.wall_seconds:.2f} s, gap {100 * response.solver.gap:.2f} %",
        f"emissions {response.totals.emissions_kg:,.1f} kg CO2e vs FIFO baseline "
        f"{response.baseline.emissions_kg:,.1f} kg: saves {response.savings_kg:,.1f} kg "
        f"({response.savings_pct:.1f} %)",
        "plan passes the independent checker",
    ])
