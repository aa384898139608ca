"""Simulated hosts on this machine, for the tests and the multi-host benchmark: each one a
network namespace with a mount and PID namespace of its own (its own /run, so its own vrlab
ledger), running Debian's OpenSSH server on a management cable, and joined to the others by
veth "cables". vrlab then reaches them only through SSH, as it would reach real machines.

The management cable of each host is a veth pair with one end in this machine's namespace, so
the controller (a test, the benchmark, the ``vrlab`` command) needs nothing special to connect.
Both ends vanish with the host's namespace. Addresses come from 198.51.100.0/24 (RFC 5737's
TEST-NET-2, never routed), far from the testbed's own 198.18.0.0/15; each lab takes a /27 no
address of this machine is in, so labs of concurrent test sessions stay apart.

Everything is recorded in a ledger of this machine first, so ``vrlab clean`` removes a lab
whose owner was killed: stopping each host's first process (by pid and start time) ends every
process on that host, and removing its namespace takes its cables with it. The keys and
sshd configurations live in a private folder (mode 0700, under the temporary directory, where
the hosts, with their own /run, still see it), recorded in the ledger so teardown removes it."""

from __future__ import annotations

import asyncio
import fcntl
import ipaddress
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import asyncssh
import yaml
from pyroute2 import IPRoute, netns

from vrlab import net
from vrlab.errors import KernelError, UsageError
from vrlab.hosts import spec as testbed_spec
from vrlab.hosts.ssh import connect
from vrlab.ledger import Ledger, alive, proc_start_time
from vrlab.plan.naming import PREFIX, if_name, ns_name

#: where simulated hosts get their management addresses: one /30 per host
MGMT_NET = ipaddress.IPv4Network("198.51.100.0/24")
SSHD_PATH = "/usr/sbin/sshd"
#: one lab's share of MGMT_NET: eight /30s
BLOCK_PREFIX = 27
MAX_HOSTS = 2 ** (30 - BLOCK_PREFIX)
#: held while a lab picks its block and takes it, so two labs starting at once never pick one
LOCK = Path(tempfile.gettempdir()) / "vrlab-sim.lock"
#: how long a simulated host's sshd may take to listen before the lab gives up on it
READY_S = 10.0

SSHD_CONFIG = """\
# A simulated vrlab host: key-only root login on the management address, nothing else.
ListenAddress {address}
Port 22
HostKey {host_key}
PidFile none
AuthorizedKeysFile {authorized_keys}
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
# the lab's folder may sit under /tmp (mode 1777), which StrictModes refuses; vrlab writes
# the keys itself, mode 0600, in a folder of mode 0700
StrictModes no
PermitUserEnvironment no
MaxStartups 64:30:128
MaxSessions 64
LogLevel ERROR
"""


@dataclass(frozen=True)
class SimHost:
    name: str
    roles: tuple[str, ...]
    ns: str
    address: str
    pid: int  # the host's first process: with its start time, the host's power switch
    start: int | None


#: what vrlab may leave on a host: ledgers, namespaces, the testbed's addresses (198.18/15's
#: lower half, 2001:2::/48) and routes (198.18/15's upper half, 2001:2:0:100::/56), its
#: bridges, its agents
LEFT = ("ls /run/vrlab/runs 2>/dev/null; ip netns list; ip -o addr | grep -e 198.18 -e 2001:2; "
        "ip route | grep 198.19; ip -6 route | grep 2001:2; "
        "ip -o link show type bridge | grep vrl; ps -eo args | grep -v grep "
        "| grep -e 'vrlab agent' -e vrlab.traffic.agent; true")


@dataclass
class SimLab:
    """A running set of simulated hosts and the testbed file that names them."""

    ledger: Ledger
    workdir: Path
    testbed: Path
    hosts: dict[str, SimHost] = field(default_factory=dict)
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def stop(self) -> list[str]:
        """Power every host off and remove the namespaces, cables and the lab's folder."""
        removed = net.teardown(self.ledger)  # the folder too: the ledger names it
        for p in self.procs:  # reap the first processes teardown stopped
            p.wait()
        return removed

    def run(self, host: str, script: str, timeout: float = 20) -> str:
        """``sh -c script`` on ``host`` over SSH, as vrlab reaches it; its standard output."""
        async def go() -> str:
            tb, _ = testbed_spec.load(self.testbed)
            s = await connect(tb, host)
            try:
                return str((await s.run(["sh", "-c", script], timeout=timeout)).stdout)
            finally:
                await s.close()
        return asyncio.run(go())

    def leftovers(self) -> dict[str, str]:
        """Per host, what vrlab left there (its ledgers, namespaces, the testbed's addresses
        and routes, its processes); hosts with nothing left are not named."""
        found = {name: self.run(name, LEFT).strip() for name in self.hosts}
        return {name: what for name, what in found.items() if what}

    def power_off(self, name: str) -> None:
        """Stop one host at once, as if it lost power: every process on it dies, its /run
        (its ledger, its namespaces' mounts) is gone; its namespace and cables stay."""
        h = self.hosts[name]
        if alive(h.pid, h.start):
            os.kill(h.pid, signal.SIGKILL)


def _write_key(path: Path) -> str:
    """A new ed25519 key at ``path`` (mode 0600); returns its public half."""
    key = asyncssh.generate_private_key("ssh-ed25519")
    key.write_private_key(str(path))
    path.chmod(0o600)
    return key.export_public_key().decode().strip()


def _mgmt_pair(i: int, net4: ipaddress.IPv4Network) -> tuple[str, str]:
    """(this machine's end, the host's end) of host ``i``'s management /30."""
    sub = list(net4.subnets(new_prefix=30))[i]
    return str(sub.network_address + 1), str(sub.network_address + 2)


def _free_block(net4: ipaddress.IPv4Network, hosts: int) -> ipaddress.IPv4Network:
    """A block of ``net4`` (room for MAX_HOSTS /30s) with no address of this machine in it,
    so labs of concurrent test sessions never share an address."""
    if hosts > MAX_HOSTS:
        raise UsageError(f"a simulated lab has at most {MAX_HOSTS} hosts, not {hosts}")
    with IPRoute() as ipr:
        used = [ipaddress.IPv4Address(a.get_attr("IFA_ADDRESS"))
                for a in ipr.get_addr(family=socket.AF_INET)]
    for block in net4.subnets(new_prefix=BLOCK_PREFIX):
        if not any(ip in block for ip in used):
            return block
    raise KernelError(f"every block of {net4} is in use on this machine: other simulated "
                      "labs? `vrlab clean` removes those whose owner died")


def _wait_listening(host: SimHost, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + READY_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise KernelError(f"simulated host {host.name}: sshd exited: "
                              f"{log.read_text().strip() or 'no message'}")
        try:
            with socket.create_connection((host.address, 22), timeout=0.5):
                return
        except OSError:
            time.sleep(0.02)
    raise KernelError(f"simulated host {host.name}: sshd not listening on {host.address}:22 "
                      f"after {READY_S:.0f} s ({log})")


def start(hosts: dict[str, tuple[str, ...]], cables: list[tuple[str, str]],
          vrlab_cmd: str | None = None, mgmt: ipaddress.IPv4Network = MGMT_NET) -> SimLab:
    """Start simulated hosts (name -> roles) joined by ``cables`` (sending host, receiving
    host: the two through the SUT, then optionally the generator's host straight to the
    sink's, the file's ``calibration_cable``), and write the testbed file naming them.
    ``vrlab_cmd`` is the vrlab each host runs (default: this interpreter's)."""
    net.require_root()
    if not Path(SSHD_PATH).is_file():
        raise KernelError(f"{SSHD_PATH} not found: install Debian's openssh-server "
                          "(bootstrap.sh does)")
    vrlab_cmd = vrlab_cmd or _this_vrlab()
    with LOCK.open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        block = _free_block(mgmt, len(hosts))
        ledger = Ledger.create("simulated hosts")
        workdir = Path(tempfile.gettempdir()) / f"{PREFIX}{ledger.run_id}-sim"
        ledger.record("dir", path=str(workdir))
        workdir.mkdir(mode=0o700)
        lab = SimLab(ledger, workdir, workdir / "testbed.yaml")
        try:
            _build(lab, hosts, cables, vrlab_cmd, block)
        except BaseException:
            lab.stop()
            raise
    return lab


def _this_vrlab() -> str:
    cmd = Path(sys.executable).with_name("vrlab")
    if not cmd.is_file():
        raise KernelError(f"no vrlab command beside {sys.executable}; install vrlab into "
                          "that environment (pip install -e .)")
    return str(cmd)


def _build(lab: SimLab, hosts: dict[str, tuple[str, ...]], cables: list[tuple[str, str]],
           vrlab_cmd: str, mgmt: ipaddress.IPv4Network) -> None:
    rid = lab.ledger.run_id
    client_pub = _write_key(lab.workdir / "id_ed25519")
    (lab.workdir / "authorized_keys").write_text(client_pub + "\n")
    known: list[str] = []
    procs: list[tuple[SimHost, subprocess.Popen[bytes], Path]] = []
    for i, (name, roles) in enumerate(hosts.items()):
        ns = ns_name(rid, f"host-{name}")
        lab.ledger.record("netns", name=ns)
        netns.create(ns)
        here, there = _mgmt_pair(i, mgmt)
        outer, inner = if_name(rid, f"m{i}"), if_name(rid, "mgmt")
        lab.ledger.record("link", ns=ns, name=inner)
        with IPRoute() as ipr:
            ipr.link("add", ifname=outer, kind="veth", peer={"ifname": inner, "net_ns_fd": ns})
            idx = net.ifindex(ipr, outer)
            ipr.addr("add", index=idx, address=here, prefixlen=30)
            ipr.link("set", index=idx, state="up")
        with IPRoute(netns=ns) as ipr:
            ipr.link("set", index=net.ifindex(ipr, "lo"), state="up")
            idx = net.ifindex(ipr, inner)
            ipr.addr("add", index=idx, address=there, prefixlen=30)
            ipr.link("set", index=idx, state="up")
        hdir = lab.workdir / name
        hdir.mkdir(mode=0o700)
        host_pub = _write_key(hdir / "ssh_host_ed25519_key")
        known.append(f"{there} {host_pub}")
        config = hdir / "sshd_config"
        config.write_text(SSHD_CONFIG.format(address=there,
                                             host_key=hdir / "ssh_host_ed25519_key",
                                             authorized_keys=lab.workdir / "authorized_keys"))
        log = hdir / "sshd.log"
        with log.open("wb") as logf:
            proc = subprocess.Popen([sys.executable, "-m", "vrlab.hosts.simboot", ns,
                                     str(config)], stdin=subprocess.DEVNULL, stdout=logf,
                                    stderr=logf)
        lab.procs.append(proc)
        start = proc_start_time(proc.pid)
        lab.ledger.record("proc", pid=proc.pid, start=start, what=f"simulated host {name}")
        host = SimHost(name, roles, ns, there, proc.pid, start)
        lab.hosts[name] = host
        procs.append((host, proc, log))
    (lab.workdir / "known_hosts").write_text("\n".join(known) + "\n")
    ends = _cable(lab, cables)
    for host, proc, log in procs:
        _wait_listening(host, proc, log)
    lab.testbed.write_text(yaml.safe_dump(_testbed(lab, vrlab_cmd, ends), sort_keys=False))


def _cable(lab: SimLab, cables: list[tuple[str, str]]) -> list[tuple[str, str, str, str]]:
    """Veth cables between the hosts' namespaces; returns (host, ifname, host, ifname)."""
    rid = lab.ledger.run_id
    out = []
    for k, (a, b) in enumerate(cables):
        ha, hb = lab.hosts[a], lab.hosts[b]
        ia, ib = if_name(rid, f"c{k}a"), if_name(rid, f"c{k}b")
        lab.ledger.record("link", ns=ha.ns, name=ia)
        lab.ledger.record("link", ns=hb.ns, name=ib)
        with IPRoute(netns=ha.ns) as ipr:
            ipr.link("add", ifname=ia, kind="veth", peer={"ifname": ib, "net_ns_fd": hb.ns})
            ipr.link("set", index=net.ifindex(ipr, ia), state="up")
        with IPRoute(netns=hb.ns) as ipr:
            ipr.link("set", index=net.ifindex(ipr, ib), state="up")
        out.append((a, ia, b, ib))
    return out


def _testbed(lab: SimLab, vrlab_cmd: str, ends: list[tuple[str, str, str, str]]
             ) -> dict[str, object]:
    def cable(a: str, ia: str, b: str, ib: str) -> dict[str, str]:
        return {"from": f"{a}:{ia}", "to": f"{b}:{ib}"}

    direct = {"calibration_cable": cable(*ends[2])} if len(ends) > 2 else {}
    return {
        "name": f"sim-{lab.ledger.run_id}",
        "description": "simulated hosts on one machine (vrlab.hosts.sim)",
        "known_hosts": str(lab.workdir / "known_hosts"),
        "hosts": {h.name: {"address": h.address, "key": str(lab.workdir / "id_ed25519"),
                           "roles": list(h.roles), "vrlab": vrlab_cmd}
                  for h in lab.hosts.values()},
        "cables": [cable(*e) for e in ends[:2]],
        **direct,
    }


Layout = tuple[dict[str, tuple[str, ...]], list[tuple[str, str]]]

#: the paper's three machines, and the cable from the generator's straight to the sink's
THREE: Layout = ({"tg": ("tg",), "sut": ("sut",), "ts": ("ts",)},
                 [("tg", "sut"), ("sut", "ts"), ("tg", "ts")])
#: a tester (generator and sink) and the SUT
TESTER: Layout = ({"tester": ("tester",), "sut": ("sut",)}, [("tester", "sut"), ("sut", "tester")])
