"""The IPv6 side of the batch pipeline against a per-frame reference router written the slow,
obvious way (struct, ipaddress, a linear scan for the longest prefix, RFC 4291's address rules
as Linux applies them), on thousands of varied frames from
:mod:`vrlab.engines.userspace.framezoo6`; batches mixing both families; the IPv6 longest-prefix
match against brute force; IPv6 routes in configs and from plans. No root needed."""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass

import numpy as np
import pytest
from test_forward import (
    NEXT_HOP,
    PORT_MACS,
    UNROUTED,
    batch,
    reference,
    reference_routers,
    sent,
    zoo,
)

from vrlab import spec
from vrlab.engines.userspace.config import EngineConfig
from vrlab.engines.userspace.errors import EngineConfigError, LpmError
from vrlab.engines.userspace.forward import USERSPACE_REASONS, Pipeline
from vrlab.engines.userspace.framezoo import Addressing, ZooFrame
from vrlab.engines.userspace.framezoo6 import Ip6Fields, Zoo6, interleave
from vrlab.engines.userspace.fromplan import guest_config, shared_config
from vrlab.engines.userspace.lpm6 import Lpm6, address_words
from vrlab.plan import addressing, wiring
from vrlab.plan.transforms import kernel_forwarding_off, with_router_macs
from vrlab.traffic.frames import mac_bytes

ROUTED4 = ("198.19.0.0/24", "10.0.0.0/8")
ROUTED6 = ("2001:2:0:100::/64", "2001:2:0:101::/64", "2001:db8:aa::/48",
           "2001:db8:aa:5::/64", "2001:db8:aa:5::7/128", "2001:db8:bb::/56")
UNROUTED6 = ("2001:2:0:1ff::/64", "2001:db8:cc::/48", "3fff:1::/32")
SRC6 = ("2001:2::1", "2001:db8:1::7", "fd00::5")


def dual_router(routes6: tuple[str, ...] = ROUTED6) -> EngineConfig:
    """Router r0: in on "in", IPv4 and IPv6 routes out of "out" (or "aux" for 10/8 and
    2001:db8:bb::/56), one next hop."""
    def port(p: str) -> str:
        return "aux" if p.startswith(("10.", "2001:db8:bb")) else "out"
    return EngineConfig.from_dict({
        "name": "t6", "ports": ["in", "out", "aux"],
        "routers": [{"name": "r0",
                     "interfaces": [{"port": "in"}, {"port": "out"}, {"port": "aux"}],
                     "routes": [{"prefix": p, "port": port(p), "via_mac": NEXT_HOP}
                                for p in (*ROUTED4, *routes6)]}]})


def zoo6(seed: int, routed6: tuple[str, ...] = ROUTED6) -> Zoo6:
    return Zoo6(Addressing(router_mac=PORT_MACS["in"], src_mac="02:00:00:00:00:aa",
                           src_ips=("198.18.0.1",), routed=ROUTED4, unrouted=UNROUTED,
                           src_ips6=SRC6, routed6=routed6, unrouted6=UNROUTED6), seed=seed)


# --------------------------------------------------------------------------- the reference


def _linklocal(a: ipaddress.IPv6Address) -> bool:
    return a in ipaddress.IPv6Network("fe80::/10")


def reference6(frame: bytes, port: str, config: EngineConfig
               ) -> tuple[str, str | None, bytes | None]:
    """(reason, out port, frame sent) for one IPv6 frame of router r0, as Linux decides:
    ip6_rcv_core, the route lookup, ip6_forward, in that order."""
    if len(frame) < 14:
        return "too_short", None, None
    (r,) = config.routers
    macs = {i.port: mac_bytes(i.mac or PORT_MACS[i.port]) for i in r.interfaces}
    if frame[12:14] != b"\x86\xdd":
        raise ValueError("not an IPv6 frame")
    if macs.get(port) != frame[:6]:
        return "other_host", None, None
    if len(frame) < 54:
        return "too_short", None, None
    if frame[14] >> 4 != 6:
        return "bad_header", None, None
    payload, nxt, hops = struct.unpack("!HBB", frame[18:22])
    src = ipaddress.IPv6Address(frame[22:38])
    dst = ipaddress.IPv6Address(frame[38:54])
    loop = ipaddress.IPv6Address("::1")
    if (src == loop or dst == loop or src.is_multicast
            or (dst.is_multicast and frame[39] & 0x0F in (0, 1))):
        return "martian", None, None
    if 40 + payload > len(frame) - 14:
        return "too_short", None, None
    if nxt == 0:
        return "hop_by_hop", None, None
    if dst.is_multicast or _linklocal(dst):
        return "martian", None, None
    routes = [(ipaddress.IPv6Network(rt.prefix), rt.port, mac_bytes(rt.via_mac))
              for rt in r.routes if ":" in rt.prefix]
    best = max((x for x in routes if dst in x[0]), key=lambda x: x[0].prefixlen, default=None)
    if best is None:
        return "no_route", None, None
    if hops <= 1:
        return "ttl_expired", None, None
    if src == ipaddress.IPv6Address("::") or _linklocal(src):
        return "martian", None, None
    _, out, via = best
    ip = bytearray(frame[14:54 + payload])
    ip[7] -= 1
    return "forwarded", out, via + macs[out] + frame[12:14] + bytes(ip)


def check(frames: list[ZooFrame], config: EngineConfig) -> set[str]:
    """Run ``frames`` (of either family) through the pipeline in one batch and compare every
    verdict and every rewritten frame with the references; return the reasons seen."""
    pipe = Pipeline(config, PORT_MACS)
    ref4 = reference_routers(config)
    data = [f.data for f in frames]
    hdr, ln = batch(data)
    v = pipe.forward(hdr, ln, 0)
    seen = set()
    for i, f in enumerate(frames):
        if f.data[12:14] == b"\x86\xdd":
            reason, out, wire = reference6(f.data, "in", config)
        else:
            reason, _, out, wire = reference(f.data, "in", ref4)
        assert reason == f.expect, f"zoo and reference disagree on {f.what}"
        got = USERSPACE_REASONS[v.reason[i]]
        assert got == reason, f"frame {i} ({f.what}): pipeline {got}, reference {reason}"
        if reason == "forwarded":
            assert config.ports[v.out_port[i]] == out, f.what
            assert sent(data, hdr, v, i) == wire, f"frame {i} ({f.what}) rewritten wrong"
        else:
            assert v.out_port[i] == -1, f.what
        seen.add(reason)
    return seen


# --------------------------------------------------------------------------- the pipeline


@pytest.mark.parametrize("seed", [1, 2])
def test_ipv6_pipeline_matches_the_reference_router_on_varied_frames(seed: int) -> None:
    seen = check(zoo6(seed).frames(2000, hop_by_hop=True), dual_router())
    assert seen == set(USERSPACE_REASONS) - {"unreadable", "bad_checksum"}, \
        "the zoo missed a kind of IPv6 frame"


def test_a_batch_mixing_both_families_is_decided_per_family() -> None:
    """The dual-stack mix, frame by frame: IPv4 frames as the IPv4 reference says, IPv6
    frames as the IPv6 one does, every rewrite in its own row."""
    z4 = zoo(11)
    z4.a = Addressing(router_mac=PORT_MACS["in"], src_mac="02:00:00:00:00:aa",
                      src_ips=("198.18.0.1", "192.0.2.7"), routed=ROUTED4, unrouted=UNROUTED)
    frames = interleave(z4.frames(1000), zoo6(12).frames(1000, hop_by_hop=True))
    seen = check(frames, dual_router())
    assert {"bad_checksum", "hop_by_hop", "forwarded", "not_ip"} <= seen


def test_a_clean_ipv6_batch_takes_the_fast_path_and_goes_down_one_hop() -> None:
    pipe = Pipeline(dual_router(routes6=("2001:2:0:100::/64",)), PORT_MACS)
    z = zoo6(3, routed6=("2001:2:0:100::/64",))
    frames = [z._frame6(*z.valid6()[:2], pad=z.rng.choice((0, 0, 7))) for _ in range(300)]
    hdr, ln = batch(frames)
    before = hdr.copy()
    v = pipe.forward(hdr, ln, 0)
    assert v.clean and (v.out_port == 1).all() and (v.reason == 0).all()
    assert (hdr[:, 21] == before[:, 21] - 1).all()
    assert (hdr[:, 14:21] == before[:, 14:21]).all() and (hdr[:, 22:] == before[:, 22:]).all()
    payload = before[:, 18:20].view(">u2")[:, 0]
    assert (v.out_len == 54 + payload).all(), "the datagram, without Ethernet padding"
    for i in range(len(frames)):
        assert sent(frames, hdr, v, i) == reference6(frames[i], "in", pipe.config)[2]


@pytest.mark.parametrize("kind", ["_hops6", "_no_route6", "_martian6", "_short_payload6",
                                  "_short_frame6", "_version6", "_not_ip6", "_other_host6",
                                  "hop_by_hop6"])
def test_one_bad_ipv6_frame_in_a_clean_batch_is_caught(kind: str) -> None:
    """The IPv6 fast path must notice each defect on its own."""
    pipe = Pipeline(dual_router(), PORT_MACS)
    z = zoo6(7)
    for _ in range(20):
        bad = getattr(z, kind)()
        frames = [z._frame6(*z.valid6()[:2]) for _ in range(40)]
        hdr, ln = batch(frames)
        assert pipe.forward(hdr, ln, 0).clean
        frames.insert(17, bad.data)
        hdr, ln = batch(frames)
        v = pipe.forward(hdr, ln, 0)
        assert not v.clean and v.one_port is None
        assert USERSPACE_REASONS[v.reason[17]] == bad.expect, bad.what
        assert (np.delete(v.reason, 17) == 0).all()


@pytest.mark.parametrize(("hops", "dst", "want"), [
    (64, "2001:2:0:100::5", "forwarded"),
    (2, "2001:2:0:100::5", "forwarded"),
    (1, "2001:2:0:100::5", "ttl_expired"),
    (0, "2001:2:0:100::5", "ttl_expired"),
    (1, "2001:db8:cc::5", "no_route"),  # the route lookup comes before the hop limit
    (0, "2001:db8:cc::5", "no_route"),
])
def test_hop_limit_is_checked_after_the_route_lookup(hops: int, dst: str, want: str) -> None:
    pipe = Pipeline(dual_router(), PORT_MACS)
    z = zoo6(8)
    ip, body, _ = z.valid6(dst=dst, hop_limit=hops)
    hdr, ln = batch([z._frame6(ip, body)])
    v = pipe.forward(hdr, ln, 0)
    assert USERSPACE_REASONS[v.reason[0]] == want
    if want == "forwarded":
        assert hdr[0, 21] == hops - 1


@pytest.mark.parametrize(("src", "hops", "want"), [
    ("fe80::1", 64, "martian"), ("::", 64, "martian"),
    ("fe80::1", 1, "ttl_expired"), ("::", 1, "ttl_expired"),  # ip6_forward: hop limit first
    ("ff02::1", 1, "martian"), ("::1", 0, "martian"),  # ip6_rcv_core: before everything
])
def test_source_addresses_are_refused_where_the_kernel_refuses_them(src: str, hops: int,
                                                                    want: str) -> None:
    pipe = Pipeline(dual_router(), PORT_MACS)
    z = zoo6(9)
    ip, body, _ = z.valid6(src=src, dst="2001:2:0:100::5", hop_limit=hops)
    hdr, ln = batch([z._frame6(ip, body)])
    assert USERSPACE_REASONS[pipe.forward(hdr, ln, 0).reason[0]] == want


def test_a_payload_length_past_the_frame_is_too_short_and_one_short_of_it_is_trimmed() -> None:
    pipe = Pipeline(dual_router(), PORT_MACS)
    z = zoo6(10)
    ip, body, _ = z.valid6(dst="2001:2:0:100::9", body_len=20, extensions=False)
    f = Ip6Fields.parse(ip)
    frames = [z._frame6(Ip6Fields(**{**f.__dict__, "payload": p}).pack(), body)
              for p in (21, 20, 19, 0)]
    hdr, ln = batch(frames)
    v = pipe.forward(hdr, ln, 0)
    assert [USERSPACE_REASONS[r] for r in v.reason] == ["too_short"] + ["forwarded"] * 3
    assert v.out_len[1:].tolist() == [74, 73, 54]


def test_an_engine_without_ipv6_routes_has_no_route_for_ipv6() -> None:
    cfg = EngineConfig.from_dict({**dual_router().to_dict(), "routers": [
        {"name": "r0", "interfaces": [{"port": "in"}, {"port": "out"}],
         "routes": [{"prefix": "198.19.0.0/24", "port": "out", "via_mac": NEXT_HOP}]}]})
    pipe = Pipeline(cfg, PORT_MACS)
    z = zoo6(13)
    hdr, ln = batch([z._frame6(*z.valid6()[:2]) for _ in range(5)])
    assert (pipe.forward(hdr, ln, 0).reason == USERSPACE_REASONS.index("no_route")).all()


def test_routers_sharing_a_port_keep_to_their_own_ipv6_tables() -> None:
    cfg = EngineConfig.from_dict({"name": "two", "ports": ["in", "out", "aux"], "routers": [
        {"name": "r0", "interfaces": [{"port": "in", "mac": "02:00:00:00:10:00"},
                                      {"port": "out", "mac": "02:00:00:00:10:00"}],
         "routes": [{"prefix": "2001:db8::/32", "port": "out",
                     "via_mac": "02:00:00:00:20:00"}]},
        {"name": "r1", "interfaces": [{"port": "in", "mac": "02:00:00:00:10:01"},
                                      {"port": "aux", "mac": "02:00:00:00:10:01"}],
         "routes": [{"prefix": "2001:db8::/32", "port": "aux", "via_mac": "02:00:00:00:20:01"},
                    {"prefix": "2001:db9::/32", "port": "aux",
                     "via_mac": "02:00:00:00:20:01"}]}]})
    pipe = Pipeline(cfg, PORT_MACS)
    frames, want = [], []
    for mac, dst, reason, out in [("02:00:00:00:10:00", "2001:db8::1", "forwarded", 1),
                                  ("02:00:00:00:10:01", "2001:db8::1", "forwarded", 2),
                                  ("02:00:00:00:10:00", "2001:db9::1", "no_route", -1),
                                  ("02:00:00:00:10:01", "2001:db9::1", "forwarded", 2)]:
        ip = Ip6Fields(payload=8, src="2001:2::1", dst=dst).pack()
        frames.append(mac_bytes(mac) + mac_bytes("02:00:00:00:00:aa") + b"\x86\xdd" + ip
                      + bytes(8))
        want.append((reason, out))
    hdr, ln = batch(frames)
    v = pipe.forward(hdr, ln, np.zeros(len(frames), np.intp))
    assert [(USERSPACE_REASONS[r], int(o)) for r, o in zip(v.reason, v.out_port,
                                                            strict=True)] == want
    assert v.router.tolist() == [0, 1, 0, 1]
    assert bytes(hdr[1, :12]) == mac_bytes("02:00:00:00:20:01") + mac_bytes("02:00:00:00:10:01")


# --------------------------------------------------------------------------- the IPv6 LPM


@dataclass(frozen=True)
class _Route:
    table: int
    net: int
    plen: int
    nh: int


def _random_routes(rng: np.random.Generator, tables: int, per_table: int) -> list[_Route]:
    """Prefixes of every length from /8 (the default route is tested on its own), many nested
    in a few covering ones (so longer and shorter
    matches compete), the same prefix in several tables with other next hops."""
    bases = [int.from_bytes(rng.bytes(16), "big") for _ in range(4)]
    out = []
    for t in range(tables):
        for _ in range(per_table):
            plen = int(rng.integers(8, 129))
            a = int.from_bytes(rng.bytes(16), "big")
            if rng.random() < 0.8:  # under one of the bases, sharing its first 16-100 bits
                keep = int(rng.integers(16, 101))
                a = (bases[int(rng.integers(4))] >> (128 - keep) << (128 - keep)) | (
                    a & ((1 << (128 - keep)) - 1))
            net = a >> (128 - plen) << (128 - plen) if plen else 0
            out.append(_Route(t, net, plen, int(rng.integers(1, 32768))))
    return out


def _brute(routes: list[_Route], table: int, addr: int) -> int:
    best, nh = -1, 0
    by_prefix = {(r.net, r.plen): r.nh for r in routes if r.table == table}  # last wins
    for (net, plen), hop in by_prefix.items():
        if plen > best and (addr >> (128 - plen) << (128 - plen) if plen else 0) == net:
            best, nh = plen, hop
    return nh


def _tables(routes: list[_Route], n: int) -> list[list[tuple[str, int]]]:
    out: list[list[tuple[str, int]]] = [[] for _ in range(n)]
    for r in routes:
        out[r.table].append((str(ipaddress.IPv6Network((r.net, r.plen))), r.nh))
    return out


def _words(addrs: list[int]) -> tuple[np.ndarray, np.ndarray]:
    raw = np.frombuffer(b"".join(a.to_bytes(16, "big") for a in addrs), np.uint8)
    return address_words(raw.reshape(-1, 16))


@pytest.mark.parametrize(("tables", "seed"), [(1, 1), (1, 2), (4, 3)])
def test_lpm6_matches_brute_force_on_random_prefixes(tables: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    routes = _random_routes(rng, tables, 400)
    fib = Lpm6(_tables(routes, tables))
    addrs = []
    for r in routes:  # an address under every route, and random ones
        addrs.append(r.net | (int.from_bytes(rng.bytes(16), "big") & ((1 << (128 - r.plen)) - 1)))
    addrs += [int.from_bytes(rng.bytes(16), "big") for _ in range(500)]
    which = rng.integers(0, tables, len(addrs))
    hi, lo = _words(addrs)
    got = fib.lookup(which if tables > 1 else 0, hi, lo)
    want = [_brute(routes, int(t), a) for t, a in zip(which, addrs, strict=True)]
    assert got.tolist() == want
    assert 0 in want and len(set(want)) > 100, "the check must see misses and many next hops"


def test_lpm6_the_longest_of_nested_prefixes_wins_and_the_default_catches_the_rest() -> None:
    fib = Lpm6([[("::/0", 1), ("2001:db8::/32", 2), ("2001:db8:0:1::/64", 3),
                 ("2001:db8:0:1::8/125", 4), ("2001:db8:0:1::9/128", 5),
                 ("2001:db8:0:1::/64", 6)]])  # a prefix given twice keeps the last
    addrs = [int(ipaddress.IPv6Address(a)) for a in (
        "3fff::1", "2001:db8:5::1", "2001:db8:0:1::1", "2001:db8:0:1::c", "2001:db8:0:1::9",
        "2001:db8:0:1::10")]
    assert fib.lookup(0, *_words(addrs)).tolist() == [1, 2, 6, 4, 5, 6]
    assert fib.lengths == (128, 125, 64, 32, 0)


def test_lpm6_builds_a_hundred_thousand_routes_and_finds_them() -> None:
    rng = np.random.default_rng(5)
    lens = rng.choice([32, 40, 44, 48, 48, 48, 56, 64, 128], 100_000)
    nets = [int.from_bytes(rng.bytes(16), "big") >> (128 - int(p)) << (128 - int(p))
            for p in lens]
    nhs = rng.integers(1, 32768, len(nets))
    fib = Lpm6([[(ipaddress.IPv6Network((n, int(p))), int(h))
                 for n, p, h in zip(nets, lens, nhs, strict=True)]])
    pick = rng.integers(0, len(nets), 2000)
    addrs = [nets[i] | 1 if lens[i] < 128 else nets[i] for i in pick]
    got = fib.lookup(0, *_words(addrs)).tolist()
    # The reference: the address's own prefix at each length present, longest first, looked
    # up in a dict of every route (a prefix drawn twice keeps its last next hop, as the table).
    index = {(n, int(p)): int(h) for n, p, h in zip(nets, lens, nhs, strict=True)}
    assert fib.routes == len(index)
    present = sorted({int(x) for x in lens}, reverse=True)
    for a, g in zip(addrs, got, strict=True):
        want = 0
        for plen in present:
            nh = index.get((a >> (128 - plen) << (128 - plen), plen))
            if nh is not None:
                want = nh
                break
        assert g == want


def test_lpm6_refuses_what_it_cannot_hold() -> None:
    with pytest.raises(LpmError, match="at least one"):
        Lpm6([])
    with pytest.raises(LpmError, match="bad IPv6 prefix"):
        Lpm6([[("2001:db8::1/32", 1)]])
    with pytest.raises(LpmError, match="out of range"):
        Lpm6([[("2001:db8::/32", 0)]])
    assert Lpm6([[]]).lookup(0, *_words([1])).tolist() == [0]


# --------------------------------------------------------------------------- configs


def test_config_takes_ipv6_routes_and_names_a_bad_one() -> None:
    cfg = dual_router()
    assert [r.prefix for r in cfg.routers[0].routes][-1] == "2001:db8:bb::/56"
    data = cfg.to_dict()
    data["routers"][0]["routes"] += [
        {"prefix": "2001:db8::1/32", "port": "out", "via_mac": NEXT_HOP},
        {"prefix": "2001:db8::/129", "port": "out", "via_mac": NEXT_HOP}]
    with pytest.raises(EngineConfigError) as e:
        EngineConfig.from_dict(data)
    problems = dict(e.value.problems)
    n = len(cfg.routers[0].routes)
    assert "not an IPv6 prefix" in problems[f"routers[0].routes[{n}].prefix"]
    assert "host bits" in problems[f"routers[0].routes[{n}].prefix"]
    assert "not an IPv6 prefix" in problems[f"routers[0].routes[{n + 1}].prefix"]


@pytest.mark.parametrize("ip", [6, 46])
def test_shared_config_routes_each_routers_ipv6_prefix_too(ip: int) -> None:
    sc, _ = spec.load("native-routed", {"traffic.routers": 3, "traffic.ip": ip})
    p = with_router_macs(wiring.make_plan(sc, "ab12"))
    cfg = shared_config(p)
    ts_mac = next(v.b_mac for v in p.veths if v.b == p.traffic.ts_dev)
    for i, r in enumerate(cfg.routers):
        assert [(x.prefix, x.port, x.via_mac) for x in r.routes] == [
            (addressing.router_prefix(i), "vrlab12-sout", ts_mac),
            (addressing.router_prefix6(i), "vrlab12-sout", ts_mac)]


def test_an_ipv4_plan_gives_ipv4_routes_only() -> None:
    sc, _ = spec.load("native-routed")
    (r,) = shared_config(wiring.make_plan(sc, "ab12")).routers
    assert [":" in x.prefix for x in r.routes] == [False]


@pytest.mark.parametrize("scenario", ["guest-routed", "guest-bridged"])
def test_guest_config_routes_ipv6_through_the_guest(scenario: str) -> None:
    sc, _ = spec.load(scenario, {"sut.guests": 2, "sut.guest_kind": "userspace",
                                 "traffic.ip": 6})
    p = wiring.make_plan(sc, "ab12")
    cfg = guest_config(p, "g2")
    (r,) = cfg.routers
    six = [x for x in r.routes if ":" in x.prefix]
    assert [x.prefix for x in six] == [addressing.router_prefix6(1)]
    assert six[0].port == "vrlab12-g2b"
    # the next hop's MAC is the one the plan's IPv6 neighbour entry holds
    nb = {(n.dev, n.ip): n.mac for n in p.neighbours if n.ns == p.guest_ns[1]}
    assert six[0].via_mac in nb.values()


def test_forwarding_off_covers_ipv6_in_an_ipv6_plan() -> None:
    sc, _ = spec.load("native-routed", {"traffic.ip": 46})
    p = wiring.make_plan(sc, "ab12")
    off = kernel_forwarding_off(p, [p.sut_ns])
    sut = {s.key: s.value for s in off.sysctls if s.ns == p.sut_ns}
    assert sut["net/ipv4/ip_forward"] == "0"
    assert sut["net/ipv6/conf/all/forwarding"] == "0"
    assert sut["net/ipv6/conf/default/forwarding"] == "0"
