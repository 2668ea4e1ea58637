"""Settings: the one reader of configuration files, the environment and command-line flags.

Read once, in this order, later ones winning: defaults, a TOML file (``--config``), the
``GRIDSHIFT_*`` environment, then flags. Every value is checked when read and a bad one is
refused with the key named (:class:`~gridshift.optimizer.errors.InvalidInputError`). Nothing
else in gridshift reads ``os.environ``: the bootstrap hands the parts of :class:`Settings` to
the components that need them.

| table / key | environment | meaning |
| --- | --- | --- |
| ``[server]`` host, port, max_concurrent_solves, max_queued_solves, grace_seconds, max_message_bytes, deadline_margin_s, deadline_margin_share | ``GRIDSHIFT_HOST``, ``GRIDSHIFT_PORT``, ... (the key in capitals) | the gRPC service |
| ``[forecasts]`` regions, cache_path, ttl_seconds, blend, time_budget_s | — | provider chains per region, forecast cache, blend with actuals, time budget of a resolution |
| ``[providers]`` emaps_token, emaps_url, watttime_user, watttime_password, watttime_url, ukci_url, openmeteo_url | ``GRIDSHIFT_EMAPS_TOKEN``, ... | provider credentials and base URLs |
| ``[store]`` enabled, url | ``GRIDSHIFT_STORE`` (on/off), ``GRIDSHIFT_DB_URL`` | the plan store (default: SQLite in the data directory) |
| ``[paths]`` data_dir, shared_data_dir | ``GRIDSHIFT_DATA_DIR`` (else ``$XDG_DATA_HOME/gridshift``, else ``~/.local/share/gridshift``), ``GRIDSHIFT_SHARED_DATA`` | where gridshift keeps its files; the research data sets (backtests) |
| ``[scoring]`` device | ``GRIDSHIFT_DEVICE`` | auto, cpu or gpu (batch scoring, risk) |
| ``[logging]`` level | ``GRIDSHIFT_LOG_LEVEL`` | DEBUG, INFO, WARNING, ... |
| ``[security]`` tls_cert, tls_key, client_ca, tokens_file, rate_limit_per_s, rate_limit_burst, allow_insecure | ``GRIDSHIFT_TLS_CERT``, ... (the key in capitals) | TLS / mutual TLS, principals (hashed tokens, certificate identities), per-principal rate limits |
| ``[client]`` ca, cert, key, token, server_name | ``GRIDSHIFT_CLIENT_CA``, ``GRIDSHIFT_CLIENT_CERT``, ``GRIDSHIFT_CLIENT_KEY``, ``GRIDSHIFT_TOKEN``, ``GRIDSHIFT_CLIENT_SERVER_NAME`` | how the CLI reaches a server (--server) |
| ``[metrics]`` host, port, textfile, pushgateway, job | ``GRIDSHIFT_METRICS_HOST``, ... | Prometheus metrics: the HTTP port of `serve`; a textfile or Pushgateway for nightly runs |
| ``[tracing]`` enabled, exporter, endpoint, service_name, sample_ratio | ``GRIDSHIFT_TRACING_ENABLED``, ... | OpenTelemetry spans (the ``tracing`` extra): off by default; otlp, console or none |
"""  # noqa: E501 - a table reads better unwrapped

from __future__ import annotations

import logging
import math
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from gridshift.adapters.forecast_service import ForecastConfig
from gridshift.adapters.providers.registry import ProviderSettings, settings_keys
from gridshift.adapters.tracing import EXPORTERS, TracingConfig
from gridshift.optimizer.errors import FieldViolation, InvalidInputError

__all__ = ["ClientSettings", "InvalidSettingsError", "MetricsSettings", "SecuritySettings",
           "ServerSettings", "Settings", "StoreSettings", "load_settings"]

ENV_PREFIX = "GRIDSHIFT_"
#: Messages up to 64 MiB each way: a week of 5-minute slots for thousands of jobs fits.
MAX_MESSAGE_BYTES = 64 * 1024 * 1024
DEVICES = ("auto", "cpu", "gpu")


@dataclass(frozen=True)
class ServerSettings:
    """The gRPC service's listening address, concurrency, drain and deadline handling."""

    host: str = "127.0.0.1"
    port: int = 50051
    max_concurrent_solves: int = 2
    max_queued_solves: int = 8
    grace_seconds: float = 30.0
    max_message_bytes: int = MAX_MESSAGE_BYTES
    #: Part of a call's remaining time kept back for building and sending the response.
    deadline_margin_s: float = 0.3
    deadline_margin_share: float = 0.1
    #: On SIGTERM: health NOT_SERVING and new calls UNAVAILABLE for this long before the port
    #: closes (load balancers see it), then up to grace_seconds for in-flight calls.
    shutdown_delay_s: float = 2.0
    #: gRPC server reflection (v1 and v1alpha); with principals configured, admins only.
    reflection: bool = True
    #: Bounds of one planning call, checked before anything is built: its request message,
    #: jobs x sites x slots, and the memory it is estimated to need; and the memory all calls
    #: running or queued may hold together (RESOURCE_EXHAUSTED past it).
    max_request_bytes: int = 32 * 1024 * 1024
    max_cells_per_call: int = 20_000_000
    max_call_memory_bytes: int = 2 * 1024**3
    memory_budget_bytes: int = 6 * 1024**3


@dataclass(frozen=True)
class SecuritySettings:
    """TLS (``client_ca`` set: mutual TLS, client certificates required), the principals file
    (hashed bearer tokens and certificate identities with their teams and permissions; none:
    no authentication), per-principal rate limits (0: none), and whether a server without TLS
    or principals may listen beyond loopback (``allow_insecure``)."""

    tls_cert: str = ""
    tls_key: str = ""
    client_ca: str = ""
    tokens_file: str = ""
    rate_limit_per_s: float = 0.0
    rate_limit_burst: int = 20
    allow_insecure: bool = False

    @property
    def tls(self) -> bool:
        return bool(self.tls_cert)


@dataclass(frozen=True)
class ClientSettings:
    """How the CLI reaches a server: the CA that signs its certificate (TLS when set), a client
    certificate and key (mutual TLS), a bearer token, the name to check the certificate for."""

    ca: str = ""
    cert: str = ""
    key: str = ""
    token: str = field(default="", repr=False)
    server_name: str = ""


@dataclass(frozen=True)
class MetricsSettings:
    """Prometheus metrics: ``port`` of the HTTP endpoint of `serve` (-1: none; 0: any free),
    and where nightly runs write theirs (a node-exporter textfile, a Pushgateway URL)."""

    host: str = "127.0.0.1"
    port: int = -1
    textfile: str = ""
    pushgateway: str = ""
    job: str = "gridshift"


@dataclass(frozen=True)
class StoreSettings:
    """Whether plans are stored, and where (``url`` empty: SQLite in the data directory)."""

    enabled: bool = True
    url: str = ""


@dataclass(frozen=True)
class Settings:
    """Everything configurable, checked. Build it with :func:`load_settings`."""

    data_dir: Path
    shared_data_dir: Path
    server: ServerSettings = field(default_factory=ServerSettings)
    forecasts: ForecastConfig = field(default_factory=ForecastConfig)
    providers: ProviderSettings = field(default_factory=ProviderSettings)
    store: StoreSettings = field(default_factory=StoreSettings)
    security: SecuritySettings = field(default_factory=SecuritySettings)
    client: ClientSettings = field(default_factory=ClientSettings)
    metrics: MetricsSettings = field(default_factory=MetricsSettings)
    tracing: TracingConfig = field(default_factory=TracingConfig)
    device: str = "auto"
    #: None: not set (the CLI logs warnings, the server INFO).
    log_level: str | None = None
    #: The Slurm cluster the scheduler agent drives: its slurm.conf (None: Slurm's default).
    slurm_conf: str | None = None

    @property
    def store_url(self) -> str:
        """The plan store's database URL."""
        return self.store.url or f"sqlite:///{(self.data_dir / 'gridshift.sqlite').resolve()}"

    @property
    def forecast_cache_path(self) -> Path:
        return self.forecasts.cache_path or self.data_dir / "forecast-cache.sqlite"


def load_settings(config_path: str | Path | None = None, *,
                  environ: Mapping[str, str] | None = None,
                  flags: Mapping[str, Mapping[str, Any]] | None = None) -> Settings:
    """The settings of a TOML file, the environment (``os.environ`` unless given) and flags
    (tables as in the file, e.g. ``{"server": {"port": 0}}``; None values are not set).
    InvalidInputError lists every bad value with where it came from."""
    env = os.environ if environ is None else environ
    layered = _Layers(_read_file(config_path), env, flags or {})
    problems = [FieldViolation(f"[{name}]", f"unknown table (known: {', '.join(_KEYS)})")
                for name in sorted(set(layered.file) - set(_KEYS))]
    for table, keys in _KEYS.items():
        if table == "forecasts":
            continue   # ForecastConfig.from_table names its own unknown keys
        problems += [FieldViolation(f"[{table}].{key}", f"unknown setting (known: "
                                    f"{', '.join(keys)})")
                     for key in sorted(set(layered.file.get(table, {})) - set(keys))]
    parts: dict[str, Any] = {}
    for name, build in _PARTS.items():
        try:
            parts[name] = build(layered)
        except InvalidInputError as exc:
            problems += exc.violations
    if problems:
        raise InvalidSettingsError(problems)
    return Settings(**parts)


class InvalidSettingsError(InvalidInputError):
    """A setting (file, environment or flag) is wrong; every problem is listed."""


#: Every table and its keys; (table, key) pairs read from the environment are in _ENV.
_KEYS: dict[str, tuple[str, ...]] = {
    "server": tuple(f.name for f in fields(ServerSettings)),
    "forecasts": ("regions", "cache_path", "ttl_seconds", "blend", "time_budget_s"),
    "providers": settings_keys(),
    "store": ("enabled", "url"),
    "paths": ("data_dir", "shared_data_dir"),
    "scoring": ("device",),
    "logging": ("level",),
    "slurm": ("conf",),
    "security": tuple(f.name for f in fields(SecuritySettings)),
    "client": tuple(f.name for f in fields(ClientSettings)),
    "metrics": tuple(f.name for f in fields(MetricsSettings)),
    "tracing": tuple(f.name for f in fields(TracingConfig)),
}
_ENV: dict[tuple[str, str], str] = {
    **{("server", key): ENV_PREFIX + key.upper() for key in _KEYS["server"]},
    **{("providers", key): ENV_PREFIX + key.upper() for key in _KEYS["providers"]},
    ("store", "enabled"): "GRIDSHIFT_STORE", ("store", "url"): "GRIDSHIFT_DB_URL",
    ("paths", "data_dir"): "GRIDSHIFT_DATA_DIR",
    ("paths", "shared_data_dir"): "GRIDSHIFT_SHARED_DATA",
    ("scoring", "device"): "GRIDSHIFT_DEVICE", ("logging", "level"): "GRIDSHIFT_LOG_LEVEL",
    ("slurm", "conf"): "GRIDSHIFT_SLURM_CONF",
    **{("security", key): ENV_PREFIX + key.upper() for key in _KEYS["security"]},
    **{("client", key): f"{ENV_PREFIX}CLIENT_{key.upper()}" for key in _KEYS["client"]},
    ("client", "token"): "GRIDSHIFT_TOKEN",
    **{("metrics", key): f"{ENV_PREFIX}METRICS_{key.upper()}" for key in _KEYS["metrics"]},
    **{("tracing", key): f"{ENV_PREFIX}TRACING_{key.upper()}" for key in _KEYS["tracing"]},
}


class _Layers:
    """File, environment and flags, looked up in that order (the last one set wins)."""

    def __init__(self, file: dict[str, dict[str, Any]], env: Mapping[str, str],
                 flags: Mapping[str, Mapping[str, Any]]) -> None:
        self.file, self.env, self.flags = file, env, flags

    def get(self, table: str, key: str) -> tuple[Any, str] | None:
        """(value, where it came from) or None when unset."""
        flag = (self.flags.get(table) or {}).get(key)
        if flag is not None:
            return flag, f"{table}.{key}"
        env_name = _ENV.get((table, key))
        if env_name and (value := self.env.get(env_name)) is not None and value.strip():
            return value, env_name
        if key in self.file.get(table, {}):
            return self.file[table][key], f"[{table}].{key}"
        return None


def _read_file(config_path: str | Path | None) -> dict[str, dict[str, Any]]:
    if not config_path:
        return {}
    try:
        data = tomllib.loads(Path(config_path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise InvalidSettingsError([FieldViolation("--config", f"cannot read: {exc}")]) from None
    bad = [name for name, value in data.items() if not isinstance(value, dict)]
    if bad:
        raise InvalidSettingsError([FieldViolation(name, "must be a [table]") for name in bad])
    return {name: dict(value) for name, value in data.items()}


def _path(layers: _Layers, key: str) -> Path | None:
    found = layers.get("paths", key)
    if found is None:
        return None
    value, where = found
    if not isinstance(value, str | Path) or not str(value).strip():
        raise InvalidSettingsError([FieldViolation(where, f"must be a folder path, got {value!r}")])
    return Path(str(value)).expanduser()


def _data_dir(layers: _Layers) -> Path:
    explicit = _path(layers, "data_dir")
    if explicit is not None:
        return explicit
    env = layers.env
    base = env.get("XDG_DATA_HOME") or str(Path(env.get("HOME") or Path.home())
                                           / ".local" / "share")
    return Path(base) / "gridshift"


def _shared_data_dir(layers: _Layers) -> Path:
    # A development checkout keeps the shared data beside the repository.
    return (_path(layers, "shared_data_dir")
            or Path(__file__).resolve().parents[2] / "shared" / "data")


#: The range each numeric server setting must be in (inclusive; None: unbounded).
_RANGES: dict[str, tuple[float | None, float | None]] = {
    "port": (0, 65535), "max_concurrent_solves": (1, None), "max_queued_solves": (0, None),
    "grace_seconds": (0, None), "max_message_bytes": (1024, 2**31 - 1),
    "deadline_margin_s": (0, None), "deadline_margin_share": (0, 0.9),
    "shutdown_delay_s": (0, None), "max_request_bytes": (1024, 2**31 - 1),
    "max_cells_per_call": (1, None), "max_call_memory_bytes": (1, None),
    "memory_budget_bytes": (1, None), "rate_limit_per_s": (0, None),
    "rate_limit_burst": (1, None),
}


def _server(layers: _Layers) -> ServerSettings:
    defaults = ServerSettings(max_concurrent_solves=max(1, os.cpu_count() or 1))
    values: dict[str, Any] = {}
    problems = []
    for name in _KEYS["server"]:
        found = layers.get("server", name)
        if found is None:
            continue
        value, where = found
        kind = type(getattr(defaults, name))
        try:
            typed = _convert(kind, value)
        except (TypeError, ValueError, OverflowError):
            problems.append(FieldViolation(where, f"expected {kind.__name__}, got {value!r}"))
            continue
        low, high = _RANGES.get(name, (None, None))
        if (low is not None and typed < low) or (high is not None and typed > high):
            bounds = f"at least {low}" if high is None else f"within {low}..{high}"
            problems.append(FieldViolation(where, f"must be {bounds}, got {typed!r}"))
            continue
        values[name] = typed
    if problems:
        raise InvalidSettingsError(problems)
    return replace(defaults, **values)


def _convert(kind: type, value: Any) -> Any:
    """``value`` (from TOML, the environment or a flag) as ``kind``; a fractional or non-finite
    number is not an int, and a bool is not a number."""
    if kind is str:
        return str(value)
    if kind is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in _SWITCH:
            return _SWITCH[value.strip().lower()]
        raise ValueError("not on or off")
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


def _typed_table(table: str, cls: type, ranges: dict[str, tuple[float | None, float | None]]
                 ) -> Any:
    """A reader of a table whose keys are the fields of dataclass ``cls``, each converted to
    its default's type and held to its range (file, environment, flags, like [server])."""
    def read(layers: _Layers) -> Any:
        defaults = cls()
        values: dict[str, Any] = {}
        problems = []
        for name in _KEYS[table]:
            found = layers.get(table, name)
            if found is None:
                continue
            value, where = found
            kind = type(getattr(defaults, name))
            try:
                typed = _convert(kind, value)
            except (TypeError, ValueError, OverflowError):
                expected = "on or off" if kind is bool else kind.__name__
                problems.append(FieldViolation(where, f"expected {expected}, got "
                                                      f"{'***' if name == 'token' else value!r}"))
                continue
            low, high = ranges.get(name, (None, None))
            if (low is not None and typed < low) or (high is not None and typed > high):
                bounds = f"at least {low}" if high is None else f"within {low}..{high}"
                problems.append(FieldViolation(where, f"must be {bounds}, got {typed!r}"))
                continue
            values[name] = typed.strip() if isinstance(typed, str) else typed
        if problems:
            raise InvalidSettingsError(problems)
        return replace(defaults, **values)
    return read


def _forecasts(layers: _Layers) -> ForecastConfig:
    table = dict(layers.file.get("forecasts", {}))
    table.update({k: v for k, v in (layers.flags.get("forecasts") or {}).items()
                  if v is not None})
    try:
        return ForecastConfig.from_table(table)
    except (ValueError, TypeError) as exc:
        raise InvalidSettingsError([FieldViolation("[forecasts]", str(exc))]) from None


def _providers(layers: _Layers) -> ProviderSettings:
    values, problems = {}, []
    for key in _KEYS["providers"]:
        found = layers.get("providers", key)
        if found is None:
            continue
        value, where = found
        if not isinstance(value, str):
            problems.append(FieldViolation(where, f"must be a string, got {value!r}"))
        elif value.strip():
            values[key] = value.strip()
    if problems:
        raise InvalidSettingsError(problems)
    return ProviderSettings(values)


def _store(layers: _Layers) -> StoreSettings:
    problems = []
    enabled = True
    if (found := layers.get("store", "enabled")) is not None:
        value, where = found
        if isinstance(value, bool):
            enabled = value
        elif isinstance(value, str) and value.strip().lower() in _SWITCH:
            enabled = _SWITCH[value.strip().lower()]
        else:
            problems.append(FieldViolation(where, f"must be on or off, got {value!r}"))
    url = ""
    if (found := layers.get("store", "url")) is not None:
        value, where = found
        if isinstance(value, str):
            url = value.strip()
        else:
            problems.append(FieldViolation(where, f"must be a database URL, got {value!r}"))
    if problems:
        raise InvalidSettingsError(problems)
    return StoreSettings(enabled=enabled, url=url)


_SWITCH = {**dict.fromkeys(("on", "1", "true", "yes"), True),
           **dict.fromkeys(("off", "0", "false", "no"), False)}


def _device(layers: _Layers) -> str:
    found = layers.get("scoring", "device")
    if found is None:
        return "auto"
    value, where = found
    name = str(value).strip().lower()
    if name not in DEVICES:
        raise InvalidSettingsError([FieldViolation(where, f"must be one of {', '.join(DEVICES)}; "
                                                f"got {value!r}")])
    return name


def _log_level(layers: _Layers) -> str | None:
    found = layers.get("logging", "level")
    if found is None:
        return None
    value, where = found
    level = str(value).strip().upper()
    if not isinstance(logging.getLevelName(level), int):
        raise InvalidSettingsError([FieldViolation(where, f"unknown level {value!r} (DEBUG, INFO, "
                                                "WARNING, ERROR or CRITICAL)")])
    return level


#: How each field of Settings is read.
_PARTS = {
    "data_dir": _data_dir, "shared_data_dir": _shared_data_dir, "server": _server,
    "forecasts": _forecasts, "providers": _providers, "store": _store, "device": _device,
    "log_level": _log_level, "slurm_conf": lambda layers: _text_setting(layers, "slurm", "conf"),
    "security": _typed_table("security", SecuritySettings, _RANGES),
    "client": _typed_table("client", ClientSettings, {}),
    "metrics": _typed_table("metrics", MetricsSettings, {"port": (-1, 65535)}),
    "tracing": lambda layers: _tracing(layers),
}


_TRACING_TABLE = _typed_table("tracing", TracingConfig, {"sample_ratio": (0, 1)})


def _tracing(layers: _Layers) -> TracingConfig:
    """[tracing], typed like [metrics], its exporter one of EXPORTERS."""
    config = _TRACING_TABLE(layers)
    exporter = config.exporter.strip().lower()
    if exporter not in EXPORTERS:
        where = (layers.get("tracing", "exporter") or ("", "[tracing].exporter"))[1]
        raise InvalidSettingsError([FieldViolation(
            where, f"must be one of {', '.join(EXPORTERS)}; got {config.exporter!r}")])
    return replace(config, exporter=exporter)


def _text_setting(layers: _Layers, table: str, key: str) -> str | None:
    found = layers.get(table, key)
    if found is None:
        return None
    value, where = found
    if not isinstance(value, str) or not value.strip():
        raise InvalidSettingsError([FieldViolation(where, f"must be text, got {value!r}")])
    return value.strip()
