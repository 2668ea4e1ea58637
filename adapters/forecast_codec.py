"""Protobuf messages for forecast queries (GetForecast, FindBestWindow)."""

from __future__ import annotations

from datetime import datetime

from gridshift.adapters.codec import provenance, timestamp
from gridshift.api.v1 import forecast_pb2
from gridshift.forecasting.series import Forecast


def forecast_response(series: list[Forecast], unavailable: dict[str, str] | None = None
                      ) -> forecast_pb2.GetForecastResponse:
    """GetForecast's answer: the regions' series, and the regions without one and why."""
    response = forecast_pb2.GetForecastResponse()
    for region, reason in (unavailable or {}).items():
        response.unavailable.add(region=region, reason=reason)
    for f in series:
        response.forecasts.add(
            region=f.region, start=timestamp(f.start), slot_minutes=f.slot_minutes,
            carbon_intensity=f.carbon_intensity, carbon_intensity_p10=f.carbon_intensity_p10,
            carbon_intensity_p90=f.carbon_intensity_p90, price_per_mwh=f.price_per_mwh,
            provenance=provenance(f))
    return response


def _region_window(answer) -> forecast_pb2.RegionBestWindow:
    message = forecast_pb2.RegionBestWindow(
        region=answer.region, start=timestamp(answer.start), end=timestamp(answer.end),
        mean_g_per_kwh=answer.mean_intensity_g_per_kwh, provenance=provenance(answer.forecast))
    for start, mean in answer.curve():
        message.curve.add(start=timestamp(start), mean_g_per_kwh=mean)
    return message


def best_window_response(result, unavailable: dict[str, str] | None = None
                         ) -> forecast_pb2.FindBestWindowResponse:
    """FindBestWindow's answer: per region and overall, and the regions without a series."""
    response = forecast_pb2.FindBestWindowResponse()
    for region, reason in (unavailable or {}).items():
        response.unavailable.add(region=region, reason=reason)
    for region in result.regions:
        response.regions.append(_region_window(result.regions[region]))
    response.best.CopyFrom(_region_window(result.best))
    return response


def timestamp_or_none(message, field: str) -> datetime | None:
    """A Timestamp field as an aware datetime, None when unset; InvalidInputError naming the
    field when it is outside what a Timestamp may hold (0001-01-01 .. 9999-12-31)."""
    from datetime import UTC

    from gridshift.optimizer.errors import FieldViolation, InvalidInputError

    if not message.HasField(field):
        return None
    try:
        return getattr(message, field).ToDatetime(tzinfo=UTC)
    except (ValueError, OverflowError) as exc:
        raise InvalidInputError([FieldViolation(field, f"not a valid timestamp: {exc}")]) from None
