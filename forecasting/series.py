"""The forecast series type shared by sources, alignment and the optimizer."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

#: The kinds of intensity signal: the grid mix's average intensity, or the marginal rate of
#: the plant that answers a change in load (WattTime's MOER).
AVERAGE = "average"
MARGINAL = "marginal"
SIGNAL_KINDS = (AVERAGE, MARGINAL)


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
    #: AVERAGE or MARGINAL: set by the source, which knows what its provider publishes.
    signal: str = AVERAGE
    #: A typical-day profile (a climatology of past years), not a forecast of these hours.
    typical_profile: bool = False

    def degraded_reason(self) -> str:
        """Why a plan resting on this series rests on less than a current forecast ("" when
        it does not): a typical-day profile, a stale cached forecast, or a fallback source."""
        if self.typical_profile:
            return "embedded typical-day profile (a climatology, not a forecast)"
        if self.stale:
            issued = f" issued {self.issued_at:%Y-%m-%d %H:%M} UTC" if self.issued_at else ""
            return f"stale forecast from {self.provider}{issued} (its provider failed)"
        if self.fallback:
            return f"fallback source {self.provider} (the sources before it failed)"
        return ""

    @property
    def end(self) -> datetime:
        return self.start + timedelta(minutes=self.slot_minutes * len(self.carbon_intensity))
