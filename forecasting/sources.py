"""Forecast sources: a one-method protocol, and the embedded typical-day profile source that
is the last fallback of every chain (labelled as a fallback in provenance)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Protocol

from gridshift.forecasting import profiles
from gridshift.forecasting.series import Forecast


class ForecastSource(Protocol):
    """Anything that can give a region's series covering [start, start + slots*slot_minutes)."""

    def forecast(self, region: str, start: datetime, slots: int, slot_minutes: int) -> Forecast:
        """Raise KeyError for an unknown region, LookupError when the source has no data."""
        ...


class EmbeddedProfileSource:
    """Typical-day carbon intensity (month x hour-of-day) shipped with gridshift."""

    name = "embedded-typical-profile"

    def forecast(self, region: str, start: datetime, slots: int, slot_minutes: int) -> Forecast:
        values = profiles.typical_intensity(region, start, slots, slot_minutes)
        return Forecast(region=region, start=start, slot_minutes=slot_minutes,
                        carbon_intensity=tuple(float(v) for v in values), provider=self.name,
                        issued_at=datetime.now(UTC), fallback=True, typical_profile=True)

    def regions(self) -> list[str]:
        return profiles.known_regions()
