"""`gridshift score`: candidate schedules scored locally or on a server."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from google.protobuf import json_format

from gridshift.adapters.scoring_codec import candidates_of, score_response
from gridshift.api.v1 import scoring_pb2
from gridshift.app.scoring import score_candidates
from gridshift.cli.common import app_of, client_of, read_request
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


def run(args: argparse.Namespace) -> int:
    problem = read_request(args.request)
    request = build_request(problem, args.candidates, args.scenarios, args.seed)
    if args.server:
        import grpc

        from gridshift.adapters.grpc_client import domain_error

        with client_of(args, args.server) as client:
            try:
                response = client.stub.ScoreSchedules(request, timeout=300, wait_for_ready=True)
            except grpc.RpcError as exc:
                raise domain_error(args.server, exc) from None
    else:
        app = app_of(args, scoring={"device": args.device})
        table = score_candidates(app.planner, problem, candidates_of(request.candidates),
                                 args.scenarios, args.seed)
        response = score_response(table)
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



