"""Unit plausibility of a provider's carbon-intensity series.

A provider that answers in kg/kWh under a g/kWh field (0.26 for 261) passes every range check
(0 to 2,500 g/kWh), and a plan built on it moves the work to that region with savings that do
not exist. No real grid has such a level, so a series is refused as a unit error when

* **a whole day is below 1 gCO2e/kWh**: 24 h or more of consecutive values all below
  :data:`MIN_DAY_G_PER_KWH` (life-cycle intensities of wind, nuclear and hydro are 10-25 g/kWh,
  so no grid mix averages below 1 g/kWh for a day; a marginal rate may touch 0 in curtailed
  hours, not for a day), or
* **its level is far from the region's known level**: the mean of an average-intensity series
  more than :data:`MAX_LEVEL_RATIO` times below or above the region's known level over the same
  hours (its embedded typical profile, or its recorded actuals). Real days stay within a few
  times their typical level (a windy or sunny day, a hydro region at 20-30 g/kWh against its
  own typical level); a factor of 1,000 (kg, mg) or so is not weather. Marginal series are
  checked on the high side only: the known levels are average intensities, and a marginal
  rate of 0 is real.

Pure: numpy and the standard library; the caller supplies the known level.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gridshift.forecasting.series import MARGINAL, Forecast

__all__ = ["MAX_LEVEL_RATIO", "MIN_DAY_G_PER_KWH", "KnownLevel", "unit_error"]

#: gCO2e/kWh: a whole day below this is a unit error.
MIN_DAY_G_PER_KWH = 1.0
#: A series whose mean is more than this factor below or above the region's known level over
#: the same hours is a unit error.
MAX_LEVEL_RATIO = 20.0
_DAY_MINUTES = 24 * 60


@dataclass(frozen=True)
class KnownLevel:
    """A region's known mean intensity (gCO2e/kWh) over some hours, and where it comes from
    (for the refusal's message), e.g. ``embedded typical profile``."""

    g_per_kwh: float
    source: str


def unit_error(forecast: Forecast, known: KnownLevel | None = None) -> str | None:
    """Why ``forecast``'s values cannot be gCO2e/kWh (see the module docstring), or None."""
    values = np.asarray(forecast.carbon_intensity, dtype=float)
    finite = values[np.isfinite(values)]
    if finite.size == 0 or forecast.slot_minutes <= 0:
        return None
    low_minutes = _longest_low_run(values) * forecast.slot_minutes
    if low_minutes >= _DAY_MINUTES:
        return (f"implausible level: {low_minutes / 60:g} h in a row below "
                f"{MIN_DAY_G_PER_KWH:g} gCO2e/kWh (max {float(finite.max()):.3g}); no grid has "
                f"a whole day that clean, so the values are not g/kWh (kg/kWh?)")
    if known is None or not np.isfinite(known.g_per_kwh) or known.g_per_kwh <= 0:
        return None
    mean = float(finite.mean())
    level = known.g_per_kwh
    if mean > level * MAX_LEVEL_RATIO:
        return (f"implausible level: mean {mean:.4g} gCO2e/kWh is {mean / level:.3g} x the "
                f"region's known level of {level:.4g} ({known.source}); wrong units?")
    if forecast.signal != MARGINAL and mean * MAX_LEVEL_RATIO < level:
        ratio = f"{level / mean:.3g} x" if mean > 0 else "infinitely"
        return (f"implausible level: mean {mean:.4g} gCO2e/kWh is {ratio} below the "
                f"region's known level of {level:.4g} ({known.source}); wrong units "
                f"(kg/kWh?)")
    return None


def _longest_low_run(values: np.ndarray) -> int:
    """The most consecutive points below the floor; a missing point inside a run continues it
    (gaps take the nearest value) but does not start one."""
    best = run = 0
    for value in values:
        if value < MIN_DAY_G_PER_KWH or (run and not np.isfinite(value)):
            run += 1
            best = max(best, run)
        else:
            run = 0
    return best
