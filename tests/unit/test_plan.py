"""Plans are pure data: checked here, without root, for every built-in scenario and guest count.

The checks are the invariants ``vrlab.net`` relies on: names the kernel accepts and ``vrlab clean``
recognises, MACs and prefixes that never collide, a permanent neighbour for every next hop (no ARP
during a trial), and a route for every router's prefix where it is forwarded."""

from __future__ import annotations

import ipaddress
from collections import Counter

import pytest

from vrlab import spec
from vrlab.plan.addressing import ROUTER_NET, router_prefix
from vrlab.plan.model import Plan
from vrlab.plan.naming import IFNAMSIZ, PREFIX
from vrlab.plan.wiring import calibration_plan, make_plan
from vrlab.spec import BENCH_NET, MAX_GUESTS, Scenario

RUN_ID = "a1b2"


def scenario(name: str, guests: int | None = None, routers: int | None = None) -> Scenario:
    o: dict[str, object] = {}
    if guests is not None:
        o["sut.guests"] = guests
    if routers is not None:
        o["traffic.routers"] = routers
    return spec.load(name, o)[0]


def takes_guests(name: str) -> bool:
    sc = spec.load(name)[0]
    return sc.sut.io != "bridged" and sc.sut.forwarding != "shared"


def all_plans() -> list[tuple[str, Plan]]:
    """Every built-in as shipped, and with 1 and the maximum number of guests where it has any."""
    out = [(name, make_plan(scenario(name), RUN_ID)) for name in spec.builtin_names()]
    for name in spec.builtin_names():
        if takes_guests(name):
            out += [(f"{name}-g{g}", make_plan(scenario(name, g), RUN_ID)) for g in (1, MAX_GUESTS)]
    out.append(("calibration", calibration_plan(RUN_ID)))
    return out


PLANS = all_plans()
IDS = [n for n, _ in PLANS]


def links(p: Plan) -> list[tuple[str, str, str]]:
    """(namespace, name, mac) of every link the plan creates."""
    out = [(b.ns, b.name, b.mac) for b in p.bridges]
    for v in p.veths:
        out += [(v.a_ns, v.a, v.a_mac), (v.b_ns, v.b, v.b_mac)]
    return out


def mac_of(p: Plan) -> dict[tuple[str, str], str]:
    return {(ns, name): mac for ns, name, mac in links(p)}


def sysctl(p: Plan, ns: str, key: str) -> str | None:
    found = [s.value for s in p.sysctls if s.ns == ns and s.key == key]
    assert len(found) <= 1, f"{key} set twice in {ns}"
    return found[0] if found else None


def guest_ns(p: Plan, forwarder: str) -> str:
    return f"{PREFIX}{p.run_id}-{forwarder}"


# --------------------------------------------------------------------------- names and MACs


@pytest.mark.parametrize("p", [p for _, p in PLANS], ids=IDS)
def test_names_carry_the_run_prefix_and_fit_ifnamsiz(p: Plan) -> None:
    own = f"{PREFIX}{RUN_ID}-"
    for n in p.namespaces:
        assert n.name.startswith(own)
    for ns, name, _ in links(p):
        assert name.startswith(own), name
        assert len(name) <= IFNAMSIZ, f"{name} is longer than the kernel's {IFNAMSIZ}"
        assert ns in {n.name for n in p.namespaces}
    per_ns = Counter((ns, name) for ns, name, _ in links(p))
    assert max(per_ns.values()) == 1, "two links share a name in one namespace"
    assert len({n.name for n in p.namespaces}) == len(p.namespaces)


@pytest.mark.parametrize("p", [p for _, p in PLANS], ids=IDS)
def test_macs_are_unique_and_locally_administered(p: Plan) -> None:
    macs = [mac for _, _, mac in links(p)]
    assert len(set(macs)) == len(macs)
    for mac in macs:
        first = int(mac.split(":")[0], 16)
        assert first & 0x02 and not first & 0x01, f"{mac}: not a local unicast MAC"


def test_64_guests_fit_with_the_longest_names() -> None:
    p = make_plan(scenario("mixed-routed", MAX_GUESTS), "ffff")
    assert len(p.guest_ns) == MAX_GUESTS
    names = {name for _, name, _ in links(p)}
    assert {"vrlffff-h64a", "vrlffff-h64b", "vrlffff-g64a", "vrlffff-g64b"} <= names
    assert max(len(n) for n in names) <= IFNAMSIZ


def test_plans_are_deterministic_and_run_ids_separate_them() -> None:
    sc = scenario("mixed-bridged", 3)
    assert make_plan(sc, "0001") == make_plan(sc, "0001")
    a, b = make_plan(sc, "0001"), make_plan(sc, "0002")
    assert not {n.name for n in a.namespaces} & {n.name for n in b.namespaces}


# --------------------------------------------------------------------------- addressing


@pytest.mark.parametrize("p", [p for _, p in PLANS], ids=IDS)
def test_every_address_lies_in_the_benchmarking_range(p: Plan) -> None:
    nets = [ipaddress.IPv4Interface(a.cidr).network for a in p.addresses]
    nets += [ipaddress.IPv4Network(r.dst) for r in p.routes]
    nets += [ipaddress.IPv4Network(r.prefix) for r in p.traffic.routers]
    hosts = [ipaddress.IPv4Address(x) for x in
             [r.via for r in p.routes] + [n.ip for n in p.neighbours] + [p.traffic.src_ip]]
    for net in nets:
        assert net.subnet_of(BENCH_NET), f"{net} is outside {BENCH_NET} (RFC 2544)"
    for h in hosts:
        assert h in BENCH_NET, f"{h} is outside {BENCH_NET} (RFC 2544)"


@pytest.mark.parametrize("routers", [1, 4, 256])
def test_each_router_gets_its_own_slash24(routers: int) -> None:
    p = make_plan(scenario("native-routed", routers=routers), RUN_ID)
    prefixes = [ipaddress.IPv4Network(r.prefix) for r in p.traffic.routers]
    assert len(prefixes) == routers
    assert len(set(prefixes)) == routers
    for net in prefixes:
        assert net.prefixlen == 24 and net.subnet_of(ROUTER_NET)
    assert [r.name for r in p.traffic.routers] == [f"r{i}" for i in range(routers)]


def test_router_prefixes_never_overlap_link_subnets() -> None:
    p = make_plan(scenario("mixed-routed", MAX_GUESTS, None), RUN_ID)
    links_nets = {ipaddress.IPv4Interface(a.cidr).network for a in p.addresses}
    for r in p.traffic.routers:
        assert not any(ipaddress.IPv4Network(r.prefix).overlaps(n) for n in links_nets)
    assert router_prefix(255) == "198.19.255.0/24"


@pytest.mark.parametrize("p", [p for _, p in PLANS], ids=IDS)
def test_addresses_sit_on_links_of_their_namespace(p: Plan) -> None:
    have = {(ns, name) for ns, name, _ in links(p)}
    for a in p.addresses:
        assert (a.ns, a.dev) in have, f"address {a.cidr} on {a.dev}, which {a.ns} lacks"
    owners = Counter(a.cidr.split("/")[0] for a in p.addresses)
    assert max(owners.values()) == 1, "one IP address on two devices"


# --------------------------------------------------------------------------- next hops


@pytest.mark.parametrize("p", [p for _, p in PLANS], ids=IDS)
def test_every_next_hop_is_on_link_with_a_permanent_neighbour(p: Plan) -> None:
    neigh = {(n.ns, n.dev, n.ip): n.mac for n in p.neighbours}
    for r in p.routes:
        on_dev = [ipaddress.IPv4Interface(a.cidr) for a in p.addresses
                  if a.ns == r.ns and a.dev == r.dev]
        assert any(ipaddress.IPv4Address(r.via) in i.network for i in on_dev), \
            f"{r}: gateway not in a subnet of {r.dev}"
        assert (r.ns, r.dev, r.via) in neigh, f"{r}: no permanent neighbour for the next hop"


@pytest.mark.parametrize("p", [p for _, p in PLANS], ids=IDS)
def test_neighbour_macs_belong_to_the_device_owning_the_ip(p: Plan) -> None:
    """A neighbour entry is only right if the MAC is that of the device holding the address."""
    owner = {a.cidr.split("/")[0]: (a.ns, a.dev) for a in p.addresses}
    macs = mac_of(p)
    for n in p.neighbours:
        assert n.ip in owner, f"neighbour {n.ip} in {n.ns} is nobody's address"
        assert macs[owner[n.ip]] == n.mac, f"{n}: MAC is not that of {owner[n.ip]}"
        assert owner[n.ip][0] != n.ns, "a namespace's neighbour is in another namespace"


@pytest.mark.parametrize("p", [p for _, p in PLANS], ids=IDS)
def test_generator_reaches_every_router_prefix(p: Plan) -> None:
    t = p.traffic
    if p.platform is not None:  # shared: frames go to each router's own port on the tg uplink
        for r, lay in zip(t.routers, p.platform.routers, strict=True):
            port = lay.ports[0]
            assert r.dst_mac == port.mac and port.uplink == p.sut_ingress
            assert [str(rt.to) for rt in lay.spec.control_plane.routes] == [r.prefix]
            assert ipaddress.IPv4Address(t.src_ip) in ipaddress.IPv4Interface(port.address).network
        assert len({lay.ports[0].mac for lay in p.platform.routers}) == len(t.routers)
        return
    tg_routes = [ipaddress.IPv4Network(r.dst) for r in p.routes if r.ns == t.tg_ns]
    for r in t.routers:
        assert any(ipaddress.IPv4Network(r.prefix).subnet_of(d) for d in tg_routes)
        assert r.dst_mac in set(mac_of(p).values()), f"{r.name}: first hop is no plan device"
    src = {a.cidr.split("/")[0]: a for a in p.addresses}[t.src_ip]
    assert (src.ns, src.dev) == (t.tg_ns, t.tg_dev)
    assert mac_of(p)[(t.tg_ns, t.tg_dev)] == t.src_mac


# --------------------------------------------------------------------------- per mode

LAYER3 = [(n, p) for n, p in PLANS if any(a.ns == p.sut_ns for a in p.addresses)]


@pytest.mark.parametrize("p", [p for _, p in LAYER3], ids=[n for n, _ in LAYER3])
def test_layer3_plan_forwards_and_routes_every_prefix(p: Plan) -> None:
    assert sysctl(p, p.sut_ns, "net/ipv4/ip_forward") == "1"
    assert sysctl(p, p.sut_ns, "net/ipv4/conf/all/rp_filter") == "0"
    routed = not p.bridges
    for r in p.traffic.routers:
        if r.forwarder == "host":
            assert any(rt.ns == p.sut_ns and rt.dst == r.prefix for rt in p.routes), r
            continue
        g = guest_ns(p, r.forwarder)
        assert sysctl(p, g, "net/ipv4/ip_forward") == "1", f"{g} forwards {r.name} but cannot"
        assert any(rt.ns == g and rt.dst == r.prefix for rt in p.routes), r
        if routed:  # the host hands the prefix to the guest
            to_guest = [rt for rt in p.routes if rt.ns == p.sut_ns and rt.dst == r.prefix]
            assert [rt.dev for rt in to_guest] == [f"{PREFIX}{p.run_id}-h{r.forwarder[1:]}a"]
    forwarders = {r.forwarder for r in p.traffic.routers}
    for g in p.guest_ns:
        if g.rsplit("-", 1)[1] not in forwarders:  # an idle guest must not forward anything
            assert sysctl(p, g, "net/ipv4/ip_forward") is None


def test_routed_guests_return_through_a_policy_rule() -> None:
    p = make_plan(scenario("guest-routed", 3), RUN_ID)
    rules = sorted(p.rules, key=lambda r: r.priority)
    assert [r.iif for r in rules] == [f"vrl{RUN_ID}-h{i}b" for i in (1, 2, 3)]
    assert len({r.table for r in rules}) == 1 and rules[0].table != 254
    back = [rt for rt in p.routes if rt.table == rules[0].table]
    assert [(rt.ns, rt.dst, rt.dev) for rt in back] == [(p.sut_ns, str(ROUTER_NET),
                                                         f"vrl{RUN_ID}-sout")]


def test_bridged_plan_is_pure_layer2() -> None:
    p = make_plan(scenario("native-bridged"), RUN_ID)
    sut = p.sut_ns
    assert not [a for a in p.addresses if a.ns == sut], "bridged SUT must have no IPv4 address"
    assert sysctl(p, sut, "net/ipv4/ip_forward") is None
    assert sysctl(p, sut, "net/bridge/bridge-nf-call-iptables") == "0"
    [br] = p.bridges
    assert br.ns == sut and set(br.ports) == {f"vrl{RUN_ID}-sin", f"vrl{RUN_ID}-sout"}
    macs = mac_of(p)
    # a static entry on each port for the host behind it: the bridge never floods or learns
    want = {(f"vrl{RUN_ID}-sin", macs[(p.traffic.tg_ns, p.traffic.tg_dev)]),
            (f"vrl{RUN_ID}-sout", macs[(p.traffic.ts_ns, p.traffic.ts_dev)])}
    assert {(f.dev, f.mac) for f in p.fdb} == want
    assert all(f.ns == sut for f in p.fdb)
    [r0] = p.traffic.routers
    assert r0.dst_mac == macs[(p.traffic.ts_ns, p.traffic.ts_dev)], "frames address the sink"


@pytest.mark.parametrize("name", ["native-hybrid", "host-bridged", "guest-bridged"])
def test_hybrid_bridges_have_static_fdb_for_every_port(name: str) -> None:
    p = make_plan(scenario(name), RUN_ID)
    ports = {port for br in p.bridges for port in br.ports}
    assert {f.dev for f in p.fdb} == ports
    assert sysctl(p, p.sut_ns, "net/bridge/bridge-nf-call-iptables") == "0"


def test_calibration_plan_has_only_tg_and_ts() -> None:
    p = calibration_plan(RUN_ID)
    assert sorted(n.role for n in p.namespaces) == ["tg", "ts"]
    assert p.sut_ns == "" and p.guest_ns == () and p.bridges == ()
    [v] = p.veths
    assert {v.a_ns, v.b_ns} == {p.traffic.tg_ns, p.traffic.ts_ns}
    assert not any(s.key == "net/ipv4/ip_forward" for s in p.sysctls)
    assert p.traffic.routers[0].dst_mac == mac_of(p)[(p.traffic.ts_ns, p.traffic.ts_dev)]


@pytest.mark.parametrize("p", [p for _, p in PLANS], ids=IDS)
def test_ipv6_is_off_in_every_namespace(p: Plan) -> None:
    for n in p.namespaces:
        for key in ("all", "default"):
            assert sysctl(p, n.name, f"net/ipv6/conf/{key}/disable_ipv6") == "1"
