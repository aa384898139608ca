"""`vrlab reproduce --testbed` over simulated hosts (vrlab.hosts.sim), each reached only over
SSH: a small selection of the paper's figures runs every series the testbed can build, records
the hosts with each run, calibrates over the file's calibration cable (tg and ts on two
machines), names what it cannot measure in the report with the reason, and leaves nothing on
any host; a host that cannot be reached stops it before anything is built.

Needs root and /usr/sbin/sshd (openssh-server)."""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING

import simlab
import yaml

from vrlab.errors import UsageError
from vrlab.hosts import sim
from vrlab.hosts.testbed import check_scenario
from vrlab.paper import reproduce
from vrlab.paper.figures import FIGURES

if TYPE_CHECKING:
    from conftest import VrlabEnv

pytestmark = simlab.NEEDS

#: Fig. 10 with userspace guests: native-routed and four mixes of the host with
#: userspace-forwarding guests, every one of which a testbed's SUT is built as
FIGURE = "fig10u"


lab = simlab.lab_fixture(sim.THREE)


def run_hosts(db: Path, run: int) -> list[tuple[str, str, str]]:
    conn = sqlite3.connect(db)
    try:
        return [tuple(r) for r in conn.execute(
            "SELECT role, host, hostname FROM run_hosts WHERE run_id = ? ORDER BY role",
            (run,))]
    finally:
        conn.close()


def unbuildable(figure: str) -> dict[str, str]:
    """The figure's series a testbed file's SUT is not built as, by label."""
    out = {}
    for key in FIGURES[figure].series:
        try:
            check_scenario(reproduce._load(key)[0])
        except UsageError:
            out[key.key] = key.label
    return out


def test_reproduce_across_three_hosts(lab: sim.SimLab, vrlab_env: VrlabEnv,
                                      tmp_path: Path) -> None:
    out = tmp_path / "out"
    r = vrlab_env.run_cli("reproduce", "--testbed", str(lab.testbed), "--only", FIGURE,
                          "--profile", "quick", "--out", str(out), timeout=400)
    assert r.returncode == 0, r.stdout + r.stderr
    text = (out / "report.md").read_text()
    data = json.loads((out / "runs.json").read_text())
    name = yaml.safe_load(lab.testbed.read_text())["name"]
    assert data["testbed"] == name
    assert f"reproduced across the hosts of testbed {name}" in text

    run = data["runs"]["native-routed"]
    assert run_hosts(vrlab_env.db, run) == [(role, role, os.uname().nodename)
                                           for role in ("sut", "tg", "ts")]
    row = next(line for line in text.splitlines() if line.startswith("| native-routed (run "))
    assert f"(run {run})" in row and "kpps" in row, row
    assert "sut on sut (" in text, "the header names the machine each role ran on"

    assert unbuildable(FIGURE) == {}, "a testbed file builds every series of the figure"
    assert data["not_measurable"] == {}
    assert set(data["runs"]) == {k.key for k in FIGURES[FIGURE].series}
    for key in FIGURES[FIGURE].series:
        assert f"| {key.label} | not measurable across hosts" not in text, key.label
    assert sorted(data["calibration"]) == ["1", "32", "8"], "over the calibration cable"
    assert all(r > 10_000 for r in data["calibration"].values()), data["calibration"]
    for cal in data["calibration_runs"]:
        assert run_hosts(vrlab_env.db, cal) == [(role, role, os.uname().nodename)
                                               for role in ("tg", "ts")]
    assert "- calibration (the cap of every search; on the quick profile the sweeps stop at " \
        "the first rate step at or past 1.2x its 1-flow rate, never past the profile's top " \
        "rate): run " \
        f"{data['calibration_runs'][0]}, tg→ts of testbed {name}" in text
    assert (out / f"{FIGURE}.png").is_file()
    assert lab.leftovers() == {}


def test_an_unreachable_host_stops_reproduce_before_anything_is_built(
        lab: sim.SimLab, vrlab_env: VrlabEnv, tmp_path: Path) -> None:
    data = yaml.safe_load(lab.testbed.read_text())
    data["hosts"]["ts"]["port"] = 2
    bad = tmp_path / "testbed.yaml"
    bad.write_text(yaml.safe_dump(data))
    r = vrlab_env.run_cli("reproduce", "--testbed", str(bad), "--only", "fig5",
                          "--out", str(tmp_path / "out"), timeout=60)
    said = r.stdout + r.stderr
    assert r.returncode == 3, said
    assert "host ts (root@" in said and "connection refused" in said, said
    assert not (tmp_path / "out").exists()
    assert lab.leftovers() == {}


def test_fig4_on_a_tester_host_runs_its_direct_link_there(vrlab_env: VrlabEnv,
                                                         tmp_path: Path) -> None:
    """Generator and sink on one machine: Fig. 4's tg→ts link is built on the tester (the
    calibration's link, by its own agent), and with no calibration of that testbed stored the
    report says so, never taking this machine's."""
    lab = sim.start(*sim.TESTER)
    try:
        out = tmp_path / "out"
        r = vrlab_env.run_cli("reproduce", "--testbed", str(lab.testbed), "--only", "fig4",
                              "--skip-calibration", "--out", str(out), timeout=170)
        assert r.returncode == 0, r.stdout + r.stderr
        text = (out / "report.md").read_text()
        data = json.loads((out / "runs.json").read_text())
        assert set(data["runs"]) == {k.key for k in FIGURES["fig4"].series}
        assert data["not_measurable"] == {} and data["calibration"] == {}
        for run in data["runs"].values():
            assert run_hosts(vrlab_env.db, run) == [("tg", "tester", os.uname().nodename),
                                                    ("ts", "tester", os.uname().nodename)]
        assert f"- calibration: none of testbed {data['testbed']} with IPv4 frames" in text
        assert "not measurable across hosts" not in text.split("## The paper's claims")[1] \
            .split("## Fig. 4")[1]
        assert lab.leftovers() == {}
    finally:
        lab.stop()
