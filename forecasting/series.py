"""The forecast series type shared by sources, alignment and the optimizer."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True)
class Forecast:
    """A carbon-intensity (gCO2e/kWh) and optional price (per MWh) series for one region."""

    region: str
    start: datetime
    slot_minutes: int
    carbon_intensity: tuple[float, ...]
    carbon_intensity_p10: tuple[float, ...] = ()
    carbon_intensity_p90: tuple[float, ...] = ()
    price_per_mwh: tuple[float, ...] = ()
    provider: str = "request"
    issued_at: datetime | None = None
    stale: bool = False
    fallback: bool = False
    # How the series was obtained, for provenance (sources tried, extension, ...).
    detail: str = ""

    @property
    def end(self) -> datetime:
        return self.start + timedelta(minutes=self.slot_minutes * len(self.carbon_intensity))
