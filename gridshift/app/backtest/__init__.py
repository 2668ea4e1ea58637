"""`gridshift backtest`: replay a real GPU job trace against real carbon series and compare
scheduling policies on the same jobs and the same capacity.

Data (from ``../shared/data`` or ``$GRIDSHIFT_SHARED_DATA``; see its SOURCES.md)
-------------------------------------------------------------------------------
- Jobs: the Microsoft Philly trace as used by Pollux (``philly-adaptdl/philly.csv``: arrival
  ``timestamp``, ``duration`` in s, ``num_gpus``). Timestamps are naive US Pacific time (the
  Philly README's clock); they are localised to America/Los_Angeles and converted to UTC.
- Carbon: hourly average intensity ``avg_CI`` (gCO2e/kWh) of the EIA-930 2022 balancing
  authorities (``sustaindc-eia/*_NG_&_avgCI.csv``: US-CAL-CISO, US-TEX-ERCO, US-MIDA-PJM,
  US-NW-BPAT, US-NY-NYIS, US-MIDW-MISO; short names CISO, ERCO, ... are accepted) and the
  German 2020 series (``vessim/carbon_intensity.csv``, 15 min, averaged to hours). Gaps are
  filled by linear interpolation.
- Or one's own: a carbon CSV, a nightly jobs file, a nightly sites file and forecast vintages
  (:mod:`gridshift.adapters.backtest_inputs`, :class:`.data.SeriesSource`,
  :class:`.data.TraceSource`).

Mapping the trace onto the carbon year
--------------------------------------
``start`` is a date in the carbon series' year (a date in another year is moved by whole
weeks into the series' year, keeping its weekday). The trace week replayed is the one whose
start is ``start`` moved by whole weeks into 2017 (nearest to the same calendar date); outside
the trace's span its weeks are used in turn (the offset wraps around, so a year of weekly
replays cycles through the trace's 15 weeks); arrival times are shifted by that whole number
of weeks, so weekday and hour of day (UTC) are kept. The default week, 2017-10-23 .. 10-30
(mapped to 2022-10-24 for the EIA regions and 2020-10-26 for DE), is a typical one: about
1,700 jobs of 30 min .. 24 h. (Early October 2017 holds bursts of thousands of one-GPU sweep jobs.)

Jobs and site
-------------
- Jobs of 30 min .. 24 h are kept, with their trace GPU counts (1 .. 32 in the default week)
  and durations unchanged; ``max_jobs`` keeps N of them spread evenly over the arrivals
  (every k-th; for small tests).
- ``power_kw = gpus * 0.7`` (about one accelerator plus its share of the host); one site per
  region experiment with PUE 1.0 and no on-site renewables, so grid energy = IT energy and
  every policy is scaled alike.
- ``deadline = arrival + duration + slack_h`` (default 12 h).
- Capacity: ``ceil(peak / utilisation)`` GPUs (utilisation 0.9), where ``peak`` is the most
  GPUs in use at once if every job ran at its arrival (the run-now demand without a capacity
  limit); so run-now peaks at about 90 % of capacity. At least the widest job.
- Hourly slots: a job occupies ``ceil(duration / 1 h)`` whole slots and may start at the first
  hour boundary at or after its arrival (docs/architecture.md semantics), for every policy alike.

Rolling decisions
-----------------
Decisions are taken every ``decision_hours`` (default 1 h, as a scheduler calling the service
for each batch of arrivals would; 6 h is the coarser alternative, where jobs wait for the next
decision and lose slack). At each decision time ``d`` a policy plans the jobs that arrived by
``d`` and have not started (they may start at ``d`` at the earliest); jobs it started earlier
occupy capacity (commitments carry over as lowered site capacity). The window's horizon runs
from ``d`` to the latest deadline of its jobs plus a 24-h margin (room for placements a repair
has to push past a deadline). Decisions go on after the week until every job has started.

The forecast known at ``d``: the actual series from ``d`` on, perturbed by the calibrated
forecast error model (default :data:`forecasting.uncertainty.DEFAULT`, the average-intensity
model fitted on GB NESO 48-h forecasts: sigma by lead time, AR(1) across valid hours). With
``vintages="evolving"`` (the default) the forecasts of successive decisions are one consistent
history (:func:`forecasting.uncertainty.evolving_log_errors`, seed ``seed``): the error of a
valid hour shrinks as it approaches by revealing independent innovations, as real forecast
vintages do (GB NESO vintages 12-36 h apart share 0.77-0.98 of their error). With
``vintages="independent"`` every decision draws a fresh error
(``forecasting.uncertainty.scenarios``, seed ``seed * 100_000 + decision index``), which makes
re-planning chase noise. Every forecast-driven policy sees the same forecast at the same
decision.

Policies (all on the same jobs and capacity, all scored with the ACTUAL intensity)
----------------------------------------------------------------------------------
- ``run-now``: each job starts at its arrival if its GPUs are free, else at the earliest slot
  where it fits; jobs in order of arrival. This is the FIFO baseline of docs/architecture.md
  (``optimizer.baseline.fifo_baseline``) on one problem holding the whole replay; it is
  event-driven (no decision cadence). Savings are measured against it.
- ``fifo``: the FIFO baseline of docs/architecture.md on each decision window's problem (jobs
  wait for the next decision, then start first come, first served); every job is committed
  when planned. With
  ``decision_hours=1`` it equals run-now.
- ``lowest-window``: what the Carbon Aware SDK advises per job: the start with the lowest
  forecast mean intensity within ``[d, deadline]`` (``forecasting.best_window.find_best_window``,
  asked for the job's occupied duration), capacity ignored; then repaired in order of those
  starts: a job that does not fit takes its next-best start that fits, else the earliest start
  that fits after its window (late). Committed when planned (a submitter schedules the job at
  the advised time).
- ``lets-wait-awhile``: as lowest-window, but the start is restricted to
  ``[d, arrival + max_shift_h]`` (default 8 h) and to the deadline; same repair.
- ``gridshift``: the product: each window's request (``gridshift.optimizer.parsing``, inline
  decision-time forecast, ``allow_partial``) solved by ``optimizer.solve.solve`` under
  ``time_limit_s``. Like the service, it plans on the decision-time forecast blended with the
  seasonal model of the actuals published by then (:mod:`forecasting.blend`; the actual of an
  hour is published ``actuals_delay_h`` = 1 h after it ends; the 21 days before the replay are
  known from the start); ``blend=False`` plans on the raw forecast. Every forecast-driven
  policy (lowest-window and Let's-Wait-Awhile too) gets the same decision forecast
  (:mod:`.forecasts`), so the comparison is even. The no-regret rule (on by default:
  ``no_regret_z`` 2, ``no_regret_budget_pct`` 1) keeps the plan's shifts away from running now
  only where the forecast scenarios justify them together with the bets already in play,
  within a loss budget of 1 % of what the replay's jobs emit run now
  (:mod:`gridshift.optimizer.no_regret`, :mod:`.regret`). Only jobs
  planned to start before the next decision are committed; the others
  are planned again with the next, fresher forecast. A job the solver cannot place by its
  deadline (it never happens when capacity allows) takes the earliest start that fits (late).
  A job that can no longer meet its deadline at all (slack shorter than its wait for the
  decision) is asked to finish as early as possible, for every policy.
- ``rolling-foresight`` (a diagnostic, not run by default): the same solver and rolling
  scheme on the actual series (perfect knowledge of carbon intensity, not of future arrivals),
  with ``pf_time_limit_s`` (default twice ``time_limit_s``). Where capacity binds it is not
  optimal, so it is not the reference.

The reference (the ``perfect-foresight`` row, :mod:`.reference`): the offline optimum over the
whole replay with the actual series and every arrival known, or the bound of its relaxation
where it is not proven in ``reference_time_limit_s``; no share exceeds 100 %, and its kind is
in every output.

Checks and totals
-----------------
Every window's plan of every policy goes through the independent checker
(``optimizer.checker.check_plan``) on that window's problem (the intensity the policy saw;
deadlines of the jobs it placed late relaxed to the horizon's end). The final schedule of each
policy is checked again on one problem spanning the whole replay with the actual series (which
also proves that commitments never overbook capacity), and the totals reported are that
check's: ``emissions_kg``, ``energy_kwh``, waits. ``savings_kg = run-now - policy``;
``share_of_pf_pct = savings / the reference's savings``. A schedule the checker rejects raises
:class:`BacktestError` (a bug).

What limits gridshift here (bench/backtest.py prints the numbers)
------------------------------------------------------------------
With capacity sized to the run-now peak, the trace's bursts leave most hours far below
capacity, so capacity almost never binds once jobs are spread over their deadline windows:
given the same forecast, gridshift and the per-job lowest window choose nearly the same starts
(gridshift's hourly re-planning with fresher vintages gains a little), and both stay below
perfect foresight by what the forecast error costs (the average-CI model's sigma is 0.11 at the
current hour and 0.18 at 12 h). The blend with the seasonal model of published actuals removes
part of that error, most where the series is regular and the hours differ little;
``perfect_leads_h`` (a diagnostic: gridshift's forecast exact at those leads) shows which leads'
error costs how much (``bench/backtest.py --lead-value``). Where
capacity binds (``utilisation`` > 1), gridshift's joint plan beats the repaired per-job advice
clearly and keeps every deadline.

Modules: :mod:`.config` (settings, constants, result types), :mod:`.data` (trace and carbon
series), :mod:`.context` (replay context, decision windows, capacity ledger), :mod:`.policies`
(one window's decision per policy), :mod:`.forecasts` (what each decision knew),
:mod:`.reference` (the offline optimum or its bound), :mod:`.replay` (the rolling loop,
evaluation, :func:`run_backtest`), :mod:`.report` (table, Markdown, JSON, chart),
:mod:`.sweep` and :mod:`.sweep_report` (many replays, on Ray or in process, aggregated).
"""

from gridshift.app.backtest.config import (
    DEFAULT_POLICIES,
    FORECAST_MODELS,
    FORECAST_POLICIES,
    PF_ROW,
    POLICIES,
    REFERENCE_KINDS,
    REFERENCE_POLICY,
    VINTAGES,
    BacktestConfig,
    BacktestError,
    BacktestResult,
    Reference,
    TraceJob,
)
from gridshift.app.backtest.data import (
    ReplayInputs,
    SeriesSource,
    TraceSource,
    canonical_region,
    carbon_series,
    default_start,
    load_inputs,
    size_capacity,
    trace_jobs,
    trace_week,
)
from gridshift.app.backtest.replay import config_for, replay, run_backtest
from gridshift.app.backtest.report import describe, format_table, to_json, write_outputs

__all__ = [
    "DEFAULT_POLICIES", "FORECAST_MODELS", "FORECAST_POLICIES", "PF_ROW", "POLICIES",
    "REFERENCE_KINDS", "REFERENCE_POLICY", "VINTAGES", "BacktestConfig", "BacktestError",
    "BacktestResult", "Reference", "ReplayInputs", "SeriesSource", "TraceJob", "TraceSource",
    "canonical_region", "carbon_series", "config_for", "default_start", "describe",
    "format_table", "load_inputs", "replay", "run_backtest", "size_capacity", "to_json",
    "trace_jobs", "trace_week", "write_outputs",
]
