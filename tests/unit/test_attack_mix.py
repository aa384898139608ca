"""The scenario attack's frame list with one frame per IP version and router: A's share of the
slots and B's as with one frame each, every router sending its families in turn."""

from __future__ import annotations

from vrlab.latency_attack import mix_turns
from vrlab.traffic.frames import mix


def test_each_router_takes_its_families_in_turn_at_its_share() -> None:
    a, b = [b"a4", b"a6"], [b"b4", b"b6"]
    out, frac_b = mix_turns(a, b, 150_000.0, 50_000.0)
    assert frac_b == mix(b"x", b"y", 150_000.0, 50_000.0)[1] == 16 / 64
    assert len(out) == 64 and out.count(b"b4") + out.count(b"b6") == 16
    assert out.count(b"a4") == out.count(b"a6") == 24 and out.count(b"b4") == out.count(b"b6")
    mine = [f for f in out if f.startswith(b"a")]
    assert mine[:4] == [b"a4", b"a6", b"a4", b"a6"]


def test_one_frame_per_router_is_the_plain_mix() -> None:
    assert mix_turns([b"a"], [b"b"], 50_000.0, 50_000.0) == mix(b"a", b"b", 50_000.0, 50_000.0)
