"""Which stored calibration a run takes: this machine's, or a testbed file's tester's, never one
for the other (both are `calibrate` runs in one database); and one of its own frames' IP
version, never another's, a calibration stored before runs recorded their IP version counting
as IPv4."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from old_schema import downgrade

from vrlab import method, placement, profiles
from vrlab.framesize import min_frame
from vrlab.method import RunContext
from vrlab.results import TrialResult
from vrlab.store.db import Store
from vrlab.testbed import TrafficSettings


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store(tmp_path / "results.sqlite") as s:
        yield s


def calibration(store: Store, where: placement.Placement, pps: float, testbed: str = "",
                ip: int = 4) -> int:
    """A finished calibration of one flow whose search found ``pps``, on ``testbed``, with
    frames of IP version ``ip``; its run id."""
    ctx = RunContext(store, where, profiles.get("quick"), testbed_name=testbed)
    with method.stored_run(ctx, "calibrate", "calibration", "", {"flows": [1]}, ip,
                           min_frame(ip)) as run_id:
        store.add_placement(run_id, sink="tc-bpf", **({"testbed": testbed} if testbed else {}))
        sid = store.start_search(run_id, "NDR", 0.0)
        store.finish_search(sid, lower_pps=pps, upper_pps=pps * 1.01, conditional_pps=pps,
                            width=0.01, trials_used=5, time_spent_s=3.0,
                            result={"flows": 1, "lower_is_min": False})
    return run_id


def test_a_testbeds_calibration_and_this_machines_are_told_apart(store: Store) -> None:
    where = placement.choose(True, "generator", generator="xdp")
    calibration(store, where, 900_000.0, "")
    calibration(store, where, 400_000.0, "lab")
    assert method.calibrated_max(store, 1, where) == 900_000.0, "the newest is the testbed's"
    assert method.calibrated_max(store, 1, where, "lab") == 400_000.0
    assert method.calibrated_max(store, 1, where, "other-lab") is None
    assert method.calibrated_max(store, 8, where, "lab") is None


def test_a_run_takes_the_calibration_of_its_own_ip_version_only(store: Store) -> None:
    where = placement.choose(True, "generator", generator="xdp")
    four = calibration(store, where, 900_000.0)
    assert method.calibrated_max(store, 1, where, ip=6) is None, "IPv4's never caps IPv6"
    assert method.calibrated_max(store, 1, where, ip=46) is None, "nor the mix"
    six = calibration(store, where, 700_000.0, ip=6)
    mix = calibration(store, where, 800_000.0, ip=46)
    assert method.calibration_of(store, 1, where) == (four, 900_000.0), \
        "the newest calibrations are IPv6's: an IPv4 run still takes IPv4's"
    assert method.calibration_of(store, 1, where, ip=6) == (six, 700_000.0)
    assert method.calibration_of(store, 1, where, ip=46) == (mix, 800_000.0)
    assert store.run(six).ip == 6 and store.run(six).frame_size == 74
    assert method.calibrated_max(store, 1, where, "lab", ip=6) is None


def test_ipv6_calibrations_alone_never_cap_an_ipv4_run(store: Store) -> None:
    where = placement.choose(True, "generator", generator="xdp")
    calibration(store, where, 700_000.0, ip=6)
    calibration(store, where, 400_000.0, "lab", ip=6)
    assert method.calibrated_max(store, 1, where) is None
    assert method.calibrated_max(store, 1, where, "lab") is None
    assert method.calibrated_max(store, 1, where, "lab", ip=6) == 400_000.0


def test_a_calibration_stored_before_runs_recorded_their_ip_counts_as_ipv4(
        tmp_path: Path) -> None:
    where = placement.choose(True, "generator", generator="xdp")
    path = tmp_path / "old.sqlite"
    with Store(path) as s:
        calibration(s, where, 650_000.0)
    downgrade(path, 2)  # a file from before runs had an ip column
    with Store(path) as s:
        (run,) = s.runs(kind="calibrate")
        assert run.ip == 4 and run.frame_size is None
        assert method.calibrated_max(s, 1, where) == 650_000.0
        assert method.calibrated_max(s, 1, where, ip=6) is None


def test_a_calibration_caps_only_runs_whose_sut_receive_is_steered_alike(store: Store) -> None:
    """ts's port is received as the SUT's ingress is: a link calibrated with RPS alone never
    caps a run whose SUT's receive goes through a cpumap, nor the other way round."""
    steered = placement.choose(True, "generator", generator="xdp")
    rps = replace(steered, sut_rx="rps")
    calibration(store, rps, 1_000_000.0)
    assert method.calibrated_max(store, 1, steered) is None
    assert method.calibrated_max(store, 1, rps) == 1_000_000.0
    calibration(store, steered, 1_500_000.0)
    assert method.calibrated_max(store, 1, steered) == 1_500_000.0
    assert method.calibrated_max(store, 1, rps) == 1_000_000.0


# ------------------------------------------------------------- a flow count far below the rest


class Link:
    """A stand-in tg→ts link that carries everything up to its limit and loses the rest: each
    testbed built for a flow count takes the next limit of that flow count's list (the host's
    speed moving between two searches of one flow count)."""

    def __init__(self, limits: dict[int, list[float]]) -> None:
        self.limits = limits
        self.built: list[int] = []

    def direct(self, where: placement.Placement, traffic: TrafficSettings, label: str,
               ip: int = 4) -> Link.Testbed:
        self.built.append(traffic.flows)
        return Link.Testbed(self.limits[traffic.flows].pop(0))

    class Testbed:
        sink_kind = "stand-in"

        def __init__(self, limit: float) -> None:
            self.limit = limit

        def __enter__(self) -> Link.Testbed:
            return self

        def __exit__(self, *exc: object) -> None:
            pass

        def hosts(self) -> list[dict[str, str]]:
            return []

        def trial(self, rate: float, duration: float, **kw: float) -> TrialResult:
            got = round(min(rate, self.limit) * duration)
            return TrialResult(rate, duration, round(rate * duration), got, {"r0": got}, rate)


def calibrate(store: Store, link: Link) -> tuple[int, dict[int, float]]:
    ctx = RunContext(store, placement.choose(False), profiles.get("quick"),
                     direct=link.direct)  # type: ignore[arg-type]
    return method.calibrate(ctx, (1, 8, 32))


def test_a_flow_count_far_below_the_others_is_searched_again_and_its_higher_search_caps(
        store: Store) -> None:
    """The host slowed down during the 1-flow search only (as main job R's calibration did,
    877 kpps beside 1611): that flow count is searched once more, both searches are stored,
    and the higher one caps every later run."""
    link = Link({1: [877e3, 1600e3], 8: [1611e3], 32: [1614e3]})
    run_id, found = calibrate(store, link)
    assert link.built == [1, 8, 32, 1], "only the flow count far below the rest is searched again"
    each = method.calibration_searches(store, run_id)
    assert [round(x, -4) for x in each[1]] == [880e3, 1600e3], each
    assert found[1] == max(each[1]) > 1.5e6
    assert method.calibrated_max(store, 1) == found[1], "the cap is the higher search"
    assert len(each[8]) == len(each[32]) == 1


def test_a_flow_count_that_is_slower_twice_keeps_its_own_figure(store: Store) -> None:
    """A link whose one flow really is slower (a NIC putting it on one queue) gives the same
    figure twice, and that figure, not another flow count's, caps 1-flow runs."""
    link = Link({1: [600e3, 610e3], 8: [1600e3], 32: [1600e3]})
    _, found = calibrate(store, link)
    assert link.built == [1, 8, 32, 1]
    assert 590e3 < found[1] < 620e3


def test_flow_counts_that_agree_are_searched_once(store: Store) -> None:
    link = Link({1: [1589e3], 8: [1616e3], 32: [1600e3]})
    _, found = calibrate(store, link)
    assert link.built == [1, 8, 32]
    assert set(found) == {1, 8, 32}


@pytest.mark.parametrize(("found", "again"), [
    ({1: 877e3, 8: 1611e3, 32: 1614e3}, [1]),
    ({1: 1589e3, 8: 1616e3, 32: 1600e3}, []),
    ({1: 1600e3, 8: 1300e3, 32: 1000e3}, [8, 32]),
    ({1: 1000e3}, []),
    ({}, []),
])
def test_which_flow_counts_are_searched_again(found: dict[int, float], again: list[int]) -> None:
    assert method.to_search_again(found) == again


@pytest.mark.parametrize(("sent", "received", "counts"), [
    (999_000, 999_000, (999_000, 999_000)),  # 0.1% skipped by the pacing: the load offered
    (999_000, 998_000, (999_000, 998_000)),  # ... and a loss is a loss
    (900_000, 900_000, (1_000_000, 900_000)),  # 10% short: the rest is the testbed's loss
    (900_000, 1_100_000, (1_000_000, 1_000_000)),  # never more received than offered
])
def test_a_testbed_trial_counts_only_a_real_shortfall_as_loss(
        sent: int, received: int, counts: tuple[int, int]) -> None:
    """Measuring tg→ts itself, frames the generator skipped within the tolerance a SUT's
    trial is held to do not fail a zero-loss load; beyond it they are the testbed's loss.
    (Counted strictly, a 0.1% skip failed every trial of a tg→ts search at any rate.)"""
    r = TrialResult(1_000_000.0, 1.0, sent, received, {"r0": received}, float(sent))
    assert r.testbed_counts() == counts
