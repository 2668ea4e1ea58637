"""Forecast series, slot alignment and forecast sources (pure: no HTTP)."""
