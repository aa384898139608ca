"""The LPM table against the slowest, most obviously right answer: a linear scan over
``ipaddress`` networks for the longest one containing the address. Tables are random but built to
nest (routes cluster in a few regions, at every length from /0 to /32), because a table of
disjoint prefixes would never test "longest wins" or what a delete uncovers."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from vrlab.engines.userspace.errors import LpmError
from vrlab.engines.userspace.lpm import MAX_BLOCKS, MAX_NEXT_HOP, LpmTable
from vrlab.errors import VrlabError

Route = tuple[str, int]
BITS = pytest.mark.parametrize("bits", [16, 24])


class Reference:
    """Longest match by linear scan over every route (ipaddress for the containment test)."""

    def __init__(self, routes: Sequence[tuple[str | ipaddress.IPv4Network, int]]) -> None:
        table: dict[ipaddress.IPv4Network, int] = {}
        for prefix, nh in routes:  # the last next hop for a prefix wins, as in LpmTable
            table[ipaddress.IPv4Network(prefix)] = nh
        self.table = table
        self.net = np.array([int(n.network_address) for n in table], np.uint32)
        self.mask = np.array([int(n.netmask) for n in table], np.uint32)
        self.plen = np.array([n.prefixlen for n in table], np.int64)
        self.nh = np.array(list(table.values()), np.uint16)

    def lookup_one(self, addr: int) -> int:
        a = ipaddress.IPv4Address(addr)
        best = (-1, 0)
        for net, nh in self.table.items():
            if a in net and net.prefixlen > best[0]:
                best = (net.prefixlen, nh)
        return best[1]

    def lookup(self, addrs: npt.NDArray[np.uint32]) -> npt.NDArray[np.uint16]:
        """The same scan, with the routes of the ipaddress networks above in numpy columns."""
        out = np.zeros(len(addrs), np.uint16)
        if not len(self.net):
            return out
        for i in range(0, len(addrs), 256):
            chunk = addrs[i:i + 256]
            score = np.where((chunk[:, None] & self.mask) == self.net, self.plen, -1)
            best = score.argmax(axis=1)
            found = score[np.arange(len(chunk)), best] >= 0
            out[i:i + 256] = np.where(found, self.nh[best], 0)
        return out


def show(net: int, plen: int) -> str:
    return f"{ipaddress.IPv4Address(net)}/{plen}"


def mask(plen: int) -> int:
    return (0xFFFFFFFF << (32 - plen)) & 0xFFFFFFFF


# Lengths weighted like a FIB (most /16-/24) but with every edge case present: /0, /1, the
# first-level boundaries /16 and /24 and their neighbours, and all of /25-/32.
LENGTH_WEIGHTS = {0: 1, 1: 1, 4: 1, 8: 4, 12: 2, 15: 2, 16: 6, 17: 3, 18: 3, 20: 5, 22: 6,
                  23: 4, 24: 20, 25: 4, 26: 3, 27: 3, 28: 3, 29: 2, 30: 3, 31: 2, 32: 4}


def random_routes(rng: np.random.Generator, n: int) -> list[Route]:
    """``n`` routes (some repeated, so the last-wins rule is exercised), half of them inside
    four hot /14s so that they nest and overlap at every length."""
    lengths = np.array(list(LENGTH_WEIGHTS))
    weights = np.array(list(LENGTH_WEIGHTS.values()), float)
    plens = rng.choice(lengths, n, p=weights / weights.sum())
    hot = rng.integers(0, 1 << 32, 4, dtype=np.uint64)
    near = hot[rng.integers(0, 4, n)] ^ rng.integers(0, 1 << 18, n, dtype=np.uint64)
    anywhere = rng.integers(0, 1 << 32, n, dtype=np.uint64)
    addrs = np.where(rng.random(n) < 0.5, near, anywhere)
    nhs = rng.integers(1, MAX_NEXT_HOP + 1, n)
    return [(show(int(a) & mask(int(p)), int(p)), int(h))
            for a, p, h in zip(addrs, plens, nhs, strict=True)]


def probe_addresses(rng: np.random.Generator, routes: Sequence[tuple[str, int]],
                    n: int) -> npt.NDArray[np.uint32]:
    """Addresses that find the edges: each route's first and last address and the ones just
    outside it, random addresses inside routes, and uniform ones (mostly no route)."""
    nets = [ipaddress.IPv4Network(p) for p, _ in routes]
    edges = [int(x.network_address) for x in nets] + [int(x.broadcast_address) for x in nets]
    edges += [(e - 1) % (1 << 32) for e in edges[: len(nets)]]
    edges += [(e + 1) % (1 << 32) for e in edges[len(nets): 2 * len(nets)]]
    inside = [int(nets[i].network_address) | int(rng.integers(0, nets[i].num_addresses))
              for i in rng.integers(0, len(nets), n)] if nets else []
    uniform = rng.integers(0, 1 << 32, n, dtype=np.uint64).tolist()
    picked = rng.permutation(np.array(edges + inside + uniform, np.uint64))
    return picked[: 3 * n].astype(np.uint32)


def expected_blocks(prefixes: Iterable[str], bits: int) -> int:
    """Blocks a table must hold, counted independently: one for each range below the first
    level (each /16 and /24 under a 16-bit one, each /24 under a 24-bit one) that holds a
    longer route. Fewer would lose a route; more would be a leak."""
    nets = [ipaddress.IPv4Network(p) for p in prefixes]
    return sum(len({int(n.network_address) >> (32 - above) for n in nets if n.prefixlen > above})
               for above in range(bits, 32, 8))


def assert_matches(table: LpmTable, ref: Reference, addrs: npt.NDArray[np.uint32]) -> None:
    got = table.lookup(addrs)
    want = ref.lookup(addrs)
    assert got.dtype == np.uint16
    bad = np.flatnonzero(got != want)
    assert bad.size == 0, [
        (str(ipaddress.IPv4Address(int(addrs[i]))), int(got[i]), int(want[i])) for i in bad[:5]]


# ---- agreement with the reference -----------------------------------------------------------


def test_the_two_reference_scans_agree() -> None:
    rng = np.random.default_rng(7)
    routes = random_routes(rng, 300)
    ref = Reference(routes)
    addrs = probe_addresses(rng, routes, 200)
    assert ref.lookup(addrs).tolist() == [ref.lookup_one(int(a)) for a in addrs]


@BITS
def test_empty_table_has_no_route(bits: int) -> None:
    t = LpmTable(first_level_bits=bits)
    assert len(t) == 0
    assert t.lookup(np.array([0, 1, 0x0A000001, 0xFFFFFFFF], np.uint32)).tolist() == [0] * 4
    assert t.lookup_one("10.0.0.1") == 0


@BITS
def test_no_route_is_zero_beside_routes(bits: int) -> None:
    t = LpmTable([("10.0.0.0/8", 1), ("192.0.2.128/25", 2)], first_level_bits=bits)
    assert t.lookup_one("11.0.0.0") == 0
    assert t.lookup_one("9.255.255.255") == 0
    assert t.lookup_one("192.0.2.127") == 0  # same /24 as the /25, outside it
    assert t.lookup_one("192.0.2.128") == 2


@BITS
def test_longest_wins_at_every_level(bits: int) -> None:
    routes = [("0.0.0.0/0", 1), ("10.0.0.0/8", 2), ("10.1.0.0/16", 3), ("10.1.2.0/24", 4),
              ("10.1.2.128/25", 5), ("10.1.2.192/26", 6), ("10.1.2.200/32", 7)]
    want = {"1.2.3.4": 1, "10.200.0.1": 2, "10.1.200.1": 3, "10.1.2.1": 4, "10.1.2.130": 5,
            "10.1.2.193": 6, "10.1.2.200": 7, "10.1.2.201": 6}
    for order in (routes, routes[::-1]):
        t = LpmTable(order, first_level_bits=bits)
        assert {a: t.lookup_one(a) for a in want} == want
        addrs = np.array([int(ipaddress.IPv4Address(a)) for a in want], np.uint32)
        assert t.lookup(addrs).tolist() == list(want.values())


@settings(max_examples=60)
@given(
    routes=st.lists(
        st.tuples(st.sampled_from([0x0A000000, 0x0A010200, 0x0A0102C0, 0xC0A80000]),
                  st.integers(0, 255), st.sampled_from(list(LENGTH_WEIGHTS)),
                  st.integers(1, MAX_NEXT_HOP)),
        max_size=40),
    seed=st.integers(0, 2**32 - 1),
    bits=st.sampled_from([16, 24]),
)
def test_small_tables_match_reference(routes: list[tuple[int, int, int, int]], seed: int,
                                      bits: int) -> None:
    """Small hand-shrinkable tables in a few neighbouring regions, all checked address by
    address against the pure-ipaddress scan as well as the batch lookup."""
    table_routes = [(show((base | low) & mask(plen), plen), nh) for base, low, plen, nh in routes]
    t = LpmTable(table_routes, first_level_bits=bits)
    ref = Reference(table_routes)
    addrs = probe_addresses(np.random.default_rng(seed), table_routes, 40)
    assert_matches(t, ref, addrs)
    assert [t.lookup_one(int(a)) for a in addrs] == [ref.lookup_one(int(a)) for a in addrs]
    assert len(t) == len(ref.table)


@settings(max_examples=12)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 10_000),
       bits=st.sampled_from([16, 24]))
@example(seed=1, n=10_000, bits=16)
@example(seed=2, n=10_000, bits=24)
def test_large_random_tables_match_reference(seed: int, n: int, bits: int) -> None:
    rng = np.random.default_rng(seed)
    routes = random_routes(rng, n)
    if rng.random() < 0.5:
        routes.append(("0.0.0.0/0", int(rng.integers(1, MAX_NEXT_HOP + 1))))
    t = LpmTable(routes, first_level_bits=bits)
    assert_matches(t, Reference(routes), probe_addresses(rng, routes, 700))
    assert t.blocks_used == expected_blocks((p for p, _ in routes), bits)


@BITS
def test_insertion_order_does_not_matter(bits: int) -> None:
    rng = np.random.default_rng(11)
    routes = list(dict(random_routes(rng, 1500)).items())  # one next hop per prefix
    ref = Reference(routes)
    addrs = probe_addresses(rng, routes, 1500)
    longest_first = sorted(routes, key=lambda r: -ipaddress.IPv4Network(r[0]).prefixlen)
    by_add = LpmTable(first_level_bits=bits)
    for prefix, nh in longest_first:
        by_add.add(prefix, nh)
    for t in (LpmTable(longest_first, first_level_bits=bits), by_add):
        assert_matches(t, ref, addrs)
        assert len(t) == len(routes)


# ---- updates --------------------------------------------------------------------------------


@BITS
def test_delete_restores_the_covering_route(bits: int) -> None:
    routes = [("0.0.0.0/0", 1), ("10.0.0.0/8", 2), ("10.1.2.0/24", 3), ("10.1.2.128/25", 4),
              ("10.1.2.129/32", 5)]
    t = LpmTable(routes, first_level_bits=bits)
    assert t.lookup_one("10.1.2.129") == 5
    t.delete("10.1.2.129/32")
    assert t.lookup_one("10.1.2.129") == 4  # the /25 it sat in
    t.delete("10.1.2.0/24")
    assert t.lookup_one("10.1.2.1") == 2  # the /8 under the deleted /24 ...
    assert t.lookup_one("10.1.2.129") == 4  # ... but not under the /25 still inside it
    t.delete("10.1.2.128/25")
    assert t.lookup_one("10.1.2.129") == 2
    t.delete("10.0.0.0/8")
    assert t.lookup_one("10.1.2.129") == 1
    t.delete("0.0.0.0/0")
    assert t.lookup_one("10.1.2.129") == 0
    assert len(t) == 0
    assert t.blocks_used == 0


@settings(max_examples=15)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 3000),
       bits=st.sampled_from([16, 24]))
def test_deletes_match_a_table_built_without_them(seed: int, n: int, bits: int) -> None:
    rng = np.random.default_rng(seed)
    routes = list(dict(random_routes(rng, n)).items())
    t = LpmTable(routes, first_level_bits=bits)
    gone = set(rng.permutation(len(routes))[: int(rng.integers(0, len(routes) + 1))].tolist())
    for i in gone:
        t.delete(routes[i][0])
    kept = [r for i, r in enumerate(routes) if i not in gone]
    assert_matches(t, Reference(kept), probe_addresses(rng, routes, 500))
    assert len(t) == len(kept)
    # Blocks depend on the routes alone, so none leak however the table got here.
    assert t.blocks_used == expected_blocks((p for p, _ in kept), bits)
    for prefix, _ in kept:
        t.delete(prefix)
    assert t.blocks_used == 0
    assert not t.lookup(probe_addresses(rng, routes, 100)).any()


def test_add_replaces_a_next_hop() -> None:
    t = LpmTable([("10.0.0.0/8", 1), ("10.1.2.128/25", 2)])
    t.add("10.0.0.0/8", 3)
    t.add("10.1.2.128/25", 4)
    assert len(t) == 2
    assert (t.lookup_one("10.9.9.9"), t.lookup_one("10.1.2.200")) == (3, 4)
    assert LpmTable([("10.0.0.0/8", 1), ("10.0.0.0/8", 9)]).lookup_one("10.0.0.1") == 9


class UpdateMachine(RuleBasedStateMachine):
    """Adds, replaces and deletes in any order, drawn from a small set of nesting prefixes."""

    PREFIXES = ("0.0.0.0/0", "10.0.0.0/8", "10.1.0.0/16", "10.1.0.0/17", "10.1.2.0/23",
                "10.1.2.0/24", "10.1.3.0/24", "10.1.2.0/25", "10.1.2.128/25", "10.1.2.128/26",
                "10.1.2.130/31", "10.1.2.131/32", "10.1.3.255/32", "10.2.0.0/15", "11.0.0.0/8")

    def __init__(self) -> None:
        super().__init__()
        self.bits = 24
        self.table = LpmTable(first_level_bits=self.bits)
        self.model: dict[str, int] = {}
        nets = [ipaddress.IPv4Network(p) for p in self.PREFIXES]
        self.addrs = np.array(sorted({int(a) for n in nets for a in
                                      (n.network_address, n.broadcast_address,
                                       n.network_address - 1 if int(n.network_address) else 0,
                                       n.broadcast_address + 1 if n.prefixlen else 0)}),
                              np.uint32)

    @rule(bits=st.sampled_from([16, 24]))
    def start_over(self, bits: int) -> None:
        self.bits = bits
        self.table = LpmTable(self.model.items(), first_level_bits=bits)

    @rule(prefix=st.sampled_from(PREFIXES), nh=st.integers(1, 4))
    def add(self, prefix: str, nh: int) -> None:
        self.table.add(prefix, nh)
        self.model[prefix] = nh

    @rule(prefix=st.sampled_from(PREFIXES))
    def delete(self, prefix: str) -> None:
        if prefix in self.model:
            self.table.delete(prefix)
            del self.model[prefix]
        else:
            with pytest.raises(LpmError, match="no route"):
                self.table.delete(prefix)

    @invariant()
    def matches_the_model(self) -> None:
        assert_matches(self.table, Reference(list(self.model.items())), self.addrs)
        assert len(self.table) == len(self.model)
        assert self.table.blocks_used == expected_blocks(self.model, self.bits)


UpdateMachine.TestCase.settings = settings(max_examples=40, stateful_step_count=30)
TestUpdates = UpdateMachine.TestCase


# ---- limits and errors ----------------------------------------------------------------------


def test_next_hop_ids_are_limited_to_15_bits() -> None:
    t = LpmTable([("10.0.0.0/8", MAX_NEXT_HOP)])
    assert t.lookup_one("10.0.0.1") == MAX_NEXT_HOP == 32767
    for bad in (MAX_NEXT_HOP + 1, 0, -1):
        with pytest.raises(LpmError, match=r"1\.\.32767") as err:
            t.add("11.0.0.0/8", bad)
        assert "at most 32767 distinct next hops" in str(err.value)
        with pytest.raises(LpmError, match=r"1\.\.32767"):
            LpmTable([("11.0.0.0/8", bad)])
    assert len(t) == 1
    assert t.lookup_one("11.0.0.1") == 0
    with pytest.raises(LpmError, match="integer"):
        t.add("11.0.0.0/8", "1")  # type: ignore[arg-type]
    assert issubclass(LpmError, VrlabError)


@BITS
def test_running_out_of_blocks_names_the_limit_and_changes_nothing(bits: int) -> None:
    # Each of these needs blocks of its own: a /25 in a /24 (and, under a 16-bit first
    # level, in a /16) that no other route touches.
    # Under a 16-bit first level, one spare block lets the failing add get halfway (its /16's
    # block, not its /24's), which must be given back.
    routes = [("10.0.0.0/8", 1), ("10.1.0.0/25", 2), ("10.2.0.0/25", 3)]
    used = 2 if bits == 24 else 4
    limit = used if bits == 24 else used + 1
    t = LpmTable(routes, first_level_bits=bits, max_blocks=limit)
    assert t.blocks_used == used
    t.add("10.1.0.128/25", 4)  # shares the /24's block
    with pytest.raises(LpmError, match=f"at most {limit} ") as err:
        t.add("10.3.0.0/25", 5)
    assert "out of blocks" in str(err.value)
    assert "10.3.0.0/25" not in t
    assert t.blocks_used == used
    kept = [*routes, ("10.1.0.128/25", 4)]
    ref = Reference(kept)
    assert_matches(t, ref, probe_addresses(np.random.default_rng(3), kept, 50))
    assert t.lookup_one("10.3.0.1") == 1
    with pytest.raises(LpmError, match=f"at most {limit} "):
        LpmTable([*routes, ("10.3.0.0/25", 5)], first_level_bits=bits, max_blocks=limit)
    t.delete("10.2.0.0/25")  # frees room
    t.add("10.3.0.0/25", 5)
    assert t.lookup_one("10.3.0.1") == 5


def test_the_full_block_limit_is_32768() -> None:
    assert MAX_BLOCKS == 32768
    routes = [(show((i << 8) | 0x80, 25), 1) for i in range(MAX_BLOCKS)]  # one per /24
    t = LpmTable(routes)
    assert t.blocks_used == MAX_BLOCKS
    assert t.nbytes == 2**24 * 2 + MAX_BLOCKS * 512
    with pytest.raises(LpmError, match=r"at most 32768 .*one per distinct /24"):
        t.add("200.0.0.0/25", 2)
    assert t.lookup_one("200.0.0.1") == 0
    with pytest.raises(LpmError, match=r"max_blocks must be 1\.\.32768"):
        LpmTable(max_blocks=MAX_BLOCKS + 1)


def test_bad_input_is_an_lpm_error() -> None:
    t = LpmTable([("10.0.0.0/8", 1)])
    for prefix in ("10.0.0.1/8", "10.0.0.0/33", "banana", "2001:db8::/32"):
        with pytest.raises(LpmError, match="bad IPv4 prefix"):
            t.add(prefix, 1)
    with pytest.raises(LpmError, match="must be a string or IPv4Network"):
        t.add(ipaddress.IPv6Network("2001:db8::/32"), 1)  # type: ignore[arg-type]
    with pytest.raises(LpmError, match=r"no route for 11\.0\.0\.0/8"):
        t.delete("11.0.0.0/8")
    with pytest.raises(LpmError, match="first_level_bits must be one of"):
        LpmTable(first_level_bits=20)
    with pytest.raises(LpmError, match="integer array"):
        t.lookup(np.array([1.5]))
    with pytest.raises(LpmError, match=r"0\.\.2\^32-1"):
        t.lookup(np.array([-1, 5], np.int64))
    with pytest.raises(LpmError, match=r"0\.\.2\^32-1"):
        t.lookup_one(1 << 32)
    with pytest.raises(LpmError, match="bad IPv4 address"):
        t.lookup_one("10.0.0")
    assert len(t) == 1


# ---- interface ------------------------------------------------------------------------------


def test_lookup_keeps_shape_and_takes_any_integer_array() -> None:
    t = LpmTable([(ipaddress.IPv4Network("10.0.0.0/8"), 1), ("10.1.2.3/32", 2)])
    addrs = np.array([[0x0A000001, 0x0A010203], [0x0B000000, 0]], np.int64)
    assert t.lookup(addrs).tolist() == [[1, 2], [0, 0]]
    assert t.lookup([0x0A010203]).tolist() == [2]
    assert t.lookup(np.array([], np.uint32)).shape == (0,)
    assert t.lookup_one(ipaddress.IPv4Address("10.1.2.3")) == t.lookup_one(0x0A010203) == 2


def test_routes_and_membership() -> None:
    routes = [("10.1.2.128/25", 2), ("10.0.0.0/8", 1)]
    t = LpmTable(routes)
    assert t.routes() == [(ipaddress.IPv4Network("10.0.0.0/8"), 1),
                          (ipaddress.IPv4Network("10.1.2.128/25"), 2)]
    assert "10.0.0.0/8" in t and ipaddress.IPv4Network("10.1.2.128/25") in t
    assert "10.0.0.0/9" not in t and 5 not in t
    assert "2 routes" in repr(t)


def test_a_16_bit_first_level_is_small() -> None:
    small = LpmTable([("0.0.0.0/0", 1), ("10.1.2.0/24", 2)], first_level_bits=16)
    assert small.nbytes < 256 * 1024
    assert LpmTable().nbytes >= 2**24 * 2
    assert small.first_level_bits == 16 and small.max_blocks == MAX_BLOCKS
