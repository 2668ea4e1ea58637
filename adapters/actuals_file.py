"""Observed carbon intensity from a CSV file (``gridshift actuals import``): columns region,
valid_at (RFC 3339; no offset means UTC), value (gCO2e/kWh)."""

from __future__ import annotations

import csv
import math
from datetime import UTC, datetime

from gridshift.adapters.providers import MAX_PLAUSIBLE_G_PER_KWH
from gridshift.optimizer.errors import FieldViolation, InvalidInputError

__all__ = ["read_actuals_csv"]


def _time(value: str | None, name: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value or "")
    except ValueError:
        raise InvalidInputError([FieldViolation(name, f"malformed time {value!r}")]) from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def read_actuals_csv(path: str) -> dict[str, list[tuple[datetime, float]]]:
    """(valid_at, gCO2e/kWh) points by region from a CSV with columns region,valid_at,value (a
    byte-order mark is allowed; ``nan`` or an empty value is a missing one). Values outside
    0..MAX_PLAUSIBLE_G_PER_KWH are refused with their line; every bad line is listed at once."""
    series: dict[str, list[tuple[datetime, float]]] = {}
    problems: list[FieldViolation] = []
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            for line, row in enumerate(csv.DictReader(handle), start=2):
                try:
                    t = _time(row["valid_at"], f"{path}:{line}.valid_at")
                    raw = (row["value"] or "").strip()
                    value = float(raw) if raw else math.nan
                    region = row["region"]
                except InvalidInputError as exc:
                    problems += exc.violations
                    continue
                except (KeyError, ValueError, TypeError) as exc:
                    problems.append(FieldViolation(
                        f"{path}:{line}", f"needs region,valid_at,value: {exc}"))
                    continue
                if not region.strip():
                    problems.append(FieldViolation(f"{path}:{line}.region", "empty"))
                    continue
                if math.isinf(value) or not (math.isnan(value)
                                             or 0 <= value <= MAX_PLAUSIBLE_G_PER_KWH):
                    problems.append(FieldViolation(
                        f"{path}:{line}.value", f"{value:g} gCO2e/kWh is outside 0.."
                        f"{MAX_PLAUSIBLE_G_PER_KWH:g} (wrong unit?)"))
                    continue
                series.setdefault(region, []).append((t, value))
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInputError([FieldViolation(path, f"cannot read: {exc}")]) from None
    if problems:
        raise InvalidInputError(problems)
    return series
