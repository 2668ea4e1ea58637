"""Domain errors. Each carries a category that the edges (CLI exit codes, gRPC status codes)
map in one place."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class ErrorCategory(Enum):
    """What kind of failure an error is, independent of any transport."""

    INVALID_INPUT = "invalid_input"
    INFEASIBLE = "infeasible"
    UNAVAILABLE = "unavailable_upstream"
    DEADLINE = "deadline"
    OVERLOADED = "overloaded"
    CANCELLED = "cancelled"
    INTERNAL = "internal"


@dataclass(frozen=True)
class FieldViolation:
    """One problem with one field of a request, e.g. `jobs[3].deadline: before earliest_start`."""

    field: str
    problem: str

    def __str__(self) -> str:
        return f"{self.field}: {self.problem}" if self.field else self.problem


class GridshiftError(Exception):
    """Base of all domain errors."""

    category = ErrorCategory.INTERNAL


class InvalidInputError(GridshiftError):
    """The request is malformed; `violations` lists every problem found, not just the first."""

    category = ErrorCategory.INVALID_INPUT

    def __init__(self, violations: list[FieldViolation]):
        self.violations = list(violations)
        super().__init__("; ".join(str(v) for v in self.violations))


class UpstreamUnavailableError(GridshiftError):
    """A forecast provider (or other dependency) failed after retries and no fallback applied."""

    category = ErrorCategory.UNAVAILABLE


class OverloadedError(GridshiftError):
    """Too much concurrent work; retry later."""

    category = ErrorCategory.OVERLOADED


class CancelledError(GridshiftError):
    """The caller gave up (cancelled, or its deadline passed) while the work was under way."""

    category = ErrorCategory.CANCELLED
