"""The only code that builds and removes kernel objects (through pyroute2's netlink).

``build`` applies a plan, recording each namespace, link and process in the ledger before it
exists; ``teardown`` removes exactly what a ledger names. Objects are created inside their
namespaces (a veth's peer is born in its own namespace), so nothing ever appears, even briefly,
in the host's namespace."""

from __future__ import annotations

import errno
import os
import shutil
import signal
import socket
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from pyroute2 import IPRoute, netns
from pyroute2.ethtool import Ethtool
from pyroute2.netlink.exceptions import NetlinkError

from vrlab import cabled, nsalias, nsexec
from vrlab.bpf import libbpf
from vrlab.engines.ebpf import detach
from vrlab.errors import KernelError, NeedRootError
from vrlab.ledger import NETNS_DIR, Entry, Ledger, alive
from vrlab.plan.model import Plan
from vrlab.plan.naming import PREFIX

NUD_PERMANENT = 0x80
NUD_NOARP = 0x40  # a static bridge fdb entry
#: Every link vrlab creates is put in this link group ("vrl" in ASCII), so teardown can delete
#: all of a namespace's links in one RTM_DELLINK (``ip link del group``): the kernel then
#: unregisters them as one batch, paying its RCU grace period once instead of once per veth
#: (about 20 ms each here, which made 64 guests take seconds to tear down).
LINK_GROUP = 0x76726C


def require_root() -> None:
    if os.geteuid() != 0:
        raise NeedRootError("building namespaces needs root (CAP_NET_ADMIN, CAP_SYS_ADMIN): "
                            "run as root, e.g. `sudo .venv/bin/vrlab ...`; `vrlab plan` "
                            "shows what would be built without root")


def ns_exists(name: str) -> bool:
    return (NETNS_DIR / name).exists()


@dataclass
class NsSockets:
    """One netlink socket per namespace for the whole build: opening one costs a fork."""

    stack: ExitStack

    def __post_init__(self) -> None:
        self.socks: dict[str, IPRoute] = {}

    def __call__(self, ns: str) -> IPRoute:
        if ns not in self.socks:
            self.socks[ns] = self.stack.enter_context(IPRoute(netns=ns))
        return self.socks[ns]


def ifindex(ipr: IPRoute, name: str) -> int:
    found = ipr.link_lookup(ifname=name)
    if not found:
        raise KernelError(f"link {name} not found after creating it")
    return int(found[0])


def build(plan: Plan, ledger: Ledger) -> None:
    """Create every object of ``plan``. On failure the caller tears down from the ledger."""
    require_root()
    try:
        _build(plan, ledger)
    except NetlinkError as e:
        raise KernelError(f"netlink refused a step of building {plan.scenario}: {e}") from e


def _build(plan: Plan, ledger: Ledger) -> None:
    for n in plan.namespaces:
        if not n.name.startswith(PREFIX):
            raise KernelError(f"refusing to create {n.name}: not a vrlab name")
        ledger.record("netns", name=n.name)
        netns.create(n.name)
    _sysctls(plan)  # before any link exists, so IPv6 never starts on them
    with ExitStack() as stack:
        sock = NsSockets(stack)
        for n in plan.namespaces:
            ipr = sock(n.name)
            ipr.link("set", index=ifindex(ipr, "lo"), state="up")
        for v in plan.veths:
            ledger.record("link", ns=v.a_ns, name=v.a, group=LINK_GROUP)
            ledger.record("link", ns=v.b_ns, name=v.b, group=LINK_GROUP)
            sock(v.a_ns).link("add", ifname=v.a, kind="veth", address=v.a_mac, group=LINK_GROUP,
                              peer={"ifname": v.b, "net_ns_fd": v.b_ns, "address": v.b_mac,
                                    "group": LINK_GROUP})
        for br in plan.bridges:
            ledger.record("link", ns=br.ns, name=br.name, group=LINK_GROUP)
            ipr = sock(br.ns)
            ipr.link("add", ifname=br.name, kind="bridge", address=br.mac, br_stp_state=0,
                     br_mcast_snooping=0, group=LINK_GROUP)
            bi = ifindex(ipr, br.name)
            for port in br.ports:
                ipr.link("set", index=ifindex(ipr, port), master=bi)
        for ns, names in _links_by_ns(plan).items():
            ipr = sock(ns)
            for name in names:
                ipr.link("set", index=ifindex(ipr, name), state="up")
        for a in plan.addresses:
            ipr = sock(a.ns)
            ip, plen = a.cidr.split("/")
            ipr.addr("add", index=ifindex(ipr, a.dev), family=_family(ip), address=ip,
                     prefixlen=int(plen))
        for nb in plan.neighbours:
            ipr = sock(nb.ns)
            ipr.neigh("add", family=_family(nb.ip), dst=nb.ip, lladdr=nb.mac,
                      ifindex=ifindex(ipr, nb.dev), state=NUD_PERMANENT)
        bridge_of = {p: br.name for br in plan.bridges for p in br.ports}
        for fd in plan.fdb:
            ipr = sock(fd.ns)
            # replace: the bridge may have learned the MAC from an IPv6 MLD report already
            ipr.fdb("replace", ifindex=ifindex(ipr, fd.dev), lladdr=fd.mac,
                    master=ifindex(ipr, bridge_of[fd.dev]), state=NUD_NOARP)
        for rl in plan.rules:
            sock(rl.ns).rule("add", family=socket.AF_INET6 if rl.family == 6 else socket.AF_INET,
                             table=rl.table, priority=rl.priority, iifname=rl.iif)
        for rt in plan.routes:
            ipr = sock(rt.ns)
            ipr.route("add", family=_family(rt.via), dst=rt.dst, gateway=rt.via,
                      oif=ifindex(ipr, rt.dev), table=rt.table)


def _family(ip: str) -> int:
    """The address family of an address as the plan writes it (IPv4 or IPv6)."""
    return socket.AF_INET6 if ":" in ip else socket.AF_INET


def _links_by_ns(plan: Plan) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for v in plan.veths:
        out.setdefault(v.a_ns, []).append(v.a)
        out.setdefault(v.b_ns, []).append(v.b)
    for br in plan.bridges:
        out.setdefault(br.ns, []).append(br.name)
    return out


def _sysctls(plan: Plan) -> None:
    by_ns: dict[str, list[tuple[str, str]]] = {}
    for s in plan.sysctls:
        by_ns.setdefault(s.ns, []).append((f"/proc/sys/{s.key}", s.value))
    for ns, items in by_ns.items():
        nsexec.run_in(ns, nsexec.write_files, items)


# --------------------------------------------------------------------------- teardown


def teardown(ledger: Ledger) -> list[str]:
    """Remove what the ledger names, newest first; returns what was removed. Objects already
    gone are fine (a namespace takes its links with it); anything not vrlab's is refused."""
    removed: list[str] = []
    entries = ledger.entries()
    for e in reversed(entries):
        if e.kind == "proc" and _stop_process(int(e.data["pid"]), e.data.get("start")):
            removed.append(f"process {e.data['pid']} ({e.data.get('what', '?')})")
    removed += detach.undo(entries)  # the engine's programs on interfaces it did not create
    removed += cabled.undo(entries)  # what it added to interfaces it did not create
    with ExitStack() as stack:  # one socket per namespace, closed before the namespaces go
        sock = NsSockets(stack)
        batch, done = _delete_link_groups(sock, entries)
        removed += batch
        for e in reversed(entries):  # what no group took (e.g. older ledgers): one by one
            if e.kind != "link" or (e.data.get("group") and e.data["ns"] in done):
                continue
            if _delete_link(sock, e.data["ns"], e.data["name"]):
                removed.append(f"link {e.data['name']} in {e.data['ns']}")
    for e in reversed(entries):
        if e.kind == "netns" and e.data["name"].startswith(PREFIX) and ns_exists(e.data["name"]):
            netns.remove(e.data["name"])
            removed.append(f"namespace {e.data['name']}")
    removed += nsalias.undo(entries)  # after the links named in it
    for e in reversed(entries):  # private folders (simulated hosts' keys), named like the rest
        folder = Path(e.data["path"]) if e.kind == "dir" else None
        if folder and folder.name.startswith(PREFIX) and folder.is_dir():
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(f"folder {folder}")
    ledger.remove()
    return removed


def _stop_process(pid: int, start: int | None) -> bool:
    if not alive(pid, start):
        return False
    try:
        os.kill(pid, signal.SIGTERM)
        for _ in range(50):
            if not alive(pid, start):
                return True
            time.sleep(0.02)
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    return True


def _delete_link_groups(sock: NsSockets, entries: list[Entry]) -> tuple[list[str], set[str]]:
    """Delete, in one batch per namespace, the links of the link groups the ledger names, but
    only in namespaces the ledger says this run created (they are about to be removed with
    everything in them anyway). A veth goes with its peer, so later namespaces find less.
    Returns what was removed and the namespaces whose grouped links are now all gone."""
    ours = {e.data["name"] for e in entries
            if e.kind == "netns" and e.data["name"].startswith(PREFIX)}
    groups: dict[str, set[int]] = {}  # newest first, like the rest of teardown
    for e in reversed(entries):
        if e.kind == "link" and e.data.get("group") and e.data["ns"] in ours:
            groups.setdefault(e.data["ns"], set()).add(int(e.data["group"]))
    removed: list[str] = []
    done: set[str] = set()
    for ns, gs in groups.items():
        if not ns_exists(ns):
            continue
        ipr = sock(ns)
        for g in sorted(gs):
            names = [lk.get("IFLA_IFNAME") for lk in ipr.get_links()
                     if lk.get("IFLA_GROUP") == g]
            if not names:
                continue
            try:
                ipr.link("del", group=g)
            except NetlinkError as e:
                if e.code != errno.ENODEV:  # nothing left to delete: fine
                    raise
            removed += [f"link {name} in {ns}" for name in names]
        done.add(ns)
    return removed, done


def _delete_link(sock: NsSockets, ns: str, name: str) -> bool:
    """Delete one link (a veth takes its peer with it: the peer's entry then finds nothing)."""
    if not (name.startswith(PREFIX) and ns_exists(ns)):
        return False
    try:
        ipr = sock(ns)
        idx = ipr.link_lookup(ifname=name)
        if not idx:
            return False
        ipr.link("del", index=idx[0])
        return True
    except NetlinkError as e:
        if e.code == errno.ENODEV:
            return False
        raise


@contextmanager
def built(plan: Plan, ledger: Ledger) -> Iterator[Plan]:
    """Build, yield, and always tear down, whatever happens in between."""
    try:
        build(plan, ledger)
        yield plan
    finally:
        teardown(ledger)


def gro_on(dev: str) -> None:
    """``ethtool -K dev gro on``, in the calling namespace: a veth with GRO on runs NAPI even
    without an XDP program, and only a veth whose peer runs NAPI takes XDP frames (the XDP
    generator's). UDP frames that are forwarded are not merged: GRO of forwarded UDP is a
    separate feature (rx-udp-gro-forwarding), left off."""
    e = Ethtool()
    try:
        f = e.get_features(dev)
        f.features["rx-gro"].enable = True
        e.set_features(dev, f)
        if not e.get_features(dev).features["rx-gro"].enable:
            raise KernelError(f"{dev} did not turn GRO on")
    finally:
        e.close()


def tx_checksum_off(dev: str) -> None:
    """``ethtool -K dev tx-checksum-ip-generic off``, in the calling namespace: the sender then
    writes complete checksums. A veth hands a local stack's frames on with the checksum left to
    the receiver (CHECKSUM_PARTIAL, in the socket buffer's metadata); an XDP program that
    redirects such a frame drops the socket buffer and its metadata with it, and the frame
    arrives with a checksum that fails (TCP to a guest's BGP daemon, measured: never
    established)."""
    e = Ethtool()
    try:
        f = e.get_features(dev)
        f.features["tx-checksum-ip-generic"].enable = False
        e.set_features(dev, f)
        if e.get_features(dev).features["tx-checksum-ip-generic"].enable:
            raise KernelError(f"{dev} did not turn tx checksum offload off")
    finally:
        e.close()


#: clsact's ingress hook, and the priority of vrlab's filters there
CLSACT_INGRESS = 0xFFFFFFF2
FILTER_PRIO = 1


def ingress_program(dev: str, prog_fd: int, name: str,
                    prio: int = FILTER_PRIO) -> tuple[int | None, str]:
    """A tc program at the ingress of ``dev`` in this namespace: a tcx link where the kernel
    has tcx (appended after the programs already there; the link's fd is returned, and the
    program goes when it is closed), else a clsact filter at ``prio`` (no fd: it goes with
    the device). Returns (link fd or None, "tcx" or "tc")."""
    with IPRoute() as ipr:
        found = ipr.link_lookup(ifname=dev)
        if not found:
            raise KernelError(f"no link {dev} in this namespace")
        ifindex = int(found[0])
        try:
            return libbpf.tcx_link(ifindex, prog_fd), "tcx"
        except KernelError:
            tc_ingress_filter(ipr, ifindex, prog_fd, dev, name, prio)
            return None, "tc"


def tc_ingress_filter(ipr: IPRoute, ifindex: int, prog_fd: int, dev: str, name: str,
                      prio: int = FILTER_PRIO) -> None:
    """A kernel without tcx: clsact on ``dev``, the program as its direct-action ingress
    filter at ``prio`` (replacing vrlab's earlier one there), for every protocol; filters run
    in the order of their priority numbers, lowest first."""
    try:
        ipr.tc("add", "clsact", ifindex)
    except NetlinkError as e:
        if e.code != errno.EEXIST:
            raise KernelError(f"adding clsact to {dev}: {e}") from e
    try:
        ipr.tc("replace-filter", "bpf", ifindex, ":1", fd=prog_fd, name=name,
               parent=CLSACT_INGRESS, prio=prio, protocol=0x0003, direct_action=True)
    except NetlinkError as e:
        raise KernelError(f"attaching {name} at the ingress of {dev}: {e}") from e
