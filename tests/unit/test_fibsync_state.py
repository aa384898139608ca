"""The per-router mirror: only differences become engine operations, the route limit refuses the
excess once and admits waiting routes when room frees, and a resync keeps what the engine holds."""

from __future__ import annotations

from vrlab.platform.fibsync.codec import EngineRoute, Key
from vrlab.platform.fibsync.state import OP_ADD, OP_DEL, OP_NADD, OP_NDEL, RouterMirror


def k(i: int) -> Key:
    return (bytes([20, 0, i, 0]), 24, 0, 0)


def er(gw: int = 2, oif: int = 7) -> EngineRoute:
    return EngineRoute(1, 0, oif, bytes([10, 0, 0, gw]), (), b"")


def take(m: RouterMirror) -> list[tuple[int, object]]:
    ops = [(op, key) for op, key, _v in m.ops]
    m.ops.clear()
    return ops


def test_add_change_delete() -> None:
    m = RouterMirror(10)
    assert m.update(k(1), er()) == ""
    assert take(m) == [(OP_ADD, k(1))]
    m.update(k(1), er())  # the same again: nothing to write
    assert take(m) == []
    m.update(k(1), er(gw=3))
    assert take(m) == [(OP_ADD, k(1))]
    m.delete(k(1))
    m.delete(k(1))
    assert take(m) == [(OP_DEL, k(1))]


def test_refused_is_reported_once_and_removes_an_installed_route() -> None:
    m = RouterMirror(10)
    m.update(k(1), er())
    take(m)
    assert m.update(k(1), "gateway outside") == "gateway outside"
    assert take(m) == [(OP_DEL, k(1))]
    assert m.update(k(1), "gateway outside") == ""  # logged once
    assert m.update(k(1), "another reason") == "another reason"
    assert take(m) == []
    m.update(k(1), er())
    assert take(m) == [(OP_ADD, k(1))] and k(1) not in m.refused


def test_limit_refuses_once_and_admits_oldest_waiting_on_delete() -> None:
    m = RouterMirror(2)
    for i in range(5):
        why = m.update(k(i), er())
        assert (why != "") == (i >= 2)
    assert take(m) == [(OP_ADD, k(0)), (OP_ADD, k(1))]
    assert list(m.waiting) == [k(2), k(3), k(4)]
    assert m.update(k(3), er(gw=9)) == ""  # changed while waiting: no new log line
    m.delete(k(0))
    m.admit()
    assert take(m) == [(OP_DEL, k(0)), (OP_ADD, k(2))]
    assert m.admitted == [k(2)] and k(2) not in m.refused
    m.delete(k(4))  # a waiting route goes: nothing in the engine changes
    m.admit()
    assert take(m) == []
    m.update(k(1), "now invalid")  # an installed route turns invalid: room for k(3)
    m.admit()
    assert take(m) == [(OP_DEL, k(1)), (OP_ADD, k(3))]
    assert m.installed[k(3)] == er(gw=9)
    assert len(m.installed) == 2


def test_zero_limit_installs_nothing() -> None:
    m = RouterMirror(0)
    assert "limit of 0" in m.update(k(1), er())
    m.admit()
    assert take(m) == []


def test_failed_add_leaves_key_absent() -> None:
    m = RouterMirror(10)
    m.update(k(1), er())
    take(m)
    m.write_failed(OP_ADD, k(1), "ENETDOWN")
    assert take(m) == [(OP_DEL, k(1))]  # a failed replace keeps the old route: remove it
    assert k(1) not in m.installed and m.failed == {k(1): "ENETDOWN"}
    m.update(k(1), er())  # the next change of the route tries again
    assert take(m) == [(OP_ADD, k(1))] and not m.failed


def test_neighbours() -> None:
    m = RouterMirror(10)
    nk = (20, bytes([10, 0, 0, 5]))
    m.neighbour(nk, b"\x02" * 6)
    m.neighbour(nk, b"\x02" * 6)
    m.neighbour(nk, b"\x04" * 6)
    m.neighbour(nk, None)
    m.neighbour(nk, None)
    assert take(m) == [(OP_NADD, nk), (OP_NADD, nk), (OP_NDEL, nk)]


def test_resync_writes_only_the_difference() -> None:
    m = RouterMirror(10)
    guest: dict[Key, EngineRoute | str] = {k(1): er(), k(2): er(gw=5), k(3): er(), k(4): "bad"}
    engine = {k(1): er(), k(2): er(gw=2), k(9): er()}
    nk1, nk2 = (20, b"\1\1\1\1"), (20, b"\2\2\2\2")
    counts, refused = m.resync(guest, engine, {nk1: b"a" * 6}, {nk1: b"a" * 6, nk2: b"b" * 6})
    assert sorted(take(m)) == sorted([(OP_DEL, k(9)), (OP_ADD, k(2)), (OP_ADD, k(3)),
                                      (OP_NDEL, nk2)])
    assert counts == {"added": 1, "changed": 1, "deleted": 1, "unchanged": 1,
                      "neigh_added": 0, "neigh_deleted": 1, "neigh_unchanged": 1}
    assert refused == [(k(4), "bad")]
    _c, refused = m.resync(guest, {k(1): er(), k(2): er(gw=5), k(3): er()}, {}, {})
    assert refused == [] and take(m) == []  # nothing new to log, nothing to write


def test_resync_under_limit_keeps_what_the_engine_holds() -> None:
    m = RouterMirror(2)
    guest: dict[Key, EngineRoute | str] = {k(i): er() for i in range(4)}
    counts, refused = m.resync(guest, {k(3): er(), k(2): er()}, {}, {})
    assert take(m) == []  # k(2), k(3) stay; k(0), k(1) wait
    assert counts["unchanged"] == 2 and counts["added"] == 0
    assert [key for key, _r in refused] == [k(0), k(1)]
    assert list(m.waiting) == [k(0), k(1)]


def k6(i: int) -> Key:
    return (bytes([0x20, 0x01, 0x0D, 0xB8, 0, i]) + bytes(10), 48, 0, 1024)


def er6() -> EngineRoute:
    return EngineRoute(1, 0, 7, bytes([0xFE, 0x80]) + bytes(13) + b"\x02", (), b"")


def test_one_limit_counts_both_families() -> None:
    m = RouterMirror(2)
    assert m.update(k(1), er()) == "" and m.update(k6(1), er6()) == ""
    assert "limit of 2 routes" in m.update(k6(2), er6())
    assert "limit of 2 routes" in m.update(k(2), er())
    take(m)
    m.delete(k(1))  # room for the oldest waiting route, of either family
    m.admit()
    assert take(m) == [(OP_DEL, k(1)), (OP_ADD, k6(2))]


def test_limits_per_family_count_apart() -> None:
    m = RouterMirror(1, 2)
    assert m.update(k(1), er()) == ""
    assert m.update(k6(1), er6()) == "" and m.update(k6(2), er6()) == ""
    assert "limit of 1 IPv4 routes" in m.update(k(2), er())
    assert "limit of 2 IPv6 routes" in m.update(k6(3), er6())
    take(m)
    m.delete(k6(1))  # an IPv6 route goes: the waiting IPv6 one gets in, not the IPv4 one
    m.admit()
    assert take(m) == [(OP_DEL, k6(1)), (OP_ADD, k6(3))]
    assert k(2) in m.waiting and m.used == {4: 1, 6: 2}


def test_resync_fills_each_family_s_limit() -> None:
    m = RouterMirror(1, 1)
    guest: dict[Key, EngineRoute | str] = {k(1): er(), k(2): er(), k6(1): er6(), k6(2): er6()}
    counts, refused = m.resync(guest, {k(2): er()}, {}, {})
    assert set(m.installed) == {k(2), k6(1)}  # the engine's IPv4 route keeps its place
    assert set(m.waiting) == {k(1), k6(2)} and counts["added"] == 1
    assert m.used == {4: 1, 6: 1} and len(refused) == 2
