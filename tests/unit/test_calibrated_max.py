"""Which stored calibration a run takes: this machine's, or a testbed file's tester's, never one
for the other (both are `calibrate` runs in one database)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from vrlab import method, placement, profiles
from vrlab.method import RunContext
from vrlab.store.db import Store


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store(tmp_path / "results.sqlite") as s:
        yield s


def calibration(store: Store, where: placement.Placement, pps: float, testbed: str) -> None:
    """A finished calibration of one flow whose search found ``pps``, on ``testbed``."""
    ctx = RunContext(store, where, profiles.get("quick"), testbed_name=testbed)
    with method.stored_run(ctx, "calibrate", "calibration", "", {"flows": [1]}) as run_id:
        store.add_placement(run_id, sink="tc-bpf", **({"testbed": testbed} if testbed else {}))
        sid = store.start_search(run_id, "NDR", 0.0)
        store.finish_search(sid, lower_pps=pps, upper_pps=pps * 1.01, conditional_pps=pps,
                            width=0.01, trials_used=5, time_spent_s=3.0,
                            result={"flows": 1, "lower_is_min": False})


def test_a_testbeds_calibration_and_this_machines_are_told_apart(store: Store) -> None:
    where = placement.choose(True, "generator", generator="xdp")
    calibration(store, where, 900_000.0, "")
    calibration(store, where, 400_000.0, "lab")
    assert method.calibrated_max(store, 1, where) == 900_000.0, "the newest is the testbed's"
    assert method.calibrated_max(store, 1, where, "lab") == 400_000.0
    assert method.calibrated_max(store, 1, where, "other-lab") is None
    assert method.calibrated_max(store, 8, where, "lab") is None
