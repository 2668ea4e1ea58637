"""Protobuf messages of ScoreSchedules: candidate schedules in, scores out."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

from google.protobuf.timestamp_pb2 import Timestamp

from gridshift.api.v1 import optimize_pb2 as pb
from gridshift.api.v1 import scoring_pb2
from gridshift.optimizer.errors import FieldViolation, InvalidInputError
from gridshift.optimizer.scoring.schedules import Candidate, CandidateAssignment, ScoreTable

__all__ = ["candidates_of", "score_response"]


def candidates_of(messages: Iterable[scoring_pb2.CandidateSchedule]) -> list[Candidate]:
    """The candidates of a request; InvalidInputError names every unreadable time."""
    problems: list[FieldViolation] = []
    out = []
    for i, message in enumerate(messages):
        assignments = []
        for k, a in enumerate(message.assignments):
            path = f"candidates[{i}].assignments[{k}]"
            runs = list(a.runs) or [pb.Run(start=a.start, end=a.end)]
            times = [(_time(run.start, f"{path}.runs[{r}].start" if a.runs else f"{path}.start",
                            problems),
                      _time(run.end, f"{path}.runs[{r}].end" if a.runs else f"{path}.end",
                            problems))
                     for r, run in enumerate(runs)]
            assignments.append(CandidateAssignment(a.job_id, a.site_id, tuple(times),
                                                   as_runs=bool(a.runs)))
        out.append(Candidate(message.name, tuple(assignments)))
    if problems:
        raise InvalidInputError(problems)
    return out


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _time(ts: Timestamp, path: str, problems: list[FieldViolation]) -> datetime:
    try:
        return ts.ToDatetime(tzinfo=UTC)
    except (ValueError, OverflowError) as exc:
        problems.append(FieldViolation(path, f"not a valid timestamp: {exc}"))
        return _EPOCH


def score_response(table: ScoreTable) -> scoring_pb2.ScoreSchedulesResponse:
    """The response of a score table."""
    response = scoring_pb2.ScoreSchedulesResponse(scenarios=table.scenarios,
                                                  device=table.device)
    for s in table.scores:
        response.scores.add(
            name=s.name, feasible=s.feasible, emissions_kg=s.emissions_kg, cost=s.cost,
            energy_kwh=s.energy_kwh, grid_energy_kwh=s.grid_energy_kwh,
            risk=pb.Risk(expected_kg=s.expected_kg, p90_kg=s.p90_kg, cvar95_kg=s.cvar95_kg,
                         scenarios=table.scenarios),
            gpu_overuse_gpu_slots=s.gpu_overuse_gpu_slots,
            power_overuse_kwh=s.power_overuse_kwh, rule_violations=s.rule_violations,
            unscheduled_jobs=s.unscheduled_jobs)
    return response
