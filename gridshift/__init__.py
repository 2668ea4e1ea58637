"""gridshift: energy-aware scheduling optimizer for AI compute (composition root and CLI)."""

__version__ = "0.1.0"
