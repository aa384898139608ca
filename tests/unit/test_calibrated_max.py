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
from vrlab.store.db import Store


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
