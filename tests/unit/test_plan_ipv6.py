"""Scenarios with IPv6 frames as plans (pure data, no root): every IPv4 object of the testbed
gets its IPv6 twin in RFC 5180's 2001:2::/48, the SUT forwards IPv6, and what cannot run IPv6
refuses it by name before anything is built."""

from __future__ import annotations

import ipaddress

import pytest

from vrlab import spec
from vrlab.errors import SpecError
from vrlab.plan import wiring
from vrlab.plan.addressing import BENCH_NET6, router_prefix6, subnet6
from vrlab.plan.model import Plan
from vrlab.plan.shared import platform_spec


def plan(name: str, **o: object) -> Plan:
    sc, _ = spec.load(name, {f"traffic.{k}" if k in ("ip", "routers", "frame_size")
                             else f"sut.{k}": v for k, v in o.items()})
    return wiring.make_plan(sc, "t6")


def v6(items: object) -> list[str]:
    return [x for x in map(str, items) if ":" in x]  # type: ignore[call-overload]


def test_addresses_mirror_the_ipv4_plan_in_rfc5180_range() -> None:
    assert router_prefix6(0) == "2001:2:0:100::/64"
    assert router_prefix6(255) == "2001:2:0:1ff::/64"
    assert subnet6(1) == ipaddress.IPv6Network("2001:2:0:1::/64")
    assert all(ipaddress.IPv6Network(router_prefix6(k)).subnet_of(BENCH_NET6)
               for k in range(256))


@pytest.mark.parametrize("name", spec.builtin_names())
def test_every_builtin_scenario_plans_ipv6_routers_and_addresses(name: str) -> None:
    p = plan(name, ip=6)
    t = p.traffic
    assert t.ip == 6 and t.src_ip6 == "2001:2::1"
    assert [r.prefix6 for r in t.routers] == [router_prefix6(k) for k in range(len(t.routers))]
    assert all(ipaddress.ip_interface(a.cidr).network.subnet_of(BENCH_NET6)
               for a in p.addresses if ":" in a.cidr)
    if p.platform is None:
        assert {a.cidr for a in p.addresses} >= {"2001:2::1/64"}


def test_an_ipv4_plan_has_no_ipv6_at_all() -> None:
    p = plan("guest-routed", ip=4)
    assert not [a for a in p.addresses if ":" in a.cidr]
    assert not [r for r in p.routes if ":" in r.dst]
    assert {s.value for s in p.sysctls if s.key.endswith("disable_ipv6")} == {"1"}
    assert all(r.prefix6 == "" for r in p.traffic.routers)


def test_the_sut_and_forwarding_guests_forward_ipv6_without_dad() -> None:
    p = plan("guest-routed", ip=6, guests=2)
    fwd = {s.ns for s in p.sysctls if s.key == "net/ipv6/conf/all/forwarding" and s.value == "1"}
    assert fwd == {p.sut_ns, *p.guest_ns}
    for ns in (n.name for n in p.namespaces):
        keys = {s.key: s.value for s in p.sysctls if s.ns == ns}
        assert keys["net/ipv6/conf/default/disable_ipv6"] == "0"
        assert keys["net/ipv6/conf/default/accept_dad"] == "0"


def test_routed_guests_get_an_ipv6_rule_and_route_per_router() -> None:
    p = plan("guest-routed", ip=6, guests=2)
    assert sorted((r.iif, r.family) for r in p.rules) == sorted(
        (r.iif, f) for r in p.rules if r.family == 4 for f in (4, 6))
    for k, r in enumerate(p.traffic.routers):
        hops = [(rt.ns, rt.via) for rt in p.routes if rt.dst == r.prefix6]
        g = k + 1
        assert hops == [(p.sut_ns, str(subnet6(2 * g)[1])),
                        (p.guest_ns[k], str(subnet6(2 * g + 1)[254]))]
    assert {rt.dst for rt in p.routes if rt.table == wiring.RETURN_TABLE} == {
        "198.19.0.0/16", "2001:2:0:100::/56"}


def test_dual_stack_keeps_both_families() -> None:
    p = plan("native-routed", ip=46, routers=2)
    assert len(v6(rt.dst for rt in p.routes)) == 3  # tg's aggregate and one per router
    assert len([rt for rt in p.routes if ":" not in rt.dst]) == 3


def test_shared_routers_get_the_same_ipv6_addresses_and_their_own_prefix() -> None:
    p = plan("shared", ip=6, routers=2)
    assert p.platform is not None
    d = platform_spec(2, "shared", "02:00:00:00:00:04", "02:00:00:00:00:01", six=True)
    for k, r in enumerate(d["routers"]):
        assert [(pt["address"], pt["addresses"]) for pt in r["ports"]] == [
            ("198.18.0.254/24", ["2001:2::fe/64"]), ("198.18.1.254/24", ["2001:2:0:1::fe/64"])]
        routes = [rt["to"] for rt in r["control_plane"]["routes"]]
        assert routes == [f"198.19.{k}.0/24", router_prefix6(k)]
    assert p.platform.has_ipv6
    sut = {s.key: s.value for s in p.sysctls if s.ns == p.sut_ns}
    assert sut["net/ipv6/conf/default/addr_gen_mode"] == "1"  # the engine is no host
    assert sut["net/ipv6/conf/all/forwarding"] == "1"


@pytest.mark.parametrize(("name", "o", "field"), [
    ("native-routed", {"frame_size": 70}, "traffic.frame_size"),
])
def test_what_cannot_run_ipv6_refuses_it_by_name(name: str, o: dict[str, object],
                                                  field: str) -> None:
    with pytest.raises(SpecError) as e:
        plan(name, ip=6, **o)
    assert field in str(e.value)


def test_frame_size_defaults_to_the_ip_versions_smallest() -> None:
    assert spec.load("native-routed")[0].traffic.size == 60
    assert spec.load("native-routed", {"traffic.ip": 6})[0].traffic.size == 74
    assert spec.load("native-routed", {"traffic.ip": 46})[0].traffic.size == 74
    assert spec.load("native-routed", {"traffic.ip": 6, "traffic.frame_size": 128})[
        0].traffic.size == 128


def test_reproduce_refuses_ipv6_for_figures_that_cannot_run_it_before_building(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from vrlab.errors import UsageError
    from vrlab.paper import reproduce

    for ip in (6, 46):  # every figure runs with IPv6, the userspace ones too
        reproduce.refuse_ip(["fig5", "fig9", "fig9u", "fig10u", "fig12"], ip)
    real = reproduce._load

    def load(key: object, ip: int = 4) -> object:
        if getattr(key, "guest_kind", None) == "userspace" and ip != 4:
            raise SpecError("test", [("traffic.ip", "refused for this test")])
        return real(key, ip)  # type: ignore[arg-type]

    monkeypatch.setattr(reproduce, "_load", load)
    with pytest.raises(UsageError) as e:
        reproduce.refuse_ip(["fig5", "fig9u"], 6)
    assert "fig9u" in str(e.value) and "--only fig5" in str(e.value)
    assert "traffic.ip" in str(e.value)
    reproduce.refuse_ip(["fig9u"], 4)


@pytest.mark.parametrize(("name", "o"), [
    ("guest-routed", {"guests": 2, "guest_kind": "userspace"}),
    ("mixed-bridged", {"guests": 2, "guest_kind": "userspace"}),
    ("shared", {"engine": "userspace"}),
])
@pytest.mark.parametrize("ip", [6, 46])
def test_userspace_engines_take_ipv6_with_kernel_forwarding_off_for_both_families(
        name: str, o: dict[str, object], ip: int) -> None:
    p = plan(name, ip=ip, **o)
    assert p.userspace_engines and all(r.prefix6 for r in p.traffic.routers)
    engine_ns = [p.sut_ns] if p.userspace_engines == ("shared",) else [
        n for n in p.guest_ns if any(n.endswith(f"-{g}") for g in p.userspace_engines)]
    for ns in engine_ns:
        got = {s.key: s.value for s in p.sysctls if s.ns == ns}
        assert got["net/ipv4/ip_forward"] == got["net/ipv6/conf/all/forwarding"] == "0"


@pytest.mark.parametrize("ip", [6, 46])
def test_the_direct_link_carries_the_scenarios_ip_version(ip: int) -> None:
    """A latency floor with IPv6 frames: tg→ts alone, the sink counting r0's IPv6 prefix."""
    p = wiring.calibration_plan("t6", ip)
    t = p.traffic
    assert t.ip == ip and t.src_ip6 == "2001:2::1"
    assert [r.prefix6 for r in t.routers] == [router_prefix6(0)]
    assert v6(a.cidr for a in p.addresses) == ["2001:2::1/64", "2001:2::2/64"]
    assert v6(r.dst for r in p.routes) == ["2001:2:0:100::/56"]
    four = wiring.calibration_plan("t4")
    assert four.traffic.ip == 4 and four.traffic.src_ip6 == "" and not v6(
        a.cidr for a in four.addresses)
