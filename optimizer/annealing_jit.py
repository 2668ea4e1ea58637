"""Ruin and recreate's whole annealing step compiled with numba (loaded through
optimizer/insertion_kernels.py; importing this module imports numba).

optimizer/ruin_recreate.py runs the search step by step in Python, each step a few dozen
NumPy calls on arrays of a few hundred jobs: choosing the ruin, ordering the recreation,
taking jobs out and putting them back, the objective. With the insertion compiled, those
calls were about 60 % of a step. Here the same step — the same ruin kinds, recreation
orders, retries, adaptive weights and annealing test — runs as one compiled loop of many
steps, called in chunks of a few milliseconds so that the caller keeps its deadline, its
stop flag and its reports of better plans.

The draws come from this module's own generator (SplitMix64: one 64-bit state, advanced by
a constant and mixed), so the search is reproducible from its seed and independent of
NumPy's and numba's global generators. Its paths therefore differ from the NumPy loop's;
the steps are the same kind of step (tests/test_annealing.py checks each part and whole
searches against the independent checker).

Arguments travel as tuples of arrays:

- ``sched``: (free_gpus [S, T], load_kw [S, T], renewable_kw [S, T], coef [S, T] objective
  per grid kWh, slot_hours, cost_per_kw [S, T] (coef × slot_hours), site [n] (-1: not placed),
  lo [n], hi [n] (first slot, one past the last), slots_of [n, D], durations [n], gpus [n],
  power_kw [n], pue [S], movable [n] bool, delay [n] (delay weight × priority ×
  slot_hours), has_delay);
- ``table``: ruin_recreate._JobTable.arrays (insertion_jit.recreate's ``jobs``);
- ``ruin``: (allowed [n, S] bool, cell_cdf [S·T], coef_cum [S, T + 1], ideal [n]);
- ``work``: buffers: (picked [n], candidates [n], values [n], ids [n], order [MAX_RUIN],
  first [MAX_RUIN], second [MAX_RUIN], options [MAX_RUIN] int64, previous_site [MAX_RUIN],
  previous_slots [MAX_RUIN, D], best_site [n], best_slots [n, D], out_site [n],
  out_slots [n, D]) (as ruin_recreate._CompiledLoop builds them).
"""

import math
from statistics import NormalDist

import numpy as np
from numba import njit

from gridshift.optimizer.insertion_jit import feasible_options, move_jobs, recreate_retrying
from gridshift.optimizer.recreation_status import OVER, STUCK

# Indices into ruin_recreate.RUIN_KINDS and RECREATE_ORDERS (the same order).
CLEAN_WINDOW, TIME_WINDOW, RELATED, WORST, RANDOM = 0, 1, 2, 3, 4
FEWEST_OPTIONS, BIG_FIRST, TIGHT_FIRST, RANDOM_ORDER = 0, 1, 2, 3
# stats' fields: steps, accepted, improved, failed.
STEPS, ACCEPTED, IMPROVED, FAILED = 0, 1, 2, 3

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX_1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX_2 = np.uint64(0x94D049BB133111EB)
_S30, _S27, _S31, _S11 = np.uint64(30), np.uint64(27), np.uint64(31), np.uint64(11)

# The ruins' noise, drawn per job from tables of quantiles: NOISE_BITS random bits a draw,
# NOISE_PER_DRAW draws from one 64-bit number. Ranking a few thousand jobs by a noisy score
# needs no finer steps, and computing each draw (a log, a square root, a sine and a cosine for
# a normal, an exponential of it) was most of a ruin's time on 2,000 jobs.
NOISE_BITS, NOISE_PER_DRAW = 10, 6
_NOISE_MASK, _NOISE_SHIFT = np.uint64((1 << NOISE_BITS) - 1), np.uint64(NOISE_BITS)
_NOISE_P = (np.arange(1 << NOISE_BITS) + 0.5) / (1 << NOISE_BITS)
#: Quantiles of the standard exponential distribution and of exp(0.5 × a standard normal).
EXPONENTIAL_QUANTILES = -np.log1p(-_NOISE_P)
LOGNORMAL_HALF_QUANTILES = np.exp(0.5 * np.array([NormalDist().inv_cdf(p) for p in _NOISE_P]))


# ---------------------------------------------------------------- the generator (SplitMix64)

@njit(cache=True, nogil=True)
def next_u64(rng):
    """The next 64-bit draw of the generator whose state is rng[0] (uint64)."""
    rng[0] += _GOLDEN
    z = rng[0]
    z = (z ^ (z >> _S30)) * _MIX_1
    z = (z ^ (z >> _S27)) * _MIX_2
    return z ^ (z >> _S31)


@njit(cache=True, nogil=True)
def uniform(rng):
    """A float in [0, 1), 53 random bits."""
    return float(next_u64(rng) >> _S11) * (1.0 / 9007199254740992.0)


@njit(cache=True, nogil=True)
def integers(rng, low, high):
    """An integer in [low, high) (high > low)."""
    return min(high - 1, low + int(uniform(rng) * (high - low)))


@njit(cache=True, nogil=True)
def normal_pair(rng):
    """Two independent standard normal draws (Box-Muller)."""
    radius = math.sqrt(-2.0 * math.log(1.0 - uniform(rng)))
    angle = 2.0 * math.pi * uniform(rng)
    return radius * math.cos(angle), radius * math.sin(angle)


@njit(cache=True, nogil=True)
def lognormal(rng, mean, sigma):
    """exp(mean + sigma × a standard normal draw)."""
    return math.exp(mean + sigma * normal_pair(rng)[0])


# ---------------------------------------------------------------- helpers

@njit(cache=True, nogil=True)
def sample(rng, candidates, count, size):
    """Shuffle at most `size` of candidates[:count] to its front (a partial Fisher-Yates):
    how many were drawn."""
    if count <= size:
        return count
    for i in range(size):
        r = integers(rng, i, count)
        candidates[i], candidates[r] = candidates[r], candidates[i]
    return size


@njit(cache=True, nogil=True)
def smallest(values, ids, count, size, out):
    """The ids of the `size` smallest finite values[:count] into out, smallest first (an
    insertion into a short sorted list: the candidates are every placed job, the picks a few
    dozen); how many (fewer where fewer are finite)."""
    if size <= 0:
        return 0
    filled = 0
    for i in range(count):
        v = values[i]
        if not np.isfinite(v):
            continue
        if filled == size and v >= values[out[filled - 1]]:
            continue
        at = filled if filled < size else size - 1
        while at > 0 and values[out[at - 1]] > v:
            if at < size:
                out[at] = out[at - 1]
            at -= 1
        out[at] = i
        if filled < size:
            filled += 1
    for i in range(filled):
        out[i] = ids[out[i]]
    return filled


@njit(cache=True, nogil=True)
def objective(sched):
    """The plan's objective up to the delay term's constant (ruin_recreate._Schedule's)."""
    load_kw, renewable_kw, cost_per_kw = sched[1], sched[2], sched[5]
    site, hi, delay, has_delay = sched[6], sched[8], sched[15], sched[16]
    value = 0.0
    for s in range(load_kw.shape[0]):
        for t in range(load_kw.shape[1]):
            grid = load_kw[s, t] - renewable_kw[s, t]
            if grid > 0.0:
                value += grid * cost_per_kw[s, t]
    if has_delay:
        for j in range(site.shape[0]):
            if site[j] >= 0:
                value += delay[j] * hi[j]
    return value


# ---------------------------------------------------------------- ruins

# Loops over the jobs read the arrays unpacked: a helper taking the tuple per job would
# pass (and reference-count) every array in it on each call, 100 times the loop's work.

@njit(cache=True, nogil=True)
def _overlapping(sched, lo, hi, out):
    """The movable placed jobs running in [lo, hi) into out: how many."""
    site, lo_of, hi_of, movable = sched[6], sched[7], sched[8], sched[14]
    count = 0
    for j in range(lo_of.shape[0]):
        if site[j] >= 0 and movable[j] and lo_of[j] < hi and hi_of[j] > lo:
            out[count] = j
            count += 1
    return count


@njit(cache=True, nogil=True)
def ruin_clean_window(rng, sched, table, ruin, size, work):
    """The jobs at a clean (site, slot) cell's site near it, up to half of `size`, and jobs
    elsewhere that could move in."""
    allowed, cell_cdf = ruin[0], ruin[1]
    first_slot, last_slot = table[5], table[6]
    picked, cand = work[0], work[1]
    n_slots = sched[1].shape[1]
    x = uniform(rng) * cell_cdf[-1]
    cell = min(int(np.searchsorted(cell_cdf, x, side="right")), cell_cdf.shape[0] - 1)
    site, slot = cell // n_slots, cell % n_slots
    half = integers(rng, 1, max(2, n_slots // 8))
    lo, hi = max(0, slot - half), min(n_slots, slot + half + 1)
    residents, movers = 0, 0
    site_of, lo_of, hi_of, movable = sched[6], sched[7], sched[8], sched[14]
    for j in range(site_of.shape[0]):
        if not (site_of[j] >= 0 and movable[j] and lo_of[j] < hi and hi_of[j] > lo):
            continue
        if site_of[j] == site:
            picked[residents] = j
            residents += 1
        elif allowed[j, site] and first_slot[j] < hi and last_slot[j] > lo:
            cand[movers] = j
            movers += 1
    kept = sample(rng, picked, residents, size // 2)
    more = sample(rng, cand, movers, size - kept)
    for i in range(more):
        picked[kept + i] = cand[i]
    return kept + more


@njit(cache=True, nogil=True)
def ruin_time_window(rng, sched, size, work):
    """Jobs running in a random window at every site."""
    picked = work[0]
    n_slots = sched[1].shape[1]
    width = integers(rng, 2, max(3, n_slots // 6))
    lo = integers(rng, 0, max(1, n_slots - width))
    return sample(rng, picked, _overlapping(sched, lo, lo + width, picked), size)


@njit(cache=True, nogil=True)
def _placed(sched, out):
    """The movable placed jobs into out: how many."""
    site, movable = sched[6], sched[14]
    count = 0
    for j in range(site.shape[0]):
        if site[j] >= 0 and movable[j]:
            out[count] = j
            count += 1
    return count


@njit(cache=True, nogil=True)
def ruin_related(rng, sched, ruin, size, work):
    """A job and the jobs that share a site with it, nearest in time first (with noise)."""
    allowed = ruin[0]
    picked, cand, values, order = work[0], work[1], work[2], work[3]
    count = _placed(sched, cand)
    seed = cand[integers(rng, 0, count)]
    lo_of, hi_of = sched[7], sched[8]
    seed_mid = 0.5 * (lo_of[seed] + hi_of[seed])
    bits, left = np.uint64(0), 0
    for i in range(count):
        j = cand[i]
        if left == 0:
            bits, left = next_u64(rng), NOISE_PER_DRAW
        noise = 2.0 * EXPONENTIAL_QUANTILES[int(bits & _NOISE_MASK)]
        bits, left = bits >> _NOISE_SHIFT, left - 1
        values[i] = abs(0.5 * (lo_of[j] + hi_of[j]) - seed_mid) + noise
        share = False
        for s in range(allowed.shape[1]):
            if allowed[j, s] and allowed[seed, s]:
                share = True
                break
        if not share:
            values[i] = np.inf
    filled = smallest(values, cand, count, size, order)
    picked[:filled] = order[:filled]
    return filled


@njit(cache=True, nogil=True)
def ruin_worst(rng, sched, ruin, size, work):
    """The jobs furthest above their cheapest placement on an empty fleet (with noise)."""
    coef_cum, ideal = ruin[2], ruin[3]
    picked, cand, values, order = work[0], work[1], work[2], work[3]
    site, lo_of, hi_of = sched[6], sched[7], sched[8]
    power_kw, pue, slot_hours = sched[12], sched[13], sched[4]
    count = _placed(sched, cand)
    bits, left = np.uint64(0), 0
    for i in range(count):
        j = cand[i]
        s = site[j]
        # Contiguous estimate of the current cost (ignores renewables): enough to rank.
        now = power_kw[j] * pue[s] * (coef_cum[s, hi_of[j]] - coef_cum[s, lo_of[j]]) * slot_hours
        if left == 0:
            bits, left = next_u64(rng), NOISE_PER_DRAW
        noise = LOGNORMAL_HALF_QUANTILES[int(bits & _NOISE_MASK)]
        bits, left = bits >> _NOISE_SHIFT, left - 1
        values[i] = -(now - ideal[j]) * noise
    filled = smallest(values, cand, count, size, order)
    picked[:filled] = order[:filled]
    return filled


@njit(cache=True, nogil=True)
def ruin_random(rng, sched, size, work):
    picked = work[0]
    return sample(rng, picked, _placed(sched, picked), size)


@njit(cache=True, nogil=True)
def draw_kind(rng, weights):
    """A ruin kind, each as likely as its weight (0: not used)."""
    x = uniform(rng) * weights.sum()
    last = RANDOM
    for kind in range(weights.shape[0]):
        if weights[kind] > 0.0:
            last = kind
            x -= weights[kind]
            if x < 0.0:
                return kind
    return last


@njit(cache=True, nogil=True)
def pick(rng, sched, table, ruin, weights, size, work):
    """(the ruin kind used, how many jobs): the jobs in work[0][:count]."""
    kind = draw_kind(rng, weights)
    if kind == CLEAN_WINDOW:
        count = ruin_clean_window(rng, sched, table, ruin, size, work)
    elif kind == TIME_WINDOW:
        count = ruin_time_window(rng, sched, size, work)
    elif kind == RELATED:
        count = ruin_related(rng, sched, ruin, size, work)
    elif kind == WORST:
        count = ruin_worst(rng, sched, ruin, size, work)
    else:
        count = ruin_random(rng, sched, size, work)
    if count < 2:
        kind, count = RANDOM, ruin_random(rng, sched, size, work)
    return kind, count


# ---------------------------------------------------------------- recreation order

@njit(cache=True, nogil=True)
def _sort_by(jobs, first, second, count):
    """jobs[:count] sorted by (first, second) ascending (an insertion sort: a few dozen)."""
    for i in range(1, count):
        j, a, b = jobs[i], first[i], second[i]
        at = i
        while at > 0 and (first[at - 1] > a or (first[at - 1] == a and second[at - 1] > b)):
            jobs[at], first[at], second[at] = jobs[at - 1], first[at - 1], second[at - 1]
            at -= 1
        jobs[at], first[at], second[at] = j, a, b


@njit(cache=True, nogil=True)
def recreate_order(rng, sched, table, kind, jobs, work):
    """`jobs` into work[4][:len(jobs)] in the order a recreation of this kind puts them back
    (ruin_recreate._recreate_order)."""
    order, first, second, options = work[4], work[5], work[6], work[7]
    gpus, lo_of, hi_of, d_of = table[4], table[5], table[6], table[7]
    count = jobs.shape[0]
    order[:count] = jobs
    if kind == RANDOM_ORDER:
        for i in range(count - 1, 0, -1):
            r = integers(rng, 0, i + 1)
            order[i], order[r] = order[r], order[i]
        return
    if kind == FEWEST_OPTIONS:
        feasible_options(sched[0], sched[1], table, order[:count], options[:count])
    for i in range(count):
        j = order[i]
        first[i] = 0.0
        if kind == FEWEST_OPTIONS:
            first[i] = options[i]
            second[i] = -(gpus[j] * d_of[j]) * uniform(rng)
        elif kind == BIG_FIRST:
            second[i] = -(gpus[j] * d_of[j]) * lognormal(rng, 0.0, 0.3)
        else:
            second[i] = (hi_of[j] - lo_of[j] - d_of[j]) + uniform(rng)
    _sort_by(order, first, second, count)


# ---------------------------------------------------------------- a step

@njit(cache=True, nogil=True)
def take_out(sched, jobs, previous_site, previous_slots):
    """Take the placed `jobs` out, keeping where they were."""
    free_gpus, load_kw, site, slots_of = sched[0], sched[1], sched[6], sched[9]
    for i in range(jobs.shape[0]):
        j = jobs[i]
        previous_site[i] = site[j]
        previous_slots[i, :] = slots_of[j, :]
    move_jobs(free_gpus, load_kw, jobs, site, slots_of, sched[10], sched[11], sched[12],
              sched[13], -1)
    for i in range(jobs.shape[0]):
        site[jobs[i]] = -1


@njit(cache=True, nogil=True)
def restore(sched, jobs, previous_site, previous_slots, scratch):
    """Put `jobs` back where they were, taking out first those a recreation has placed
    (ruin_recreate._restore)."""
    free_gpus, load_kw, site, lo_of, hi_of, slots_of = (sched[0], sched[1], sched[6], sched[7],
                                                         sched[8], sched[9])
    durations = sched[10]
    placed = 0
    for i in range(jobs.shape[0]):
        if site[jobs[i]] >= 0:
            scratch[placed] = jobs[i]
            placed += 1
    if placed:
        move_jobs(free_gpus, load_kw, scratch[:placed], site, slots_of, durations, sched[11],
                  sched[12], sched[13], -1)
    for i in range(jobs.shape[0]):
        j = jobs[i]
        site[j] = previous_site[i]
        slots_of[j, :] = previous_slots[i, :]
        lo_of[j] = slots_of[j, 0]
        hi_of[j] = slots_of[j, durations[j] - 1] + 1
    move_jobs(free_gpus, load_kw, jobs, site, slots_of, durations, sched[11], sched[12],
              sched[13], +1)


@njit(cache=True, nogil=True)
def step(rng, sched, table, order_kind, jobs, limit, retries, work):
    """Take `jobs` out and put them back (ruin_recreate._step): (the new objective,
    recreation status); STUCK: undone, objective meaningless; OVER: sure to exceed `limit`
    (the caller restores)."""
    previous_site, previous_slots, out_site, out_slots = work[8], work[9], work[12], work[13]
    take_out(sched, jobs, previous_site, previous_slots)
    base = objective(sched)
    count = jobs.shape[0]
    recreate_order(rng, sched, table, order_kind, jobs, work)
    status = recreate_retrying(sched[0], sched[1], sched[2], sched[3], sched[4], table,
                               work[4][:count], limit - base, retries, sched[6], sched[9],
                               sched[7], sched[8], sched[12], sched[13], out_site, out_slots)
    if status == OVER:
        return np.inf, status
    if status == STUCK:
        restore(sched, jobs, previous_site, previous_slots, work[1])
        return np.nan, status
    return objective(sched), status


@njit(cache=True, nogil=True)
def reward(weights, kind, improved):
    """Kinds that improve the best plan are drawn more often (ruin_recreate._Ruiner.reward)."""
    w = weights[kind]
    if w > 0.0:                 # a kind left out (weight 0) stays out, fallbacks included
        weights[kind] = min(5.0, w * 1.2) if improved else max(0.3, w * 0.995)


@njit(cache=True, nogil=True)
def anneal(rng, sched, table, ruin, weights, work, n_steps, temperature, min_ruin, max_ruin,
           retries, values, stats, by_kind):
    """`n_steps` steps of simulated annealing at `temperature` (ruin_recreate's loop).
    values: [current, best] objectives, updated; stats: STEPS, ACCEPTED, IMPROVED, FAILED,
    added to; by_kind [kinds, 2]: tried, improved the best, added to. The best plan seen is
    copied into work[10] (site) and work[11] (slots) whenever it improves. Returns how many
    times the best improved."""
    current, best = values[0], values[1]
    best_site, best_slots = work[10], work[11]
    improvements = 0
    n_orders = RANDOM_ORDER + 1
    for _ in range(n_steps):
        size = integers(rng, min_ruin, max_ruin + 1)
        kind, count = pick(rng, sched, table, ruin, weights, size, work)
        jobs = work[0][:count].copy()
        # The annealing test drawn first: the step is accepted iff its objective is at most
        # `limit`, so a recreation can stop as soon as it is sure to be rejected.
        limit = current - temperature * math.log(max(uniform(rng), 1e-300))
        value, status = step(rng, sched, table, integers(rng, 0, n_orders), jobs, limit,
                             retries, work)
        stats[STEPS] += 1
        by_kind[kind, 0] += 1
        if status == STUCK:
            stats[FAILED] += 1
            reward(weights, kind, False)
            continue
        improved = value < best - 1e-9 * max(1.0, abs(best))
        reward(weights, kind, improved)
        if value > limit:
            restore(sched, jobs, work[8], work[9], work[1])
            continue
        current = value
        stats[ACCEPTED] += 1
        if improved:
            best = value
            best_site[:] = sched[6]
            best_slots[:, :] = sched[9]
            stats[IMPROVED] += 1
            by_kind[kind, 1] += 1
            improvements += 1
    values[0], values[1] = current, best
    return improvements
