"""``vrlab ndr`` for real: a throughput search on native-routed, its JSON, and what it stores;
and the refusals that must come before anything is built.

Needs root. Each command runs as a ``python -m vrlab.cli`` subprocess in a private mount
namespace whose /run/netns is its own (``run_cli_sealed``), against the per-test state dir and
database of the ``vrlab_env`` fixture, so what it leaves behind is seen and nothing leaks."""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Any

import pytest

from vrlab.results import TrialResult
from vrlab.store.db import Store

if TYPE_CHECKING:
    from conftest import VrlabEnv

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root to create namespaces"),
]

MIN_PPS, MAX_PPS, WIDTH, FINAL_S = 20_000.0, 200_000.0, 0.1, 0.5
#: Far beyond what this 2-core testbed forwards loss-free, so the search must bisect.
OVERLOAD_PPS = 1_500_000.0


def ndr_args(max_pps: float) -> tuple[str, ...]:
    return ("ndr", "native-routed", "--max-kpps", f"{max_pps / 1e3:g}", "--min-kpps",
            f"{MIN_PPS / 1e3:g}", "--final-duration", f"{FINAL_S:g}", "--width", f"{WIDTH:g}",
            "--repeats", "1", "--json")


def assert_nothing_built(env: VrlabEnv, created: list[str]) -> None:
    assert created == [], f"namespaces were created: {created}"
    assert env.ledger_paths() == [], "a ledger was started, so something was about to be built"


def stored_runs(env: VrlabEnv) -> list[Any]:
    if not env.db.exists():
        return []
    with Store(env.db) as st:
        return st.runs()


def run_ndr(env: VrlabEnv, max_pps: float) -> tuple[dict[str, Any], list[TrialResult]]:
    """Run the search, check what every search must satisfy, and return its JSON and the
    trials stored for it."""
    r, left = env.run_cli_sealed(*ndr_args(max_pps), timeout=600)
    assert r.returncode == 0, r.stderr
    assert left == [], f"the search left namespaces behind: {left}"
    assert env.ledger_paths() == [], "the ledger outlived a clean teardown"
    data: dict[str, Any] = json.loads(r.stdout)

    assert (data["min_pps"], data["max_pps"]) == (MIN_PPS, max_pps)
    goals = data["goals"]
    assert set(goals) == {"NDR", "PDR"}
    assert goals["NDR"]["loss_ratio"] == 0.0
    assert goals["PDR"]["loss_ratio"] == 0.005
    for name, g in goals.items():
        assert g["goal_width"] == WIDTH and g["final_trial_s"] == FINAL_S
        assert MIN_PPS <= g["lower_pps"] <= g["upper_pps"] <= max_pps, (name, g)
        assert g["width"] <= WIDTH + 1e-9 or g["upper_is_max"], (name, g)
        assert g["width"] == pytest.approx((g["upper_pps"] - g["lower_pps"]) / g["upper_pps"])
        assert g["conditional_throughput_pps"] <= g["lower_pps"]
        assert 0 < g["trials_used"] <= data["trials"]
    # a load with no loss also passes 0.5% loss: PDR is never below NDR
    assert goals["NDR"]["lower_pps"] <= goals["PDR"]["lower_pps"]

    with Store(env.db) as st:
        [run] = st.runs(kind="ndr")
        assert (run.scenario, run.status) == ("native-routed", "done")
        assert run.id == data["run_id"]
        assert (run.params["min_pps"], run.params["max_pps"]) == (MIN_PPS, max_pps)
        searches = {s.goal: s for s in st.searches(run.id)}
        assert set(searches) == {"NDR", "PDR"}
        for name, s in searches.items():
            assert s.finished_at is not None
            assert (s.lower_pps, s.upper_pps) == (goals[name]["lower_pps"],
                                                  goals[name]["upper_pps"])
            assert s.result["upper_is_max"] == goals[name]["upper_is_max"]
        stored = st.trials(run.id)
        assert len(stored) == data["trials"] + data["invalid_trials"] == run.trial_count
        # a trial the testbed set (the generator fell short, the sink dropped frames) is
        # stored as invalid and measured again; the search saw only the others
        trials = [t for t in stored if "invalid" not in t.result.extra]
        assert len(trials) == data["trials"]
        assert all(t.result.testbed_fault for t in stored if t not in trials)
        ids = {s.id for s in searches.values()}
        assert all(t.search_id in ids for t in trials), [t.search_id for t in trials]
        rates = [t.result.target_pps for t in trials]
        assert all(MIN_PPS <= x <= max_pps for x in rates)
        assert rates[0] == max_pps, "the search opens with a trial at the maximum rate"
        assert sum(t.result.duration_s for t in trials) == pytest.approx(data["trial_time_s"])
        short = sum(t.result.generator_short for t in stored)
        assert data["generator_short_trials"] == short
    return data, [t.result for t in trials]


def trial_time(trials: list[TrialResult], load: float, g: dict[str, Any], *, bad: bool,
               final_only: bool) -> float:
    """Seconds of trials at ``load`` (final-length ones only, if asked) that lost more than the
    goal allows (``bad``) or kept within it."""
    return sum(t.duration_s for t in trials
               if t.target_pps == load and (t.loss_ratio > g["loss_ratio"]) == bad
               and (t.duration_s >= g["final_trial_s"] or not final_only))


def assert_passed_at(name: str, g: dict[str, Any], trials: list[TrialResult],
                     load: float) -> None:
    """A load is a lower bound only once enough of the goal's duration sum met it: at least
    ``1 - exceed ratio`` of it in final-length trials that kept within the loss ratio."""
    good = trial_time(trials, load, g, bad=False, final_only=True)
    assert good >= (1 - g["exceed_ratio"]) * g["duration_sum_s"] - 1e-9, (name, load, good)


def assert_failed_at(name: str, g: dict[str, Any], trials: list[TrialResult],
                     load: float) -> None:
    """A load is an upper bound only once more than ``exceed ratio`` of the duration sum lost
    more than the goal allows (shorter trials count for at most their length): the stored
    trials must show that loss."""
    bad = trial_time(trials, load, g, bad=True, final_only=False)
    at = [(t.duration_s, t.loss_ratio) for t in trials if t.target_pps == load]
    assert bad > g["exceed_ratio"] * g["duration_sum_s"], (name, load, at)


def assert_no_load_failed(name: str, g: dict[str, Any], trials: list[TrialResult]) -> None:
    """A search ends at its ceiling only if no load it measured was an upper bound. Whatever the
    shorter trials add, a load is one as soon as its final-length bad time alone exceeds
    ``exceed ratio`` of the larger of the duration sum and its final-length time."""
    for load in {t.target_pps for t in trials}:
        bad = trial_time(trials, load, g, bad=True, final_only=True)
        good = trial_time(trials, load, g, bad=False, final_only=True)
        allowed = g["exceed_ratio"] * max(g["duration_sum_s"], good + bad)
        assert bad <= allowed + 1e-9, (name, load, bad, good)


def assert_bisected(name: str, g: dict[str, Any], trials: list[TrialResult],
                    max_pps: float) -> None:
    """Below the ceiling: both bounds are loads measured with final-length trials, not
    interpolated; the upper one failed the goal, the lower one met it, within the width."""
    assert not g["upper_is_max"] and not g["lower_is_min"], (name, g)
    assert MIN_PPS <= g["lower_pps"] < g["upper_pps"] <= max_pps, (name, g)
    assert g["width"] <= WIDTH + 1e-9, (name, g)
    if g["upper_is_testbed"]:
        # the upper bound is a load the generator could not offer: a trial there is marked
        # as the testbed's limit (short after its retries, never counted as SUT loss)
        at = [t for t in trials if t.target_pps == g["upper_pps"]]
        assert any("testbed_limited" in t.extra and t.generator_short for t in at), (name, g)
    else:
        assert_failed_at(name, g, trials, g["upper_pps"])
    assert_passed_at(name, g, trials, g["lower_pps"])


def test_ndr_within_a_loss_free_range(vrlab_env: VrlabEnv) -> None:
    """200 kpps is well within what native-routed forwards here, so the maximum normally passes;
    a stall on a busy host can still fail it, and then the search must bisect below it. Each
    outcome is checked: at the ceiling, the maximum itself met the goal on final-length trials
    and no load failed it (and NDR there means PDR there too); below it, the bounds are a
    measured failure and a measured pass. Neither goal may end at the floor: 20 kpps is
    forwarded without loss."""
    data, trials = run_ndr(vrlab_env, MAX_PPS)
    goals = data["goals"]
    for name, g in goals.items():
        assert not g["lower_is_min"], (name, g)
        if g["upper_is_max"]:
            assert g["lower_pps"] == g["upper_pps"] == MAX_PPS, (name, g)
            assert g["width"] == 0.0
            assert_passed_at(name, g, trials, MAX_PPS)
            assert_no_load_failed(name, g, trials)
        else:
            assert_bisected(name, g, trials, MAX_PPS)
    # a load with no loss meets 0.5% loss too, so NDR at the ceiling puts PDR there
    assert goals["PDR"]["upper_is_max"] or not goals["NDR"]["upper_is_max"], goals


def test_ndr_bisects_an_overloaded_range(vrlab_env: VrlabEnv) -> None:
    data, trials = run_ndr(vrlab_env, OVERLOAD_PPS)
    ndr = data["goals"]["NDR"]
    if ndr["upper_is_max"]:
        pytest.skip("the generator could not overload native-routed here: nothing to bisect")
    for name, g in data["goals"].items():
        # native-routed forwards 20 kpps without loss, and cannot forward 1.5 Mpps without loss
        assert_bisected(name, g, trials, OVERLOAD_PPS)


def test_ndr_without_calibration_or_max_exits_2(vrlab_env: VrlabEnv) -> None:
    r, created = vrlab_env.run_cli_sealed("ndr", "native-routed")
    assert r.returncode == 2, (r.stdout, r.stderr)
    err = " ".join(r.stderr.split())
    assert "no calibration" in err and "vrlab calibrate" in err and "--max-kpps" in err
    assert_nothing_built(vrlab_env, created)
    assert stored_runs(vrlab_env) == [], "no run may be stored for a refused search"


def test_ndr_with_min_above_max_exits_2(vrlab_env: VrlabEnv) -> None:
    r, created = vrlab_env.run_cli_sealed("ndr", "native-routed", "--max-kpps", "50",
                                          "--min-kpps", "60")
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert "--min-kpps" in r.stderr and "50 kpps" in r.stderr
    assert_nothing_built(vrlab_env, created)
    assert stored_runs(vrlab_env) == []


def test_repeated_searches_report_the_median_and_every_repeat(vrlab_env: VrlabEnv) -> None:
    """Three searches: three runs stored, the JSON's own figures are the median search's (by
    NDR lower bound), and every repeat is listed with its bounds."""
    r, left = vrlab_env.run_cli_sealed(
        "ndr", "native-routed", "--max-kpps", "100", "--min-kpps", "20", "--final-duration",
        "0.2", "--width", "0.2", "--repeats", "3", "--json", timeout=600)
    assert r.returncode == 0, r.stderr
    assert left == []
    data = json.loads(r.stdout)
    assert data["median_of"] == 3 and len(data["repeats"]) == 3
    lowers = sorted(rep["goals"]["NDR"]["lower_pps"] for rep in data["repeats"])
    assert data["goals"]["NDR"]["lower_pps"] == lowers[1]
    assert data["run_id"] in [rep["run_id"] for rep in data["repeats"]]
    with Store(vrlab_env.db) as st:
        assert sorted(run.id for run in st.runs(kind="ndr")) == \
            sorted(rep["run_id"] for rep in data["repeats"])
