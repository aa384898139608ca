"""The paper's claims judged from synthetic sweeps: no root, no traffic.

Each sweep comes from a simulated device that forwards everything up to its capacity and drops
the rest, so its peak and whether it saturated are known; a simulated generator may top out
below the offered rate, and repeats may spread. Every expected verdict is derived from those
parameters and the thresholds in ``vrlab.paper.claims``, never from a measured figure."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace

import pytest

from vrlab.paper import claims, link_claim, verdicts
from vrlab.paper.claim import SIMILAR
from vrlab.paper.claims import (
    FALLS,
    FAR_BELOW,
    HYBRID_DROP,
    MUCH_LOWER,
    SHARED_GOAL,
)
from vrlab.paper.figures import GUEST_N, IDLE_N, MIXED_N
from vrlab.paper.link_claim import LINE_RATE
from vrlab.paper.verdicts import (
    AT_CEILING,
    AT_FLOOR,
    DIFFERS,
    GENERATOR_LIMITED,
    HOLDS,
    INCONCLUSIVE,
    MISSING,
    NO_CHECKS,
    NOT_MEASURABLE,
    SATURATED_LOSS,
    UNSATURATED,
    WITHIN_SPREAD,
)
from vrlab.profiles import CALIB_WIDTH
from vrlab.results import SHORT_TOLERANCE
from vrlab.store.rows import SearchRow, SweepPoint

VERDICTS = {"holds", "differs", "inconclusive", "not measurable"}
OFFERED = [k * 100_000.0 for k in range(1, 11)]  # 100-1000 kpps, the simulated sweep's rates
TOP = OFFERED[-1]


def device(capacity: float, rates: Sequence[float] = OFFERED,
           routers: Mapping[str, float] | None = None, *, std: float = 0.0,
           generator_max: float | None = None) -> list[SweepPoint]:
    """A sweep of a device that forwards ``capacity`` pps at most and drops the excess.

    ``routers`` gives each router's share of what is received (shares sum to 1); ``std`` is the
    spread of every point's repeats; the generator offers at most ``generator_max``, and a point
    whose offer falls more than the tolerance short of its target is flagged as the store
    flags it."""
    points = []
    for rate in rates:
        offered = rate if generator_max is None else min(rate, generator_max)
        rx = min(offered, capacity)
        shares = routers or {}
        points.append(SweepPoint(
            target_pps=rate, n=2 if std else 1, mean_pps=rx, std_pps=std, min_pps=rx - std,
            max_pps=rx + std, mean_achieved_pps=offered, mean_loss_ratio=1.0 - rx / offered,
            router_mean_pps={name: rx * s for name, s in shares.items()},
            generator_short=1.0 - offered / rate > SHORT_TOLERANCE))
    return points


def unsaturated() -> list[SweepPoint]:
    """A device faster than anything offered: it never loses a frame."""
    return device(TOP * 2)


def test_device_model_saturates_only_past_its_capacity() -> None:
    """The helper itself: the claims below rely on what ``sweep_rate`` makes of it."""
    r = verdicts.sweep_rate({"k": device(450_000)}, "k")
    assert (r.pps, r.problem, r.fmt()) == (450_000, "", "450 kpps")
    r = verdicts.sweep_rate({"k": unsaturated()}, "k")
    assert (r.pps, r.problem) == (TOP, UNSATURATED) and r.fmt().startswith("≥")


def test_saturation_needs_more_than_the_stated_loss() -> None:
    # A device just above the top rate loses less than SATURATED_LOSS there: not saturated.
    barely = device(TOP * (1 - SATURATED_LOSS / 2))
    assert verdicts.sweep_rate({"k": barely}, "k").problem == UNSATURATED
    assert verdicts.sweep_rate({"k": device(TOP * (1 - SATURATED_LOSS * 2))}, "k").problem == ""


# --------------------------------------------------------------------------- claim 1: generator


def test_generator_below_line_rate_differs() -> None:
    cal = {1: 600_000.0, 8: 590_000.0, 32: 580_000.0}
    c = link_claim.generator(cal)
    assert (c.number, c.verdict) == (1, "differs")
    assert "600 kpps" in c.measured and "580 kpps" in c.measured
    assert "580" in c.why and "line rate" in c.why  # the lowest rate is named
    # spread (600-580)/600 = 3% is within SIMILAR: the rate is independent of the flow count
    assert "is independent" in c.why


def test_an_ipv6_calibration_is_judged_against_the_line_rate_of_its_frames() -> None:
    """1,350 kpps is short of 64-byte line rate (1,488,095 pps) but beyond that of IPv6's
    78-byte frames on the wire (1,275,510 pps) by more than calibration's goal width."""
    assert link_claim.line_rate(60) == LINE_RATE == 1_488_095.0
    assert link_claim.line_rate(74) == 1_275_510.0
    cal = {1: 1_350_000.0, 8: 1_350_000.0}
    assert link_claim.generator(cal).verdict == "differs"
    c = link_claim.generator(cal, ip=6)
    assert c.verdict == "holds", c
    assert "78-byte frames on the wire" in c.measured and "1,275,510 pps" in c.measured
    assert link_claim.generator({}, ip=6).why == "run `vrlab calibrate --ip 6`"


def test_generator_flow_dependence_is_reported() -> None:
    cal = {1: 600_000.0, 32: 600_000.0 * (1 - 2 * SIMILAR)}
    assert "not independent" in link_claim.generator(cal).why


def test_generator_at_line_rate_holds_only_beyond_the_calibration_width() -> None:
    need = LINE_RATE * 0.99
    above = need * (1 + CALIB_WIDTH) * 1.001
    assert link_claim.generator({f: above for f in (1, 8, 32)}).verdict == "holds"
    # at line rate, but within calibration's goal width of the threshold: either side on a repeat
    c = link_claim.generator({1: LINE_RATE, 8: LINE_RATE * 1.01})
    assert (c.verdict, c.reasons) == (INCONCLUSIVE, (WITHIN_SPREAD,))
    assert "another calibration" in c.why
    c = link_claim.generator({1: need / (1 + CALIB_WIDTH) * 1.001})
    assert c.verdict == INCONCLUSIVE
    # one flow count clearly short of it
    assert link_claim.generator({1: above, 32: need / (1 + CALIB_WIDTH) * 0.999}).verdict == \
        "differs"


def test_the_link_carried_counts_loss_free_points_and_lost_counts_full_offers() -> None:
    """What a tg→ts sweep carried loss-free: never a lossy point, nor one whose sink dropped
    frames; where the generator fell short, what it did send. Where it lost frames: only at
    rates the generator offered in full."""
    dropped = [replace(p, sink_dropped=p.target_pps > 500_000) for p in device(TOP * 2)]
    pts = {"direct": device(450_000), "direct-f8": device(TOP * 2, generator_max=300_000),
           "direct-f16": dropped, "direct-f32": device(TOP * 2)}
    assert link_claim.direct_carried(pts, [1, 8, 16, 32, 64]) == {
        1: 400_000, 8: 300_000, 16: 500_000, 32: TOP, 64: 0.0}
    # device(450k) loses 10% at 500k offered; device(380k) behind a generator of 350k never
    # lost a frame it was offered in full
    pts["direct-f8"] = device(380_000, generator_max=350_000)
    assert link_claim.direct_lost(pts, [1, 8, 16, 32, 64]) == {1: 500_000}


def test_a_sweep_beyond_the_calibration_is_named_and_widens_the_range() -> None:
    """Calibration in a slow spell of the host, a sweep later in a fast one: the report says
    both, and names the flow counts that stayed short with what they carried."""
    cal = {1: 600_000.0, 8: 600_000.0, 32: 600_000.0}
    pts = {"direct": device(TOP * 2, generator_max=600_000), "direct-f32": device(TOP * 2)}
    c = link_claim.generator(cal, carried=link_claim.direct_carried(pts, [1, 8, 32]))
    assert c.verdict == DIFFERS  # 1 and 8 flows stay short of line rate either way
    assert f"its Fig. 4 sweep: {TOP / 1e3:.0f} kpps loss-free" in c.measured
    assert "carried more loss-free than it found" in c.why
    assert "moved with the host's load" in c.why
    assert ("carried loss-free was 600 kpps with 1 flow(s), 600 kpps with 8 flow(s), "
            f"{TOP / 1e3:.0f} kpps with 32 flow(s) (calibration, or its Fig. 4 sweep where that "
            "carried more), below") in c.why
    # a flow count whose sweep carried line rate is not among those said to fall short
    c = link_claim.generator(cal, carried={32: LINE_RATE * 1.1})
    assert c.verdict == DIFFERS and "with 32 flow(s)" not in c.why
    assert "600 kpps with 8 flow(s), below" in c.why
    # a sweep within calibration's width of it changes nothing
    near = {32: 600_000.0 * (1 + CALIB_WIDTH / 2)}
    assert link_claim.generator(cal, carried=near) == link_claim.generator(cal)


def test_calibration_and_sweeps_on_either_side_of_line_rate_decide_nothing() -> None:
    need = LINE_RATE * 0.99 * (1 + CALIB_WIDTH) * 1.001
    cal = {1: 600_000.0, 32: 600_000.0}
    c = link_claim.generator(cal, carried={1: need, 32: need})
    assert (c.verdict, c.reasons) == (INCONCLUSIVE, (WITHIN_SPREAD,))
    assert "calibration alone says differs, taken with its Fig. 4 sweeps holds" in c.why
    # one flow count short in both: the sweeps agree with calibration, and it differs
    assert link_claim.generator(cal, carried={1: need}).verdict == DIFFERS


def test_a_sweep_that_carried_its_top_rate_is_only_a_floor() -> None:
    """Calibration with 1 flow in a slow spell (877 kpps), the others fast; the 1-flow sweep,
    later, carried its top rate of 1100 kpps without loss, so the link's limit lies above it,
    unmeasured. Nothing then shows 1 flow short of line rate but the calibration the sweep
    outran: inconclusive, not differs."""
    fast = LINE_RATE * 0.99 * (1 + CALIB_WIDTH) * 1.05
    cal = {1: 877_000.0, 8: fast, 32: fast}
    rates = [100_000.0 + 200_000 * i for i in range(6)]  # 100-1100 kpps, the quick profile's
    pts = {"direct": device(TOP * 2, rates)}
    assert link_claim.direct_open(pts, [1, 8]) == {1}
    c = link_claim.generator(cal, carried=link_claim.direct_carried(pts, [1]),
                             open_top=link_claim.direct_open(pts, [1]))
    assert (c.verdict, c.reasons) == (INCONCLUSIVE, (WITHIN_SPREAD,))
    assert "(its Fig. 4 sweep: 1100 kpps loss-free, its top rate: at least that)" in c.measured
    assert "calibration alone says differs, taken with its Fig. 4 sweeps inconclusive" in c.why
    # a sweep that stopped short of its top rate found the link's limit: it differs
    short = {"direct": device(TOP * 2, rates, generator_max=1_000_000)}
    assert link_claim.direct_open(short, [1]) == set()
    c = link_claim.generator(cal, carried=link_claim.direct_carried(short, [1]),
                             open_top=link_claim.direct_open(short, [1]))
    assert c.verdict == DIFFERS and "1000 kpps with 1 flow(s)" in c.why


def test_a_sweep_that_lost_frames_below_calibration_undoes_a_hold() -> None:
    """The host slowed after calibration: the sweep lost frames at rates the generator
    offered in full, well below what calibration carried. The claim cannot hold on
    calibration alone beside that figure, and says why."""
    top = LINE_RATE * 0.99 * (1 + CALIB_WIDTH) * 1.01
    cal = {1: top, 32: top}
    assert link_claim.generator(cal).verdict == HOLDS
    c = link_claim.generator(cal, lost={1: 900_000.0})
    assert (c.verdict, c.reasons) == (INCONCLUSIVE, (WITHIN_SPREAD,))
    assert "its Fig. 4 sweep lost frames at 900 kpps" in c.measured
    assert "lost frames below what it found (1 flow(s) at 900 under" in c.why
    # a loss within calibration's width of it, or above it, changes nothing
    assert link_claim.generator(cal, lost={1: top / (1 + CALIB_WIDTH / 2)}).verdict == HOLDS


def test_generator_without_calibration_is_not_measurable() -> None:
    c = link_claim.generator({})
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


def test_native_never_saturated_is_inconclusive() -> None:
    pts = native_points(500_000, 500_000, 350_000)
    pts["native-bridged"] = pts["native-routed"] = unsaturated()
    c = claims.native(pts)
    assert (c.verdict, c.reasons) == (INCONCLUSIVE, (UNSATURATED,))
    assert "≥ 1000 kpps (SUT never saturated)" in c.measured
    assert "native-bridged" in c.why and "native-routed" in c.why


def test_native_routed_without_loss_is_not_judged() -> None:
    """Routed never lost a frame: its peak is the generator's top rate, not routing's limit,
    so neither 'similar' nor 'hybrid 30% below the better one' can be decided from it."""
    pts = native_points(500_000, 500_000, 350_000)
    pts["native-routed"] = unsaturated()
    c = claims.native(pts)
    assert (c.verdict, c.reasons) == (INCONCLUSIVE, (UNSATURATED,))
    assert "native-routed" in c.why and "native-bridged" not in c.why


def test_native_bridged_lossy_only_where_the_generator_fell_short() -> None:
    """The report's case: bridged lost frames only at rates the generator could not offer, so
    its peak is the generator's; routed and hybrid alone do not make the claim."""
    pts = native_points(480_000, 480_000, 340_000)
    pts["native-bridged"] = device(500_000, generator_max=550_000)
    c = claims.native(pts)
    assert (c.verdict, c.reasons) == (INCONCLUSIVE, (GENERATOR_LIMITED,))
    assert "bridged ≥ 500 kpps (generator-limited)" in c.measured


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


def test_a_sweep_its_own_search_contradicts_decides_nothing() -> None:
    """The report found the N=6 sweeps at odds with their throughput searches: one of each
    pair did not measure the SUT, so the claim does not differ on them, the reason is named,
    and their peaks are shown without a bound. Every other series is judged as before."""
    base = 500_000.0
    caps = {n: base for n in IDLE_N}
    caps[max(IDLE_N)] = base * (1 - 2 * SIMILAR)
    pts = idle_points(base, caps)
    assert claims.idle_guests(pts, IDLE_N).verdict == DIFFERS
    doubted = verdicts.Sweeps(pts, {f"host-{io}-n{max(IDLE_N)}" for io in ("bridged", "routed")})
    c = claims.idle_guests(doubted, IDLE_N)
    assert (c.verdict, c.reasons) == (INCONCLUSIVE, (verdicts.CONTRADICTED,)), c
    r = verdicts.sweep_rate(doubted, f"host-bridged-n{max(IDLE_N)}")
    assert r.fmt() == f"400 kpps ({verdicts.CONTRADICTED})"
    assert verdicts.sweep_rate(doubted, "host-routed-n1").problem == ""
    assert verdicts.sweep_rate(verdicts.Sweeps({}, {"x"}), "x").problem == MISSING


def test_a_breakdown_its_own_search_contradicts_decides_nothing() -> None:
    pts = breakdown_points(0.6, 0.6)  # routed host far ahead of each guest: differs
    assert claims.breakdown(pts, (3, 6)).verdict == DIFFERS
    c = claims.breakdown(verdicts.Sweeps(pts, {"mixed-routed-n6"}), (3, 6))
    assert (c.verdict, c.reasons) == (INCONCLUSIVE, (verdicts.CONTRADICTED,)), c


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
    """Bridged alone holds far-below and falls, but "bridged and routed are similar" has no
    routed sweep: the claim is not measurable, not contradicted."""
    pts = guest_points(900_000, falling(300_000, 200_000), {})
    c = claims.guests_only(pts, GUEST_N)
    assert (c.verdict, c.reasons) == (NOT_MEASURABLE, (MISSING,))
    assert f"routed: N={min(GUEST_N)} missing" in c.measured
    assert f"guest-routed-n{max(GUEST_N)}" in c.why


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


# --------------------------------------------------------------------------- what a sweep carries


def test_empty_series_is_missing() -> None:
    assert verdicts.series_problem([]) == MISSING
    for pts in ({}, {"native-routed": []}):
        r = verdicts.sweep_rate(pts, "native-routed")
        assert (r.problem, r.fmt()) == (MISSING, "missing")


def test_all_points_generator_short_is_generator_limited() -> None:
    """A generator topping out at 50 kpps falls short at every rate from 100 kpps: even a
    device that drops frames there (40 kpps) is not judged on rates nobody offered in full."""
    for cap in (TOP, 40_000.0):
        pts = device(cap, generator_max=50_000)
        assert all(p.generator_short for p in pts)
        assert verdicts.series_problem(pts) == GENERATOR_LIMITED


def test_loss_only_where_the_generator_fell_short_is_generator_limited() -> None:
    pts = device(500_000, generator_max=550_000)
    assert any(p.mean_loss_ratio > SATURATED_LOSS for p in pts if p.generator_short)
    assert verdicts.series_problem(pts) == GENERATOR_LIMITED


def test_a_shortfall_within_the_tolerance_still_counts_as_offered() -> None:
    pts = device(TOP * 0.9, generator_max=TOP * (1 - SHORT_TOLERANCE / 2))
    assert not any(p.generator_short for p in pts)
    assert verdicts.series_problem(pts) == ""


def test_no_loss_anywhere_is_unsaturated() -> None:
    assert verdicts.series_problem(unsaturated()) == UNSATURATED
    r = verdicts.sweep_rate({"k": unsaturated()}, "k")
    assert (r.problem, r.pps) == (UNSATURATED, TOP)
    assert r.fmt() == "≥ 1000 kpps (SUT never saturated)"


def test_a_short_point_counts_towards_the_peak_but_never_as_loss() -> None:
    """480 kpps received at a 600 kpps target the generator offered as 500: the SUT forwarded
    them, so they are the peak; the SUT's limit is shown by the 500 kpps point it was offered in
    full and could not carry (450 received). The interval reaches the best single repeat."""
    short = device(480_000, rates=[600_000.0], generator_max=500_000, std=5_000)
    assert short[0].generator_short
    pts = device(450_000, rates=OFFERED[:5], std=5_000) + short
    r = verdicts.sweep_rate({"k": pts}, "k")
    assert (r.problem, r.pps, r.low, r.high) == ("", 480_000, 475_000, 485_000)
    assert r.fmt() == "480±5 kpps"
    # the same short point's loss alone shows no limit: without the lossy full offer, a bound
    alone = device(600_000, rates=OFFERED[:4]) + device(480_000, rates=[600_000.0],
                                                         generator_max=500_000)
    r = verdicts.sweep_rate({"k": alone}, "k")
    assert (r.problem, r.pps) == (GENERATOR_LIMITED, 480_000)


def test_loss_below_the_peak_shows_no_limit() -> None:
    """A stall of the VM loses 3% at 300 kpps, and the SUT then carries 400 kpps offered in
    full and 480 where the generator fell short: the peak is the generator's, not a limit at
    300 kpps. The same stall above the peak, at a rate offered in full, is a limit."""
    pts = device(TOP * 2, rates=OFFERED[:4])
    stalled = pts[2]
    pts[2] = SweepPoint(**{**stalled.__dict__, "mean_pps": stalled.mean_pps * 0.97,
                           "mean_loss_ratio": 0.03})
    pts += device(TOP * 2, rates=[600_000.0], generator_max=480_000)
    r = verdicts.sweep_rate({"k": pts}, "k")
    assert (r.problem, r.pps) == (GENERATOR_LIMITED, 480_000)
    over = device(500_000, rates=[700_000.0])  # offered in full, 500 received: a limit
    r = verdicts.sweep_rate({"k": pts + over}, "k")
    assert (r.problem, r.pps) == ("", 500_000)


def test_a_point_the_sink_dropped_at_counts_for_nothing() -> None:
    pts = device(400_000, rates=OFFERED[:6])
    dropped = SweepPoint(**{**pts[-1].__dict__, "target_pps": 700_000.0, "mean_pps": 650_000.0,
                            "max_pps": 650_000.0, "sink_dropped": True})
    r = verdicts.sweep_rate({"k": [*pts, dropped]}, "k")
    assert (r.problem, r.pps, r.high) == ("", 400_000, 400_000)


# --------------------------------------------------------------------------- comparisons


def rate(pps: float, spread: float = 0.0, name: str = "x") -> verdicts.Rate:
    return verdicts.Rate(name, pps, pps - spread, pps + spread)


def test_a_difference_must_exceed_the_combined_spread() -> None:
    """Is x >= k * y? Decided only if it stays so, or stays not so, with each figure moved
    by its spread."""
    def ok(x: verdicts.Rate, y: verdicts.Rate, k: float = 1.0) -> bool | None:
        return verdicts.at_least("x >= k y", x, y, k).ok

    assert ok(rate(110), rate(100)) is True
    assert ok(rate(110, 4), rate(100, 4)) is True  # 106 >= 104
    assert ok(rate(110, 6), rate(100, 6)) is None  # 104 < 106: the bars overlap
    assert ok(rate(90, 4), rate(100, 4)) is False  # 94 < 96
    assert ok(rate(90, 6), rate(100, 6)) is None
    # the threshold scales the other figure's spread too: 2 x (100 ± 5) = 200 ± 10
    assert ok(rate(212, 1), rate(100, 5), 2.0) is True
    assert ok(rate(205, 1), rate(100, 5), 2.0) is None
    c = verdicts.at_least("x >= y", rate(110, 6), rate(100, 6), 1.0)
    assert c.reasons == (WITHIN_SPREAD,)


def test_a_figure_that_is_only_a_bound_is_never_compared() -> None:
    bound = verdicts.Rate("fast", 1e6, 1e6, 1e6, UNSATURATED)
    c = verdicts.at_least("x >= 2 y", bound, rate(1.0), 2.0)
    assert (c.ok, c.reasons, c.causes) == (None, (UNSATURATED,), ((UNSATURATED, "fast"),))


def test_no_claim_holds_on_an_empty_set_of_checks() -> None:
    verdict, reasons, why = verdicts.decide([])
    assert (verdict, reasons) == (INCONCLUSIVE, (NO_CHECKS,))
    assert NO_CHECKS in why


def test_one_contradiction_differs_and_holding_needs_every_check() -> None:
    yes, no = verdicts.Check("a", True), verdicts.Check("b", False)
    short = verdicts.Check("c", None, ((GENERATOR_LIMITED, "s"),))
    gone = verdicts.Check("d", None, ((MISSING, "t"),))
    assert verdicts.decide([yes])[:2] == (HOLDS, ())
    assert verdicts.decide([yes, no, short])[:2] == (DIFFERS, (GENERATOR_LIMITED,))
    assert verdicts.decide([yes, short])[:2] == (INCONCLUSIVE, (GENERATOR_LIMITED,))
    assert verdicts.decide([yes, short, gone])[:2] == (NOT_MEASURABLE, (GENERATOR_LIMITED,
                                                                      MISSING))


# --------------------------------------------------------------------------- verdicts per claim


def test_native_within_spread_is_inconclusive() -> None:
    """Bridged and routed exactly 10% apart hold without spread; ±10 kpps each puts them on
    either side of the threshold."""
    def pts(std: float) -> dict[str, list[SweepPoint]]:
        return {"native-bridged": device(500_000, std=std),
                "native-routed": device(450_000, std=std),
                "native-hybrid": device(350_000, std=std)}

    assert claims.native(pts(0.0)).verdict == HOLDS
    c = claims.native(pts(10_000.0))
    assert (c.verdict, c.reasons) == (INCONCLUSIVE, (WITHIN_SPREAD,))
    assert "bridged and routed within 10%" in c.why


def test_idle_guests_gap_left_by_the_generator_is_no_cost() -> None:
    """Native hybrid saturates at 500 kpps; the host-bridged sweeps stop at 365 kpps only
    because the generator could offer no more. The 27% gap is the generator's, so the claim is
    not contradicted (it was before: native alone had lost frames)."""
    pts = idle_points(500_000, {n: 500_000 for n in IDLE_N})
    for n in IDLE_N:
        pts[f"host-bridged-n{n}"] = device(TOP, generator_max=365_000)
    c = claims.idle_guests(pts, IDLE_N)
    assert (c.verdict, c.reasons) == (INCONCLUSIVE, (GENERATOR_LIMITED,))
    assert "27%" not in c.why and "≥ 365 kpps (generator-limited)" in c.measured


def test_idle_guests_a_real_cost_differs_beside_a_generator_limited_one() -> None:
    pts = idle_points(500_000, {n: 500_000 for n in IDLE_N})
    pts[f"host-bridged-n{max(IDLE_N)}"] = device(TOP, generator_max=365_000)
    pts[f"host-routed-n{max(IDLE_N)}"] = device(350_000)  # saturates 30% below native
    c = claims.idle_guests(pts, IDLE_N)
    assert (c.verdict, c.reasons) == (DIFFERS, (GENERATOR_LIMITED,))
    assert f"routed N={max(IDLE_N)}" in c.why.split("undecided")[0]


def test_idle_guests_within_spread_and_without_guest_counts() -> None:
    pts = {"native-hybrid": device(500_000, std=20_000),
           "host-bridged-n1": device(460_000, std=20_000)}
    pts["native-routed"], pts["host-routed-n1"] = pts["native-hybrid"], pts["host-bridged-n1"]
    c = claims.idle_guests(pts, (1,))
    assert (c.verdict, c.reasons) == (INCONCLUSIVE, (WITHIN_SPREAD,))
    c = claims.idle_guests(pts, ())
    assert (c.verdict, c.reasons) == (INCONCLUSIVE, (NO_CHECKS,))


def test_bridged_costs_needs_routed_saturated_too() -> None:
    """Bridged saturates at 350 kpps, routed never loses: "bridged forwards 35% of routed" was
    judged before; routed's limit is unknown, so it is inconclusive."""
    pts = {"host-bridged-n6": device(350_000), "host-routed-n6": unsaturated()}
    c = claims.bridged_costs(pts, 6)
    assert (c.verdict, c.reasons) == (INCONCLUSIVE, (UNSATURATED,))
    assert "35%" not in c.why


def test_guests_only_native_unsaturated_decides_only_what_it_can() -> None:
    pts = guest_points(900_000, falling(300_000, 200_000), falling(300_000, 200_000))
    pts["native-routed"] = unsaturated()
    c = claims.guests_only(pts, GUEST_N)
    assert (c.verdict, c.reasons) == (INCONCLUSIVE, (UNSATURATED,))
    flat = {n: 200_000.0 for n in GUEST_N}  # not falling: contradicted whatever native is
    pts = guest_points(900_000, flat, flat)
    pts["native-routed"] = unsaturated()
    c = claims.guests_only(pts, GUEST_N)
    assert (c.verdict, c.reasons) == (DIFFERS, (UNSATURATED,))
    # native is only a lower bound, so the factor drawn from it is one too
    assert f"native/guests(N={max(GUEST_N)}) = ≥ 5.0x" in c.measured


def test_guests_only_generator_short_guests_and_no_guest_counts() -> None:
    slow = falling(300_000, 200_000)
    pts = {"native-routed": device(900_000, generator_max=TOP * 0.9)}
    pts |= {f"guest-{io}-n{n}": device(c, generator_max=50_000)
            for io in ("bridged", "routed") for n, c in slow.items()}
    c = claims.guests_only(pts, GUEST_N)
    assert (c.verdict, c.reasons) == (INCONCLUSIVE, (GENERATOR_LIMITED,))
    assert claims.guests_only(pts, ()).reasons == (NO_CHECKS,)


def test_mixed_falls_unsaturated_or_within_spread_is_inconclusive() -> None:
    lo, hi = min(MIXED_N), max(MIXED_N)
    pts = {f"mixed-{io}-n{n}": unsaturated() for io in ("bridged", "routed") for n in (lo, hi)}
    c = claims.mixed_falls(pts, MIXED_N)
    assert (c.verdict, c.reasons) == (INCONCLUSIVE, (UNSATURATED,))
    # 500 -> 470 falls by 6% (holds without spread); ±10 kpps each hides it
    pts = {f"mixed-{io}-n{n}": device(cap, std=10_000) for io in ("bridged", "routed")
           for n, cap in ((lo, 500_000), (hi, 470_000))}
    c = claims.mixed_falls(pts, MIXED_N)
    assert (c.verdict, c.reasons) == (INCONCLUSIVE, (WITHIN_SPREAD,))
    assert claims.mixed_falls(pts, ()).reasons == (NO_CHECKS,)


def livelocked(carried: float, after: float) -> list[SweepPoint]:
    """A sweep of a device that carries every offered rate up to ``carried`` and then, offered
    more, forwards only ``after`` (less than ``carried``: receive livelock): where between
    ``carried`` and the next offered rate its limit lies, no point shows."""
    pts = device(carried)
    return [p if p.target_pps <= carried else
            SweepPoint(target_pps=p.target_pps, n=1, mean_pps=after, std_pps=0.0, min_pps=after,
                       max_pps=after, mean_achieved_pps=p.target_pps,
                       mean_loss_ratio=1.0 - after / p.target_pps, router_mean_pps={},
                       generator_short=False) for p in pts]


def test_a_peak_that_lost_nothing_reaches_up_to_the_next_offered_rate() -> None:
    """Its limit lies between its rate and the next: the interval says so, and a device that
    lost frames at its peak keeps the interval its repeats give."""
    r = verdicts.sweep_rate({"k": livelocked(300_000, 280_000)}, "k")
    assert (r.pps, r.low, r.high, r.problem, r.stepped) == (300_000, 300_000, 400_000, "", True)
    assert r.fmt() == "300-400 kpps"
    r = verdicts.sweep_rate({"k": device(350_000, std=2_000)}, "k")
    assert (r.pps, r.low, r.high, r.stepped) == (350_000, 348_000, 352_000, False)
    assert r.fmt() == "350±2 kpps"


def test_a_fall_from_a_peak_the_sweep_step_hides_is_inconclusive() -> None:
    """Routed N=2 carried all of 300 kpps and less at 400: its limit is 300-400. N=6 at 290
    kpps is 97% of 300 (no fall) but could be far less of N=2's limit, so neither "falls"
    nor "does not fall" follows; far below N=2's 300 kpps, it falls whatever the limit."""
    lo, hi = min(MIXED_N), max(MIXED_N)
    pts = {"mixed-bridged-n2": device(500_000), f"mixed-bridged-n{hi}": device(400_000),
           f"mixed-routed-n{lo}": livelocked(300_000, 280_000),
           f"mixed-routed-n{hi}": device(290_000)}
    c = claims.mixed_falls(pts, MIXED_N)
    assert (c.verdict, c.reasons) == (INCONCLUSIVE, (WITHIN_SPREAD,)), c
    pts[f"mixed-routed-n{hi}"] = device(200_000)
    assert claims.mixed_falls(pts, MIXED_N).verdict == HOLDS


def test_one_guest_count_cannot_show_a_fall() -> None:
    """With a single N the smallest and largest are the same sweep: that is no fall, and no
    failure to fall either."""
    pts = guest_points(900_000, {6: 200_000.0}, {6: 200_000.0})
    c = claims.guests_only(pts, (6,))
    assert (c.verdict, c.reasons) == (INCONCLUSIVE, (NO_CHECKS,))
    mixed = {f"mixed-{io}-n6": device(400_000) for io in ("bridged", "routed")}
    c = claims.mixed_falls(mixed, (6,))
    assert (c.verdict, c.reasons) == (INCONCLUSIVE, (NO_CHECKS,))


def test_breakdown_one_figure_alone_cannot_hold() -> None:
    """Fig. 11 alone (N=3) held before on the bridged check only; and routed N=3 alone held on
    no check at all (it is judged only at the largest N)."""
    pts = breakdown_points(0.4, 1 / 7, ns=(3,))
    c = claims.breakdown(pts, (3, 6))
    assert (c.verdict, c.reasons) == (NOT_MEASURABLE, (MISSING,))
    assert "mixed-bridged-n6" in c.why and "mixed-routed-n6" in c.why
    only_routed = {"mixed-routed-n3": pts["mixed-routed-n3"]}
    assert claims.breakdown(only_routed, (3, 6)).verdict == NOT_MEASURABLE
    assert claims.breakdown(pts, ()).reasons == (NO_CHECKS,)
    assert claims.breakdown(pts, ()).verdict == INCONCLUSIVE


def test_breakdown_skips_points_the_generator_fell_short_at() -> None:
    """The top rate was offered 10% short with an even split; the highest fully offered rate
    shows the host favoured, and that is the one judged."""
    pts = breakdown_points(0.4, 1 / 7)
    pts["mixed-bridged-n3"] = device(400_000, rates=OFFERED[:-1], routers=shares(3, 0.4)) \
        + device(400_000, rates=[TOP], routers=shares(3, 1 / 4), generator_max=TOP * 0.9)
    assert claims.breakdown(pts, (3, 6)).verdict == HOLDS


def test_breakdown_unsaturated_and_within_spread() -> None:
    pts = breakdown_points(0.4, 1 / 7)
    pts["mixed-bridged-n6"] = device(TOP * 2, routers=shares(6, 0.4))
    c = claims.breakdown(pts, (3, 6))
    assert (c.verdict, c.reasons) == (INCONCLUSIVE, (UNSATURATED,))
    # host/guest = 1.25 clears 1.2 exactly, but not with each router ±10%
    h = 1.25 / 4.25
    assert host_to_guest(3, h) == pytest.approx(1.25)
    pts = breakdown_points(0.4, 1 / 7)
    pts["mixed-bridged-n3"] = device(400_000, routers=shares(3, h))
    assert claims.breakdown(pts, (3, 6)).verdict == HOLDS
    pts["mixed-bridged-n3"] = device(400_000, routers=shares(3, h), std=40_000)
    c = claims.breakdown(pts, (3, 6))
    assert (c.verdict, c.reasons) == (INCONCLUSIVE, (WITHIN_SPREAD,))


# --------------------------------------------------------------------------- shared engine


def search(lower: float | None, upper: float | None = None, *, floor: bool = False,
           ceiling: bool = False) -> SearchRow:
    return SearchRow(id=1, run_id=1, goal="NDR", loss_ratio=0.0, started_at="",
                     finished_at="", lower_pps=lower,
                     upper_pps=upper if upper is not None else lower, conditional_pps=lower,
                     width=0.0, trials_used=1, time_spent_s=1.0,
                     result={"lower_is_min": floor, "upper_is_max": ceiling})


NATIVE_NDR = search(600_000, 612_000)


def test_shared_engine_holds_and_differs_beyond_the_search_intervals() -> None:
    keeps = {n: search(560_000, 571_000) for n in (1, 4)}  # 560 >= 0.9 x 612
    c = claims.shared_engine(NATIVE_NDR, keeps)
    assert (c.number, c.verdict, c.reasons) == (8, HOLDS, ())
    assert "N=1 0.93" in c.why
    drops = keeps | {16: search(400_000, 408_000)}  # 408 < 0.9 x 600
    assert claims.shared_engine(NATIVE_NDR, drops).verdict == DIFFERS


def test_shared_engine_both_at_the_ceiling_is_inconclusive() -> None:
    """Native and shared both reach the calibrated maximum: their ratio of 1.0 compares the
    generator with itself (it held before)."""
    top = search(550_000, ceiling=True)
    c = claims.shared_engine(top, {n: search(550_000, ceiling=True) for n in (1, 4)})
    assert (c.verdict, c.reasons) == (INCONCLUSIVE, (AT_CEILING,))
    assert "native-routed" in c.why
    # the shared engine alone at the ceiling: its NDR is only a floor, still not judged
    assert SHARED_GOAL * 612_000 <= 560_000  # on its numbers it would hold
    c = claims.shared_engine(NATIVE_NDR, {1: search(560_000, ceiling=True)})
    assert (c.verdict, c.reasons) == (INCONCLUSIVE, (AT_CEILING,))
    assert "≥ 560 kpps (at the search's ceiling)" in c.measured
    # ...but the reader is told the floor clears the goal, in the table's own ratio
    assert "floors alone clear the goal (shared / native: N=1 ≥ 0.93)" in c.why
    assert "floors alone" not in claims.shared_engine(top, {1: search(550_000, ceiling=True)}).why
    low = claims.shared_engine(NATIVE_NDR, {1: search(500_000, ceiling=True)})  # 500 < 0.9 x 612
    assert low.verdict == INCONCLUSIVE and "floors alone" not in low.why
    # a decided shortfall beside a clearing floor differs, and says nothing of floors
    c = claims.shared_engine(NATIVE_NDR, {1: search(560_000, ceiling=True),
                                          4: search(400_000, 408_000)})
    assert c.verdict == DIFFERS and "floors alone" not in c.why


def test_shared_engine_at_the_floor_or_within_the_interval_is_inconclusive() -> None:
    c = claims.shared_engine(NATIVE_NDR, {1: search(10_000, floor=True)})
    assert (c.verdict, c.reasons) == (INCONCLUSIVE, (AT_FLOOR,))
    assert "≤ 10 kpps (at the search's floor)" in c.measured
    c = claims.shared_engine(NATIVE_NDR, {1: search(545_000, 560_000)})
    assert (c.verdict, c.reasons) == (INCONCLUSIVE, (WITHIN_SPREAD,))
    assert "600-612 kpps" in c.measured


def test_shared_engine_missing_or_empty() -> None:
    c = claims.shared_engine(None, {1: search(560_000)})
    assert (c.verdict, c.reasons) == (NOT_MEASURABLE, (MISSING,))
    c = claims.shared_engine(NATIVE_NDR, {1: search(None), 4: None})
    assert (c.verdict, c.reasons) == (NOT_MEASURABLE, (MISSING,))
    c = claims.shared_engine(NATIVE_NDR, {})
    assert (c.verdict, c.reasons) == (INCONCLUSIVE, (NO_CHECKS,))


# --------------------------------------------------------------------------- whole reproductions


def test_a_generator_below_every_limit_decides_nothing() -> None:
    """The full synthetic reproduction that holds everywhere, re-measured with a generator that
    tops out at 300 kpps: only what saturated below that (the guests) can be decided."""
    gen = 300_000.0
    pts: dict[str, list[SweepPoint]] = {
        "native-bridged": device(500_000, generator_max=gen),
        "native-routed": device(480_000, generator_max=gen),
        "native-hybrid": device(350_000, generator_max=gen)}
    for n in IDLE_N:
        pts[f"host-bridged-n{n}"] = device(350_000, generator_max=gen)
        pts[f"host-routed-n{n}"] = device(480_000, generator_max=gen)
    for io, (a, z) in (("bridged", (200_000, 150_000)), ("routed", (210_000, 160_000))):
        pts |= {f"guest-{io}-n{n}": device(c, generator_max=gen)
                for n, c in falling(a, z).items()}
    for io in ("bridged", "routed"):
        for n in MIXED_N:
            host = 0.4 if io == "bridged" else 1 / (n + 1)
            pts[f"mixed-{io}-n{n}"] = device(450_000 - 20_000 * n, routers=shares(n, host),
                                             generator_max=gen)
    got = {c.number: (c.verdict, c.reasons) for c in claims.all_claims(pts, {1: gen})}
    assert got.pop(1)[0] == DIFFERS  # the generator's own claim
    assert got == {n: (INCONCLUSIVE, (GENERATOR_LIMITED,)) for n in range(2, 8)}


def test_partial_userspace_sweeps_get_their_row_but_no_kind_sentence() -> None:
    pts = guest_points(900_000, falling(700_000, 650_000), falling(700_000, 650_000))
    pts |= {f"guest-bridged-n{n}-userspace": device(c)
            for n, c in falling(300_000, 150_000).items()}
    fives = [c for c in claims.all_claims(pts, {}) if c.number == 5]
    assert [(c.figure, c.verdict) for c in fives] == [
        ("Fig. 9", DIFFERS), ("Fig. 9 (userspace guests)", NOT_MEASURABLE)]
    assert claims.which_kind(pts) == ""


def test_a_peak_at_the_top_rate_that_lost_nothing_has_no_next_rate_to_reach() -> None:
    """The best point is the highest offered rate, carried in full, and a lower rate lost
    frames above what the best carried (a stall there): no rate lies above it, so the
    interval stays the repeats' own."""
    pts = device(TOP * 2)
    stalled = pts[-2]
    pts[-2] = SweepPoint(
        target_pps=stalled.target_pps, n=1, mean_pps=stalled.target_pps * 0.5, std_pps=0.0,
        min_pps=stalled.target_pps * 0.5, max_pps=stalled.target_pps * 0.5,
        mean_achieved_pps=stalled.target_pps, mean_loss_ratio=0.5, router_mean_pps={},
        generator_short=False)
    top = pts[-1]
    pts[-1] = SweepPoint(
        target_pps=top.target_pps, n=1, mean_pps=stalled.target_pps * 0.9, std_pps=0.0,
        min_pps=stalled.target_pps * 0.9, max_pps=stalled.target_pps * 0.9,
        mean_achieved_pps=stalled.target_pps * 0.9, mean_loss_ratio=0.0,
        router_mean_pps={}, generator_short=True)
    r = verdicts.sweep_rate({"k": pts}, "k")
    assert not r.stepped and r.high == r.pps, r
