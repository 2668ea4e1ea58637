"""The insertion kernels compiled with numba (loaded through optimizer/insertion_kernels.py,
which says why and when; importing this module imports numba). Each does the same
floating-point operations in the same order as its NumPy twin in optimizer/greedy.py."""

import numpy as np
from numba import njit

from gridshift.optimizer.recreation_status import DONE, OVER, STUCK


@njit(cache=True, nogil=True)
def slot_cost(load, renewable, coef, kw, slot_hours):
    # As greedy._costs_until: (L + kw - R)+ - (L - R)+, times hours, times the coefficient.
    with_job = load + kw - renewable
    if with_job < 0.0:
        with_job = 0.0
    without_job = load - renewable
    if without_job < 0.0:
        without_job = 0.0
    return (with_job - without_job) * slot_hours * coef


@njit(cache=True, nogil=True)
def best_contiguous(free_gpus, load_kw, renewable_kw, coef, sites, facility_kw, cap_kw,
                    gpus, slot_hours, lo, hi, d, delay):
    """(row of `sites`, start slot, cost) of the cheapest feasible start, or row -1.
    Costs are prefix sums from slot 0 (as greedy._best_contiguous); `delay` [hi + 1 -
    lo - d] is added per start where given (empty: none)."""
    best, best_row, best_start = np.inf, -1, -1
    cum = np.empty(hi + 1)
    for r in range(sites.shape[0]):
        s, kw, cap = sites[r], facility_kw[r], cap_kw[r]
        cum[0] = 0.0
        total = 0.0
        for t in range(hi):
            total += slot_cost(load_kw[s, t], renewable_kw[s, t], coef[s, t], kw,
                               slot_hours)
            cum[t + 1] = total
        run = 0
        for t in range(lo, hi):
            fits = free_gpus[s, t] >= gpus and load_kw[s, t] + kw <= cap
            run = run + 1 if fits else 0
            if run >= d:
                start = t - d + 1
                value = cum[start + d] - cum[start]
                if delay.shape[0]:
                    value += delay[start - lo]
                if value < best:
                    best, best_row, best_start = value, r, start
    return best_row, best_start, best


@njit(cache=True, nogil=True)
def best_interruptible(free_gpus, load_kw, renewable_kw, coef, sites, facility_kw, cap_kw,
                       gpus, slot_hours, lo, hi, d, m, delay):
    """(row of `sites`, the slots chosen, cost) of the cheapest runs of at least `m`
    slots totalling `d` in [lo, hi), or row -1: greedy._best_interruptible's DP over
    (slots chosen c, idle or running), the same sums in the same order. A run starts as a
    block of `m` slots from the idle state `m` slots back, then grows one slot at a time.
    `delay` [hi - lo]: added when the last slot is chosen at lo + i (empty: none)."""
    k, width = sites.shape[0], hi - lo
    inf = np.inf
    # idle: a ring of the last m + 1 idle states, entry i % ring the state before slot
    # lo + i; run: the running states after the slot before and after this one.
    ring = m + 1
    idle = np.full((ring, k, d + 1), inf)
    run = np.full((2, k, d + 1), inf)
    recent = np.empty((k, m))          # the last m slots' costs per site (a ring)
    ended = np.empty((width, k, d + 1), dtype=np.bool_)
    started = np.empty((width, k, d + 1), dtype=np.bool_)
    for r in range(k):
        idle[0, r, 0] = 0.0
    # Only states that can be reached and still completed are computed (slots chosen c
    # after slot i: at most i + 1, at least d minus the slots left); the others stay inf or
    # are never read again, so the result is that of the full DP.
    for i in range(width):
        t = lo + i
        before, after, origin = i % ring, (i + 1) % ring, (i + 1 - m) % ring
        run_before, run_after = run[i % 2], run[(i + 1) % 2]
        c_low, c_high = max(0, d - (width - 1 - i)), min(d, i + 1)
        for r in range(k):
            s, kw = sites[r], facility_kw[r]
            x = slot_cost(load_kw[s, t], renewable_kw[s, t], coef[s, t], kw, slot_hours)
            if not (free_gpus[s, t] >= gpus and load_kw[s, t] + kw <= cap_kw[r]):
                x = inf
            recent[r, i % m] = x
            window = inf
            if i + 1 >= m:      # as greedy._window_costs: left to right
                window = recent[r, (i + 1) % m]
                for a in range(i + 2 - m, i + 1):
                    window += recent[r, a % m]
            for c in range(c_low, c_high + 1):
                stay, stop = idle[before, r, c], run_before[r, c]
                run_ends = stop < stay
                ended[i, r, c] = run_ends
                idle[after, r, c] = stop if run_ends else stay
                go_on = run_before[r, c - 1] + x if c >= 1 else inf
                begin = idle[origin, r, c - m] + window if c >= m else inf
                run_begins = begin < go_on
                started[i, r, c] = run_begins
                v = begin if run_begins else go_on
                if c == d and delay.shape[0]:
                    v += delay[i]
                run_after[r, c] = v
    final_idle, final_run = idle[width % ring], run[width % 2]
    best_row, best_total, best_running = -1, inf, False
    for r in range(k):
        running = final_run[r, d] < final_idle[r, d]
        v = final_run[r, d] if running else final_idle[r, d]
        if v < best_total:
            best_row, best_total, best_running = r, v, running
    slots = np.empty(d, dtype=np.int64)
    if best_row < 0:
        return best_row, slots, best_total
    c, i, running = d, width - 1, best_running      # as greedy._backtrack
    while c > 0:
        if not running:
            running = ended[i, best_row, c]
        elif started[i, best_row, c]:
            for a in range(m):
                slots[c - 1 - a] = lo + i - a
            c, i, running = c - m, i - m, False
            continue
        else:
            slots[c - 1] = lo + i
            c -= 1
        i -= 1
    return best_row, slots, best_total


@njit(cache=True, nogil=True)
def add_run(free_gpus, load_kw, site, first, stop, gpus, facility_kw):
    """A job of `gpus` and `facility_kw` (negative: taken out) at `site` in [first, stop)."""
    for t in range(first, stop):
        free_gpus[site, t] -= gpus
        load_kw[site, t] += facility_kw


@njit(cache=True, nogil=True)
def recreate(free_gpus, load_kw, renewable_kw, coef, slot_hours, jobs, order, allowed,
             out_site, out_slots):
    """Put the jobs of `order` in one by one, each at its cheapest placement given those
    before it (best_contiguous, or best_interruptible for a job that may split), updating
    `free_gpus` and `load_kw` as greedy._State.apply does. `jobs` is the tuple of per-job
    arrays of ruin_recreate's _JobTable. Writes each placed job's site to `out_site[i]` and
    its slots to `out_slots[i, :d]`; returns (jobs placed, DONE | STUCK | OVER): STUCK when
    order[placed] found no room, OVER as soon as the placements' costs add up to more than
    `allowed` (plus a relative 1e-9), as ruin_recreate._recreate."""
    (site_rows, n_rows, facility_kw, cap_kw, gpus, lo_of, hi_of, d_of, m_of, splittable,
     delay_w, has_delay) = jobs
    added = 0.0
    slack = 1e-9 * max(1.0, abs(allowed)) if np.isfinite(allowed) else 0.0
    for i in range(order.shape[0]):
        j = order[i]
        k = n_rows[j]
        sites, kw, cap = site_rows[j, :k], facility_kw[j, :k], cap_kw[j, :k]
        lo, hi, d, g = lo_of[j], hi_of[j], d_of[j], gpus[j]
        if splittable[j]:
            delay = np.empty(hi - lo if has_delay else 0)
            for e in range(delay.shape[0]):
                delay[e] = delay_w[j] * (lo + e + 1) * slot_hours
            row, slots, cost = best_interruptible(free_gpus, load_kw, renewable_kw, coef,
                                                  sites, kw, cap, g, slot_hours, lo, hi, d,
                                                  m_of[j], delay)
            if row < 0:
                return i, STUCK
            for c in range(d):
                out_slots[i, c] = slots[c]
        else:
            if hi - d + 1 - lo <= 0:
                return i, STUCK
            delay = np.empty(hi + 1 - lo - d if has_delay else 0)
            for e in range(delay.shape[0]):
                delay[e] = delay_w[j] * (lo + d + e) * slot_hours
            row, start, cost = best_contiguous(free_gpus, load_kw, renewable_kw, coef, sites,
                                               kw, cap, g, slot_hours, lo, hi, d, delay)
            if row < 0:
                return i, STUCK
            for c in range(d):
                out_slots[i, c] = start + c
        s = sites[row]
        out_site[i] = s
        for c in range(d):
            free_gpus[s, out_slots[i, c]] -= g
            load_kw[s, out_slots[i, c]] += kw[row]
        added += cost
        if added > allowed + slack:
            return i + 1, OVER
    return order.shape[0], DONE


@njit(cache=True, nogil=True)
def move_jobs(free_gpus, load_kw, jobs, site, slots_of, duration_slots, gpus, power_kw, pue,
              sign):
    """Put the `jobs` in (`sign` +1) or take them out (-1), one after another, each at
    site[j] in slots_of[j, :duration_slots[j]]: greedy._State.apply for many jobs, the same
    operations in the same order."""
    for i in range(jobs.shape[0]):
        j = jobs[i]
        s = site[j]
        g = sign * gpus[j]
        kw = sign * (power_kw[j] * pue[s])
        for c in range(duration_slots[j]):
            t = slots_of[j, c]
            free_gpus[s, t] -= g
            load_kw[s, t] += kw


@njit(cache=True, nogil=True)
def feasible_options(free_gpus, load_kw, jobs, order, out):
    """greedy.feasible_options for each job of `order` (`jobs`: ruin_recreate's _JobTable
    arrays) into `out`: a splittable job's free slots in its window beyond its duration,
    plus one, per site; another's feasible (site, start) pairs."""
    site_rows, n_rows, facility_kw, cap_kw, gpus, lo_of, hi_of, d_of = jobs[:8]
    splittable = jobs[9]
    for i in range(order.shape[0]):
        j = order[i]
        lo, hi, d, g = lo_of[j], hi_of[j], d_of[j], gpus[j]
        total = 0
        for r in range(n_rows[j]):
            s, kw, cap = site_rows[j, r], facility_kw[j, r], cap_kw[j, r]
            fits, run = 0, 0
            for t in range(lo, hi):
                if free_gpus[s, t] >= g and load_kw[s, t] + kw <= cap:
                    fits += 1
                    run += 1
                    if not splittable[j] and run >= d:
                        total += 1
                else:
                    run = 0
            if splittable[j] and fits - d + 1 > 0:
                total += fits - d + 1
        out[i] = total


@njit(cache=True, nogil=True)
def recreate_retrying(free_gpus, load_kw, renewable_kw, coef, slot_hours, jobs, order,
                      allowed, retries, site, slots_of, lo_of, hi_of, power_kw, pue,
                      out_site, out_slots):
    """:func:`recreate` of `order`, recording each placement in the schedule's arrays
    (site, slots_of, lo_of, hi_of); where a job finds no room, the jobs placed are taken out
    again (in the order placed) and the recreation is retried with that job first, up to
    `retries` times (ruin_recreate._step's loop). Returns DONE, OVER (the jobs placed stay)
    or STUCK (none of `order` placed)."""
    d_of, gpus = jobs[7], jobs[4]
    order = order.copy()
    for _ in range(retries + 1):
        placed, status = recreate(free_gpus, load_kw, renewable_kw, coef, slot_hours, jobs,
                                  order, allowed, out_site, out_slots)
        for i in range(placed):
            j = order[i]
            d = d_of[j]
            site[j] = out_site[i]
            for c in range(d):
                slots_of[j, c] = out_slots[i, c]
            lo_of[j] = out_slots[i, 0]
            hi_of[j] = out_slots[i, d - 1] + 1
        if status != STUCK:
            return status
        move_jobs(free_gpus, load_kw, order[:placed], site, slots_of, d_of, gpus, power_kw,
                  pue, -1)
        for i in range(placed):
            site[order[i]] = -1
        stuck = order[placed]
        for i in range(placed, 0, -1):
            order[i] = order[i - 1]
        order[0] = stuck
    return STUCK
