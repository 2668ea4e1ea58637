"""The one wiring: which concrete adapters make up gridshift for some settings.

:func:`build_app` returns the :class:`~gridshift.app.App` every entry point uses. Tests pass
real components through its keywords (a store on a temporary database, a forecast service
whose providers are loopback servers, fast HTTP clients) instead of setting environment
variables or module globals; nothing here is kept between calls.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from typing import Any

from gridshift.adapters.forecast_service import ForecastConfig, ForecastService, HttpFactory
from gridshift.adapters.metrics import Metrics
from gridshift.adapters.renewables import SiteSupply
from gridshift.adapters.store import PlanStore
from gridshift.adapters.tracing import NoTracing, Tracing, build_tracing
from gridshift.app.application import App
from gridshift.app.forecasts import ForecastQueries
from gridshift.app.nightly import Nightly
from gridshift.app.planning import Planner, SolveFn
from gridshift.app.plans import PlanArchive
from gridshift.app.risk import solve_with_risk
from gridshift.settings import Settings

__all__ = ["KEEP_DEFAULT", "build_app"]


class _Default:
    def __repr__(self) -> str:
        return "KEEP_DEFAULT"


#: Marks a keyword of :func:`build_app` left to the settings.
KEEP_DEFAULT: Any = _Default()


def build_app(settings: Settings, *, store: PlanStore | None | Any = KEEP_DEFAULT,
              forecast_service: ForecastService | None = None,
              http_factory: HttpFactory | None = None,
              solve: SolveFn = solve_with_risk,
              clock: Callable[[], datetime] | None = None,
              tracing: Tracing | NoTracing | None = None) -> App:
    """The application for ``settings``.

    ``store``: a PlanStore to use, None for no storing, or (the default) the settings' store
    (opened on first use; none when storing is switched off). ``forecast_service``: use this
    one instead of building it from the settings. ``http_factory``: the HTTP client of each
    provider (by name). ``solve``: the solve every plan goes through. ``tracing``: use this
    tracing instead of the settings' ([tracing]; off by default).
    """
    archive = _archive(settings, store)
    service = forecast_service or ForecastService(
        _with_cache_path(settings), settings.providers, http_factory=http_factory,
        actuals=_actuals_of(archive))
    metrics = Metrics()
    if isinstance(service, ForecastService) and service.metrics is None:
        service.metrics = metrics
    planner = Planner(service, SiteSupply(settings.providers, http_factory), archive,
                      device=settings.device, solve=solve)
    planner.metrics = metrics
    planner.tracing = tracing or build_tracing(settings.tracing)
    app = App(planner=planner, forecast_service=service, queries=ForecastQueries(service),
              archive=archive, nightly=Nightly(planner), device=settings.device,
              shared_data_dir=settings.shared_data_dir, slurm_conf=settings.slurm_conf,
              metrics=metrics, tracing=planner.tracing)
    if clock is not None:
        app.clock = clock
    return app


def _archive(settings: Settings, store: Any) -> PlanArchive | None:
    if store is None:
        return None
    if store is not KEEP_DEFAULT:
        return PlanArchive(lambda: store)
    if not settings.store.enabled:
        return None
    return PlanArchive(lambda: PlanStore(settings.store_url))


def _with_cache_path(settings: Settings) -> ForecastConfig:
    return replace(settings.forecasts, cache_path=settings.forecast_cache_path)


def _actuals_of(archive: PlanArchive | None) -> Any:
    """The forecast blend's source of recorded actuals: the plan store's, read on demand; None
    when there is no store. A store that cannot be read gives no actuals (logged)."""
    if archive is None:
        return None
    log = logging.getLogger("gridshift.forecasts")

    def actuals(region: str, start: datetime, end: datetime) -> Any:
        try:
            return archive.actual_series(region, start, end)
        except Exception as exc:  # noqa: BLE001 - no actuals is a supported state
            log.warning("actuals of %s unavailable for the forecast blend: %s", region, exc)
            return None

    return actuals
