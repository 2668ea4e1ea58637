"""The time-indexed shift-and-place MILP, built as numpy arrays shared by every exact backend.

Columns
  x[j,s,τ]  contiguous job j starts at site s in slot τ (binary)
  y[j,s]    interruptible job j runs at site s (binary); r[j,s,t] it runs in slot t (binary)
  u[j]      job j is left unscheduled (only when partial plans are being built)
  g[s,t]    grid kW at a site/slot with on-site renewables (>= load - renewable, >= 0)
  z[s,t]    g is exactly max(0, load - renewable) where its objective weight is negative
  w[s,t]    unused renewable kW there (load - g + w = renewable; w <= M (1 - z), g <= M z)
  e[j]      end slot of an interruptible job (only with a delay weight)
Rows: one assignment per job, duration and minimum-run rows for interruptible jobs, GPU
capacity and power cap per site/slot, the grid rows, and the end-slot rows.

Where a site/slot has no renewables, grid kW equals load and its cost is folded straight
into the x / r coefficients, so g columns exist only where renewables do.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from gridshift.optimizer.plan import Placement, Plan
from gridshift.optimizer.problem import Problem

KIND_X, KIND_Y, KIND_R, KIND_U, KIND_G, KIND_Z, KIND_E, KIND_W = range(8)


@dataclass
class MilpModel:
    """Minimise c·v + offset subject to row_lo <= A v <= row_hi, lb <= v <= ub."""

    problem: Problem
    cost: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    integer: np.ndarray
    kind: np.ndarray            # KIND_* per column
    col_job: np.ndarray         # job per column (-1 for g/z)
    col_site: np.ndarray        # site per column (-1 for u/e)
    col_slot: np.ndarray        # start slot (x) / slot (r, g, z) / -1
    col_scale: np.ndarray       # units per column for integer solvers (1000 for kW columns)
    a_row: np.ndarray
    a_col: np.ndarray
    a_val: np.ndarray
    row_lo: np.ndarray
    row_hi: np.ndarray
    row_scale: np.ndarray       # multiplier that makes a row's coefficients near-integral
    offset: float = 0.0
    jobs: tuple[int, ...] = ()
    partial: bool = False
    background_kw: np.ndarray | None = None   # [S, T] facility load of fixed jobs
    notes: list[str] = field(default_factory=list)

    @property
    def n_cols(self) -> int:
        return len(self.cost)

    @property
    def n_rows(self) -> int:
        return len(self.row_lo)

    def decode(self, values: np.ndarray) -> Plan:
        """Turn a solution vector into a Plan (jobs with u=1 become unscheduled)."""
        plan = Plan()
        on = values > 0.5
        for c in np.flatnonzero(on & (self.kind == KIND_X)):
            j = int(self.col_job[c])
            d = int(self.problem.duration_slots[j])
            site, start = int(self.col_site[c]), int(self.col_slot[c])
            plan.placements[j] = Placement.contiguous(site, start, d)
        runs: dict[int, list[int]] = {}
        sites: dict[int, int] = {}
        for c in np.flatnonzero(on & (self.kind == KIND_Y)):
            sites[int(self.col_job[c])] = int(self.col_site[c])
        for c in np.flatnonzero(on & (self.kind == KIND_R)):
            j = int(self.col_job[c])
            if sites.get(j) == int(self.col_site[c]):
                runs.setdefault(j, []).append(int(self.col_slot[c]))
        for j, s in sites.items():
            plan.placements[j] = Placement(s, tuple(sorted(runs.get(j, []))))
        for c in np.flatnonzero(on & (self.kind == KIND_U)):
            plan.unscheduled[int(self.col_job[c])] = "left out"
        return plan

    def checked_decode(self, values: np.ndarray) -> Plan | None:
        """decode(values) when the independent checker passes it with every job of the model
        placed, else None. Jobs outside the model are left out of it on purpose, so the check
        lists them as unscheduled rather than reporting them as missing."""
        from gridshift.optimizer.checker import check_plan

        candidate = self.decode(values)
        inside = set(self.jobs)
        left_out = {j: "left out" for j in range(self.problem.n_jobs) if j not in inside}
        if not check_plan(self.problem, Plan(dict(candidate.placements), left_out)).ok:
            return None
        return candidate

    def encode(self, plan: Plan) -> np.ndarray:
        """A solution vector for a plan (used as a warm start); jobs absent get u = 1."""
        values = np.zeros(self.n_cols)
        # tolist(): Python ints at once (int() on each numpy scalar took most of this).
        key = {kjst: c for c, kjst in enumerate(zip(
            self.kind.tolist(), self.col_job.tolist(), self.col_site.tolist(),
            self.col_slot.tolist(), strict=True))}
        load = np.zeros((self.problem.n_sites, self.problem.n_slots))
        if self.background_kw is not None:
            load += self.background_kw
        for j in self.jobs:
            p = plan.placements.get(j)
            if p is None:
                values[key[(KIND_U, j, -1, -1)]] = 1
                continue
            load[p.site, list(p.slots)] += self.problem.facility_kw(j, p.site)
            if (KIND_Y, j, p.site, -1) in key:
                values[key[(KIND_Y, j, p.site, -1)]] = 1
                for t in p.slots:
                    values[key[(KIND_R, j, p.site, t)]] = 1
                if (KIND_E, j, -1, -1) in key:
                    values[key[(KIND_E, j, -1, -1)]] = p.end_slot
            else:
                values[key[(KIND_X, j, p.site, p.start_slot)]] = 1
        # Grid draw g, its indicator z and the unused supply w follow from the load.
        cols = np.flatnonzero(np.isin(self.kind, (KIND_G, KIND_Z, KIND_W)))
        sites, slots, kinds = self.col_site[cols], self.col_slot[cols], self.kind[cols]
        over = load[sites, slots] - self.problem.renewable_kw[sites, slots]
        values[cols] = np.where(kinds == KIND_G, np.maximum(0.0, over),
                                np.where(kinds == KIND_Z, (over > 0).astype(float),
                                         np.maximum(0.0, -over)))
        return values


class _Builder:
    """Accumulates columns and COO entries as numpy chunks."""

    def __init__(self) -> None:
        self.cols: dict[str, list[np.ndarray]] = {k: [] for k in (
            "cost", "lower", "upper", "integer", "kind", "job", "site", "slot", "scale")}
        self.n_cols = 0
        self.entries: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self.rows: dict[str, list[np.ndarray]] = {"lo": [], "hi": [], "scale": []}
        self.n_rows = 0
        self.row_lo_updates: list[tuple[np.ndarray, np.ndarray]] = []   # (rows, new lower)

    def add_cols(self, n: int, kind: int, *, cost, upper=1.0, integer=True, job=-1, site=-1,
                 slot=-1, scale=1.0) -> np.ndarray:
        def full(v, dtype=float):
            return _filled(v, n, dtype)

        for name, v, dt in (("cost", cost, float), ("lower", 0.0, float), ("upper", upper, float),
                            ("integer", integer, bool), ("kind", kind, np.int64),
                            ("job", job, np.int64), ("site", site, np.int64),
                            ("slot", slot, np.int64), ("scale", scale, float)):
            self.cols[name].append(full(v, dt))
        first = self.n_cols
        self.n_cols += n
        return np.arange(first, first + n)

    def add_rows(self, n: int, lo, hi, scale: float = 1.0) -> np.ndarray:
        self.rows["lo"].append(_filled(lo, n, float))
        self.rows["hi"].append(_filled(hi, n, float))
        self.rows["scale"].append(np.full(n, scale))
        first = self.n_rows
        self.n_rows += n
        return np.arange(first, first + n)

    def add_entries(self, rows, cols, vals) -> None:
        rows, cols = np.asarray(rows, np.int64), np.asarray(cols, np.int64)
        self.entries.append((rows, cols, _filled(vals, rows.shape, float)))

    def cat(self, parts, dtype=float) -> np.ndarray:
        return np.concatenate(parts) if parts else np.zeros(0, dtype=dtype)


def _filled(value, shape, dtype) -> np.ndarray:
    """A new array of ``shape``: ``value`` repeated, or ``value``'s own values (an array of that
    shape). Scalars, most of a model's values, skip the broadcast (this runs per job and site)."""
    if np.isscalar(value):
        return np.full(shape, value, dtype=dtype)
    return np.broadcast_to(np.asarray(value, dtype=dtype), shape).copy()


def _left_out_costs(problem: Problem, jobs: list[int]) -> dict[int, float]:
    """Phase 1's cost of leaving job j out: 1 per job, plus its share of the jobs' GPU-hours
    (all shares together < 1). The most jobs are placed first; among packings that place as
    many, the one leaving out the fewest GPU-hours wins (never the biggest job to save a
    little carbon)."""
    gpu_hours = {j: float(problem.gpus[j] * problem.duration_minutes[j]) / 60.0 for j in jobs}
    total = sum(gpu_hours.values()) + 1.0
    return {j: 1.0 + gh / total for j, gh in gpu_hours.items()}


def build_milp(problem: Problem, jobs: list[int] | None = None, partial: bool = False,
               count_objective: bool = False,
               background: tuple[np.ndarray, np.ndarray] | None = None) -> MilpModel:
    """Build the model for `jobs` (default all). With `partial`, jobs may be left out (u=1);
    with `count_objective`, the objective is the number of jobs left out, ties broken by the
    GPU-hours left out (phase 1, see :func:`_left_out_costs`).

    `background` = (gpus [S,T], facility kW [S,T]) of jobs that stay fixed (large-neighbourhood
    search): they use capacity and power, and their load counts against renewables. The
    objective then omits the fixed jobs' constant cost in slots without renewables."""
    jobs = list(range(problem.n_jobs)) if jobs is None else list(jobs)
    bg_gpus, bg_kw = background if background is not None else (
        np.zeros((problem.n_sites, problem.n_slots)), np.zeros((problem.n_sites, problem.n_slots)))
    S, T, h = problem.n_sites, problem.n_slots, problem.slot_hours
    coef = problem.grid_cost_per_kwh()
    has_renewable = problem.renewable_kw > 0
    direct_coef = np.where(has_renewable, 0.0, coef) * h     # objective per facility kW, [S,T]
    if count_objective:
        direct_coef = np.zeros_like(direct_coef)
    # Its running sums per site, [S, T+1]: a contiguous run's cost is a difference of two.
    direct_prefix = np.concatenate([np.zeros((S, 1)), np.cumsum(direct_coef, axis=1)], axis=1)
    w_delay = 0.0 if count_objective else problem.objective.delay_weight
    b = _Builder()
    gpu_rows = b.add_rows(S * T, -np.inf, (problem.gpu_capacity - bg_gpus).reshape(-1)
                          .astype(float))
    capped = np.flatnonzero(np.isfinite(problem.power_cap_kw))
    power_rows = np.full(S, -1, dtype=np.int64)
    for s in capped:
        power_rows[s] = b.add_rows(T, -np.inf, problem.power_cap_kw[s] - bg_kw[s],
                                   scale=1000.0)[0]
    grid_row = -np.ones((S, T), dtype=np.int64)
    rs, rt = np.nonzero(has_renewable)
    if len(rs):
        grid_row[rs, rt] = b.add_rows(len(rs), -np.inf,
                                      problem.renewable_kw[rs, rt] - bg_kw[rs, rt], scale=1000.0)
    occupancy: list[tuple[np.ndarray, np.ndarray, np.ndarray, int]] = []   # cols, site, slot, job
    offset = 0.0
    left_out_cost = _left_out_costs(problem, jobs) if count_objective else {}
    for j in jobs:
        assign_row = b.add_rows(1, 1.0, 1.0)[0]
        if partial:
            u = b.add_cols(1, KIND_U, cost=left_out_cost.get(j, 0.0), job=j)
            b.add_entries([assign_row], u, 1.0)
        offset -= w_delay * problem.priority[j] * (problem.earliest_hours[j]
                                                   + problem.duration_minutes[j] / 60.0)
        if problem.interruptible[j] and problem.min_run_slots[j] < problem.duration_slots[j]:
            _add_interruptible(b, problem, j, assign_row, direct_coef, w_delay, occupancy)
        else:
            _add_contiguous(b, problem, j, assign_row, direct_prefix, w_delay, occupancy)
    _add_resource_entries(b, problem, occupancy, gpu_rows, power_rows, grid_row)
    if len(rs):
        _add_grid_columns(b, problem, rs, rt, coef * h, grid_row, zero=count_objective,
                          background_kw=bg_kw)
    A_rows, A_cols, A_vals = (b.cat([e[i] for e in b.entries]) for i in range(3))
    row_lo = b.cat(b.rows["lo"])
    for rows, lo in b.row_lo_updates:
        row_lo[rows] = lo
    c = b.cols
    return MilpModel(
        problem=problem, cost=b.cat(c["cost"]), lower=b.cat(c["lower"]), upper=b.cat(c["upper"]),
        integer=b.cat(c["integer"], bool), kind=b.cat(c["kind"], np.int64),
        col_job=b.cat(c["job"], np.int64), col_site=b.cat(c["site"], np.int64),
        col_slot=b.cat(c["slot"], np.int64), col_scale=b.cat(c["scale"]),
        a_row=A_rows.astype(np.int64), a_col=A_cols.astype(np.int64), a_val=A_vals,
        row_lo=row_lo, row_hi=b.cat(b.rows["hi"]), row_scale=b.cat(b.rows["scale"]),
        offset=0.0 if count_objective else float(offset), jobs=tuple(jobs), partial=partial,
        background_kw=bg_kw)


def _add_contiguous(b: _Builder, problem: Problem, j: int, assign_row: int,
                    direct_prefix: np.ndarray, w_delay: float, occupancy: list) -> None:
    d = int(problem.duration_slots[j])
    lo, hi = int(problem.first_slot[j]), int(problem.last_slot[j])
    starts = np.arange(lo, hi - d + 1)
    h = problem.slot_hours
    for s in problem.allowed_sites[j]:
        kw = problem.facility_kw(j, s)
        window = direct_prefix[s]
        cost = kw * (window[starts + d] - window[starts])
        cost = cost + w_delay * problem.priority[j] * (starts + d) * h
        cols = b.add_cols(len(starts), KIND_X, cost=cost, job=j, site=s, slot=starts)
        b.add_entries(np.full(len(cols), assign_row), cols, 1.0)
        occ_cols = np.repeat(cols, d)
        occ_slots = (starts[:, None] + np.arange(d)[None, :]).reshape(-1)
        occupancy.append((occ_cols, np.full(len(occ_cols), s), occ_slots, j))


def _add_interruptible(b: _Builder, problem: Problem, j: int, assign_row: int,
                       direct_coef: np.ndarray, w_delay: float, occupancy: list) -> None:
    d, m = int(problem.duration_slots[j]), int(problem.min_run_slots[j])
    lo, hi = int(problem.first_slot[j]), int(problem.last_slot[j])
    slots = np.arange(lo, hi)
    n = len(slots)
    end_col = None
    if w_delay > 0:
        end_col = b.add_cols(1, KIND_E, cost=w_delay * problem.priority[j] * problem.slot_hours,
                             upper=float(hi), integer=True, job=j)[0]
    for s in problem.allowed_sites[j]:
        kw = problem.facility_kw(j, s)
        y = b.add_cols(1, KIND_Y, cost=0.0, job=j, site=s)[0]
        b.add_entries([assign_row], [y], 1.0)
        r = b.add_cols(n, KIND_R, cost=kw * direct_coef[s, slots], job=j, site=s, slot=slots)
        # Σ_t r = d·y
        dur_row = b.add_rows(1, 0.0, 0.0)[0]
        b.add_entries(np.full(n + 1, dur_row), np.append(r, y), np.append(np.ones(n), -d))
        occupancy.append((r, np.full(n, s), slots, j))
        if m > 1:
            _add_min_run_rows(b, r, n, m)
        if end_col is not None:
            # e >= (t+1)·r[t]
            rows = b.add_rows(n, -np.inf, 0.0)
            b.add_entries(np.repeat(rows, 2), np.column_stack([r, np.full(n, end_col)]).ravel(),
                          np.column_stack([slots + 1.0, -np.ones(n)]).ravel())


def _add_min_run_rows(b: _Builder, r: np.ndarray, n: int, m: int) -> None:
    """A run that starts at t (r[t] - r[t-1] = 1) continues for m slots: r[t]-r[t-1] <= r[t+k]."""
    for k in range(1, m):
        t = np.arange(n)
        inside = t + k < n
        rows = b.add_rows(n, -np.inf, 0.0)
        b.add_entries(rows, r[t], 1.0)
        has_prev = t > 0
        b.add_entries(rows[has_prev], r[t[has_prev] - 1], -1.0)
        b.add_entries(rows[inside], r[t[inside] + k], -1.0)


def _add_resource_entries(b: _Builder, problem: Problem, occupancy: list, gpu_rows: np.ndarray,
                          power_rows: np.ndarray, grid_row: np.ndarray) -> None:
    T = problem.n_slots
    for cols, sites, slots, j in occupancy:
        b.add_entries(gpu_rows[sites * T + slots], cols, float(problem.gpus[j]))
        kw = problem.power_kw[j] * problem.pue[sites]
        capped = power_rows[sites] >= 0
        b.add_entries(power_rows[sites[capped]] + slots[capped], cols[capped], kw[capped])
        g_rows = grid_row[sites, slots]
        has = g_rows >= 0
        b.add_entries(g_rows[has], cols[has], kw[has])


def _add_grid_columns(b: _Builder, problem: Problem, rs: np.ndarray, rt: np.ndarray,
                      cost_per_kw: np.ndarray, grid_row: np.ndarray, zero: bool,
                      background_kw: np.ndarray) -> None:
    max_load = problem.pue[rs] * np.minimum(problem.power_kw.sum(), problem.power_cap_kw[rs])
    big = np.maximum(max_load, problem.renewable_kw[rs, rt]) + 1.0
    cost = np.zeros(len(rs)) if zero else cost_per_kw[rs, rt]
    g = b.add_cols(len(rs), KIND_G, cost=cost, upper=big, integer=False, site=rs, slot=rt,
                   scale=1000.0)
    b.add_entries(grid_row[rs, rt], g, -1.0)           # load - g <= renewable
    negative = np.flatnonzero(cost < 0)
    if len(negative) == 0:
        return
    # Negative weight (e.g. negative prices): g must be exactly max(0, load - renewable), never
    # inflated. The grid row becomes the equality load - g + w = renewable, with w >= 0 the
    # unused renewable supply, and a binary z chooses which of g and w is zero:
    # g <= M z and w <= Mw (1 - z). The renewable figure sits in that one equality row and the
    # big-Ms are whole kW, so a backend that rounds rows to integer watts (CP-SAT) rounds it
    # once and consistently; a second row carrying the renewable figure, rounded on its own,
    # could leave no integer g and wrongly forbid load above the renewable supply.
    ns, nt = rs[negative], rt[negative]
    # The renewable supply left for the modelled jobs after the fixed (background) ones.
    renewable = problem.renewable_kw[ns, nt] - background_kw[ns, nt]
    g_big = np.ceil(big[negative])
    w_big = np.ceil(np.maximum(renewable, 0.0)) + 1.0
    z = b.add_cols(len(negative), KIND_Z, cost=0.0, site=ns, slot=nt)
    w = b.add_cols(len(negative), KIND_W, cost=0.0, upper=w_big, integer=False, site=ns,
                   slot=nt, scale=1000.0)
    equality = grid_row[ns, nt]
    b.add_entries(equality, w, 1.0)
    b.row_lo_updates.append((equality, renewable))
    rows = b.add_rows(len(negative), -np.inf, 0.0, scale=1000.0)       # g - M z <= 0
    b.add_entries(np.repeat(rows, 2), np.column_stack([g[negative], z]).ravel(),
                  np.column_stack([np.ones(len(z)), -g_big]).ravel())
    rows = b.add_rows(len(negative), -np.inf, w_big, scale=1000.0)     # w + Mw z <= Mw
    b.add_entries(np.repeat(rows, 2), np.column_stack([w, z]).ravel(),
                  np.column_stack([np.ones(len(z)), w_big]).ravel())
