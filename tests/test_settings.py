"""Settings: a TOML file, then GRIDSHIFT_* environment variables, then flags (later ones win);
every bad value is refused with where it came from; nothing else reads the environment."""

from __future__ import annotations

from pathlib import Path

import pytest

from gridshift.optimizer.errors import InvalidInputError
from gridshift.settings import load_settings


def config(tmp_path: Path, text: str) -> str:
    path = tmp_path / "gridshift.toml"
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_file_then_environment_then_flags(tmp_path: Path) -> None:
    path = config(tmp_path, '[server]\nport = 6000\nmax_queued_solves = 3\ngrace_seconds = 5\n'
                            'host = "0.0.0.0"\n')
    env = {"GRIDSHIFT_MAX_QUEUED_SOLVES": "7", "GRIDSHIFT_GRACE_SECONDS": "2.5"}
    settings = load_settings(path, environ=env,
                             flags={"server": {"grace_seconds": 1.0, "port": None}}).server
    assert (settings.host, settings.port, settings.max_queued_solves, settings.grace_seconds) == (
        "0.0.0.0", 6000, 7, 1.0)


@pytest.mark.parametrize(("where", "name", "value", "words"), [
    ("file", "port", "70000", "within 0..65535"),
    ("env", "port", "http", "expected int"),
    ("file", "max_concurrent_solves", "2.5", "expected int"),
    ("env", "max_concurrent_solves", "0", "at least 1"),
    ("file", "max_queued_solves", "-1", "at least 0"),
    ("env", "grace_seconds", "nan", "expected float"),
    ("file", "grace_seconds", "true", "expected float"),
    ("file", "max_message_bytes", "10", "within 1024.."),
    ("env", "deadline_margin_share", "1.5", "within 0..0.9"),
])
def test_bad_values_are_named_with_where_they_came_from(tmp_path: Path, where: str, name: str,
                                                        value: str, words: str) -> None:
    path, env = None, {}
    if where == "file":
        path = config(tmp_path, f"[server]\n{name} = {value}\n")
    else:
        env[f"GRIDSHIFT_{name.upper()}"] = value
    with pytest.raises(InvalidInputError) as info:
        load_settings(path, environ=env)
    [violation] = info.value.violations
    source = f"[server].{name}" if where == "file" else f"GRIDSHIFT_{name.upper()}"
    assert violation.field == source and words in violation.problem


def test_every_problem_is_listed_at_once(tmp_path: Path) -> None:
    path = config(tmp_path, "[server]\nprot = 1\n[scoring]\ndevice = 'tpu'\n[nonsense]\na = 1\n")
    with pytest.raises(InvalidInputError) as info:
        load_settings(path, environ={"GRIDSHIFT_STORE": "maybe", "GRIDSHIFT_LOG_LEVEL": "loud"})
    fields = {v.field for v in info.value.violations}
    assert fields == {"[server].prot", "[scoring].device", "[nonsense]", "GRIDSHIFT_STORE",
                      "GRIDSHIFT_LOG_LEVEL"}, info.value.violations


def test_unreadable_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="cannot read"):
        load_settings(tmp_path / "missing.toml", environ={})
    with pytest.raises(InvalidInputError, match="cannot read"):
        load_settings(config(tmp_path, "[server\n"), environ={})


def test_paths_store_device_and_log_level(tmp_path: Path) -> None:
    defaults = load_settings(environ={"HOME": "/home/u"})
    assert defaults.data_dir == Path("/home/u/.local/share/gridshift")
    assert defaults.store.enabled and defaults.store_url == (
        "sqlite:////home/u/.local/share/gridshift/gridshift.sqlite")
    assert defaults.forecast_cache_path == Path("/home/u/.local/share/gridshift/"
                                                "forecast-cache.sqlite")
    assert (defaults.device, defaults.log_level) == ("auto", None)
    xdg = load_settings(environ={"XDG_DATA_HOME": str(tmp_path / "xdg"), "HOME": "/h"})
    assert xdg.data_dir == tmp_path / "xdg" / "gridshift"
    env = {"GRIDSHIFT_DATA_DIR": str(tmp_path / "data"), "GRIDSHIFT_STORE": "off",
           "GRIDSHIFT_DB_URL": "postgresql://u@db.example/gridshift", "GRIDSHIFT_DEVICE": "CPU",
           "GRIDSHIFT_LOG_LEVEL": "debug", "GRIDSHIFT_SHARED_DATA": str(tmp_path / "shared")}
    s = load_settings(environ=env)
    assert s.data_dir == tmp_path / "data" and not s.store.enabled
    assert s.store_url == "postgresql://u@db.example/gridshift"
    assert (s.device, s.log_level, s.shared_data_dir) == ("cpu", "DEBUG", tmp_path / "shared")
    path = config(tmp_path, "[store]\nenabled = false\n[scoring]\ndevice = 'gpu'\n")
    from_file = load_settings(path, environ={"GRIDSHIFT_STORE": "on"},
                              flags={"scoring": {"device": "cpu"}})
    assert from_file.store.enabled and from_file.device == "cpu"


def test_provider_credentials_come_from_environment_or_file_and_never_show(tmp_path: Path
                                                                          ) -> None:
    path = config(tmp_path, "[providers]\nukci_url = 'http://127.0.0.1:9/'\n"
                            "emaps_token = 'from-file'\n")
    s = load_settings(path, environ={"GRIDSHIFT_EMAPS_TOKEN": "secret-token-123",
                                     "GRIDSHIFT_WATTTIME_USER": "me"})
    providers = s.providers
    assert providers.get("emaps_token") == "secret-token-123"   # the environment wins
    assert providers.get("ukci_url") == "http://127.0.0.1:9/"
    assert providers.has("watttime_user") and not providers.has("watttime_password")
    assert "secret-token-123" not in repr(s) and "secret-token-123" not in str(providers)
    with pytest.raises(InvalidInputError, match=r"\[providers\].emaps_tokn"):
        load_settings(config(tmp_path, "[providers]\nemaps_tokn = 'x'\n"), environ={})


def test_forecasts_table_is_checked(tmp_path: Path) -> None:
    path = config(tmp_path, "[forecasts]\nblend = false\ncache_path = 'c.sqlite'\n"
                            "[forecasts.regions.DE]\nchain = ['electricitymaps:DE', 'embedded']\n")
    s = load_settings(path, environ={})
    assert not s.forecasts.blend and s.forecast_cache_path == Path("c.sqlite")
    assert s.forecasts.chains == {"DE": ["electricitymaps:DE", "embedded"]}
    with pytest.raises(InvalidInputError, match="unknown step"):
        load_settings(config(tmp_path, "[forecasts.regions.DE]\nchain = ['nope:DE']\n"),
                      environ={})


def test_security_client_and_metrics_tables(tmp_path: Path) -> None:
    """The [security], [client] and [metrics] tables read like [server]: file, environment,
    flags; switches as on/off; the client's bearer token never shows in a repr or an error."""
    path = config(tmp_path, '[security]\ntls_cert = "a.pem"\nrate_limit_per_s = 5\n'
                            '[metrics]\nport = 9100\n[server]\nreflection = false\n')
    env = {"GRIDSHIFT_TOKEN": "s3cret-token", "GRIDSHIFT_ALLOW_INSECURE": "on",
           "GRIDSHIFT_METRICS_TEXTFILE": "/tmp/m.prom"}
    settings = load_settings(path, environ=env)
    assert settings.security.tls_cert == "a.pem" and settings.security.tls
    assert settings.security.rate_limit_per_s == 5.0 and settings.security.allow_insecure
    assert settings.client.token == "s3cret-token"
    assert "s3cret" not in repr(settings)
    assert (settings.metrics.port, settings.metrics.textfile) == (9100, "/tmp/m.prom")
    assert settings.server.reflection is False
    with pytest.raises(InvalidInputError) as info:
        load_settings(None, environ={"GRIDSHIFT_REFLECTION": "maybe",
                                     "GRIDSHIFT_METRICS_PORT": "-5",
                                     "GRIDSHIFT_RATE_LIMIT_PER_S": "-1"})
    assert {v.field for v in info.value.violations} == {
        "GRIDSHIFT_REFLECTION", "GRIDSHIFT_METRICS_PORT", "GRIDSHIFT_RATE_LIMIT_PER_S"}
