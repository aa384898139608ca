"""The batch pipeline against a per-frame reference router written the slow, obvious way (struct,
ipaddress, a linear scan for the longest prefix, a full checksum recomputation), on thousands of
varied frames from :mod:`vrlab.engines.userspace.framezoo`; plus the fused FIB against separate
tables,
routers kept apart, and the config's refusals. No root needed."""

from __future__ import annotations

import ipaddress
import json
import struct
from dataclasses import dataclass

import numpy as np
import pytest

from vrlab.engines.userspace.config import EngineConfig
from vrlab.engines.userspace.errors import EngineConfigError, LpmError
from vrlab.engines.userspace.fib import FusedFib
from vrlab.engines.userspace.forward import HDR_BYTES, USERSPACE_REASONS, Pipeline, Verdict
from vrlab.engines.userspace.framezoo import EDGE_CHECKSUMS, Addressing, IpFields, Zoo
from vrlab.engines.userspace.lpm import LpmTable
from vrlab.errors import VrlabError
from vrlab.traffic.frames import inet_checksum, mac_bytes

PORT_MACS = {"in": "02:00:00:00:00:01", "out": "02:00:00:00:00:02", "aux": "02:00:00:00:00:03"}
NEXT_HOP = "02:00:00:00:00:99"
ROUTED = ("198.19.0.0/24", "198.19.1.0/25", "198.19.1.128/26", "10.0.0.0/8", "10.20.0.0/16")
UNROUTED = ("198.19.2.0/24", "203.0.113.0/24", "240.0.0.0/8")


def one_router(routes: tuple[str, ...] = ROUTED, **extra: object) -> EngineConfig:
    """Router r0: in on "in" (the port's MAC), out of "out" or "aux" by prefix."""
    return EngineConfig.from_dict({
        "name": "t", "ports": ["in", "out", "aux"],
        "routers": [{"name": "r0",
                     "interfaces": [{"port": "in"}, {"port": "out"}, {"port": "aux"}],
                     "routes": [{"prefix": p, "port": "aux" if p.startswith("10.") else "out",
                                 "via_mac": NEXT_HOP} for p in routes]}],
        **extra})


# --------------------------------------------------------------------------- the reference


@dataclass(frozen=True)
class RefRouter:
    name: str
    macs: dict[str, bytes]  # port -> this router's MAC there
    routes: list[tuple[ipaddress.IPv4Network, str, bytes]]  # prefix, out port, next-hop MAC


def _martian(a: ipaddress.IPv4Address) -> bool:
    """Linux >= 5.3: of 0/8 only 0.0.0.0 itself (the rest is unicast)."""
    return int(a) in (0, 0xFFFFFFFF) or int(a) >> 24 == 127 or a.is_multicast


def reference(frame: bytes, port: str, routers: list[RefRouter]
              ) -> tuple[str, str | None, str | None, bytes | None]:
    """(reason, router, out port, frame sent) for one frame, as RFC 1812 and Linux decide."""
    if len(frame) < 14:
        return "too_short", None, None, None
    router = next((r for r in routers if r.macs.get(port) == frame[:6]), None)
    name = None if router is None else router.name  # counted against it, whatever happens
    if frame[12:14] != b"\x08\x00":
        return "not_ip", name, None, None
    if router is None:
        return "other_host", None, None, None
    if len(frame) < 34:
        return "too_short", name, None, None
    ver, ihl = frame[14] >> 4, frame[14] & 15
    if ver != 4 or ihl < 5 or len(frame) < 14 + 4 * ihl:
        return "bad_header", name, None, None
    if inet_checksum(frame[14:14 + 4 * ihl]) != 0:
        return "bad_checksum", name, None, None
    total = struct.unpack("!H", frame[16:18])[0]
    if total > len(frame) - 14:
        return "too_short", name, None, None
    if total < 4 * ihl:
        return "bad_header", name, None, None
    src = ipaddress.IPv4Address(frame[26:30])
    dst = ipaddress.IPv4Address(frame[30:34])
    if _martian(src) or _martian(dst):
        return "martian", name, None, None
    best = max((r for r in router.routes if dst in r[0]), key=lambda r: r[0].prefixlen,
               default=None)
    if best is None:
        return "no_route", name, None, None
    if frame[22] <= 1:
        return "ttl_expired", name, None, None
    _, out, via = best
    ip = bytearray(frame[14:14 + total])
    ip[8] -= 1
    ip[10:12] = b"\0\0"
    ip[10:12] = struct.pack("!H", inet_checksum(bytes(ip[:4 * ihl])))
    return "forwarded", name, out, via + router.macs[out] + frame[12:14] + bytes(ip)


def reference_routers(config: EngineConfig) -> list[RefRouter]:
    out = []
    for r in config.routers:
        macs = {i.port: mac_bytes(i.mac or PORT_MACS[i.port]) for i in r.interfaces}
        routes = [(ipaddress.IPv4Network(rt.prefix), rt.port, mac_bytes(rt.via_mac))
                  for rt in r.routes if ":" not in rt.prefix]  # IPv4's; test_forward6: IPv6
        out.append(RefRouter(r.name, macs, routes))
    return out


# --------------------------------------------------------------------------- helpers


def batch(frames: list[bytes], width: int = HDR_BYTES) -> tuple[np.ndarray, np.ndarray]:
    """Frames as the engine's ring holds them: rows of ``width`` bytes (stale bytes after a
    short frame are garbage, as in a reused slot), and their lengths."""
    hdr = np.full((len(frames), width), 0xA5, np.uint8)
    for i, f in enumerate(frames):
        k = min(len(f), width)
        hdr[i, :k] = np.frombuffer(f[:k], np.uint8)
    return hdr, np.array([len(f) for f in frames], np.uint32)


def sent(frames: list[bytes], hdr: np.ndarray, v: Verdict, i: int) -> bytes:
    """What the engine sends for frame i: the rewritten header row, the rest of the frame as
    it came, cut to the verdict's length."""
    whole = bytes(hdr[i]) + frames[i][hdr.shape[1]:]
    return whole[:int(v.out_len[i])]


def zoo(seed: int, routed: tuple[str, ...] = ROUTED, plain: bool = False) -> Zoo:
    """Frames to the router r0; ``plain``: no source in 0/8 (unicast, but a first byte the
    fast path leaves to the exact checks)."""
    src = ("198.18.0.1", "192.0.2.7", "100.64.1.2") + (() if plain else ("0.1.2.3",))
    return Zoo(Addressing(router_mac=PORT_MACS["in"], src_mac="02:00:00:00:00:aa",
                          src_ips=src, routed=routed, unrouted=UNROUTED), seed=seed)


# --------------------------------------------------------------------------- the pipeline


@pytest.mark.parametrize("seed", [1, 2])
def test_pipeline_matches_the_reference_router_on_varied_frames(seed: int) -> None:
    config = one_router()
    pipe = Pipeline(config, PORT_MACS)
    ref = reference_routers(config)
    frames = zoo(seed).frames(2000)
    data = [f.data for f in frames]
    hdr, ln = batch(data)
    v = pipe.forward(hdr, ln, 0)
    ports = config.ports
    seen = set()
    for i, f in enumerate(frames):
        reason, router, out, wire = reference(f.data, "in", ref)
        assert reason == f.expect, f"zoo and reference disagree on {f.what}"
        got = USERSPACE_REASONS[v.reason[i]]
        assert got == reason, f"frame {i} ({f.what}): pipeline {got}, reference {reason}"
        assert v.router[i] == (-1 if router is None else 0), f.what
        if reason == "forwarded":
            assert ports[v.out_port[i]] == out, f.what
            assert sent(data, hdr, v, i) == wire, f"frame {i} ({f.what}) rewritten wrong"
        else:
            assert v.out_port[i] == -1, f.what
        seen.add(reason)
    assert seen == set(USERSPACE_REASONS) - {"unreadable", "hop_by_hop"}, \
        "the zoo missed a kind of frame"
    assert not v.clean


def test_a_clean_batch_takes_the_fast_path_and_says_so() -> None:
    pipe = Pipeline(one_router(routes=("198.19.0.0/24",)), PORT_MACS)
    z = zoo(3, routed=("198.19.0.0/24",), plain=True)
    frames = []
    for _ in range(300):
        ip, body, _ = z.valid(options=False)
        frames.append(z._frame(ip, body))
    hdr, ln = batch(frames)
    before = hdr.copy()
    v = pipe.forward(hdr, ln, 0)
    assert v.clean and v.one_port == 1 and (v.reason == 0).all()
    assert (hdr[:, 22] == before[:, 22] - 1).all()
    ref = reference_routers(pipe.config)
    for i in range(len(frames)):
        assert sent(frames, hdr, v, i) == reference(frames[i], "in", ref)[3]


@pytest.mark.parametrize("kind", ["_ttl", "_no_route", "_bad_checksum", "_martian",
                                  "_short_total", "_short_frame", "_bad_header", "_not_ip",
                                  "_other_host"])
def test_one_bad_frame_in_a_clean_batch_is_caught(kind: str) -> None:
    """The fast path (a batch of plain frames, nothing to drop) must notice each defect on
    its own: the batch around the bad frame is one the fast path would pass."""
    pipe = Pipeline(one_router(), PORT_MACS)
    z = zoo(7, plain=True)
    for _ in range(20):
        bad = getattr(z, kind)()
        frames = [z._frame(*z.valid(options=False)[:2]) for _ in range(40)]
        hdr, ln = batch(frames)
        assert pipe.forward(hdr, ln, 0).clean
        frames.insert(17, bad.data)
        hdr, ln = batch(frames)
        v = pipe.forward(hdr, ln, 0)
        assert not v.clean and v.one_port is None
        assert USERSPACE_REASONS[v.reason[17]] == bad.expect, bad.what
        assert (np.delete(v.reason, 17) == 0).all()


def test_ttl_checksum_update_is_right_at_every_edge() -> None:
    """ip_decrease_ttl's carry test: a checksum of 0xFEFF or more wraps, and the result is a
    right checksum of the new header (checked by summing it), never the other zero."""
    z = zoo(4)
    pipe = Pipeline(one_router(), PORT_MACS)
    frames = []
    for want in EDGE_CHECKSUMS * 20:
        ip, body, _ = z.valid(checksum=want, ttl=z.rng.randrange(2, 256))
        assert struct.unpack("!H", ip[10:12])[0] == want
        assert inet_checksum(ip) in (0, 0xFFFF)  # a valid header, either zero
        frames.append(z._frame(ip, body))
    hdr, ln = batch(frames)
    v = pipe.forward(hdr, ln, 0)
    assert (v.reason == 0).all()
    for i in range(len(frames)):
        ihl = (hdr[i, 14] & 15) * 4
        header = bytes(hdr[i, 14:14 + ihl])
        assert inet_checksum(header) == 0, f"checksum after the TTL update is wrong: {header}"
        assert header[10:12] != b"\xff\xff"


def test_frames_the_ring_could_not_hold_whole_are_dropped_first() -> None:
    pipe = Pipeline(one_router(), PORT_MACS)
    z = zoo(5)
    frames = [z._ok().data for _ in range(8)]
    hdr, ln = batch(frames)
    bad = np.zeros(8, bool)
    bad[[1, 6]] = True
    v = pipe.forward(hdr, ln, 0, bad)
    want = ["unreadable" if b else "forwarded" for b in bad]
    assert [USERSPACE_REASONS[r] for r in v.reason] == want


def test_routers_sharing_a_port_keep_to_their_own_tables() -> None:
    """Two routers on one port, told apart by MAC, with the same prefix to different next
    hops; a third prefix only r1 has. Per-frame in_port arrays work as a scalar does."""
    cfg = EngineConfig.from_dict({"name": "two", "ports": ["in", "out", "aux"], "routers": [
        {"name": "r0", "interfaces": [{"port": "in", "mac": "02:00:00:00:10:00"},
                                      {"port": "out", "mac": "02:00:00:00:10:00"}],
         "routes": [{"prefix": "10.0.0.0/8", "port": "out", "via_mac": "02:00:00:00:20:00"}]},
        {"name": "r1", "interfaces": [{"port": "in", "mac": "02:00:00:00:10:01"},
                                      {"port": "aux", "mac": "02:00:00:00:10:01"}],
         "routes": [{"prefix": "10.0.0.0/8", "port": "aux", "via_mac": "02:00:00:00:20:01"},
                    {"prefix": "172.16.0.0/12", "port": "aux",
                     "via_mac": "02:00:00:00:20:01"}]}]})
    pipe = Pipeline(cfg, PORT_MACS)
    assert pipe.tables == 2
    frames, want = [], []
    for mac, dst, reason, out in [("02:00:00:00:10:00", "10.1.2.3", "forwarded", 1),
                                  ("02:00:00:00:10:01", "10.1.2.3", "forwarded", 2),
                                  ("02:00:00:00:10:00", "172.16.0.1", "no_route", -1),
                                  ("02:00:00:00:10:01", "172.16.0.1", "forwarded", 2),
                                  ("02:00:00:00:10:02", "10.1.2.3", "other_host", -1)]:
        ip = IpFields(total=28, src="192.0.2.1", dst=dst).pack()
        frames.append(mac_bytes(mac) + mac_bytes("02:00:00:00:00:aa") + b"\x08\x00" + ip
                      + bytes(8))
        want.append((reason, out))
    hdr, ln = batch(frames)
    v = pipe.forward(hdr, ln, np.zeros(len(frames), np.intp))
    got = [(USERSPACE_REASONS[r], int(o)) for r, o in zip(v.reason, v.out_port, strict=True)]
    assert got == want
    assert v.router.tolist() == [0, 1, 0, 1, -1]
    assert bytes(hdr[1, :12]) == mac_bytes("02:00:00:00:20:01") + mac_bytes("02:00:00:00:10:01")
    # The same MAC on another port is not r0's interface there: r0 has none on "aux".
    hdr, ln = batch(frames[:1])
    assert USERSPACE_REASONS[pipe.forward(hdr, ln, 2).reason[0]] == "other_host"


def test_headers_narrower_than_the_longest_ip_header_are_refused() -> None:
    pipe = Pipeline(one_router(), PORT_MACS)
    with pytest.raises(ValueError, match="headers"):
        pipe.forward(np.zeros((4, HDR_BYTES - 2), np.uint8), np.full(4, 60), 0)


# --------------------------------------------------------------------------- the fused FIB


@pytest.mark.parametrize("bits", [16, 24])
def test_fused_fib_answers_as_each_table_alone(bits: int) -> None:
    rng = np.random.default_rng(bits)
    tables = []
    for t in range(5):  # overlapping route sets: the same prefixes, other next hops
        routes = [("10.0.0.0/8", 1 + t), ("10.1.0.0/16", 2 + t), ("10.1.2.0/24", 3 + t),
                  ("10.1.2.128/25", 4 + t), ("10.1.2.200/32", 5 + t)]
        for _ in range(200):
            plen = int(rng.integers(8, 33))
            net = int(rng.integers(0, 1 << 32)) & (0xFFFFFFFF << (32 - plen)) & 0xFFFFFFFF
            routes.append((f"{ipaddress.IPv4Address(net)}/{plen}", int(rng.integers(1, 300))))
        tables.append(LpmTable(routes, first_level_bits=bits))
    fused = FusedFib(tables)
    addrs = np.concatenate([rng.integers(0, 1 << 32, 20000),
                            rng.integers(0x0A010200, 0x0A010300, 5000)]).astype(np.uint32)
    which = rng.integers(0, 5, len(addrs))
    want = np.empty(len(addrs), np.uint16)
    for t, table in enumerate(tables):
        want[which == t] = table.lookup(addrs[which == t])
    assert (fused.lookup(which, addrs) == want).all()
    assert len({int(x) for x in fused.lookup(np.arange(5), np.full(5, 0x0A0102C8, np.uint32))}
               ) == 5, "each table must keep its own next hop for 10.1.2.200"


def test_fused_fib_refuses_what_it_cannot_hold() -> None:
    with pytest.raises(LpmError, match="first_level_bits"):
        FusedFib([LpmTable(first_level_bits=16), LpmTable(first_level_bits=24)])
    with pytest.raises(LpmError, match="at least one"):
        FusedFib([])


# --------------------------------------------------------------------------- the config


def test_config_round_trips_through_json() -> None:
    cfg = one_router(cpu=1, batch=512, x_note="kept")
    again = EngineConfig.from_dict(json.loads(cfg.dumps()))
    assert again == cfg and again.extra == {"x_note": "kept"}
    assert EngineConfig.from_dict(cfg.to_dict()) == cfg  # the dict is JSON's shapes too


@pytest.mark.parametrize(("change", "path", "says"), [
    ({"ports": []}, "ports", "non-empty"),
    ({"batch": 10_000}, "batch", "more than the ring"),
    ({"frame_size": 1000}, "frame_size", "power of two"),
    ({"speed": 1}, "speed", "unknown field"),
    ({"name": "has space"}, "name", "letters"),
    ({"first_level_bits": 20}, "first_level_bits", "16, 24"),
])
def test_config_names_the_field_it_refuses(change: dict[str, object], path: str,
                                           says: str) -> None:
    data = {**one_router().to_dict(), **change}
    with pytest.raises(EngineConfigError) as e:
        EngineConfig.from_dict(data)
    assert any(p == path and says in m for p, m in e.value.problems), e.value.problems
    assert isinstance(e.value, VrlabError)


def test_config_keeps_routers_to_their_own_ports_and_macs() -> None:
    data = one_router().to_dict()
    r0 = data["routers"][0]
    r1 = {"name": "r1", "interfaces": [{"port": "in"}],
          "routes": [{"prefix": "1.0.0.0/8", "port": "out", "via_mac": NEXT_HOP},
                     {"prefix": "1.2.3.0/33", "port": "in", "via_mac": "nope"}]}
    with pytest.raises(EngineConfigError) as e:
        EngineConfig.from_dict({**data, "routers": [r0, r1]})
    problems = dict(e.value.problems)
    assert "already has this port and MAC" in problems["routers[1].interfaces[0]"]
    assert "not one of this router's interfaces" in problems["routers[1].routes[0].port"]
    assert "not an IPv4 prefix" in problems["routers[1].routes[1].prefix"]
    assert "MAC address" in problems["routers[1].routes[1].via_mac"]


def test_pipeline_needs_every_ports_mac() -> None:
    with pytest.raises(EngineConfigError, match="no MAC known for aux"):
        Pipeline(one_router(), {"in": PORT_MACS["in"], "out": PORT_MACS["out"]})
