"""Errors of forecast sources (no HTTP here: adapters raise these after their retries)."""

from __future__ import annotations


class ForecastUnavailable(LookupError):
    """A source could not give a usable series (after retries): upstream down, rate limited,
    malformed or empty data, unknown zone. The message never contains credentials."""

    def __init__(self, provider: str, region: str, reason: str) -> None:
        self.provider = provider
        self.region = region
        self.reason = reason
        super().__init__(f"{provider} has no usable forecast for {region!r}: {reason}")
