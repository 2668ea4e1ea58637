"""gridshift inside other schedulers: importable entry points (the Ray job gate)."""
