"""Configuration vrlab adds to interfaces it did not create: the cabled ports of a machine in a
testbed file. Such an interface is used as it is (never renamed, moved or deleted); vrlab only
adds addresses, routes and permanent neighbours on it (IPv4 and IPv6), changes a few of its
settings (forwarding, reverse-path filtering, the RPS mask, GRO), may put it into a bridge of
its own (a bridged SUT), and adds the policy rules and routes of a table that send what a routed
guest forwards back on to the sink, each recorded in the ledger *before* it is made, a setting
with its old value, a bridge port with the fact that it had no master. ``undo`` removes exactly
those additions, releases the ports, deletes its bridges and writes the old values back, so a
machine is left as vrlab found it, by the run itself or later by ``vrlab clean``.

A userspace engine that forwards on the cabled ports themselves keeps the kernel's stack off
them with an nftables table of its own in the machine's namespace (its steal table,
:class:`vrlab.engines.userspace.rings.StealTable`); the engine removes it when it stops, but not
when it is killed with -9, so the table is recorded here (kind ``nftable``) before the engine
starts, and ``undo`` deletes exactly that table (its name carries vrlab's prefix) if it is
there. The routers' MAC addresses of their own need no record: the engine's packet sockets
add them to the NIC's unicast filter as memberships the kernel drops with the sockets
(:meth:`vrlab.engines.userspace.rings.RxPort.accept`), so the interface's flags and filter are
never changed beyond the engine's life, and no promiscuous flag is set by hand.

Everything here acts in the calling process's network namespace (the machine's own, where its
physical interfaces are), except a setting or GRO given a namespace (``ns``): a device of a
running platform that a measurement borrows, set and put back inside that namespace."""

from __future__ import annotations

import socket
from pathlib import Path

from pyroute2 import IPRoute
from pyroute2.ethtool import Ethtool
from pyroute2.netlink.exceptions import NetlinkError

from vrlab import nsexec
from vrlab.errors import KernelError
from vrlab.ledger import NETNS_DIR, Entry, Ledger
from vrlab.plan.naming import PREFIX

NUD_PERMANENT = 0x80
NUD_NOARP = 0x40  # a static bridge forwarding entry
IFA_F_NODAD = 0x02
#: ledger kinds of this module's records
KINDS = ("addr", "route", "neigh", "setting", "gro", "bridge", "port", "fdb", "rule",
         "nftable")
#: the routing table a route goes to unless told (main)
MAIN = 254


def _family(ip: str) -> int:
    return socket.AF_INET6 if ":" in ip else socket.AF_INET


def _index(ipr: IPRoute, dev: str) -> int:
    idx = ipr.link_lookup(ifname=dev)
    if not idx:
        raise KernelError(f"interface {dev} does not exist on this machine; check the testbed "
                          "file's cables")
    return int(idx[0])


def add_address(led: Ledger, dev: str, cidr: str) -> None:
    """Refused when the machine has the address already: undoing would remove what vrlab did
    not add. An IPv6 address skips duplicate address detection (usable at once, no probe
    frames: every address on a testbed's cable is vrlab's to give)."""
    addr, _, plen = cidr.partition("/")
    fam = _family(addr)
    with IPRoute() as ipr:
        idx = _index(ipr, dev)
        if any(a.get("IFA_ADDRESS") == addr for a in ipr.get_addr(family=fam)):
            raise KernelError(f"this machine has the address {addr} already; vrlab adds and "
                              f"removes its own on {dev}: remove it by hand or cable another "
                              "interface")
        led.record("addr", dev=dev, cidr=cidr)
        ipr.addr("add", index=idx, family=fam, address=addr, prefixlen=int(plen),
                 **({"flags": IFA_F_NODAD} if fam == socket.AF_INET6 else {}))


def add_neighbour(led: Ledger, dev: str, ip: str, mac: str) -> None:
    led.record("neigh", dev=dev, ip=ip)
    with IPRoute() as ipr:
        ipr.neigh("replace", family=_family(ip), dst=ip, lladdr=mac, ifindex=_index(ipr, dev),
                  state=NUD_PERMANENT)


def add_route(led: Ledger, dst: str, via: str, dev: str, table: int = MAIN) -> None:
    """Refused when the machine routes ``dst`` in ``table`` already (its own route would be
    lost)."""
    with IPRoute() as ipr:
        idx = _index(ipr, dev)
        net_, _, plen = dst.partition("/")
        fam = _family(via)
        full = 128 if fam == socket.AF_INET6 else 32
        if any(r.get("RTA_DST") == net_ and r["dst_len"] == int(plen or full)
               for r in ipr.get_routes(family=fam, table=table)):
            where = "" if table == MAIN else f" in table {table}"
            raise KernelError(f"this machine routes {dst}{where} already; vrlab's traffic needs "
                              "that prefix: remove the route first")
        led.record("route", dst=dst, via=via, dev=dev, table=table)
        ipr.route("add", family=fam, dst=dst, gateway=via, oif=idx, table=table)


def add_rule(led: Ledger, iif: str, table: int, priority: int, family: int) -> None:
    """A policy rule: what arrives on ``iif`` is looked up in ``table`` (IPv4 or IPv6 by
    ``family``, 4 or 6). Refused when the machine has a rule at ``priority`` already: which of
    two rules of one priority the kernel takes first is not for vrlab to change."""
    fam = socket.AF_INET6 if family == 6 else socket.AF_INET
    with IPRoute() as ipr:
        if any(r.get("FRA_PRIORITY") == priority for r in ipr.get_rules(family=fam)):
            raise KernelError(f"this machine has an IPv{family} policy rule at priority "
                              f"{priority} already (ip -{family} rule); vrlab needs that "
                              "priority for its guests' return traffic: remove the rule first")
        led.record("rule", dev=iif, table=table, priority=priority, family=family)
        ipr.rule("add", family=fam, table=table, priority=priority, iifname=iif)


def add_bridge(led: Ledger, name: str, mac: str, nf_call_iptables: bool) -> None:
    """A bridge of vrlab's (``name`` carries its prefix) in this machine's namespace: no STP
    (ports forward at once), no multicast snooping, no IPv6 of its own (it would send router
    solicitations and MLD reports through the testbed), netfilter as the scenario says."""
    with IPRoute() as ipr:
        if ipr.link_lookup(ifname=name):
            raise KernelError(f"this machine has an interface {name} already: a bridge of an "
                              "earlier run? `vrlab clean` removes it")
        led.record("bridge", dev=name)
        ipr.link("add", ifname=name, kind="bridge", address=mac, br_stp_state=0,
                 br_mcast_snooping=0, br_nf_call_iptables=int(nf_call_iptables))
        six = Path(f"/proc/sys/net/ipv6/conf/{name}/disable_ipv6")
        if six.exists():
            six.write_text("1")
        ipr.link("set", index=_index(ipr, name), state="up")


def enslave(led: Ledger, dev: str, bridge: str) -> None:
    """Put ``dev`` into vrlab's ``bridge``; refused when it is in another bridge or bond
    already (releasing it afterwards would not put it back there)."""
    with IPRoute() as ipr:
        idx = _index(ipr, dev)
        if ipr.get_links(idx)[0].get("IFLA_MASTER"):
            raise KernelError(f"{dev} is a port of another device already (a bridge or a "
                              "bond); vrlab bridges only free interfaces: release it (ip link "
                              f"set {dev} nomaster) or cable another one")
        led.record("port", dev=dev, bridge=bridge)
        ipr.link("set", index=idx, master=_index(ipr, bridge))


def add_fdb(led: Ledger, dev: str, mac: str, bridge: str) -> None:
    """A static forwarding entry on ``bridge``'s port ``dev``: frames to ``mac`` leave there,
    never flooded."""
    with IPRoute() as ipr:
        led.record("fdb", dev=dev, mac=mac)
        # replace: the bridge may have learned the MAC already
        ipr.fdb("replace", ifindex=_index(ipr, dev), lladdr=mac, master=_index(ipr, bridge),
                state=NUD_NOARP)


def set_file(led: Ledger, path: str, value: str, ns: str | None = None) -> None:
    """Write ``value`` to a /proc/sys or /sys file, after recording what it held; with ``ns``,
    the file as that namespace sees it (a private sysfs of its own for /sys)."""
    if ns is not None:
        sysfs = path.startswith("/sys/")
        old = str(nsexec.run_in(ns, nsexec.read_file, path, with_sysfs=sysfs))
        led.record("setting", path=path, old=old, ns=ns)
        nsexec.run_in(ns, nsexec.write_files, [(path, value)], with_sysfs=sysfs)
        return
    p = Path(path)
    old = p.read_text().strip()
    led.record("setting", path=path, old=old)
    p.write_text(value)


def gro_on(led: Ledger, dev: str, ns: str | None = None) -> None:
    """GRO on ``dev`` (in namespace ``ns``, else this one), its old state recorded first."""
    if ns is not None:
        old = bool(nsexec.run_in(ns, gro_state, dev))
        led.record("gro", dev=dev, old=old, ns=ns)
        if not old:
            nsexec.run_in(ns, set_gro, dev, True)
        return
    old = gro_state(dev)
    led.record("gro", dev=dev, old=old)
    if not old:
        set_gro(dev, True)


def steal_table(led: Ledger, name: str) -> None:
    """Record the steal table ``name`` a userspace engine is about to make in this namespace.
    Refused when the name lacks vrlab's prefix (undo would delete a table vrlab did not make)
    or the table is there already (another run's, or one an earlier run left)."""
    from vrlab.engines.userspace.rings import steal_table_exists

    if not name.startswith(PREFIX):
        raise KernelError(f"refusing to record the nftables table {name}: not a vrlab name "
                          f"(it must start with {PREFIX})")
    if steal_table_exists(name):
        raise KernelError(f"this machine has the nftables table netdev {name} already: an "
                          "engine of an earlier run? `vrlab clean` removes it")
    led.record("nftable", family="netdev", name=name)


def undo(entries: list[Entry]) -> list[str]:
    """Remove this module's records of ``entries``, newest first; what is already gone (the
    interface vanished, the machine rebooted) is skipped. Returns what was undone."""
    done: list[str] = []
    mine = [e for e in reversed(entries) if e.kind in KINDS]
    if not mine:
        return done
    with IPRoute() as ipr:
        for e in mine:
            d = e.data
            try:
                if e.kind == "setting":
                    if _write_back(d["path"], str(d["old"]), d.get("ns")):
                        where = f" in {d['ns']}" if d.get("ns") else ""
                        done.append(f"setting {d['path']}{where} back to {d['old']}")
                    continue
                if e.kind == "gro":
                    if not d["old"] and _gro_off(d["dev"], d.get("ns")):
                        where = f" in {d['ns']}" if d.get("ns") else ""
                        done.append(f"GRO off again on {d['dev']}{where}")
                    continue
                if e.kind == "nftable":
                    if d["name"].startswith(PREFIX) and _drop_table(str(d["name"])):
                        done.append(f"nftables table netdev {d['name']}")
                    continue
                if e.kind == "rule":  # outlives its interface: removed whether it is there
                    fam = socket.AF_INET6 if d["family"] == 6 else socket.AF_INET
                    ipr.rule("del", family=fam, table=d["table"], priority=d["priority"],
                             iifname=d["dev"])
                    done.append(f"rule iif {d['dev']} table {d['table']}")
                    continue
                idx = ipr.link_lookup(ifname=d["dev"])
                if not idx:
                    continue
                if e.kind == "addr":
                    addr, _, plen = d["cidr"].partition("/")
                    ipr.addr("del", index=idx[0], family=_family(addr), address=addr,
                             prefixlen=int(plen))
                    done.append(f"address {d['cidr']} on {d['dev']}")
                elif e.kind == "neigh":
                    ipr.neigh("del", family=_family(d["ip"]), dst=d["ip"], ifindex=idx[0])
                    done.append(f"neighbour {d['ip']} on {d['dev']}")
                elif e.kind == "route":
                    ipr.route("del", family=_family(d["via"]), dst=d["dst"],
                              gateway=d["via"], oif=idx[0], table=d.get("table", MAIN))
                    done.append(f"route {d['dst']} via {d['via']}")
                elif e.kind == "fdb":
                    ipr.fdb("del", ifindex=idx[0], lladdr=d["mac"])
                    done.append(f"forwarding entry {d['mac']} on {d['dev']}")
                elif e.kind == "port":
                    ipr.link("set", index=idx[0], master=0)
                    done.append(f"{d['dev']} out of bridge {d['bridge']}")
                elif e.kind == "bridge" and d["dev"].startswith(PREFIX):
                    ipr.link("del", index=idx[0])
                    done.append(f"bridge {d['dev']}")
            except (NetlinkError, OSError, KernelError):
                continue  # never made (the record comes first), or gone with its interface
    return done


def gro_state(dev: str) -> bool:
    """Whether ``dev`` (in this namespace) has GRO on."""
    e = Ethtool()
    try:
        return bool(e.get_features(dev).features["rx-gro"].enable)
    finally:
        e.close()


def set_gro(dev: str, on: bool) -> None:
    e = Ethtool()
    try:
        f = e.get_features(dev)
        f.features["rx-gro"].enable = on
        e.set_features(dev, f)
    finally:
        e.close()


def _write_back(path: str, old: str, ns: str | None) -> bool:
    """A setting's old value again; False when its namespace is gone (the setting with it)."""
    if ns is None:
        Path(path).write_text(old)
        return True
    if not (NETNS_DIR / ns).exists():
        return False
    nsexec.run_in(ns, nsexec.write_files, [(path, old)], with_sysfs=path.startswith("/sys/"))
    return True


def _drop_table(name: str) -> bool:
    """Delete the steal table ``name`` of this namespace; False when it is not there (the
    engine removed it, or never made it)."""
    from vrlab.engines.userspace.rings import remove_steal_table, steal_table_exists

    if not steal_table_exists(name):
        return False
    remove_steal_table(name)
    return True


def _gro_off(dev: str, ns: str | None) -> bool:
    """GRO off again; False when the namespace is gone (the device with it)."""
    if ns is None:
        set_gro(dev, False)
        return True
    if not (NETNS_DIR / ns).exists():
        return False
    nsexec.run_in(ns, set_gro, dev, False)
    return True
