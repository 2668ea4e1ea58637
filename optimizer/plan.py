"""A plan: where and in which slots each job runs, and which jobs were left out and why."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Placement:
    """A job placed at one site in a sorted tuple of whole slots."""

    site: int
    slots: tuple[int, ...]

    @property
    def start_slot(self) -> int:
        return self.slots[0]

    @property
    def end_slot(self) -> int:
        """Exclusive end: one past the last occupied slot."""
        return self.slots[-1] + 1

    def runs(self) -> list[tuple[int, int]]:
        """Maximal runs of consecutive slots as [start, end) pairs."""
        runs: list[tuple[int, int]] = []
        for t in self.slots:
            if runs and runs[-1][1] == t:
                runs[-1] = (runs[-1][0], t + 1)
            else:
                runs.append((t, t + 1))
        return runs

    @staticmethod
    def contiguous(site: int, start: int, duration_slots: int) -> Placement:
        return Placement(site, tuple(range(start, start + duration_slots)))


@dataclass
class Plan:
    """Placements by job index; `unscheduled` maps job index to the reason it is not placed."""

    placements: dict[int, Placement] = field(default_factory=dict)
    unscheduled: dict[int, str] = field(default_factory=dict)
