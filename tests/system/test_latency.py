"""One-way latency for real: the XDP generator stamps every frame, the sink's probe times every
frame the sink counts, the store keeps each trial's histograms, and a native router loaded past
what it forwards shows far more latency than at a tenth of it.

Needs root (namespaces, BPF), clang and libbpf-dev. Loads are set from the router's maximum
forwarding rate measured in the same test (the generator flat out), so the overload is past the
NDR whatever this machine forwards."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from vrlab import histogram, latency, placement, profiles, spec
from vrlab.method import RunContext
from vrlab.plan import wiring
from vrlab.results import LATENCY_FLOOR
from vrlab.store.db import Store
from vrlab.testbed import LATENCY_TIMED, Testbed, TrafficSettings
from vrlab.traffic.xdp.live import stamp_every

if TYPE_CHECKING:
    from conftest import VrlabEnv

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root to create namespaces"),
    pytest.mark.skipif(shutil.which("clang") is None,
                       reason="clang is not installed (apt-get install clang libbpf-dev)"),
]


def xdp_placement(sink_with: placement.SinkWith = "generator") -> placement.Placement:
    return placement.choose(True, sink_with, generator="xdp")


def test_every_counted_frame_is_timed_on_the_direct_link() -> None:
    """At 20 kpps the generator stamps every frame (the probe samples only above 50 kpps)."""
    with Testbed(wiring.calibration_plan, xdp_placement(), TrafficSettings(flows=4),
                 label="test-latency") as tb:
        assert tb.latency_attach in ("tcx", "tc")
        r = tb.trial(20_000, 0.5)
    assert r.loss_ratio == 0
    assert r.extra[LATENCY_TIMED] == r.received
    assert sum(s.count for s in r.latency.values()) == r.received
    for s in r.latency.values():
        assert 0 < s.p50_ns <= s.p90_ns <= s.p99_ns <= s.p999_ns <= s.max_ns
        assert s.max_ns < 1_000_000_000, "a stamp from another clock would be seconds off"
        assert histogram.decode(s.hist).get_total_count() == s.count


def test_above_the_sampling_rate_an_even_sample_is_timed() -> None:
    with Testbed(wiring.calibration_plan, xdp_placement(), TrafficSettings(flows=4),
                 label="test-latency") as tb:
        r = tb.trial(200_000, 0.5)
    assert r.loss_ratio == 0
    every = stamp_every(200_000)
    assert every == 4
    assert abs(r.extra[LATENCY_TIMED] - r.received / every) <= 4 * every
    counts = [s.count for s in r.latency.values()]
    assert len(counts) == 1  # the direct link is one router; its four flows sampled alike


def test_untimed_when_latency_is_off() -> None:
    with Testbed(wiring.calibration_plan, xdp_placement(), TrafficSettings(latency=False),
                 label="test-latency") as tb:
        assert tb.latency_attach == ""
        r = tb.trial(20_000, 0.3)
    assert r.latency == {} and LATENCY_TIMED not in r.extra
    assert r.loss_ratio == 0


def test_latency_rises_past_the_ndr(tmp_path: Path) -> None:
    """The sink's receive work shares the SUT's CPU here, so the generator flat out (with a
    CPU to itself) is sure to overload the router; with the sink on the generator's CPU this
    machine's native router forwards all the generator can offer."""
    sc, text = spec.load("native-routed")
    pl = xdp_placement("sut")
    with Testbed(lambda rid: wiring.make_plan(sc, rid), pl, TrafficSettings(),
                 label="test-latency") as tb:
        flat_out = tb.trial(3_000_000, 0.5, warmup_s=0.1)
    mfr = flat_out.received_pps  # the router's capacity: its NDR is at most this
    assert flat_out.loss_ratio > 0, "the generator flat out did not overload the router"
    loads = [latency.Load("10% MFR", 0.1 * mfr), latency.Load("150% MFR", 1.5 * mfr)]
    with Store(tmp_path / "lat.sqlite") as st:
        ctx = RunContext(st, pl, profiles.get("quick"))
        out = latency.run_latency(ctx, sc, text, mfr, mfr, "test", loads=loads, trial_s=0.5,
                                  repeats=2, floor=False)
        stored = st.trials(out.run_id)
    light, heavy = out.points
    assert heavy.loss_ratio > 0
    assert light.sut.count > 0 and heavy.sut.count > 0
    # the light load's frames wait behind the rest of their burst (a quarter millisecond of
    # frames); past the NDR they wait behind a full backlog
    assert heavy.sut.p99_ns > 3 * light.sut.p99_ns, (light.sut, heavy.sut)
    assert heavy.sut.p50_ns > light.sut.p50_ns, (light.sut, heavy.sut)
    assert len(stored) == 4 and all(t.result.latency for t in stored)
    assert sum(s.count for t in stored[1::2] for s in t.result.latency.values()) == \
        heavy.sut.count


def test_the_command_prints_every_load_beside_its_floor(vrlab_env: VrlabEnv) -> None:
    r, left = vrlab_env.run_cli_sealed(
        "latency", "native-routed", "--ndr-kpps", "40", "--pdr-kpps", "50", "--duration",
        "0.2", "--generator", "xdp", "--json", timeout=300)
    assert r.returncode == 0, r.stderr
    assert left == [], f"the run left namespaces behind: {left}"
    data = json.loads(r.stdout)
    assert [ld["load"] for ld in data["loads"]] == ["idle", "10% PDR", "50% PDR", "90% PDR",
                                                    "NDR"]
    assert data["throughput_from"] == "given"
    for ld in data["loads"]:
        assert ld["sut"]["count"] > 0 and ld["floor"]["count"] > 0
        assert ld["sut"]["p50_ns"] <= ld["sut"]["p99_ns"] <= ld["sut"]["max_ns"]
    with Store(vrlab_env.db) as st:
        trials = st.trials(data["run_id"])
    assert len(trials) == 10 and all(t.result.latency for t in trials)


@pytest.mark.parametrize(("ip", "size"), [("4", 60), ("6", 76), ("46", 76)])
def test_the_attack_times_router_b_beside_a_share_and_under_a_flood(
        vrlab_env: VrlabEnv, ip: str, size: int) -> None:
    r, left = vrlab_env.run_cli_sealed(
        "latency", "shared", "--attack", "--engine", "ebpf", "--ip", ip, "--duration", "0.3",
        "--repeats", "2", "--generator", "xdp", "--json", timeout=300)
    assert r.returncode == 0, r.stderr
    assert left == [], f"the run left namespaces behind: {left}"
    (data,) = json.loads(r.stdout)["attack"]
    assert data["engine"] == "ebpf" and data["rounds"] == 2
    assert (data["ip"], data["frame_size"]) == (int(ip), size)
    assert data["a_flood_pps"] == 3 * data["a_share_pps"]
    for cond in ("b_beside_share", "b_under_flood"):
        b = data[cond]
        assert b["count"] > 1_000, "B's frames were not timed"
        assert 0 < b["p50_ns"] <= b["p99_ns"] <= b["p999_ns"] <= b["max_ns"]
    # B's share of the stamped frames halves when A sends three times as much
    assert data["b_under_flood"]["count"] < data["b_beside_share"]["count"]
    assert data["verdict"] in ("meets", "misses", "inconclusive") and data["why"]
    assert len(data["p99_ratio_rounds"]) <= 2
    with Store(vrlab_env.db) as st:
        trials = st.trials(data["run_id"])
        run = st.run(data["run_id"])
    assert run.kind == "latency-attack" and (run.ip, run.frame_size) == (int(ip), size)
    # 2 rounds of each condition through the router, then of the testbed alone at their loads
    sut = [t for t in trials if not t.result.extra.get(LATENCY_FLOOR)]
    alone = [t for t in trials if t.result.extra.get(LATENCY_FLOOR)]
    assert len(sut) == len(alone) == 4
    assert all("r1" in t.result.latency for t in sut)
    assert sorted(round(t.result.target_pps) for t in alone) == \
        [100_000, 100_000, 200_000, 200_000]  # A's share or flood, plus B's 50 kpps
    floor = data["floor"]
    for load in ("at_share_load", "at_flood_load"):
        assert floor[load]["count"] > 1_000 and floor[load]["p99_ns"] > 0
    assert floor["p99_ratio"] > 0 and data["burst_frames"] == run.params["burst_frames"] > 0

