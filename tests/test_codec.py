"""The response codec: the dict the plan store keeps (built directly, one pass over the jobs)
is exactly the protobuf JSON mapping of the response the service sends."""

from __future__ import annotations

import copy

import pytest
from conftest import hours, job, prepare, small_request, solve_checked
from google.protobuf import json_format

from gridshift.adapters.codec import response_dict, to_response
from gridshift.app.risk import solve_with_risk


def _requests() -> dict[str, dict]:
    mixed = small_request(slots=12, ci=[300, 250, 120, 80, 90, 200, 280, 320, 310, 150, 90,
                                        60])
    mixed["sites"].append({"id": "b", "region": "R", "gpu_capacity": 4, "pue": 1.2,
                           "renewable_kw": [0, 0, 1, 3, 4, 4, 3, 1, 0, 0, 0, 0]})
    mixed["jobs"] = [job("j1", gpus=4, power_kw=3, duration_minutes=120),
                     job("j2", gpus=8, power_kw=6, duration_minutes=60, allowed_sites=["a"]),
                     job("j3", gpus=2, power_kw=1.5, duration_minutes=180, interruptible=True,
                         min_run_minutes=60, deadline=hours(12)),
                     job("j0", gpus=1, power_kw=0.5, duration_minutes=60)]
    partial = copy.deepcopy(mixed)
    partial["jobs"].append(job("huge", gpus=64))
    partial["options"]["allow_partial"] = True
    infeasible = copy.deepcopy(mixed)
    infeasible["jobs"].append(job("huge", gpus=64))
    priced = copy.deepcopy(mixed)
    priced["forecasts"][0]["price_per_mwh"] = [40 - 10 * t for t in range(12)]
    priced["objective"] = {"carbon_weight": 1, "cost_weight": 1, "delay_weight": 0.5}
    return {"mixed": mixed, "partial": partial, "infeasible": infeasible, "priced": priced}


@pytest.mark.parametrize("name", ["mixed", "partial", "infeasible", "priced"])
def test_the_stored_dict_is_the_json_mapping_of_the_response(name: str) -> None:
    request = _requests()[name]
    result = solve_checked(request)
    expected = json_format.MessageToDict(to_response(result, "plan-1"),
                                         preserving_proto_field_name=True)
    assert response_dict(result, "plan-1") == expected
    with_risk = solve_with_risk(prepare(request))
    expected = json_format.MessageToDict(to_response(with_risk, "plan-2"),
                                         preserving_proto_field_name=True)
    assert response_dict(with_risk, "plan-2") == expected
