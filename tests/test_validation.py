"""Request validation: every bad-input kind is reported with its exact field path and a message
that says what is wrong, all problems of a request at once (optimizer.parsing, and the forecast
resolution of gridshift.planning.prepare)."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from conftest import START, hours, job, prepare, small_request

from gridshift.optimizer.domain import Backend, RiskMeasure
from gridshift.optimizer.errors import ErrorCategory, FieldViolation, InvalidInputError
from gridshift.optimizer.parsing import parse_request, parse_request_json


def violations_of(request: Any, *, via_prepare: bool = False) -> list[FieldViolation]:
    """The violations a request is rejected with (fails the test if it is accepted)."""
    with pytest.raises(InvalidInputError) as info:
        prepare(request) if via_prepare else parse_request(request)
    assert info.value.category is ErrorCategory.INVALID_INPUT
    assert info.value.violations, "InvalidInputError without violations"
    return info.value.violations


def assert_violation(request: Any, field: str, *words: str, via_prepare: bool = False) -> str:
    """Exactly one violation at `field`, whose message contains every one of `words`."""
    found = violations_of(request, via_prepare=via_prepare)
    at_field = [v for v in found if v.field == field]
    assert len(at_field) == 1, f"expected one violation at {field!r}, got {found}"
    message = at_field[0].problem
    for word in words:
        assert word.lower() in message.lower(), f"{word!r} not in {message!r}"
    assert str(at_field[0]) == f"{field}: {message}" if field else message
    return message


def site(site_id: str, region: str = "R", gpu_capacity: int = 8, **extra: Any) -> dict:
    return {"id": site_id, "region": region, "gpu_capacity": gpu_capacity, **extra}


def forecast(region: str = "R", ci: list[float] | None = None, **extra: Any) -> dict:
    return {"region": region, "carbon_intensity": ci if ci is not None else [100.0] * 8, **extra}


# --- the baseline: the helpers' request is valid, so each case below fails for its own reason


def test_small_request_is_valid() -> None:
    request = parse_request(small_request(jobs=[job("j1", duration_minutes=90)]))
    assert [j.id for j in request.jobs] == ["j1"]
    assert request.horizon.slots == 8


# --- ids and references


def test_duplicate_job_id() -> None:
    msg = assert_violation(small_request(jobs=[job("x"), job("y"), job("x")]), "jobs[2].id",
                           "duplicate", "'x'")
    assert "jobs[0]" in msg  # says where the first one is


def test_duplicate_site_id() -> None:
    request = small_request(sites=[site("a"), site("a")])
    assert_violation(request, "sites[1].id", "duplicate", "'a'", "sites[0]")


@pytest.mark.parametrize("blank", ["", "   "])
def test_empty_ids(blank: str) -> None:
    found = violations_of(small_request(sites=[site(blank)], jobs=[job(blank)]))
    assert {(v.field, v.problem) for v in found} >= {("sites[0].id", "empty"),
                                                     ("jobs[0].id", "empty")}


def test_missing_ids_are_empty_too() -> None:
    j = job("x")
    del j["id"]
    assert_violation(small_request(jobs=[j]), "jobs[0].id", "empty")


def test_unknown_site_in_allowed_sites() -> None:
    request = small_request(sites=[site("a"), site("b")],
                            jobs=[job("x", allowed_sites=["a", "nowhere"])])
    assert_violation(request, "jobs[0].allowed_sites[1]", "unknown site", "'nowhere'")


def test_unknown_home_site() -> None:
    assert_violation(small_request(jobs=[job("x", home_site="nowhere")]), "jobs[0].home_site",
                     "unknown site", "'nowhere'")


def test_home_site_not_among_allowed_sites() -> None:
    request = small_request(sites=[site("a"), site("b")],
                            jobs=[job("x", allowed_sites=["a"], home_site="b")])
    assert_violation(request, "jobs[0].home_site", "'b'", "not among allowed_sites")


def test_home_site_among_allowed_sites_is_valid() -> None:
    request = small_request(sites=[site("a"), site("b")],
                            jobs=[job("x", allowed_sites=["a", "b"], home_site="b")])
    assert parse_request(request).jobs[0].home_site == "b"


def test_no_sites() -> None:
    assert_violation(small_request(sites=[]), "sites", "at least one site")


# --- job sizes


@pytest.mark.parametrize("gpus", [0, -2])
def test_gpus_not_positive(gpus: int) -> None:
    assert_violation(small_request(jobs=[job("x", gpus=gpus)]), "jobs[0].gpus",
                     "must be positive", str(gpus))


@pytest.mark.parametrize("power_kw", [0, -1.5])
def test_power_not_positive(power_kw: float) -> None:
    assert_violation(small_request(jobs=[job("x", power_kw=power_kw)]), "jobs[0].power_kw",
                     "must be positive")


@pytest.mark.parametrize("minutes", [0, -60])
def test_duration_not_positive(minutes: int) -> None:
    assert_violation(small_request(jobs=[job("x", duration_minutes=minutes)]),
                     "jobs[0].duration_minutes", "must be positive", str(minutes))


# --- job windows


def test_deadline_before_earliest_start() -> None:
    request = small_request(jobs=[job("ok"), job("x", earliest_start=hours(4), deadline=hours(2))])
    found = violations_of(request)
    assert [str(v) for v in found] == ["jobs[1].deadline: before earliest_start"]


def test_deadline_equal_to_earliest_start() -> None:
    request = small_request(jobs=[job("x", earliest_start=hours(3), deadline=hours(3))])
    assert_violation(request, "jobs[0].deadline", "earliest_start")


def test_window_shorter_than_the_job() -> None:
    request = small_request(jobs=[job("x", duration_minutes=180, earliest_start=hours(1),
                                      deadline=hours(3))])
    assert_violation(request, "jobs[0]", "holds 2 whole slot(s)", "needs 3", "180 min")


def test_window_rounding_counts_whole_slots_only() -> None:
    # 00:30 rounds up to 01:00, 02:30 rounds down to 02:00: one whole hourly slot for 90 min
    # (which occupies two slots), although the raw window is two hours long.
    request = small_request(jobs=[job("x", duration_minutes=90, earliest_start=hours(0.5),
                                      deadline=hours(2.5))])
    assert_violation(request, "jobs[0]", "holds 1 whole slot(s)", "needs 2", "90 min")
    # The same window holds a 60-minute job, and a 90-minute job once it is a slot wider.
    ok = small_request(jobs=[job("x", duration_minutes=60, earliest_start=hours(0.5),
                                 deadline=hours(2.5)),
                             job("y", duration_minutes=90, earliest_start=hours(0.5),
                                 deadline=hours(3.0))])
    assert len(parse_request(ok).jobs) == 2


def test_window_clipped_to_the_horizon() -> None:
    # Deadline after the horizon's end: only the slots inside the horizon count.
    request = small_request(slots=8, jobs=[job("x", duration_minutes=180,
                                                earliest_start=hours(6), deadline=hours(20))])
    assert_violation(request, "jobs[0]", "holds 2 whole slot(s)", "needs 3")


def test_job_after_the_horizon() -> None:
    request = small_request(slots=8, jobs=[job("x", earliest_start=hours(9), deadline=hours(12))])
    assert_violation(request, "jobs[0].earliest_start", "horizon's end", hours(8))


def test_job_before_the_horizon() -> None:
    request = small_request(jobs=[job("x", earliest_start=hours(-6), deadline=hours(-1))])
    assert_violation(request, "jobs[0].deadline", "horizon's start", START)


def test_job_longer_than_the_horizon() -> None:
    request = small_request(slots=4, jobs=[job("x", duration_minutes=5 * 60)],
                            forecasts=[forecast(ci=[1.0] * 4)])
    assert_violation(request, "jobs[0]", "needs 5")


# --- forecasts


def test_forecast_too_short() -> None:
    request = small_request(forecasts=[forecast(ci=[100.0] * 7, start=START, slot_minutes=60)])
    assert_violation(request, "forecasts[0]", "not the horizon", hours(7), hours(8))


def test_forecast_starting_late() -> None:
    request = small_request(forecasts=[forecast(ci=[100.0] * 12, start=hours(1))])
    assert_violation(request, "forecasts[0]", "covers " + hours(1), "not the horizon")


def test_forecast_with_its_own_start_and_step_is_aligned() -> None:
    # Half-hourly values from an hour before the horizon to an hour after it: covers it.
    values = [float(10 * i) for i in range(20)]
    request = small_request(forecasts=[forecast(ci=values, start=hours(-1), slot_minutes=30)])
    parse_request(request)  # valid
    problem = prepare(request)
    # Slot t (hourly) is the time-weighted mean of the two half-hour values inside it.
    expected = [(values[2 + 2 * t] + values[3 + 2 * t]) / 2 for t in range(8)]
    assert problem.ci_g_per_kwh[0].tolist() == pytest.approx(expected)


def test_forecast_without_start_or_step_uses_the_horizons() -> None:
    request = small_request(forecasts=[forecast(ci=[float(t) for t in range(8)])])
    assert prepare(request).ci_g_per_kwh[0].tolist() == pytest.approx(list(range(8)))


def test_forecast_start_null_means_unset() -> None:
    request = small_request(forecasts=[forecast(start=None)])
    assert parse_request(request).forecasts[0].start == parse_request(request).horizon.start


def test_negative_carbon_intensity() -> None:
    request = small_request(forecasts=[forecast(ci=[100.0] * 3 + [-5.0] + [100.0] * 4)])
    assert_violation(request, "forecasts[0].carbon_intensity[3]", "negative")


@pytest.mark.parametrize("value", [1e308, 2e4, 10_000.5])
def test_implausibly_large_carbon_intensity(value: float) -> None:
    """Far beyond any grid (a unit error); at float extremes it would make totals inf/NaN."""
    request = small_request(forecasts=[forecast(ci=[100.0] * 5 + [value] + [100.0] * 2)])
    assert_violation(request, "forecasts[0].carbon_intensity[5]", "above 10000", "wrong unit")
    at_limit = small_request(forecasts=[forecast(ci=[10_000.0] * 8)])
    assert parse_request(at_limit).forecasts[0].carbon_intensity[0] == 10_000.0


def test_quantile_bands_and_prices_are_checked_like_the_intensity() -> None:
    request = small_request(forecasts=[forecast(
        carbon_intensity_p10=[90.0] * 7 + [-1.0], carbon_intensity_p90=[1e200] + [110.0] * 7,
        price_per_mwh=[40.0, -2e6] + [40.0] * 6)])
    found = {v.field: v.problem for v in violations_of(request)}
    assert set(found) == {"forecasts[0].carbon_intensity_p10[7]",
                          "forecasts[0].carbon_intensity_p90[0]",
                          "forecasts[0].price_per_mwh[1]"}
    assert "negative" in found["forecasts[0].carbon_intensity_p10[7]"]
    assert "per MWh" in found["forecasts[0].price_per_mwh[1]"]
    negative_prices = small_request(forecasts=[forecast(price_per_mwh=[-50.0] * 8)])
    assert parse_request(negative_prices).forecasts[0].price_per_mwh[0] == -50.0


def test_forecast_series_of_different_lengths() -> None:
    request = small_request(forecasts=[forecast(price_per_mwh=[50.0] * 5)])
    assert_violation(request, "forecasts[0].price_per_mwh", "5 values", "8")


def test_region_without_forecast_unknown_to_the_profiles() -> None:
    request = small_request(sites=[site("a", region="XX-NOWHERE")], forecasts=[])
    parse_request(request)  # fine on its own: a forecast source may know the region
    assert_violation(request, "sites[0].region", "no forecast", "'XX-NOWHERE'", via_prepare=True)


def test_known_region_without_forecast_is_filled_from_the_profile() -> None:
    request = small_request(slots=24, sites=[site("a", region="US-CAL-CISO")], forecasts=[],
                            jobs=[job("x")])
    problem = prepare(request)
    ci = problem.ci_g_per_kwh[0]
    assert ci.shape == (24,)
    assert (ci > 0).all() and ci.max() > ci.min()  # a real daily profile, not a constant
    assert [(f.region, f.fallback) for f in problem.forecasts] == [("US-CAL-CISO", True)]


def test_cost_weight_without_prices() -> None:
    request = small_request(objective={"cost_weight": 1.0})
    assert_violation(request, "forecasts[0].price_per_mwh", "required", "cost_weight")
    priced = small_request(objective={"cost_weight": 1.0},
                           forecasts=[forecast(price_per_mwh=[40.0] * 8)])
    assert parse_request(priced).objective.cost_weight == 1.0


def test_cost_weight_with_a_profile_forecast_has_no_prices() -> None:
    request = small_request(sites=[site("a", region="US-CAL-CISO")], forecasts=[],
                            objective={"cost_weight": 1.0})
    assert_violation(request, "sites[0].region", "cost_weight", "price", via_prepare=True)


# --- sites


def test_negative_renewables() -> None:
    request = small_request(sites=[site("a", renewable_kw=[0.0, 5.0, -2.0] + [0.0] * 5)])
    assert_violation(request, "sites[0].renewable_kw[2]", "negative")


@pytest.mark.parametrize("n", [3, 9])
def test_renewables_of_wrong_length(n: int) -> None:
    request = small_request(sites=[site("a", renewable_kw=[1.0] * n)])
    assert_violation(request, "sites[0].renewable_kw", f"{n} values", "one per slot (8)")


@pytest.mark.parametrize("pue", [0.5, 0.99, -1])
def test_pue_below_one(pue: float) -> None:
    assert_violation(small_request(sites=[site("a", pue=pue)]), "sites[0].pue", ">= 1")


@pytest.mark.parametrize("weight", ["carbon_weight", "cost_weight", "delay_weight"])
def test_objective_weight_implausibly_large(weight: str) -> None:
    """1e308 once overflowed the objective to inf and returned a worse plan as FEASIBLE."""
    request = small_request(objective={weight: 1e308},
                            forecasts=[forecast(price_per_mwh=[40.0] * 8)])
    assert_violation(request, f"objective.{weight}", "at most 1e+09", "ratios")


def test_priority_implausibly_large() -> None:
    request = small_request(jobs=[dict(job("j1"), priority=1e12)])
    assert_violation(request, "jobs[0].priority", "at most 1e+09")


@pytest.mark.parametrize("pue", [10.5, 1e308])
def test_pue_implausibly_large(pue: float) -> None:
    assert_violation(small_request(sites=[site("a", pue=pue)]), "sites[0].pue", "at most 10")


@pytest.mark.parametrize("kw", [1e308, 2e7])
def test_power_and_renewables_implausibly_large(kw: float) -> None:
    request = small_request(jobs=[job("j1", power_kw=kw)],
                            sites=[site("a", renewable_kw=[0.0] * 7 + [kw])])
    found = {v.field: v.problem for v in violations_of(request)}
    assert "above 1e+07 kW" in found["jobs[0].power_kw"]
    assert "above 1e+07 kW" in found["sites[0].renewable_kw[7]"]


@pytest.mark.parametrize(("given", "expected"), [(0, 1.0), (None, 1.0), (1.0, 1.0), (1.4, 1.4)])
def test_pue_zero_or_unset_means_one(given: float | None, expected: float) -> None:
    s = site("a") if given is None else site("a", pue=given)
    assert parse_request(small_request(sites=[s])).sites[0].pue == expected


@pytest.mark.parametrize("cap", [0, -10])
def test_power_cap_not_positive(cap: float) -> None:
    assert_violation(small_request(sites=[site("a", power_cap_kw=cap)]), "sites[0].power_cap_kw",
                     "must be positive")


def test_capacity_window_above_site_capacity() -> None:
    windows = [{"start": hours(1), "end": hours(3), "gpu_capacity": 12}]
    request = small_request(sites=[site("a", gpu_capacity=8, capacity_windows=windows)])
    assert_violation(request, "sites[0].capacity_windows[0].gpu_capacity", "12", "exceeds",
                     "8")


@pytest.mark.parametrize("end", [hours(1), hours(3)])
def test_capacity_window_end_not_after_start(end: str) -> None:
    windows = [{"start": hours(1), "end": hours(2), "gpu_capacity": 4},
               {"start": hours(3), "end": end, "gpu_capacity": 4}]
    request = small_request(sites=[site("a", capacity_windows=windows)])
    assert_violation(request, "sites[0].capacity_windows[1].end", "not after start")


@pytest.mark.parametrize("missing", ["start", "end"])
@pytest.mark.parametrize("null", [False, True])
def test_capacity_window_without_start_or_end(missing: str, null: bool) -> None:
    window = {"start": hours(1), "end": hours(2), "gpu_capacity": 4}
    if null:
        window[missing] = None  # the JSON mapping's "unset"
    else:
        del window[missing]
    request = small_request(sites=[site("a", capacity_windows=[window])])
    assert_violation(request, "sites[0].capacity_windows[0]", "start and end are required")


# --- malformed values


@pytest.mark.parametrize("value", ["tomorrow", "2026-13-01T00:00:00Z", "15/06/2026 10:00"])
def test_malformed_timestamp(value: str) -> None:
    request = small_request(jobs=[job("x", deadline=value)])
    assert_violation(request, "jobs[0].deadline", "malformed timestamp", repr(value), "RFC 3339")


@pytest.mark.parametrize(("path", "where"), [
    ("horizon.start", "horizon"), ("jobs[0].earliest_start", "job"),
    ("forecasts[0].start", "forecast")])
def test_timestamp_without_offset(path: str, where: str) -> None:
    naive = "2026-06-15T00:00:00"
    if where == "horizon":
        request = small_request(horizon={"start": naive, "slot_minutes": 60, "slots": 8})
    elif where == "job":
        request = small_request(jobs=[job("x", earliest_start=naive)])
    else:
        request = small_request(forecasts=[forecast(start=naive)])
    assert_violation(request, path, "no UTC offset")


@pytest.mark.parametrize("value", ["2026-06-15T02:00:00+02:00", "2026-06-15T00:00:00.000Z",
                                   "2026-06-15T00:00:00+00:00"])
def test_timestamps_with_offsets_are_converted_to_utc(value: str) -> None:
    request = parse_request(small_request(jobs=[job("x", earliest_start=value)]))
    assert request.jobs[0].earliest_start == request.horizon.start


def test_timestamp_not_a_string() -> None:
    assert_violation(small_request(jobs=[job("x", deadline=1750000000)]), "jobs[0].deadline",
                     "RFC 3339")


def test_timestamp_out_of_range_is_invalid_input_not_a_crash() -> None:
    request = small_request(jobs=[job("x", deadline="9999-12-31T23:00:00-05:00")])
    assert_violation(request, "jobs[0].deadline", "out of range")
    late = small_request(horizon={"start": "9999-12-31T20:00:00Z", "slots": 8},
                         forecasts=[forecast(start="9999-12-31T20:00:00Z")])
    assert_violation(late, "horizon.slots", "9999-12-31")


@pytest.mark.parametrize(("field", "value", "words"), [
    ("gpus", "two", ("integer", "'two'")),
    ("gpus", 1.5, ("integer", "1.5")),
    ("gpus", True, ("integer",)),
    ("gpus", 2**40, ("int32",)),
    ("power_kw", "lots", ("number", "'lots'")),
    ("power_kw", [1.0], ("number",)),
    ("power_kw", "NaN", ("finite",)),
    ("duration_minutes", {"h": 1}, ("integer",)),
    ("interruptible", "yes", ("true or false",)),
    ("allowed_sites", "a", ("list",)),
    ("team", 7, ("string",)),
])
def test_non_numeric_and_wrongly_typed_values(field: str, value: Any, words: tuple) -> None:
    # One problem, one violation: no follow-on "must be positive, got 0" for the same field.
    found = violations_of(small_request(jobs=[job("x", **{field: value})]))
    assert [v.field for v in found] == [f"jobs[0].{field}"], found
    for word in words:
        assert word in found[0].problem


def test_numbers_as_strings_are_accepted() -> None:
    # The JSON mapping writes 64-bit integers as strings and allows numbers as strings.
    request = parse_request(small_request(jobs=[job("x", gpus="2", power_kw="3.5",
                                                    duration_minutes="90")]))
    j = request.jobs[0]
    assert (j.gpus, j.power_kw, j.duration_minutes) == (2, 3.5, 90)


@pytest.mark.parametrize(("where", "path"), [
    ("top", "colour"), ("horizon", "horizon.colour"), ("site", "sites[0].colour"),
    ("job", "jobs[0].colour"), ("forecast", "forecasts[0].colour"),
    ("objective", "objective.colour"), ("options", "options.colour"),
    ("window", "sites[0].capacity_windows[0].colour")])
def test_unknown_field_reported_with_its_path(where: str, path: str) -> None:
    request = small_request(jobs=[job("x")], objective={"carbon_weight": 1.0},
                            options={"allow_partial": False})
    target = {"top": request, "horizon": request["horizon"], "site": request["sites"][0],
              "job": request["jobs"][0], "forecast": request["forecasts"][0],
              "objective": request["objective"], "options": request["options"]}
    if where == "window":
        window = {"start": hours(1), "end": hours(2), "gpu_capacity": 1}
        request["sites"][0]["capacity_windows"] = [window]
        target["window"] = window
    target[where]["colour"] = "red"
    assert_violation(request, path, "unknown field")


def test_unknown_field_keeps_its_spelling() -> None:
    request = small_request(jobs=[dict(job("x"), gpuCount=2)])
    assert_violation(request, "jobs[0].gpuCount", "unknown field")


@pytest.mark.parametrize(("field", "value", "names"), [
    ("backend", "QUANTUM", ("CPSAT", "HIGHS", "GREEDY")),
    ("backend", "cpsat", ("CPSAT",)),
    ("backend", 9, ("BACKEND_AUTO",)),
    ("risk_measure", "WORST", ("EXPECTED", "P90", "CVAR95")),
])
def test_unknown_enum_value(field: str, value: Any, names: tuple) -> None:
    assert_violation(small_request(options={field: value}), f"options.{field}", "unknown value",
                     repr(value), *names)


@pytest.mark.parametrize(("value", "expected"), [
    ("CPSAT", Backend.CPSAT), ("GREEDY", Backend.GREEDY), (2, Backend.HIGHS),
    ("BACKEND_AUTO", Backend.AUTO)])
def test_enum_by_name_or_number(value: Any, expected: Backend) -> None:
    assert parse_request(small_request(options={"backend": value})).options.backend is expected


def test_risk_measure_by_name() -> None:
    options = parse_request(small_request(options={"risk_measure": "CVAR95"})).options
    assert options.risk_measure is RiskMeasure.CVAR95


def test_horizon_fields() -> None:
    found = violations_of(small_request(horizon={"start": START, "slot_minutes": 2000,
                                                 "slots": 0}))
    assert {v.field for v in found} == {"horizon.slot_minutes", "horizon.slots"}


# --- whole-request problems


@pytest.mark.parametrize("text", ["{", "{'horizon': 1}", "", "[1, 2", b"\xff\xfe\x00"])
def test_unreadable_json(text: str | bytes) -> None:
    with pytest.raises(InvalidInputError) as info:
        parse_request_json(text)
    [violation] = info.value.violations
    assert violation.field == ""
    assert "unreadable JSON" in violation.problem


def test_readable_json_is_parsed() -> None:
    import json

    request = parse_request_json(json.dumps(small_request(jobs=[job("x")])))
    assert [j.id for j in request.jobs] == ["x"]


@pytest.mark.parametrize("data", [[], [small_request()], "request", 42, None])
def test_request_not_an_object(data: Any) -> None:
    [violation] = violations_of(data)
    assert "must be a JSON object" in violation.problem


def test_request_not_an_object_from_json() -> None:
    with pytest.raises(InvalidInputError, match="must be a JSON object"):
        parse_request_json("[]")


def test_missing_horizon() -> None:
    request = small_request(jobs=[job("x")])
    del request["horizon"]
    assert_violation(request, "horizon", "required")


@pytest.mark.parametrize("start", ["absent", None])
def test_missing_horizon_start(start: Any) -> None:
    request = small_request()
    if start == "absent":
        del request["horizon"]["start"]
    else:
        request["horizon"]["start"] = start
    assert_violation(request, "horizon.start", "required")


def test_wrongly_typed_containers() -> None:
    request = small_request(jobs=[5], forecasts={"region": "R"})
    found = violations_of(request)
    assert {str(v) for v in found} == {"jobs[0]: must be an object",
                                       "forecasts: must be a list"}


def test_all_problems_are_reported_at_once() -> None:
    request = small_request(
        sites=[site("a", pue=0.5), site("a")],                        # 1 pue, 2 duplicate id
        jobs=[job("x", gpus=0),                                      # 3 gpus
              job("y", earliest_start=hours(5), deadline=hours(4)),  # 4 deadline
              job("z", allowed_sites=["nowhere"])],                  # 5 unknown site
    )
    found = violations_of(request)
    assert sorted(v.field for v in found) == sorted([
        "sites[0].pue", "sites[1].id", "jobs[0].gpus", "jobs[1].deadline",
        "jobs[2].allowed_sites[0]"])
    # and the error's message lists them all, in `path: problem` form
    with pytest.raises(InvalidInputError) as info:
        parse_request(request)
    for v in found:
        assert f"{v.field}: {v.problem}" in str(info.value)


def test_parse_and_prepare_report_problems_without_mutating_the_request() -> None:
    request = small_request(jobs=[job("x", gpus=0)], options={"backend": "NOPE"})
    before = copy.deepcopy(request)
    found = violations_of(request, via_prepare=True)
    assert {v.field for v in found} == {"jobs[0].gpus", "options.backend"}
    assert request == before


# --- the JSON mapping's lowerCamelCase names


def test_lower_camel_case_names_are_accepted() -> None:
    camel = {
        "horizon": {"start": START, "slotMinutes": 30, "slots": 16},
        "sites": [{"id": "a", "region": "R", "gpuCapacity": 8, "powerCapKw": 50.0,
                   "renewableKw": [1.0] * 16,
                   "capacityWindows": [{"start": hours(1), "end": hours(2), "gpuCapacity": 4}]}],
        "jobs": [{"id": "x", "gpus": 2, "powerKw": 3.5, "durationMinutes": 90,
                  "earliestStart": hours(1), "deadline": hours(7), "allowedSites": ["a"],
                  "homeSite": "a", "interruptible": True, "minRunMinutes": 30, "priority": 2}],
        "forecasts": [{"region": "R", "start": START, "slotMinutes": 60,
                       "carbonIntensity": [100.0] * 8, "carbonIntensityP10": [90.0] * 8,
                       "carbonIntensityP90": [110.0] * 8, "pricePerMwh": [40.0] * 8}],
        "objective": {"carbonWeight": 1.0, "costWeight": 0.5, "delayWeight": 0.1},
        "options": {"timeLimitSeconds": 3, "relativeGap": 0.01, "randomSeed": 4,
                    "allowPartial": True, "riskMeasure": "P90", "backend": "GREEDY"},
    }
    snake = {
        "horizon": {"start": START, "slot_minutes": 30, "slots": 16},
        "sites": [{"id": "a", "region": "R", "gpu_capacity": 8, "power_cap_kw": 50.0,
                   "renewable_kw": [1.0] * 16,
                   "capacity_windows": [{"start": hours(1), "end": hours(2),
                                         "gpu_capacity": 4}]}],
        "jobs": [{"id": "x", "gpus": 2, "power_kw": 3.5, "duration_minutes": 90,
                  "earliest_start": hours(1), "deadline": hours(7), "allowed_sites": ["a"],
                  "home_site": "a", "interruptible": True, "min_run_minutes": 30,
                  "priority": 2}],
        "forecasts": [{"region": "R", "start": START, "slot_minutes": 60,
                       "carbon_intensity": [100.0] * 8, "carbon_intensity_p10": [90.0] * 8,
                       "carbon_intensity_p90": [110.0] * 8, "price_per_mwh": [40.0] * 8}],
        "objective": {"carbon_weight": 1.0, "cost_weight": 0.5, "delay_weight": 0.1},
        "options": {"time_limit_seconds": 3, "relative_gap": 0.01, "random_seed": 4,
                    "allow_partial": True, "risk_measure": "P90", "backend": "GREEDY"},
    }
    parsed = parse_request(camel)
    assert parsed == parse_request(snake)
    assert parsed.horizon.slot_minutes == 30
    assert parsed.sites[0].power_cap_kw == 50.0
    assert parsed.sites[0].capacity_windows[0].gpu_capacity == 4
    j = parsed.jobs[0]
    assert (j.power_kw, j.duration_minutes, j.min_run_minutes, j.home_site) == (3.5, 90, 30, "a")
    assert parsed.forecasts[0].price_per_mwh == (40.0,) * 8
    assert parsed.objective.delay_weight == 0.1
    assert parsed.options.allow_partial and parsed.options.backend is Backend.GREEDY


def test_a_long_unknown_camel_case_name_is_named_as_given() -> None:
    """Field names are converted through a cache for short names only (a client's keys must
    not fill the server's memory); a long one is converted all the same and reported as
    given, here twice in one request."""
    long_name = "durationMinutes" + "AndSomething" * 20
    request = small_request(jobs=[job("x"), job("y")])
    for entry in request["jobs"]:
        entry[long_name] = 1
    with pytest.raises(InvalidInputError) as err:
        parse_request(request)
    found = {(v.field, v.problem) for v in err.value.violations}
    assert found == {(f"jobs[{i}].{long_name}", "unknown field") for i in range(2)}


def test_camel_case_messages_are_accepted_by_protobuf_too() -> None:
    """The lowerCamelCase names used above are the ones protobuf's JSON mapping produces."""
    from google.protobuf import json_format

    from gridshift.api.v1 import optimize_pb2 as pb

    message = json_format.ParseDict(small_request(jobs=[job("x", earliest_start=hours(1))]),
                                    pb.OptimizeRequest())
    camel = json_format.MessageToDict(message)  # lowerCamelCase by default
    assert "durationMinutes" in camel["jobs"][0] and "slotMinutes" in camel["horizon"]
    assert parse_request(camel) == parse_request(small_request(
        jobs=[job("x", earliest_start=hours(1))]))


def test_the_same_field_under_both_names() -> None:
    request = small_request(horizon={"start": START, "slot_minutes": 60, "slotMinutes": 30,
                                     "slots": 8})
    assert_violation(request, "horizon.slotMinutes", "given twice", "'slot_minutes'")
