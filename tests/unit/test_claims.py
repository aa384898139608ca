"""The paper's claims judged from synthetic sweeps: no root, no traffic.

Each sweep comes from a simulated device that forwards everything up to its capacity and drops
the rest, so its peak and whether it saturated are known. Every expected verdict is derived from
those capacities and the thresholds in ``vrlab.claims``, never from a measured figure."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pytest

from vrlab import claims
from vrlab.claims import (
    FALLS,
    FAR_BELOW,
    HYBRID_DROP,
    LINE_RATE,
    MUCH_LOWER,
    SATURATED_LOSS,
    SIMILAR,
)
from vrlab.figures import GUEST_N, IDLE_N, MIXED_N
from vrlab.store import SweepPoint

VERDICTS = {"holds", "differs", "not measurable"}
OFFERED = [k * 100_000.0 for k in range(1, 11)]  # 100-1000 kpps, the simulated sweep's rates
TOP = OFFERED[-1]


def device(capacity: float, rates: Sequence[float] = OFFERED,
           routers: Mapping[str, float] | None = None) -> list[SweepPoint]:
    """A sweep of a device that forwards ``capacity`` pps at most and drops the excess.

    ``routers`` gives each router's share of what is received (shares sum to 1)."""
    points = []
    for rate in rates:
        rx = min(rate, capacity)
        shares = routers or {}
        points.append(SweepPoint(
            target_pps=rate, n=1, mean_pps=rx, std_pps=0.0, min_pps=rx, max_pps=rx,
            mean_achieved_pps=rate, mean_loss_ratio=1.0 - rx / rate,
            router_mean_pps={name: rx * s for name, s in shares.items()},
            generator_short=False))
    return points


def unsaturated() -> list[SweepPoint]:
    """A device faster than anything offered: it never loses a frame."""
    return device(TOP * 2)


def test_device_model_saturates_only_past_its_capacity() -> None:
    """The helper itself: the claims below rely on what ``summarize`` makes of it."""
    s = claims.summarize(device(450_000))
    assert s.peak_pps == 450_000 and s.saturated
    s = claims.summarize(unsaturated())
    assert s.peak_pps == TOP and not s.saturated
    assert "≥" in s.fmt() and "≥" not in claims.summarize(device(450_000)).fmt()
    assert claims.summarize([]) == claims.Summary(0.0, False)


def test_saturation_needs_more_than_the_stated_loss() -> None:
    # A device just above the top rate loses less than SATURATED_LOSS there: not saturated.
    barely = device(TOP * (1 - SATURATED_LOSS / 2))
    assert not claims.summarize(barely).saturated
    assert claims.summarize(device(TOP * (1 - SATURATED_LOSS * 2))).saturated


# --------------------------------------------------------------------------- claim 1: generator


def test_generator_below_line_rate_differs() -> None:
    cal = {1: 600_000.0, 8: 590_000.0, 32: 580_000.0}
    c = claims.generator(cal)
    assert (c.number, c.verdict) == (1, "differs")
    assert "600 kpps" in c.measured and "580 kpps" in c.measured
    assert "580" in c.why and "line rate" in c.why  # the lowest rate is named
    # spread (600-580)/600 = 3% is within SIMILAR: the rate is independent of the flow count
    assert "is independent" in c.why


def test_generator_flow_dependence_is_reported() -> None:
    cal = {1: 600_000.0, 32: 600_000.0 * (1 - 2 * SIMILAR)}
    assert "not independent" in claims.generator(cal).why


def test_generator_at_line_rate_holds() -> None:
    assert claims.generator({f: LINE_RATE for f in (1, 8, 32)}).verdict == "holds"
    # the 1% allowance below line rate, and one flow count short of it
    assert claims.generator({1: LINE_RATE * 0.995}).verdict == "holds"
    assert claims.generator({1: LINE_RATE, 32: LINE_RATE * 0.98}).verdict == "differs"


def test_generator_without_calibration_is_not_measurable() -> None:
    c = claims.generator({})
    assert c.verdict == "not measurable" and "vrlab calibrate" in c.why


# --------------------------------------------------------------------------- claim 2: native


def native_points(bridged: float, routed: float, hybrid: float) -> dict[str, list[SweepPoint]]:
    return {"native-bridged": device(bridged), "native-routed": device(routed),
            "native-hybrid": device(hybrid)}


def test_native_similar_and_hybrid_30pc_lower_holds() -> None:
    c = claims.native(native_points(500_000, 480_000, 350_000))  # hybrid 30% below 500
    assert (c.number, c.verdict) == (2, "holds")
    assert "30%" in c.why


def test_native_hybrid_only_5pc_lower_differs() -> None:
    assert claims.native(native_points(500_000, 480_000, 475_000)).verdict == "differs"


def test_native_hybrid_far_too_low_differs() -> None:
    drop = HYBRID_DROP[1] + 0.1
    assert claims.native(native_points(500_000, 500_000, 500_000 * (1 - drop))).verdict \
        == "differs"


@pytest.mark.parametrize("gap, verdict", [(SIMILAR - 0.02, "holds"), (SIMILAR + 0.05, "differs")])
def test_native_bridged_vs_routed_threshold(gap: float, verdict: str) -> None:
    bridged = 500_000.0
    routed = bridged * (1 - gap)
    assert claims.native(native_points(bridged, routed, bridged * 0.7)).verdict == verdict


def test_native_never_saturated_is_not_measurable() -> None:
    pts = native_points(500_000, 500_000, 350_000)
    pts["native-bridged"] = pts["native-routed"] = unsaturated()
    c = claims.native(pts)
    assert c.verdict == "not measurable"
    assert "(≥, no loss)" in c.measured


def test_native_one_saturated_is_judged() -> None:
    pts = native_points(500_000, 500_000, 350_000)
    pts["native-routed"] = unsaturated()  # routed ≥ 1000 kpps vs bridged 500: not similar
    assert claims.native(pts).verdict == "differs"


def test_native_missing_sweep_is_not_measurable() -> None:
    pts = native_points(500_000, 480_000, 350_000)
    del pts["native-hybrid"]
    assert claims.native(pts).verdict == "not measurable"
    pts["native-hybrid"] = []
    assert claims.native(pts).verdict == "not measurable"


# --------------------------------------------------------------------------- claim 3: idle guests


def idle_points(native_cap: float, host_caps: Mapping[int, float]) -> dict[str, list[SweepPoint]]:
    pts = {"native-hybrid": device(native_cap), "native-routed": device(native_cap)}
    for n, cap in host_caps.items():
        pts[f"host-bridged-n{n}"] = device(cap)
        pts[f"host-routed-n{n}"] = device(cap)
    return pts


def test_idle_guests_within_threshold_holds() -> None:
    base = 500_000.0
    caps = {n: base * (1 - SIMILAR / 2) for n in IDLE_N}
    c = claims.idle_guests(idle_points(base, caps), IDLE_N)
    assert (c.number, c.verdict) == (3, "holds")
    assert c.measured.count("N=") == 2 * len(IDLE_N)


def test_idle_guests_one_n_too_slow_differs() -> None:
    base = 500_000.0
    caps = {n: base for n in IDLE_N}
    caps[max(IDLE_N)] = base * (1 - 2 * SIMILAR)
    c = claims.idle_guests(idle_points(base, caps), IDLE_N)
    assert c.verdict == "differs" and "20%" in c.why


def test_idle_guests_bridged_compares_with_hybrid() -> None:
    # host-bridged sits on hybrid I/O, so its reference is native-hybrid, not native-routed
    pts = idle_points(500_000, {1: 350_000})
    pts["native-hybrid"] = device(350_000)
    pts["host-routed-n1"] = device(500_000)
    assert claims.idle_guests(pts, (1,)).verdict == "holds"


def test_idle_guests_missing_sweeps() -> None:
    assert claims.idle_guests({"native-routed": device(1)}, IDLE_N).verdict == "not measurable"


# --------------------------------------------------------------------------- claim 4: bridged cost


@pytest.mark.parametrize("ratio, verdict", [(MUCH_LOWER - 0.1, "holds"),
                                            (MUCH_LOWER + 0.1, "differs")])
def test_bridged_costs_threshold(ratio: float, verdict: str) -> None:
    routed = 600_000.0
    pts = {"host-bridged-n6": device(routed * ratio), "host-routed-n6": device(routed)}
    c = claims.bridged_costs(pts, 6)
    assert (c.number, c.verdict) == (4, verdict)
    assert f"{ratio:.0%}" in c.why


def test_bridged_costs_missing_sweeps() -> None:
    assert claims.bridged_costs({"host-routed-n6": device(1)}, 6).verdict == "not measurable"


# --------------------------------------------------------------------------- claim 5: guests only


def guest_points(native_cap: float, bridged: Mapping[int, float],
                 routed: Mapping[int, float]) -> dict[str, list[SweepPoint]]:
    pts = {"native-routed": device(native_cap)}
    pts |= {f"guest-bridged-n{n}": device(c) for n, c in bridged.items()}
    pts |= {f"guest-routed-n{n}": device(c) for n, c in routed.items()}
    return pts


def falling(first: float, last: float) -> dict[int, float]:
    """Capacities that fall linearly from ``first`` at the smallest N to ``last`` at the largest."""
    lo, hi = min(GUEST_N), max(GUEST_N)
    return {n: first + (last - first) * (n - lo) / (hi - lo) for n in GUEST_N}


def test_guests_only_far_below_and_falling_holds() -> None:
    native = 900_000.0
    last = native / (FAR_BELOW * 1.5)
    c = claims.guests_only(guest_points(native, falling(last * 1.5, last),
                                        falling(last * 1.5, last * 1.05)), GUEST_N)
    assert (c.number, c.verdict) == (5, "holds")
    assert f"{native / last:.1f}x" in c.measured


def test_guests_only_not_far_enough_below_differs() -> None:
    native = 900_000.0
    last = native / (FAR_BELOW * 0.8)  # only 1.6x below native
    pts = guest_points(native, falling(last * 1.5, last), falling(last * 1.5, last))
    assert claims.guests_only(pts, GUEST_N).verdict == "differs"


def test_guests_only_flat_with_n_differs() -> None:
    native, g = 900_000.0, 200_000.0
    flat = {n: g for n in GUEST_N}
    pts = guest_points(native, flat, flat)
    c = claims.guests_only(pts, GUEST_N)
    assert c.verdict == "differs"
    # the same devices falling by just over the FALLS threshold would hold
    fall = falling(g / (FALLS - 0.01), g)
    assert claims.guests_only(guest_points(native, fall, fall), GUEST_N).verdict == "holds"


def test_guests_only_bridged_and_routed_apart_differs() -> None:
    native = 900_000.0
    pts = guest_points(native, falling(300_000, 200_000), falling(150_000, 100_000))
    assert claims.guests_only(pts, GUEST_N).verdict == "differs"


def test_guests_only_one_io_kind_alone_cannot_hold() -> None:
    pts = guest_points(900_000, falling(300_000, 200_000), {})
    c = claims.guests_only(pts, GUEST_N)
    assert c.verdict == "differs" and "routed:" not in c.measured


def test_guests_only_missing_sweeps() -> None:
    assert claims.guests_only(guest_points(900_000, {}, {}), GUEST_N).verdict \
        == "not measurable"
    no_native = guest_points(900_000, falling(300_000, 200_000), falling(300_000, 200_000))
    del no_native["native-routed"]
    assert claims.guests_only(no_native, GUEST_N).verdict == "not measurable"


# --------------------------------------------------------------------------- claim 6: mixed


def mixed_points(caps: Mapping[str, Mapping[int, float]]) -> dict[str, list[SweepPoint]]:
    return {f"mixed-{io}-n{n}": device(c) for io, per_n in caps.items() for n, c in per_n.items()}


def test_mixed_falls_holds() -> None:
    lo, hi = min(MIXED_N), max(MIXED_N)
    caps = {io: {lo: 500_000.0, hi: 500_000.0 * (FALLS - 0.05)} for io in ("bridged", "routed")}
    c = claims.mixed_falls(mixed_points(caps), MIXED_N)
    assert (c.number, c.verdict) == (6, "holds")


def test_mixed_falls_one_io_flat_differs() -> None:
    lo, hi = min(MIXED_N), max(MIXED_N)
    caps = {"bridged": {lo: 500_000.0, hi: 400_000.0},
            "routed": {lo: 500_000.0, hi: 500_000.0 * (FALLS + 0.02)}}
    assert claims.mixed_falls(mixed_points(caps), MIXED_N).verdict == "differs"


def test_mixed_falls_missing_sweeps() -> None:
    only_lo = mixed_points({"bridged": {min(MIXED_N): 500_000.0}})
    assert claims.mixed_falls(only_lo, MIXED_N).verdict == "not measurable"


# --------------------------------------------------------------------------- claim 7: breakdown


def shares(n: int, host: float) -> dict[str, float]:
    """r0 (the host) gets ``host`` of the traffic, the N guests r1..rN split the rest evenly."""
    return {"r0": host} | {f"r{i}": (1 - host) / n for i in range(1, n + 1)}


def breakdown_points(bridged_host: float, routed_host: float,
                     ns: Sequence[int] = (3, 6)) -> dict[str, list[SweepPoint]]:
    pts = {}
    for n in ns:
        pts[f"mixed-bridged-n{n}"] = device(400_000, routers=shares(n, bridged_host))
        pts[f"mixed-routed-n{n}"] = device(400_000, routers=shares(n, routed_host))
    return pts


def host_to_guest(n: int, host: float) -> float:
    return host / ((1 - host) / n)


def test_breakdown_bridged_favours_host_routed_even_holds() -> None:
    # bridged: host 40% vs guests 20% each with N=3 (x2.0), 10% each with N=6 (x4.0);
    # routed: an even split, x1.0
    assert host_to_guest(3, 0.4) > 1.2 and host_to_guest(6, 0.4) > 1.2
    c = claims.breakdown(breakdown_points(0.4, 1 / 7), (3, 6))
    assert (c.number, c.verdict) == (7, "holds")
    assert "×2.00" in c.measured and "×4.00" in c.measured


def test_breakdown_bridged_even_differs() -> None:
    c = claims.breakdown(breakdown_points(1 / 7, 1 / 7), (3, 6))
    assert c.verdict == "differs"


def test_breakdown_routed_host_dominant_at_largest_n_differs() -> None:
    assert host_to_guest(6, 0.3) > 1.25
    assert claims.breakdown(breakdown_points(0.4, 0.3), (3, 6)).verdict == "differs"


def test_breakdown_routed_host_starved_at_largest_n_differs() -> None:
    assert host_to_guest(6, 0.08) < 0.8
    assert claims.breakdown(breakdown_points(0.4, 0.08), (3, 6)).verdict == "differs"


def test_breakdown_routed_judged_only_at_largest_n() -> None:
    # routed uneven at N=3 only: the paper's "almost invisible" is about 6 guests
    pts = breakdown_points(0.4, 1 / 7)
    pts["mixed-routed-n3"] = device(400_000, routers=shares(3, 0.5))
    assert claims.breakdown(pts, (3, 6)).verdict == "holds"


def test_breakdown_uses_the_highest_offered_rate() -> None:
    pts = breakdown_points(0.4, 1 / 7)
    # below the top rate the bridged host got no more than each guest; at the top it did
    even = device(400_000, rates=OFFERED[:-1], routers=shares(3, 1 / 4))
    pts["mixed-bridged-n3"] = even + device(400_000, rates=[TOP], routers=shares(3, 0.4))
    assert claims.breakdown(pts, (3, 6)).verdict == "holds"
    pts["mixed-bridged-n3"] = device(400_000, rates=OFFERED[:-1], routers=shares(3, 0.4)) \
        + device(400_000, rates=[TOP], routers=shares(3, 1 / 4))
    assert claims.breakdown(pts, (3, 6)).verdict == "differs"


def test_breakdown_missing_sweeps() -> None:
    assert claims.breakdown({}, (3, 6)).verdict == "not measurable"


# --------------------------------------------------------------------------- all claims


def test_all_claims_numbers_one_to_seven() -> None:
    cs = claims.all_claims({}, {})
    assert [c.number for c in cs] == list(range(1, 8))
    assert all(c.verdict == "not measurable" for c in cs)
    assert sum(c.measured.startswith("missing") for c in cs) == 6  # all but the generator's


def test_all_claims_on_a_full_synthetic_reproduction() -> None:
    pts: dict[str, list[SweepPoint]] = {}
    pts |= native_points(500_000, 480_000, 350_000)
    for n in IDLE_N:
        pts[f"host-bridged-n{n}"] = device(350_000)
        pts[f"host-routed-n{n}"] = device(480_000)
    pts |= guest_points(480_000, falling(200_000, 150_000), falling(210_000, 160_000))
    caps = {io: {n: 450_000.0 - 20_000 * n for n in MIXED_N} for io in ("bridged", "routed")}
    pts |= mixed_points(caps)
    for n in (3, 6):
        pts[f"mixed-bridged-n{n}"] = device(caps["bridged"][n], routers=shares(n, 0.4))
        pts[f"mixed-routed-n{n}"] = device(caps["routed"][n], routers=shares(n, 1 / (n + 1)))
    cs = claims.all_claims(pts, {1: 700_000.0})
    got = {c.number: c.verdict for c in cs}
    # bridged host forwards 350/480 = 73% of routed: much lower, so claim 4 holds
    assert got == {1: "differs", 2: "holds", 3: "holds", 4: "holds", 5: "holds", 6: "holds",
                   7: "holds"}
    assert {c.verdict for c in cs} <= VERDICTS


def test_userspace_guests_are_judged_beside_namespace_guests() -> None:
    """Namespace guests close to native (differs), userspace guests far below and falling
    (holds): claim 5 gets a second row for userspace guests, and the report's sentence names
    the kind that reproduces the paper's shape."""
    native = 900_000.0
    pts = guest_points(native, falling(700_000, 650_000), falling(700_000, 650_000))
    slow = falling(300_000, 150_000)
    pts |= {f"guest-bridged-n{n}-userspace": device(c) for n, c in slow.items()}
    pts |= {f"guest-routed-n{n}-userspace": device(c) for n, c in slow.items()}
    rows = claims.all_claims(pts, {})
    fives = [c for c in rows if c.number == 5]
    assert [(c.figure, c.verdict) for c in fives] == [
        ("Fig. 9", "differs"), ("Fig. 9 (userspace guests)", "holds")]
    sentence = claims.which_kind(pts)
    assert "`userspace` guests reproduce" in sentence and "`netns`" not in sentence.split(
        "reproduce")[0]


def test_without_userspace_sweeps_there_are_seven_claims_and_no_kind_sentence() -> None:
    pts = guest_points(900_000, falling(300_000, 200_000), falling(300_000, 200_000))
    assert len(claims.all_claims(pts, {})) == 7
    assert claims.which_kind(pts) == ""
