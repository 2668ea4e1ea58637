"""The no-regret rule's loss budget over a replay: what a decision's shifts may risk.

The rule (:mod:`gridshift.optimizer.no_regret`) judges one decision's shifts on their own:
``mean - z * std >= 0`` over the forecast scenarios. A team judges a week, and a week of many
decisions averages out bets that each are close to a coin flip, while a week with a handful of
jobs arriving together is one bet. With a budget the rule judges each decision's shifts
together with every bet already in play, each counted against running the job at its arrival
(what run-now does):

- **settled** bets: started jobs whose hours, both ways, are published as actuals by the
  decision: their net saving widens the room; a net loss does not narrow it (it is made, and
  refusing the bets that pay from then on would not win it back: a replay that did so lost
  1.1 % against run-now in ERCO's week of 2022-08-08, where it lost 0.45 % without the rule);
- **started** jobs not yet settled, and the hours **pending** jobs have already waited: their
  saving in each forecast scenario (published actuals for the past hours, the last published
  value for the hours not yet published, the scenario for the hours from the decision on);

and lets them all risk losing, in their z-sigma bad case, up to ``budget_pct`` % of the
replay's **stake**: what its jobs would emit run now at the mean published intensity of the
three weeks before the replay (their energy, the load a team plans for, known in volume but
not in timing, times an intensity known beforehand: no actual of the replay leaks into it).

In a busy week the stake is large against one decision's risk, and settled savings widen the
room, so the rule seldom binds; in a near-empty week the handful of jobs is the whole stake and
a bet must be nearly sure.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from gridshift.app.backtest.config import TraceJob
from gridshift.app.backtest.context import Context, Ledger, Window


@dataclass
class RegretBudget:
    """One policy run's loss budget (see the module docstring): ``budget_kg``, and the bets in
    play at each decision (:meth:`in_play_kg`)."""

    ctx: Context
    budget_kg: float
    settled_kg: float = 0.0
    #: Started jobs not yet settled, job id -> start hour; and how many of the ledger's
    #: commitments have been read into it (each decision reads only the new ones).
    _open: dict[str, int] = field(default_factory=dict)
    _read: int = 0

    @classmethod
    def for_replay(cls, ctx: Context, budget_pct: float) -> RegretBudget:
        """The budget ``budget_pct`` % of the replay's stake."""
        return cls(ctx, budget_pct / 100.0 * stake_kg(ctx))

    def in_play_kg(self, w: Window, scenarios: np.ndarray) -> np.ndarray:
        """[n] kg the bets in play at window ``w`` save against run-now in each scenario
        (``scenarios``: [n, 1, w.slots] gCO2e/kWh from the window's start)."""
        ledger = w.ledger
        known_h = max(0, w.start_h - self.ctx.cfg.actuals_delay_h)
        started = [] if ledger is None else self._unsettled(ledger, known_h)
        pending = [(j, max(j.first_h, w.start_h)) for j in w.jobs if j.first_h < w.start_h]
        if not started and not pending:
            return np.full(scenarios.shape[0], self.credit_kg)
        cumulative = self._cumulative(scenarios[:, 0, :], w.start_h, known_h)
        jobs = started + pending
        kw = np.array([j.power_kw * self.ctx.cfg.pue for j, _ in jobs])
        arrival = _sums(cumulative, [j.first_h for j, _ in jobs], jobs)
        placed = _sums(cumulative, [s for _, s in jobs], jobs)
        return self.credit_kg + ((arrival - placed) * kw[None, :]).sum(axis=1) / 1000.0

    @property
    def credit_kg(self) -> float:
        """What settled bets add to the room: their net saving, or nothing after a loss."""
        return max(self.settled_kg, 0.0)

    def _unsettled(self, ledger: Ledger, known_h: int) -> list[tuple[TraceJob, int]]:
        """Settle the started jobs whose hours are all published; the rest, (job, start).
        Only the commitments still open are looked at, not the whole ledger."""
        for job_id in ledger.order[self._read:]:
            self._open[job_id] = ledger.starts[job_id]
        self._read = len(ledger.order)
        open_bets = []
        for job_id, start in list(self._open.items()):
            job = ledger.jobs[job_id]
            if max(start, job.first_h) + job.duration_slots <= known_h:
                self.settled_kg += self._actual_kg(job, job.first_h) - \
                    self._actual_kg(job, start)
                del self._open[job_id]
            else:
                open_bets.append((job, start))
        return open_bets

    def _actual_kg(self, job: TraceJob, start_h: int) -> float:
        hours = self.ctx.actual[start_h:start_h + job.duration_slots]
        return job.power_kw * self.ctx.cfg.pue * float(hours.sum()) / 1000.0

    def _cumulative(self, window_ci: np.ndarray, start_h: int, known_h: int) -> np.ndarray:
        """[n, total_h + 1] running sums of the intensity per scenario over absolute hours:
        published actuals, then the last published value, then the window's scenarios."""
        n, total = window_ci.shape[0], self.ctx.total_h
        hours = np.empty((n, total))
        hours[:, :known_h] = self.ctx.actual[:known_h]
        if known_h > 0:
            hours[:, known_h:start_h] = self.ctx.actual[known_h - 1]
        else:
            hours[:, :start_h] = window_ci[:, :1]
        span = min(window_ci.shape[1], total - start_h)
        hours[:, start_h:start_h + span] = window_ci[:, :span]
        hours[:, start_h + span:] = window_ci[:, span - 1:span]
        return np.concatenate([np.zeros((n, 1)), np.cumsum(hours, axis=1)], axis=1)


def _sums(cumulative: np.ndarray, starts: list[int],
          jobs: list[tuple[TraceJob, int]]) -> np.ndarray:
    """[n, jobs] intensity summed over each job's hours from its start in ``starts``."""
    first = np.array(starts)
    end = np.minimum(first + np.array([j.duration_slots for j, _ in jobs]),
                     cumulative.shape[1] - 1)
    return cumulative[:, end] - cumulative[:, first]


def stake_kg(ctx: Context) -> float:
    """The replay's jobs run now at the mean intensity published before the replay (kg)."""
    past = ctx.past[np.isfinite(ctx.past)]
    mean_ci = float(past.mean()) if len(past) else \
        float(np.mean(ctx.decision_forecast(0, 0).values))   # no history: the first forecast
    kwh = sum(j.power_kw * ctx.cfg.pue * j.duration_slots for j in ctx.jobs)
    return kwh * mean_ci / 1000.0
