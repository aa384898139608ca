"""The report's line on the generator's pacing, from stored trials."""

from __future__ import annotations

from vrlab.paper.pacing_check import summarize
from vrlab.results import TG_MAX_BURST, TG_REALTIME, TG_SKIPPED, TrialResult


def trial(rate: float, burst: int | None, skipped: int = 0, rt: bool = True) -> TrialResult:
    extra = {} if burst is None else {TG_MAX_BURST: float(burst), TG_SKIPPED: float(skipped),
                                      TG_REALTIME: float(rt)}
    return TrialResult(target_pps=rate, duration_s=0.5, sent=int(rate * 0.5) - skipped,
                       received=0, received_by_router={}, achieved_pps=rate, extra=extra)


def test_the_largest_burst_is_measured_in_time_at_its_own_rate() -> None:
    # 300 frames at 100 kpps (3 ms) is a bigger burst than 900 frames at 900 kpps (1 ms)
    s = summarize([trial(900_000, 900), trial(100_000, 300, skipped=50, rt=False)])
    assert (s.largest_burst, round(s.largest_burst_s * 1e3, 3)) == (300, 3.0)
    assert (s.trials, s.realtime, s.skipped, s.due) == (2, 1, 50, 500_000)
    assert "300 frames (3.00 ms" in s.line() and "1 of 2 trials" in s.line()


def test_trials_without_a_record_are_counted_apart_never_as_clean() -> None:
    s = summarize([trial(500_000, None), trial(500_000, 100)])
    assert (s.trials, s.unrecorded) == (1, 1)
    assert "1 trials stored without a record" in s.line()
    only_old = summarize([trial(500_000, None)])
    assert "not recorded" in only_old.line()
    assert "largest burst 0" not in only_old.line()
