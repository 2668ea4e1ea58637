"""Configuration: defaults, an optional TOML file (`--config`), then GRIDSHIFT_* environment
variables, then command-line flags — later ones win."""

from __future__ import annotations

import math
import os
import tomllib
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

from gridshift.adapters.grpc_service import ServerSettings
from gridshift.optimizer.errors import FieldViolation, InvalidInputError

ENV_PREFIX = "GRIDSHIFT_"


def default_concurrency() -> int:
    return max(1, os.cpu_count() or 1)


def load_server_settings(config_path: str | None = None,
                         overrides: dict[str, Any] | None = None) -> ServerSettings:
    """Server settings from the [server] table of a TOML file, the environment
    (GRIDSHIFT_PORT, GRIDSHIFT_MAX_CONCURRENT_SOLVES, ...) and explicit overrides."""
    settings = ServerSettings(max_concurrent_solves=default_concurrency())
    known = {f.name: f.type for f in fields(ServerSettings)}
    values: dict[str, Any] = {}
    if config_path:
        try:
            table = tomllib.loads(Path(config_path).read_text(encoding="utf-8")).get("server", {})
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise InvalidInputError([FieldViolation("--config", f"cannot read: {exc}")]) from None
        unknown = sorted(set(table) - set(known))
        if unknown:
            raise InvalidInputError([FieldViolation(f"[server].{k}", "unknown setting")
                                     for k in unknown])
        values.update(table)
    for name in known:
        env = os.environ.get(ENV_PREFIX + name.upper())
        if env is not None:
            values[name] = env
    values.update({k: v for k, v in (overrides or {}).items() if v is not None})
    return replace(settings, **_typed(values, settings))


#: The range each numeric server setting must be in (inclusive; None: unbounded).
_RANGES: dict[str, tuple[float | None, float | None]] = {
    "port": (0, 65535), "max_concurrent_solves": (1, None), "max_queued_solves": (0, None),
    "grace_seconds": (0, None), "max_message_bytes": (1024, 2**31 - 1),
    "deadline_margin_s": (0, None), "deadline_margin_share": (0, 0.9),
}


def _typed(values: dict[str, Any], settings: ServerSettings) -> dict[str, Any]:
    out: dict[str, Any] = {}
    problems = []
    for name, value in values.items():
        kind = type(getattr(settings, name))
        try:
            typed = _convert(kind, value)
        except (TypeError, ValueError, OverflowError):
            problems.append(FieldViolation(name, f"expected {kind.__name__}, got {value!r}"))
            continue
        low, high = _RANGES.get(name, (None, None))
        if (low is not None and typed < low) or (high is not None and typed > high):
            bounds = f"at least {low}" if high is None else f"within {low}..{high}"
            problems.append(FieldViolation(name, f"must be {bounds}, got {typed!r}"))
            continue
        out[name] = typed
    if problems:
        raise InvalidInputError(problems)
    return out


def _convert(kind: type, value: Any) -> Any:
    """``value`` (from TOML, the environment or a flag) as ``kind``; a fractional or non-finite
    number is not an int, and a bool is not a number."""
    if kind is str:
        return str(value)
    if isinstance(value, bool):
        raise TypeError("a bool is not a number")
    number = float(value)
    if not math.isfinite(number):
        raise ValueError("not finite")
    if kind is int:
        if not number.is_integer():
            raise ValueError("not a whole number")
        return int(number)
    return number


def load_forecast_config(config_path: str | None):
    """The [forecasts] table of the config file (chains per region, cache path)."""
    from gridshift.forecasts import ForecastConfig

    if not config_path:
        return ForecastConfig()
    try:
        table = tomllib.loads(Path(config_path).read_text(encoding="utf-8")).get("forecasts", {})
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise InvalidInputError([FieldViolation("--config", f"cannot read: {exc}")]) from None
    try:
        return ForecastConfig.from_table(table)
    except (ValueError, TypeError) as exc:
        raise InvalidInputError([FieldViolation("[forecasts]", str(exc))]) from None
