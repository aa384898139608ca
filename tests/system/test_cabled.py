"""What vrlab adds to an interface it did not create (vrlab.cabled), on a real veth in a
namespace of the test's own: every addition recorded first and removed by teardown, every
setting written back, and what was there before left alone."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import state_dir_in

from vrlab import cabled, net, nsexec
from vrlab.errors import KernelError
from vrlab.ledger import Ledger

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root to create namespaces"),
]

NS = f"vrlcbt{os.getpid() % 10000}"


@pytest.fixture
def machine(state_root: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A namespace with an interface "eth1" vrlab did not make, already carrying an address
    and a route of the user's."""
    monkeypatch.setenv("VRLAB_STATE_DIR", str(state_dir_in(state_root, "cabled")))
    subprocess.run(["ip", "netns", "add", NS], check=True)
    try:
        for cmd in (["link", "add", "eth1", "type", "veth", "peer", "name", "eth2"],
                    ["link", "set", "eth1", "up"], ["link", "set", "eth2", "up"],
                    ["addr", "add", "192.0.2.1/24", "dev", "eth1"],
                    ["route", "add", "203.0.113.0/24", "via", "192.0.2.9"]):
            subprocess.run(["ip", "-n", NS, *cmd], check=True)
        yield NS
    finally:
        subprocess.run(["ip", "netns", "del", NS], check=True)


def _state() -> str:
    out = subprocess.run(["ip", "-o", "-4", "addr", "show", "dev", "eth1"], capture_output=True,
                         text=True, check=True).stdout
    out += subprocess.run(["ip", "route"], capture_output=True, text=True, check=True).stdout
    out += subprocess.run(["ip", "neigh", "show", "dev", "eth1"], capture_output=True,
                          text=True, check=True).stdout
    out += next(ln for ln in subprocess.run(["ethtool", "-k", "eth1"], capture_output=True,
                                            text=True, check=True).stdout.splitlines()
                if ln.startswith("generic-receive-offload")) + "\n"
    for f in ("/proc/sys/net/ipv4/conf/eth1/forwarding",
              "/sys/class/net/eth1/queues/rx-0/rps_cpus"):
        out += f"{f}={Path(f).read_text().strip()}\n"
    return out


def _add_and_undo() -> tuple[str, str, str, list[str]]:
    before = _state()
    led = Ledger.create("cabled test")
    cabled.set_file(led, "/proc/sys/net/ipv4/conf/eth1/forwarding", "1")
    cabled.set_file(led, "/sys/class/net/eth1/queues/rx-0/rps_cpus", "1")
    cabled.gro_on(led, "eth1")
    cabled.add_address(led, "eth1", "198.18.0.254/24")
    cabled.add_neighbour(led, "eth1", "198.18.0.1", "02:00:00:00:00:01")
    cabled.add_route(led, "198.19.0.0/24", "198.18.0.1", "eth1")
    during = _state()
    removed = net.teardown(led)
    return before, during, _state(), removed


def _refused() -> tuple[str, list[str]]:
    led = Ledger.create("cabled test")
    problems = []
    for fn, args in ((cabled.add_address, ("eth1", "192.0.2.1/24")),
                     (cabled.add_route, ("203.0.113.0/24", "192.0.2.5", "eth1"))):
        try:
            fn(led, *args)
        except KernelError as e:
            problems.append(str(e))
    net.teardown(led)
    return _state(), problems


def test_additions_go_and_settings_come_back(machine: str) -> None:
    before, during, after, removed = nsexec.run_in(machine, _add_and_undo, with_sysfs=True)
    assert "198.18.0.254/24" in during and "198.19.0.0/24 via 198.18.0.1" in during
    assert "198.18.0.1 lladdr 02:00:00:00:00:01 PERMANENT" in during
    assert "forwarding=1" in during and "rps_cpus=1" in during
    assert "generic-receive-offload: on" in during
    assert "generic-receive-offload: off" in before
    assert after == before, "the interface is as it was, the user's address and route too"
    assert any("address 198.18.0.254/24" in r for r in removed)


def test_what_was_there_already_is_refused_and_kept(machine: str) -> None:
    after, problems = nsexec.run_in(machine, _refused, with_sysfs=True)
    assert len(problems) == 2
    assert "has the address 192.0.2.1 already" in problems[0]
    assert "routes 203.0.113.0/24 already" in problems[1]
    assert "192.0.2.1/24" in after and "203.0.113.0/24 via 192.0.2.9" in after


def _tables() -> str:
    return subprocess.run(["nft", "list", "tables"], capture_output=True, text=True,
                          check=True).stdout


def _steal_table_undone() -> tuple[str, str, str, list[str], list[str]]:
    """An engine's steal table on eth1, recorded first, left as a kill -9 leaves it, then
    undone; a table of the same kind the user made (a name without vrlab's prefix) stays;
    recording a name the machine has already, or one without the prefix, is refused."""
    from vrlab.engines.userspace.rings import StealTable

    subprocess.run(["nft", "add", "table", "netdev", "users_own"], check=True)
    before = _tables()
    led = Ledger.create("cabled test")
    cabled.steal_table(led, "vrlab_engine_t1")
    StealTable("vrlab_engine_t1", ("eth1",))  # never closed: as an engine killed with -9
    during = _tables()
    problems = []
    for name in ("vrlab_engine_t1", "users_own"):
        try:
            cabled.steal_table(Ledger.create("cabled test"), name)
        except KernelError as e:
            problems.append(str(e))
    removed = net.teardown(led)
    again = net.teardown(Ledger.create("cabled test"))  # nothing there to undo: nothing done
    return before, during, _tables(), removed + again, problems


def test_a_steal_table_left_by_a_killed_engine_is_undone(machine: str) -> None:
    before, during, after, removed, problems = nsexec.run_in(machine, _steal_table_undone)
    assert "table netdev vrlab_engine_t1" in during
    assert "table netdev vrlab_engine_t1" not in after
    assert after == before and "table netdev users_own" in after
    assert removed == ["nftables table netdev vrlab_engine_t1"], removed
    assert len(problems) == 2
    assert "has the nftables table netdev vrlab_engine_t1 already" in problems[0]
    assert "`vrlab clean` removes it" in problems[0]
    assert "users_own: not a vrlab name" in problems[1]
