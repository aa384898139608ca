"""What a testbed file's SUT host is asked to run beside its configuration (pure data, no host):
the guests' userspace engines with the MAC addresses the cable ends really have, the shared
userspace engine refused, and the engine's program names as the kernel keeps them."""

from __future__ import annotations

import pytest

from vrlab import spec
from vrlab.engines.ebpf import detach, layout
from vrlab.errors import UsageError
from vrlab.hosts.cabling import Cabling
from vrlab.hosts.engines import engine_parts
from vrlab.plan import wiring

MACS = {"tg1": "02:00:00:00:00:01", "in1": "02:00:00:00:00:02",
        "out1": "02:00:00:00:00:03", "ts1": "02:00:00:00:00:04"}


def parts(name: str, **over: object) -> tuple[list[dict[str, object]], Cabling]:
    sc, _ = spec.load(name, {"sut.guest_kind": "userspace", "sut.guests": 2, **over})
    p = wiring.make_plan(sc, "eg01")
    c = Cabling.of(p, "tg1", "in1", "out1", "ts1", MACS)
    return engine_parts(p, c, 3), c


def test_a_bridged_guests_engine_sends_to_the_sinks_real_mac() -> None:
    got, _ = parts("guest-bridged")
    assert [(p["ns"], p["what"]) for p in got] == [("vrleg01-g1", "engine of g1"),
                                                 ("vrleg01-g2", "engine of g2")]
    for p in got:
        cfg = p["config"]
        assert isinstance(cfg, dict) and cfg["cpu"] == 3
        (router,) = cfg["routers"]
        assert [r["via_mac"] for r in router["routes"]] == [MACS["ts1"]], router


def test_a_routed_guests_engine_keeps_the_plans_own_macs() -> None:
    """Its next hop is the host end of its own veth, which keeps the plan's MAC address."""
    got, _ = parts("guest-routed", **{"traffic.ip": 46})
    for p in got:
        cfg = p["config"]
        assert isinstance(cfg, dict)
        (router,) = cfg["routers"]
        vias = {r["via_mac"] for r in router["routes"]}
        assert len(vias) == 1 and not vias & set(MACS.values()), vias
        assert len(router["routes"]) == 2  # both families


def test_the_shared_userspace_engine_is_refused_with_the_reason() -> None:
    sc, _ = spec.load("shared", {"sut.engine": "userspace"})
    p = wiring.make_plan(sc, "eg02")
    c = Cabling.of(p, "tg1", "in1", "out1", "ts1", MACS)
    with pytest.raises(UsageError, match="steal table"):
        engine_parts(p, c, None)


def test_the_engines_program_names_are_those_the_kernel_keeps() -> None:
    assert {layout.XDP_PROGRAM[:15], layout.TC_PROGRAM[:15]} == detach.NAMES
    assert all(len(n) <= 15 for n in detach.NAMES)
