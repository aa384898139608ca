"""The policy rules, routes of a table and settings a SUT host's agent adds for guests that
forward (vrlab.cabled, vrlab.hosts.hostagent), on real interfaces in a namespace of the test's
own: each recorded first and removed by teardown (a rule even after its interface is gone), a
machine-wide strict reverse-path filter made loose (and no other value touched) and written
back, and a rule or route of the user's refused and kept."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import state_dir_in

from vrlab import cabled, net, nsexec
from vrlab.errors import KernelError
from vrlab.hosts.hostagent import HostAgent
from vrlab.ledger import Ledger

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root to create namespaces"),
]

NS = f"vrlcrt{os.getpid() % 10000}"
ALL_RP = "/proc/sys/net/ipv4/conf/all/rp_filter"


@pytest.fixture
def machine(state_root: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A namespace with "eth1" (a cabled interface: vrlab did not make it) and "h1b" (a guest
    veth's host end), with a policy rule and a route in table 100 of the user's."""
    monkeypatch.setenv("VRLAB_STATE_DIR", str(state_dir_in(state_root, "cabled")))
    subprocess.run(["ip", "netns", "add", NS], check=True)
    try:
        for cmd in (["link", "add", "eth1", "type", "veth", "peer", "name", "eth2"],
                    ["link", "add", "h1b", "type", "veth", "peer", "name", "g1b"],
                    ["link", "set", "eth1", "up"], ["link", "set", "eth2", "up"],
                    ["addr", "add", "198.18.1.254/24", "dev", "eth1"],
                    ["-6", "addr", "add", "2001:2:0:1::fe/64", "dev", "eth1", "nodad"],
                    ["rule", "add", "iif", "eth2", "lookup", "100", "priority", "1001"],
                    ["route", "add", "203.0.113.0/24", "via", "198.18.1.9", "table", "100"]):
            subprocess.run(["ip", "-n", NS, *cmd], check=True)
        yield NS
    finally:
        subprocess.run(["ip", "netns", "del", NS], check=True)


def _state() -> str:
    out = ""
    for cmd in (["ip", "rule"], ["ip", "-6", "rule"], ["ip", "route", "show", "table", "100"],
                ["ip", "-6", "route", "show", "table", "100"]):
        out += subprocess.run(cmd, capture_output=True, text=True).stdout
    return out + f"all.rp_filter={Path(ALL_RP).read_text().strip()}\n"


def _add_then_lose_the_interface_then_undo() -> tuple[str, str, str, list[str]]:
    before = _state()
    led = Ledger.create("rules test")
    for family in (4, 6):
        cabled.add_rule(led, "h1b", 100, 1002, family)
    cabled.add_route(led, "198.19.0.0/16", "198.18.1.1", "eth1", 100)
    cabled.add_route(led, "2001:2:0:100::/56", "2001:2:0:1::1", "eth1", 100)
    during = _state()
    subprocess.run(["ip", "link", "del", "h1b"], check=True)  # the guest went first
    removed = net.teardown(led)
    return before, during, _state(), removed


def test_rules_and_table_routes_go_even_after_their_interface(machine: str) -> None:
    before, during, after, removed = nsexec.run_in(machine, _add_then_lose_the_interface_then_undo)
    assert "1002:\tfrom all iif h1b lookup 100" in during, during
    assert during.count("iif h1b lookup 100") == 2, "an IPv4 and an IPv6 rule"
    assert "198.19.0.0/16 via 198.18.1.1 dev eth1" in during
    assert "2001:2:0:100::/56 via 2001:2:0:1::1 dev eth1" in during
    assert after == before, "the user's rule and route in table 100 stay, ours go"
    assert sum("rule iif h1b table 100" in r for r in removed) == 2, removed


def _refused() -> tuple[str, list[str]]:
    led = Ledger.create("rules test")
    problems = []
    for fn, args in ((cabled.add_rule, ("h1b", 100, 1001, 4)),
                     (cabled.add_route, ("203.0.113.0/24", "198.18.1.5", "eth1", 100))):
        try:
            fn(led, *args)
        except KernelError as e:
            problems.append(str(e))
    net.teardown(led)
    return _state(), problems


def test_a_rule_or_table_route_of_the_users_is_refused_and_kept(machine: str) -> None:
    after, problems = nsexec.run_in(machine, _refused)
    assert len(problems) == 2, problems
    assert "policy rule at priority 1001 already" in problems[0]
    assert "routes 203.0.113.0/24 in table 100 already" in problems[1]
    assert "1001:\tfrom all iif eth2 lookup 100" in after
    assert "203.0.113.0/24 via 198.18.1.9 dev eth1" in after


def _cap(start: str) -> tuple[str, str]:
    Path(ALL_RP).write_text(start)
    agent = HostAgent("sut")
    agent.handle({"op": "configure", "swaps": [(ALL_RP, "1", "2")]})
    during = Path(ALL_RP).read_text().strip()
    agent.close()
    return during, Path(ALL_RP).read_text().strip()


@pytest.mark.parametrize(("start", "during"), [("1", "2"), ("2", "2"), ("0", "0")])
def test_a_strict_machine_wide_filter_is_made_loose_while_the_run_lasts(
        machine: str, start: str, during: str) -> None:
    assert nsexec.run_in(machine, _cap, start) == (during, start)
