"""Setting a router's share in the shared engine, without root: the SUT host agent's ``share``
request checked before the engine's maps are touched, the agent's answer where it holds no
engine, the controller's check of that answer, and the one ``set_share`` both testbeds take
(its checks before either reaches an engine)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from vrlab import placement, spec
from vrlab.errors import VrlabError
from vrlab.hosts import spec as testbed_spec
from vrlab.hosts.errors import RemoteCommandFailed
from vrlab.hosts.hostagent import MAX_SHARE_PPS, HostAgent, share_request
from vrlab.hosts.testbed import HostsTestbed
from vrlab.plan import wiring
from vrlab.plan.model import Plan
from vrlab.testbed import Testbed, TrafficSettings


def test_a_share_request_names_the_router_and_the_share() -> None:
    assert share_request({"op": "share", "router": 0, "pps": 50_000}, 2) == (0, 50_000)
    assert share_request({"op": "share", "router": 1, "pps": None}, 2) == (1, None)
    assert share_request({"op": "share", "router": 1}, 2) == (1, None)
    assert share_request({"router": 0, "pps": 1}, 1) == (0, 1)
    assert share_request({"router": 0, "pps": MAX_SHARE_PPS}, 1) == (0, MAX_SHARE_PPS)


@pytest.mark.parametrize(("msg", "field"), [
    ({"router": 2, "pps": 1000}, "router 2"),
    ({"router": -1, "pps": 1000}, "router -1"),
    ({"router": "0", "pps": 1000}, "router '0'"),
    ({"router": True, "pps": 1000}, "router True"),
    ({"router": 0.0, "pps": 1000}, "router 0.0"),
    ({"pps": 1000}, "router None"),
    ({"router": 0, "pps": 0}, "pps 0"),
    ({"router": 0, "pps": -5}, "pps -5"),
    ({"router": 0, "pps": 50_000.0}, "pps 50000.0"),
    ({"router": 0, "pps": "50000"}, "pps '50000'"),
    ({"router": 0, "pps": False}, "pps False"),
    ({"router": 0, "pps": MAX_SHARE_PPS + 1}, f"pps {MAX_SHARE_PPS + 1}"),
])
def test_a_bad_share_request_is_refused_naming_the_field(msg: dict[str, Any],
                                                         field: str) -> None:
    with pytest.raises(VrlabError, match=r"^share: ") as e:
        share_request(msg, 2)
    assert field in str(e.value)


def test_a_share_before_any_platform_is_refused() -> None:
    with pytest.raises(VrlabError, match="no platform here"):
        share_request({"router": 0, "pps": 1000}, 0)
    agent = HostAgent("sut")
    with pytest.raises(VrlabError, match="no platform here"):
        agent.handle({"op": "share", "router": 0, "pps": 1000})


def test_an_agent_whose_routers_forward_in_guests_answers_that_no_engine_polices() -> None:
    """The platform built with guest forwarding: two routers and no engine."""
    agent = HostAgent("sut")
    agent.routers = 2
    assert agent.handle({"op": "share", "router": 1, "pps": 1000}) == \
        {"engine": False, "policed": False}
    with pytest.raises(VrlabError, match="router 2"):
        agent.handle({"op": "share", "router": 2, "pps": 1000})
    assert agent.close() == [] and agent.routers == 0


def shared_plan(rid: str = "abcd") -> Plan:
    return wiring.make_plan(spec.load("shared", {"traffic.routers": 2})[0], rid)


class Sut:
    """The SUT host's agent as the controller sees it: each request recorded, one answer."""

    def __init__(self, reply: dict[str, Any]) -> None:
        self.reply = reply
        self.asked: list[dict[str, Any]] = []

    def ask(self, msg: dict[str, Any], timeout: float = 60) -> dict[str, Any]:
        self.asked.append(msg)
        return {"ok": True, **self.reply}

    def failed(self, why: str) -> RemoteCommandFailed:
        return RemoteCommandFailed("sut", "root@192.0.2.2:22", f"sut agent: {why}")


def hosts_testbed(tmp_path: Path, reply: dict[str, Any]) -> tuple[HostsTestbed, Sut]:
    (tmp_path / "id").write_text("unused\n")
    p = tmp_path / "pair.yaml"
    p.write_text("name: pair\nhosts:\n"
                 "  tester: {address: 192.0.2.1, key: id, roles: [tester]}\n"
                 "  sut: {address: 192.0.2.2, key: id, roles: [sut]}\n"
                 "cables:\n  - {from: 'tester:eth1', to: 'sut:eth1'}\n"
                 "  - {from: 'sut:eth2', to: 'tester:eth2'}\n")
    file, _ = testbed_spec.load(p)
    tb = HostsTestbed(file, shared_plan, placement.choose(False), TrafficSettings(), "t")
    tb.plan = shared_plan()
    sut = Sut(reply)
    tb.agents = {"sut": sut}  # type: ignore[dict-item]
    return tb, sut


@pytest.mark.parametrize(("reply", "pps", "policed"), [
    ({"engine": True, "policed": True}, 50_000, True),
    ({"engine": True, "policed": False}, None, False),
    ({"engine": False, "policed": False}, 50_000, False),
])
def test_across_hosts_the_share_is_the_sut_agents_and_its_answer_is_taken(
        tmp_path: Path, reply: dict[str, Any], pps: int | None, policed: bool) -> None:
    tb, sut = hosts_testbed(tmp_path, reply)
    assert tb.set_share(0, pps) is policed
    assert sut.asked == [{"op": "share", "router": 0, "pps": pps}]


@pytest.mark.parametrize(("reply", "pps", "says"), [
    ({"engine": True, "policed": False}, 50_000, "yet the engine's maps hold none"),
    ({"engine": True, "policed": True}, None, "set to none, yet the engine's maps hold one"),
    ({"engine": False, "policed": True}, 50_000, "hold one"),
    ({"policed": True}, 50_000, "not whether an engine polices"),
    ({"engine": "yes", "policed": 1}, 50_000, "not whether an engine polices"),
])
def test_an_answer_that_does_not_match_the_share_asked_for_is_the_sut_hosts_error(
        tmp_path: Path, reply: dict[str, Any], pps: int | None, says: str) -> None:
    tb, _ = hosts_testbed(tmp_path, reply)
    with pytest.raises(RemoteCommandFailed) as e:
        tb.set_share(1, pps)
    assert says in str(e.value)


def test_a_share_is_checked_before_either_testbed_reaches_an_engine(tmp_path: Path) -> None:
    local = Testbed(shared_plan, placement.choose(False), TrafficSettings(), label="t")
    with pytest.raises(VrlabError, match="not up"):
        local.set_share(0, 1000)
    local.plan = shared_plan()
    assert local.set_share(0, 1000) is False  # no engine: guest forwarding polices nothing
    tb, sut = hosts_testbed(tmp_path, {"engine": True, "policed": True})
    for t in (local, tb):
        with pytest.raises(VrlabError, match="routers 0-1"):
            t.set_share(2, 1000)
        with pytest.raises(VrlabError, match="give 1 or more"):
            t.set_share(0, 0)
    assert sut.asked == []
    local.plan = wiring.make_plan(spec.load("native-routed")[0], "abcd")
    with pytest.raises(VrlabError, match="no shared platform"):
        local.set_share(0, 1000)


def test_a_testbed_of_machines_leaves_each_suts_receive_to_its_own_nic(tmp_path: Path) -> None:
    """The local testbed's cpumap steering is for a SUT whose ingress veth polls on the
    generator's CPU; a machine of its own has its own NIC's poll, so RPS is all it gets, and
    the placement the run records says so."""
    tb, _ = hosts_testbed(tmp_path, {})
    local = placement.choose(True, "generator", cpus=2, generator="xdp")
    assert local.sut_rx == "cpumap"
    across = HostsTestbed(tb.file, shared_plan, local, TrafficSettings(), "t")
    assert across.placement.sut_rx == "rps" and across.placement.generator == "xdp"
    assert "sut_rx" not in across.placement.as_record()
