"""`gridshift serve`: run the gRPC service until SIGTERM/SIGINT, then drain."""

from __future__ import annotations

import logging
import signal
import sys
import threading
from datetime import UTC, datetime

from gridshift.app.application import App
from gridshift.service.errors import RequestIdFilter
from gridshift.service.servicer import start_server
from gridshift.settings import MetricsSettings, SecuritySettings, ServerSettings

log = logging.getLogger("gridshift.server")


def configure_json_logging(level: str = "INFO") -> None:
    """Structured (JSON lines) logs on stderr, each with the call's request id and an RFC 3339
    time with its zone (``2026-06-15T12:00:00.123+00:00``)."""
    from pythonjsonlogger.json import JsonFormatter

    class Rfc3339JsonFormatter(JsonFormatter):
        def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
            return datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(Rfc3339JsonFormatter(
        "%(asctime)s %(levelname)s %(name)s %(request_id)s %(message)s",
        rename_fields={"asctime": "time", "levelname": "level", "name": "logger"}))
    handler.addFilter(RequestIdFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


def serve(app: App, settings: ServerSettings, security: SecuritySettings | None = None,
          metrics: MetricsSettings | None = None) -> int:
    """Start the server for ``app``, print where it listens, block until SIGTERM/SIGINT, drain,
    exit 0. SIGHUP reloads the TLS files and the principals file. With a metrics port, the
    Prometheus metrics are served on it."""
    from gridshift.optimizer import insertion_kernels
    from gridshift.optimizer.backends.isolated import prewarm

    prewarm(min(settings.max_concurrent_solves, 4))
    insertion_kernels.warm_up()
    running = start_server(app, settings, security=security, observer=app.metrics)
    print(f"gridshift serving on {settings.host}:{running.port}", flush=True)
    if metrics is not None and metrics.port >= 0 and app.metrics is not None:
        _server, port = app.metrics.serve(metrics.host, metrics.port)
        print(f"gridshift metrics on http://{metrics.host}:{port}/metrics", flush=True)
        log.info("metrics on %s:%d", metrics.host, port)
    if app.tracing.enabled:
        log.info("tracing on: %s", app.tracing.config)
    stop = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        log.info("received %s", signal.Signals(signum).name)
        stop.set()

    def on_hangup(signum: int, frame: object) -> None:
        log.info("received SIGHUP: reloading TLS files and principals")
        threading.Thread(target=running.reload, daemon=True).start()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGHUP, on_hangup)
    stop.wait()
    running.drain(settings.grace_seconds, settings.shutdown_delay_s).wait()
    app.tracing.shutdown()   # the spans not yet exported
    log.info("stopped")
    return 0
