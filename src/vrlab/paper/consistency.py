"""The report checks itself: two of its numbers about one configuration must not contradict
each other. The one check that can be made from stored data alone: a throughput search's
zero-loss bound (NDR) cannot lie above what the same configuration's sweep delivered when it
was offered at least that much, since a load that passed with no loss delivered that load.
Where it does, one of the two measurements was not of the SUT (a mode switch of the machine, a
testbed fault the trials did not see), and the report says so instead of printing both as
facts.

Only sweep points that offered the SUT at least the bound can contradict it: a point the
generator could not offer (its achieved rate below the bound) or whose sink dropped frames
measured the testbed, not the SUT, and a sweep whose honest points all lie below the bound
leaves the check undecided, which the report says rather than counting it either way."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from vrlab.store.rows import SearchRow, SweepPoint

#: slack for the sweep's own measurement (whole frames over a short trial, pacing error)
SLACK = 0.02


@dataclass(frozen=True)
class Finding:
    series: str
    #: True: agrees; False: contradiction; None: the sweep cannot check the bound
    ok: bool | None
    text: str


def ndr_within_sweep(series: str, points: Sequence[SweepPoint],
                     ndr: SearchRow | None) -> Finding | None:
    """None when there is nothing to compare (no sweep, or no NDR bound)."""
    if not points or ndr is None or ndr.lower_pps is None:
        return None
    bound = ndr.lower_pps
    honest = [p for p in points if p.mean_achieved_pps >= bound and not p.sink_dropped]
    if not honest:
        top = max(p.mean_achieved_pps for p in points)
        return Finding(series, None,
                       f"NDR lower bound {bound / 1e3:.0f} kpps not checked: its sweep never "
                       f"offered that much with a sink that kept up (the most the generator "
                       f"offered was {top / 1e3:.0f} kpps)")
    delivered = max(p.max_pps for p in honest)
    if bound > delivered * (1 + SLACK):
        at = max(honest, key=lambda p: p.max_pps)
        return Finding(series, False,
                       f"NDR lower bound {bound / 1e3:.0f} kpps is above the most its sweep "
                       f"delivered when offered at least that much, {delivered / 1e3:.0f} kpps "
                       f"(offered {at.mean_achieved_pps / 1e3:.0f} kpps): one of the two did "
                       "not measure the SUT")
    return Finding(series, True,
                   f"NDR lower bound {bound / 1e3:.0f} kpps within what its sweep delivered "
                   f"when offered at least that much (up to {delivered / 1e3:.0f} kpps)")


def check(points: Mapping[str, Sequence[SweepPoint]],
          ndr_rows: Mapping[str, Mapping[str, SearchRow]]) -> list[Finding]:
    out = []
    for series, goals in sorted(ndr_rows.items()):
        f = ndr_within_sweep(series, points.get(series, ()), goals.get("NDR"))
        if f is not None:
            out.append(f)
    return out


def section(findings: Sequence[Finding]) -> list[str]:
    """The report's section: every contradiction named, and how many checks passed."""
    lines = ["## Consistency of this report", ""]
    if not findings:
        return [*lines, "No configuration has both a sweep and a throughput search: nothing "
                "to cross-check.", ""]
    bad = [f for f in findings if f.ok is False]
    open_ = [f for f in findings if f.ok is None]
    good = len(findings) - len(bad) - len(open_)
    lines.append(f"{good} of {len(findings)} configurations with both a sweep and a throughput "
                 "search agree with themselves (an NDR cannot exceed what its sweep delivered "
                 f"when offered at least as much, with {SLACK:.0%} slack); {len(bad)} "
                 f"contradict themselves; {len(open_)} cannot be checked.")
    lines += [f"- **contradiction** in {f.series}: {f.text}." for f in bad]
    lines += [f"- not checked in {f.series}: {f.text}." for f in open_]
    return [*lines, ""]
