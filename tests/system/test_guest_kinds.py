"""Guest kinds and the shared userspace engine inside the paper's testbed: the
scenarios' frames all arrive, IPv4, IPv6 or the dual-stack mix, each router's share was
forwarded by the userspace engine (the kernel's forwarding is off where the engine runs), and a
stored run says which kind and IP version it used."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import pytest

from vrlab import placement, spec, testbed
from vrlab.method import placed
from vrlab.plan import naming, wiring
from vrlab.store.db import Store
from vrlab.testbed import TrafficSettings

if TYPE_CHECKING:
    from conftest import VrlabEnv

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root to create namespaces"),
]

#: the userspace forwarders' trials: 4,000 frames/s for 0.4 s, 1,600 frames due
TRIAL_PPS = 4000
#: most of those: a busy VM may stall the generator out of a few (their shortfall is the
#: generator's), and every frame it sent must arrive
MOST_SENT = 1000


def ip_forward(ns: str, key: str = "ipv4/ip_forward") -> str:
    from vrlab import nsexec
    return nsexec.run_in(ns, nsexec.read_file, f"/proc/sys/net/{key}").strip()


def run_trial(name: str, overrides: dict[str, object], pps: float) -> tuple[
        object, dict[str, int], list[str], list[str]]:
    sc, _ = spec.load(name, overrides)
    pl = placement.for_userspace(placement.choose(True))
    with testbed.Testbed(lambda rid: wiring.make_plan(sc, rid), pl,
                         TrafficSettings(flows=2 * sc.router_count), label="test-kinds") as tb:
        assert tb.plan is not None
        assert len(tb.userspace_engines) == len(tb.plan.userspace_engines) > 0
        where = [tb.plan.sut_ns if e == "shared" else naming.ns_name(tb.plan.run_id, e)
                 for e in tb.plan.userspace_engines]
        six = tb.plan.traffic.ip != 4  # then IPv6 forwarding too: "00" where both are off
        off = [ip_forward(ns) + (ip_forward(ns, "ipv6/conf/all/forwarding") if six else "")
               for ns in where]
        before = [e.counters() for e in tb.userspace_engines]
        res = tb.trial(pps, 0.4, warmup_s=0)
        by_router: dict[str, int] = {}
        for e, b in zip(tb.userspace_engines, before, strict=True):
            for r, n in e.counters().minus(b).forwarded_by_router.items():
                by_router[r] = by_router.get(r, 0) + n
    return res, by_router, off, where


@pytest.mark.parametrize("name", ["guest-bridged", "guest-routed"])
def test_userspace_guests_forward_every_frame(name: str) -> None:
    res, by_router, off, _ = run_trial(name, {"sut.guests": 2, "sut.guest_kind": "userspace"},
                                       TRIAL_PPS)
    assert off == ["0", "0"], "the guests' kernels must not forward"
    assert res.sent >= MOST_SENT and res.received == res.sent  # type: ignore[attr-defined]
    assert by_router == res.received_by_router  # type: ignore[attr-defined]


@pytest.mark.parametrize(("name", "overrides"), [
    ("guest-routed", {"sut.guests": 2, "sut.guest_kind": "userspace"}),
    ("shared", {"traffic.routers": 4, "sut.engine": "userspace"}),
])
@pytest.mark.parametrize("ip", [6, 46])
def test_userspace_engines_forward_every_ipv6_frame(name: str, overrides: dict[str, object],
                                                    ip: int) -> None:
    res, by_router, off, _ = run_trial(name, {**overrides, "traffic.ip": ip}, TRIAL_PPS)
    assert set(off) == {"00"}, "the kernels where engines run must forward neither family"
    assert res.sent >= MOST_SENT and res.received == res.sent  # type: ignore[attr-defined]
    assert by_router == res.received_by_router  # type: ignore[attr-defined]


def test_shared_userspace_engine_forwards_every_router() -> None:
    res, by_router, off, where = run_trial("shared", {"traffic.routers": 4,
                                                      "sut.engine": "userspace"}, 8000)
    assert off == ["0"] and where[0].endswith("-sut")
    assert set(by_router) == {"r0", "r1", "r2", "r3"}
    assert res.received == res.sent  # type: ignore[attr-defined]
    assert by_router == res.received_by_router  # type: ignore[attr-defined]


def test_a_sweep_records_the_guest_kind_and_the_engine_cpu(vrlab_env: VrlabEnv) -> None:
    r = vrlab_env.run_cli("sweep", "guest-routed", "--guests", "1", "--guest-kind", "userspace",
                          "--rates", "20:40:20", "--duration", "0.3", "--no-plot",
                          "--profile", "quick", timeout=120)
    assert r.returncode == 0, r.stderr
    st = Store(vrlab_env.db)
    run = st.runs(kind="sweep")[-1]
    assert "guest_kind: userspace" in run.spec_yaml
    assert run.placement.get("engine_cpu") == "1" and run.placement.get("sut_cpu") == "0"
    pts = st.sweep_points(run.id)
    assert [round(p.target_pps) for p in pts] == [20_000, 40_000]
    assert all(p.mean_pps > 0.95 * p.target_pps for p in pts)


def test_placed_gives_userspace_engines_the_suts_cpu() -> None:
    from vrlab.method import RunContext
    from vrlab.profiles import get

    sc, _ = spec.load("guest-bridged", {"sut.guests": 1, "sut.guest_kind": "userspace"})
    ctx = RunContext(store=None, placement=placement.choose(True, cpus=2),  # type: ignore
                     profile=get("quick"))
    pl = placed(ctx, sc)[0].placement
    assert (pl.generator_cpu, pl.sut_cpu, pl.engine_cpu) == (0, 0, 1)
    netns, _ = spec.load("guest-bridged", {"sut.guests": 1})
    assert placed(ctx, netns)[0].placement.engine_cpu is None


def test_a_sweep_of_userspace_guests_with_ipv6_frames_loses_nothing(vrlab_env: VrlabEnv) -> None:
    r = vrlab_env.run_cli("sweep", "guest-routed", "--guests", "2", "--guest-kind", "userspace",
                          "--ip", "6", "--rates", "10:20:10", "--duration", "0.3", "--no-plot",
                          "--profile", "quick", timeout=180)
    assert r.returncode == 0, r.stderr
    st = Store(vrlab_env.db)
    run = st.runs(kind="sweep")[-1]
    assert run.ip == 6 and "guest_kind: userspace" in run.spec_yaml
    pts = st.sweep_points(run.id)
    assert [round(p.target_pps) for p in pts] == [10_000, 20_000]
    for p in pts:  # (whether the generator reached the rate is its own business)
        assert p.mean_loss_ratio == 0 and p.mean_pps > 0, p
        assert set(p.router_mean_pps) == {"r0", "r1"} and min(p.router_mean_pps.values()) > 0
