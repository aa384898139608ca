"""The report checks itself: two of its numbers about one configuration must not contradict
each other. The check that can be made from stored data alone: a throughput search's zero-loss
bound (NDR) says the SUT carried that load without loss, so the same configuration's sweep must
not have lost frames at a lower load. Where every repeat of such a sweep point lost more than
the slack, one of the two measurements was not of the SUT (a mode switch of the machine, a
testbed fault the trials did not see), and the report says so instead of printing both as
facts.

What the sweep delivered past the NDR is no check of it: a SUT can forward less under overload
than it carries without loss (its maximum forwarding rate, RFC 2285's, below its NDR), as this
testbed's native router does (docs/design-notes.md). The report names each configuration where
that is so, with the gap, so the two numbers read as what they are.

Only points the generator offered in full, with a sink that kept up, measured the SUT; a
configuration whose sweep has no such point below its bound is left unchecked, which the report
says rather than counting it either way."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from vrlab.store.rows import SearchRow, SweepPoint

#: slack for the sweep's own measurement (whole frames over a short trial, pacing error, a
#: repeat the VM stalled in)
SLACK = 0.02


@dataclass(frozen=True)
class Finding:
    series: str
    #: True: agrees; False: contradiction; None: the sweep cannot check the bound
    ok: bool | None
    text: str
    #: the sweep delivered less than the NDR when offered more: forwarding falls under
    #: overload (this sentence says by how much; "" when it does not)
    overload: str = ""
    #: the sweep's peak, a mean of repeats, lies below the NDR though its best repeat does not
    #: (this sentence says by how much; "" when it does not)
    spread: str = ""


def _honest(p: SweepPoint) -> bool:
    return not p.generator_short and not p.sink_dropped


def ndr_within_sweep(series: str, points: Sequence[SweepPoint],
                     ndr: SearchRow | None) -> Finding | None:
    """None when there is nothing to compare (no sweep, or no NDR bound)."""
    if not points or ndr is None or ndr.lower_pps is None:
        return None
    bound = ndr.lower_pps
    below = [p for p in points if _honest(p) and p.mean_achieved_pps * (1 + SLACK) <= bound]
    if not below:
        return Finding(series, None,
                       f"NDR lower bound {bound / 1e3:.0f} kpps not checked: its sweep offered "
                       "no lower load in full with a sink that kept up")
    lossy = [p for p in below if p.max_pps < p.mean_achieved_pps * (1 - SLACK)]
    if lossy:
        at = min(lossy, key=lambda p: p.mean_achieved_pps)
        loss = 1 - at.max_pps / at.mean_achieved_pps
        return Finding(series, False,
                       f"NDR lower bound {bound / 1e3:.0f} kpps, yet its sweep lost frames at "
                       f"{at.mean_achieved_pps / 1e3:.0f} kpps offered ({loss:.1%} in its best "
                       "repeat): one of the two did not measure the SUT")
    top = max(below, key=lambda p: p.mean_achieved_pps)
    text = (f"NDR lower bound {bound / 1e3:.0f} kpps, and its sweep lost nothing beyond "
            f"{SLACK:.0%} up to {top.mean_achieved_pps / 1e3:.0f} kpps offered")
    falls = _overload(points, bound)
    return Finding(series, True, text, falls, "" if falls else _spread(points, bound))


def _overload(points: Sequence[SweepPoint], bound: float) -> str:
    """How far below the NDR the sweep's forwarding fell when offered more ("" if it did
    not)."""
    above = [p for p in points if _honest(p) and p.mean_achieved_pps >= bound]
    if not above:
        return ""
    delivered = max(p.max_pps for p in above)
    if delivered * (1 + SLACK) >= bound:
        return ""
    lo = min(p.mean_achieved_pps for p in above)
    hi = max(p.mean_achieved_pps for p in above)
    span = f"{lo / 1e3:.0f} kpps" if hi - lo < 500 else \
        f"{lo / 1e3:.0f}-{hi / 1e3:.0f} kpps"
    return (f"offered {span}, it forwarded at most {delivered / 1e3:.0f} kpps in its best "
            f"repeat, {1 - delivered / bound:.0%} below its NDR lower bound of "
            f"{bound / 1e3:.0f} kpps: its forwarding falls under overload")


def _spread(points: Sequence[SweepPoint], bound: float) -> str:
    """How far the sweep's peak as its figure shows it (the highest mean of repeats, where the
    sink kept up: :func:`vrlab.paper.verdicts.sweep_rate`) lies below the NDR while its best
    repeat does not ("" if it does not)."""
    counted = [p for p in points if not p.sink_dropped]
    if not counted:
        return ""
    at = max(counted, key=lambda p: p.mean_pps)
    peak, best = at.mean_pps, max(p.max_pps for p in counted)
    if peak * (1 + SLACK) >= bound or best < bound:
        return ""
    why = ("the generator fell short at that load in some repeat" if at.generator_short
           else "its repeats spread")
    return (f"its figure's peak, a mean of repeats, is {peak / 1e3:.0f} kpps, "
            f"{1 - peak / bound:.0%} below its NDR lower bound of {bound / 1e3:.0f} kpps, "
            f"while its best repeat forwarded {best / 1e3:.0f} kpps: {why}")


def check(points: Mapping[str, Sequence[SweepPoint]],
          ndr_rows: Mapping[str, Mapping[str, SearchRow]]) -> list[Finding]:
    out = []
    for series, goals in sorted(ndr_rows.items()):
        f = ndr_within_sweep(series, points.get(series, ()), goals.get("NDR"))
        if f is not None:
            out.append(f)
    return out


def section(findings: Sequence[Finding]) -> list[str]:
    """The report's section: every contradiction named, how many checks passed, and where
    forwarding falls below the NDR under overload."""
    lines = ["## Consistency of this report", ""]
    if not findings:
        return [*lines, "No configuration has both a sweep and a throughput search: nothing "
                "to cross-check.", ""]
    bad = [f for f in findings if f.ok is False]
    open_ = [f for f in findings if f.ok is None]
    good = len(findings) - len(bad) - len(open_)
    lines.append(f"{good} of {len(findings)} configurations with both a sweep and a throughput "
                 "search agree with themselves (no sweep point offered below the NDR lost "
                 f"more than {SLACK:.0%} in its best repeat); {len(bad)} "
                 f"contradict themselves; {len(open_)} cannot be checked.")
    lines += [f"- **contradiction** in {f.series}: {f.text}." for f in bad]
    lines += [f"- not checked in {f.series}: {f.text}." for f in open_]
    falls = [f for f in findings if f.overload]
    if falls:
        lines += ["", "Past its NDR a SUT may forward less than it carries without loss (its "
                  "maximum forwarding rate below its NDR): no contradiction, but the sweep's "
                  "peak and the NDR then measure different things."]
        lines += [f"- {f.series}: {f.overload}." for f in falls]
    spread = [f for f in findings if f.spread]
    if spread:
        lines += ["", "A sweep's peak is the mean of its repeats at one load; where some repeats "
                  "stalled, fell under overload or were offered less than others, that mean can "
                  "lie below the NDR while the best repeat reached it: no contradiction, but "
                  "the two numbers carry that spread."]
        lines += [f"- {f.series}: {f.spread}." for f in spread]
    return [*lines, ""]
