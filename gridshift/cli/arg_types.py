"""argparse types that check a number's range where it is parsed, so that the error names
the option (``argument --weeks: must be a whole number >= 1, got 0``)."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable

__all__ = ["non_negative", "positive", "whole"]


def non_negative(text: str) -> float:
    """A finite number >= 0."""
    value = float(text)
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError("must be a finite number >= 0")
    return value


def positive(text: str) -> float:
    """A finite number > 0."""
    value = float(text)
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError("must be a finite number > 0")
    return value


def whole(minimum: int) -> Callable[[str], int]:
    """A whole number >= ``minimum``."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be a whole number >= {minimum}, got "
                                             f"{text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be a whole number >= {minimum}, got "
                                             f"{value}")
        return value
    return parse
