"""Claim 1, the testbed's own: the generator and the sink carry line rate loss-free with 1 to
32 flows. It is judged on calibration and on the tg→ts sweeps of Fig. 4, not on a SUT, so its
measure is line rate and its spread calibration's goal width."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence

from vrlab.framesize import min_frame
from vrlab.paper.claim import SIMILAR, Claim, rel
from vrlab.paper.verdicts import (
    DIFFERS,
    HOLDS,
    INCONCLUSIVE,
    MISSING,
    NOT_MEASURABLE,
    SATURATED_LOSS,
    UNBUILDABLE,
    WITHIN_SPREAD,
    Points,
    fully_offered,
)
from vrlab.profiles import CALIB_WIDTH
from vrlab.store.rows import SweepPoint


def line_rate(frame_size: int) -> float:
    """1 GbE's frames per second (whole frames) at ``frame_size`` bytes without FCS: each
    takes 24 bytes more on the wire (FCS 4, preamble 8, inter-frame gap 12)."""
    return float(int(1e9 / ((frame_size + 24) * 8)))


LINE_RATE = line_rate(60)  # the paper's 64-byte frames: 1,488,095 pps


def _link_verdict(rates: Mapping[int, float], ip: int, floors: Collection[int] = ()) -> str:
    """Line rate (1% allowance) reached by every flow count beyond calibration's goal width:
    holds; one short of it beyond that width: differs, unless its rate is only a floor (a sweep
    that carried its top rate without loss never found its limit); otherwise, within the width
    either side, a repeat of the same measurement can land on either side of the threshold:
    inconclusive."""
    need = line_rate(min_frame(ip)) * 0.99
    if all(r >= need * (1 + CALIB_WIDTH) for r in rates.values()):
        return HOLDS
    if any(r * (1 + CALIB_WIDTH) <= need and f not in floors for f, r in rates.items()):
        return DIFFERS
    return INCONCLUSIVE


def generator(cal: Mapping[int, float], ip: int = 4, unbuildable: str = "",
              carried: Mapping[int, float] | None = None,
              lost: Mapping[int, float] | None = None,
              open_top: Collection[int] = ()) -> Claim:
    """Judged on the calibration (a zero-loss search per flow count) and, where given, the
    Fig. 4 sweeps: ``carried``, per flow count, the most its sweep carried with no frame lost
    (:func:`direct_carried`), ``lost``, the lowest rate it offered in full and lost frames
    at (:func:`direct_lost`), and ``open_top``, the flow counts whose sweep carried its top
    rate in full without loss, so that what it carried is only a floor (:func:`direct_open`).
    The sweeps run after calibration, and on a shared host the testbed's speed moves with the
    host's load, so the two can disagree either way; the claim names that, and where
    calibration alone and calibration with the sweeps give different verdicts, the run cannot
    decide the claim. ``ip``: the IP version of the calibration's
    frames, at that version's smallest; line rate is theirs (IPv6's 74-byte frames, 78 on the
    wire: 1,275,510 pps). ``unbuildable``: why the testbed cannot link its generator straight
    to its sink (a testbed file whose tg and ts are two machines), "" where it can."""
    quote = ("TG and TS carry every offered rate loss-free, up to line rate (1,488,095 pps), "
             "with 1 to 32 flows.")
    if not cal and unbuildable:
        return Claim(1, quote, "Fig. 4", NOT_MEASURABLE, "no calibration",
                     f"{UNBUILDABLE}: tg→ts: {unbuildable}", (MISSING, UNBUILDABLE))
    if not cal:
        return Claim(1, quote, "Fig. 4", NOT_MEASURABLE, "no calibration stored",
                     "run `vrlab calibrate" + (f" --ip {ip}" if ip != 4 else "") + "`",
                     (MISSING,))
    more = {f: c for f, c in (carried or {}).items()
            if f in cal and c > cal[f] * (1 + CALIB_WIDTH)}
    less = {f: x for f, x in (lost or {}).items() if f in cal and x * (1 + CALIB_WIDTH) < cal[f]}
    best = {f: max(r, more.get(f, 0.0)) for f, r in cal.items()}
    floors = {f for f in more if f in open_top}
    worst = {f: min(r, less.get(f, r)) for f, r in cal.items()}
    vals = ", ".join(f"{f} flow(s): {r / 1e3:.0f} kpps"
                     + (f" (its Fig. 4 sweep: {more[f] / 1e3:.0f} kpps loss-free"
                        + (", its top rate: at least that" if f in floors else "") + ")"
                        if f in more else "")
                     + (f" (its Fig. 4 sweep lost frames at {less[f] / 1e3:.0f} kpps)"
                        if f in less else "") for f, r in sorted(cal.items()))
    low, high = min(cal.values()), max(cal.values())
    flat = rel(low, high) <= SIMILAR
    size = min_frame(ip)
    rate = line_rate(size)
    need = rate * 0.99
    if ip != 4:
        vals += f" ({size + 4}-byte frames on the wire, whose line rate is {rate:,.0f} pps)"
    flows = (f"the rate is {'' if flat else 'not '}independent of the flow count (spread "
             f"{rel(low, high):.0%}, threshold {SIMILAR:.0%}, calibration)")
    seen = ["carried more loss-free than it found ("
            + ", ".join(f"{f} flow(s) {more[f] / 1e3:.0f} over {cal[f] / 1e3:.0f} kpps"
                        for f in sorted(more)) + ")"] if more else []
    seen += ["lost frames below what it found ("
             + ", ".join(f"{f} flow(s) at {less[f] / 1e3:.0f} under {cal[f] / 1e3:.0f} kpps"
                         for f in sorted(less)) + ")"] if less else []
    moved = ("" if not seen else "; the Fig. 4 sweeps, run after calibration, "
             + " and ".join(seen) + ": the testbed's speed moved with the host's load during "
             "the run")
    verdict = _link_verdict(cal, ip)
    others = sorted({_link_verdict(best, ip, floors), _link_verdict(worst, ip)} - {verdict})
    if others:
        return Claim(1, quote, "Fig. 4", INCONCLUSIVE, vals,
                     f"calibration alone says {verdict}, taken with its Fig. 4 sweeps "
                     f"{' or '.join(others)}{moved}; {flows}", (WITHIN_SPREAD,))
    if verdict == HOLDS:
        return Claim(1, quote, "Fig. 4", HOLDS, vals,
                     f"every flow count reaches line rate (by more than calibration's goal width "
                     f"{CALIB_WIDTH:.0%}); {flows}{moved}")
    if verdict == INCONCLUSIVE:
        return Claim(1, quote, "Fig. 4", INCONCLUSIVE, vals,
                     f"the lowest loss-free rate, {low / 1e3:.0f} kpps, is within calibration's "
                     f"goal width ({CALIB_WIDTH:.0%}) of line rate less 1% ({need / 1e3:.0f} "
                     f"kpps): another calibration can fall on either side; {flows}{moved}",
                     (WITHIN_SPREAD,))
    short = {f: b for f, b in sorted(best.items())
             if b * (1 + CALIB_WIDTH) <= need and f not in floors}
    top = (", ".join(f"{b / 1e3:.0f} kpps with {f} flow(s)" for f, b in short.items())
           + (" (calibration, or its Fig. 4 sweep where that carried more)"
              if any(f in more for f in short) else ""))
    return Claim(1, quote, "Fig. 4", DIFFERS, vals,
                 f"the most the generator and the sink, together on one core of this VM, "
                 f"carried loss-free was {top}, below 1 GbE line rate; {flows}{moved}. "
                 "Rates the generator could not offer are flagged in every figure, never "
                 "counted as SUT loss.")


def _direct(points: Points, flows: int) -> Sequence[SweepPoint]:
    from vrlab.paper.figures import SweepKey

    return points.get(SweepKey("direct", None, flows).key, ())


def direct_carried(points: Points, flows: Sequence[int]) -> dict[int, float]:
    """Per flow count, the most its tg→ts sweep (Fig. 4) received at a point where no frame
    sent was lost, 0 where none: what generator and sink carried loss-free in the sweep. A
    point the generator fell short at counts with what it did send: on this link the
    generator is half of what the claim is about."""
    return {f: max((p.mean_pps for p in _direct(points, f)
                    if p.mean_loss_ratio <= 0.0 and not p.sink_dropped), default=0.0)
            for f in flows}


def direct_lost(points: Points, flows: Sequence[int]) -> dict[int, float]:
    """Per flow count, the lowest rate its tg→ts sweep offered in full and lost more than
    :data:`SATURATED_LOSS` at (flow counts whose sweep lost nothing there are left out)."""
    out = {}
    for f in flows:
        lossy = [p.mean_achieved_pps for p in fully_offered(_direct(points, f))
                 if p.mean_loss_ratio > SATURATED_LOSS]
        if lossy:
            out[f] = min(lossy)
    return out


def direct_open(points: Points, flows: Sequence[int]) -> set[int]:
    """The flow counts whose tg→ts sweep carried its highest offered rate in full, with no
    frame lost: the link's limit lies above what that sweep offered."""
    out = set()
    for f in flows:
        pts = _direct(points, f)
        if pts:
            top = max(pts, key=lambda p: p.target_pps)
            if (not top.generator_short and not top.sink_dropped
                    and top.mean_loss_ratio <= 0.0):
                out.add(f)
    return out
