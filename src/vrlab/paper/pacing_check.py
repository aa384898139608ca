"""What the report says of the generator's pacing over every trial it draws on: the constant
rate RFC 2544 asks for is a property of the testbed that the same run must show, not assume.

A trial's mean rate can be exact while its frames leave in bursts; the pacing loop
(:mod:`vrlab.traffic.pacing`) bounds its catch-up and records, per trial, its largest burst,
the frames it skipped rather than sent late, and whether it ran at real-time priority. This
sums them up: the largest burst as time at its trial's rate, the frames skipped as a share of
those due, and how many trials had real-time priority. Trials stored before the generator
recorded these say nothing and are counted apart."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from vrlab.results import TG_MAX_BURST, TG_REALTIME, TG_SKIPPED, TrialResult


@dataclass(frozen=True)
class PacingSummary:
    trials: int  # trials that recorded their pacing
    unrecorded: int  # trials that did not (stored by an older generator, or a remote one)
    largest_burst: int  # frames
    largest_burst_s: float  # that burst as time at its trial's target rate
    skipped: int
    due: int  # frames the trials were to offer
    realtime: int  # trials whose loop ran at real-time priority

    def line(self) -> str:
        if not self.trials:
            return ("- generator pacing: not recorded by these trials (largest burst and skipped "
                    "frames unknown)")
        share = self.skipped / self.due if self.due else 0.0
        text = (f"- generator pacing, over the {self.trials} trials of the sweeps and searches: "
                f"largest burst "
                f"{self.largest_burst} frames ({self.largest_burst_s * 1e3:.2f} ms at its "
                f"trial's rate); {self.skipped} frames skipped as late ({share:.3%} of those "
                f"due, counted as the generator's shortfall); real-time priority in "
                f"{self.realtime} of {self.trials} trials")
        if self.unrecorded:
            text += f"; {self.unrecorded} trials stored without a record of their pacing"
        return text


def summarize(trials: Iterable[TrialResult]) -> PacingSummary:
    n = unrecorded = biggest = skipped = due = rt = 0
    biggest_s = 0.0
    for t in trials:
        if TG_MAX_BURST not in t.extra:
            unrecorded += 1
            continue
        n += 1
        burst = int(t.extra[TG_MAX_BURST])
        if t.target_pps > 0 and burst / t.target_pps > biggest_s:
            biggest, biggest_s = burst, burst / t.target_pps
        skipped += int(t.extra.get(TG_SKIPPED, 0))
        due += round(t.target_pps * t.duration_s)
        rt += int(t.extra.get(TG_REALTIME, 0) > 0)
    return PacingSummary(n, unrecorded, biggest, biggest_s, skipped, due, rt)
