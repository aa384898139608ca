"""The report checks itself: two of its numbers about one configuration must not contradict
each other. The one check that can be made from stored data alone: a throughput search's
zero-loss bound (NDR) cannot lie above every rate the same configuration's sweep ever
delivered, since a load that passed with no loss delivered that load. Where it does, one of the
two measurements was not of the SUT (a generator short of its target, a mode switch of the
machine), and the report says so instead of printing both as facts."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from vrlab.store.rows import SearchRow, SweepPoint

#: slack for the sweep's own measurement (whole frames over a short trial, pacing error)
SLACK = 0.02


@dataclass(frozen=True)
class Finding:
    series: str
    ok: bool
    text: str


def ndr_within_sweep(series: str, points: Sequence[SweepPoint],
                     ndr: SearchRow | None) -> Finding | None:
    """None when there is nothing to compare (no sweep, or no NDR bound)."""
    if not points or ndr is None or ndr.lower_pps is None:
        return None
    delivered = max(p.max_pps for p in points)
    bound = ndr.lower_pps
    if bound > delivered * (1 + SLACK):
        return Finding(series, False,
                       f"NDR lower bound {bound / 1e3:.0f} kpps is above the most its sweep "
                       f"ever delivered, {delivered / 1e3:.0f} kpps: one of the two did not "
                       "measure the SUT")
    return Finding(series, True,
                   f"NDR lower bound {bound / 1e3:.0f} kpps within what its sweep delivered "
                   f"(at most {delivered / 1e3:.0f} kpps)")


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
    bad = [f for f in findings if not f.ok]
    lines.append(f"{len(findings) - len(bad)} of {len(findings)} configurations with both a "
                 "sweep and a throughput search agree with themselves (an NDR cannot exceed "
                 f"the most its sweep delivered, with {SLACK:.0%} slack).")
    lines += [f"- **contradiction** in {f.series}: {f.text}." for f in bad]
    return [*lines, ""]
