"""`gridshift score`: candidate schedules scored locally or on a server."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from google.protobuf import json_format

from gridshift.api.v1 import scoring_pb2
from gridshift.optimizer.errors import FieldViolation, InvalidInputError


def build_request(problem: Any, files: list[str], scenarios: int,
                  seed: int) -> scoring_pb2.ScoreSchedulesRequest:
    """The ScoreSchedulesRequest for a problem dict and candidate files."""
    request = scoring_pb2.ScoreSchedulesRequest(scenarios=scenarios, seed=seed)
    try:
        json_format.ParseDict(problem, request.problem)
    except json_format.ParseError as exc:
        raise InvalidInputError([FieldViolation("request", str(exc))]) from None
    for path in files:
        for name, candidate in _candidates(path):
            try:
                message = json_format.ParseDict(candidate, scoring_pb2.CandidateSchedule(),
                                                ignore_unknown_fields=True)
            except json_format.ParseError as exc:
                raise InvalidInputError([FieldViolation(path, str(exc))]) from None
            message.name = message.name or name
            request.candidates.append(message)
    return request


def _candidates(path: str) -> list[tuple[str, dict]]:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8-sig"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidInputError([FieldViolation(path, f"cannot read: {exc}")]) from None
    items = data if isinstance(data, list) else [data]
    out = []
    for k, item in enumerate(items):
        if not isinstance(item, dict):
            raise InvalidInputError([FieldViolation(f"{path}[{k}]", "must be an object")])
        if "candidates" in item:
            out += [(c.get("name", f"{Path(path).stem}-{i}"), c)
                    for i, c in enumerate(item["candidates"])]
        else:   # a plan (OptimizeResponse JSON): its assignments are one candidate
            name = item.get("plan_id") or f"{Path(path).stem}{'-' + str(k) if k else ''}"
            out.append((name, {"name": name, "assignments": item.get("assignments", [])}))
    return out


def run_score(args: argparse.Namespace, read_request: Callable[[str], Any]) -> int:
    request = build_request(read_request(args.request), args.candidates, args.scenarios,
                            args.seed)
    if args.server:
        from gridshift.adapters.grpc_client import SchedulerClient

        with SchedulerClient(args.server) as client:
            response = client.stub.ScoreSchedules(request, timeout=300, wait_for_ready=True)
    else:
        from gridshift.planning import prepare
        from gridshift.scoring_service import score_schedules

        response = score_schedules(request, prepare, device=args.device)
    if args.format == "json":
        sys.stdout.write(json_format.MessageToJson(response, preserving_proto_field_name=True,
                                                   indent=2) + "\n")
        return 0
    print(f"{len(response.scores)} candidate(s), {response.scenarios} scenarios, "
          f"device {response.device}")
    print(f"{'candidate':<28} {'feasible':>8} {'kg CO2e':>10} {'expected':>10} {'P90':>10} "
          f"{'CVaR95':>10} {'cost':>10}")
    for s in response.scores:
        print(f"{s.name[:28]:<28} {'yes' if s.feasible else 'NO':>8} {s.emissions_kg:>10.2f} "
              f"{s.risk.expected_kg:>10.2f} {s.risk.p90_kg:>10.2f} {s.risk.cvar95_kg:>10.2f} "
              f"{s.cost:>10.2f}")
    return 0



