"""How measured figures become verdicts, for every claim the report judges.

A verdict is one of:

- ``holds`` / ``differs``: every figure the claim compares is the SUT's own (the SUT lost frames
  at a rate the generator really offered) and each comparison clears its threshold, or misses
  it, by more than the figures' combined measured spread;
- ``inconclusive``: something was measured but cannot carry the claim, and the reasons say why
  (generator-limited, SUT never saturated, a search at its ceiling or floor, a difference within
  the measured spread, or nothing to check);
- ``not measurable``: a series the claim needs was never stored (and nothing stored
  contradicts the claim); the reasons name it, beside any other reason. Across the machines of
  a testbed file, a claim that rests on a series the testbed cannot build is not measurable
  there whatever else was measured (:data:`UNBUILDABLE`, :func:`vrlab.paper.claims.across_hosts`),
  with the testbed's reason.

A claim differs as soon as one comparison contradicts it beyond the spread; it holds only when
every comparison it rests on was decided in its favour, and never on an empty set of them.
Kept apart from the claims so that the rules are read, and tested, once for all of them."""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace

from vrlab.paper import repeated
from vrlab.store.rows import SearchRow, SweepPoint

SATURATED_LOSS = 0.01  # a sweep reached the SUT's limit if some point lost more than 1%

HOLDS, DIFFERS = "holds", "differs"
INCONCLUSIVE, NOT_MEASURABLE = "inconclusive", "not measurable"
VERDICTS = (HOLDS, DIFFERS, INCONCLUSIVE, NOT_MEASURABLE)

# Why a comparison could not be decided; a claim that neither holds nor differs names them.
MISSING = "series missing"
GENERATOR_LIMITED = "generator-limited"
UNSATURATED = "SUT never saturated"
AT_CEILING = "at the search's ceiling"
AT_FLOOR = "at the search's floor"
WITHIN_SPREAD = "difference within the measured spread"
NO_CHECKS = "nothing to check"
#: the series is one the testbed file's machines cannot be built as (the reason follows it)
UNBUILDABLE = "not measurable across hosts"
#: the series' sweep and its throughput search contradict each other (the report's
#: consistency check): one of the two did not measure the SUT, and nothing rests on it
CONTRADICTED = "its sweep and its throughput search contradict each other"
#: why a figure is only a lower bound: the SUT forwarded at least this much, and may do more
LOWER_BOUNDS = frozenset({GENERATOR_LIMITED, UNSATURATED, AT_CEILING})


Points = Mapping[str, Sequence[SweepPoint]]


class Sweeps(Mapping[str, Sequence[SweepPoint]]):
    """Sweeps by series, and the series whose sweep its own throughput search contradicts:
    a report that says one of the two did not measure the SUT must not judge a claim on it
    (:func:`sweep_rate` gives their peaks as :data:`CONTRADICTED`)."""

    def __init__(self, points: Points, contradicted: Collection[str] = ()) -> None:
        self._points = dict(points)
        self.contradicted = frozenset(contradicted)

    def __getitem__(self, key: str) -> Sequence[SweepPoint]:
        return self._points[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._points)

    def __len__(self) -> int:
        return len(self._points)


def doubted(points: Points, key: str) -> bool:
    """Whether the report's consistency check found ``key``'s sweep and search at odds."""
    return isinstance(points, Sweeps) and key in points.contradicted


# --------------------------------------------------------------------------- figures compared


@dataclass(frozen=True)
class Rate:
    """One figure a claim compares, with the interval its measurement allows: a sweep's mean ±
    its standard deviation, or a search's final bounds. ``problem`` is empty when the rate is
    the SUT's own limit; otherwise it says why not, and ``pps`` is only a bound."""

    series: str
    pps: float = 0.0
    low: float = 0.0
    high: float = 0.0
    problem: str = ""
    repeated: bool = False  # a median search: [low, high] spans every repeat's bounds
    #: a sweep's peak at which the SUT lost nothing: its limit lies up to the next offered rate
    stepped: bool = False

    def fmt(self) -> str:
        if self.problem == MISSING:
            return "missing"
        k = self.pps / 1e3
        if self.problem == CONTRADICTED:
            return f"{k:.0f} kpps ({self.problem})"
        if self.problem:
            bound = "≤" if self.problem == AT_FLOOR else "≥"
            return f"{bound} {k:.0f} kpps ({self.problem})"
        half = (self.high - self.low) / 2
        if half < 500:
            return f"{k:.0f} kpps"
        if self.repeated:
            return f"{k:.0f} kpps ({self.low / 1e3:.0f}-{self.high / 1e3:.0f})"
        if self.pps == self.low or self.stepped:  # a search's final interval, or a limit
            return f"{self.low / 1e3:.0f}-{self.high / 1e3:.0f} kpps"  # between two rates
        return f"{k:.0f}±{half / 1e3:.0f} kpps"


def fully_offered(points: Sequence[SweepPoint]) -> list[SweepPoint]:
    """Points where the generator offered the full rate and the sink dropped nothing: only
    there can loss be the SUT's."""
    return [p for p in points if not p.generator_short and not p.sink_dropped]


def is_lossy(p: SweepPoint) -> bool:
    return p.mean_loss_ratio > SATURATED_LOSS


def series_problem(points: Sequence[SweepPoint]) -> str:
    """Why a sweep's peak is not the SUT's limit, or "" when it is: the SUT must have lost
    frames at some rate the generator really offered, else the peak is the testbed's."""
    if not points:
        return MISSING
    offered = fully_offered(points)
    if any(is_lossy(p) for p in offered):
        return ""
    return GENERATOR_LIMITED if len(offered) < len(points) else UNSATURATED


def sweep_rate(points: Points, key: str) -> Rate:
    """The sweep's peak forwarding rate, as its figure plots it (:func:`_peak`); a series whose
    sweep and search contradict each other (:class:`Sweeps`) gives it as :data:`CONTRADICTED`,
    so no comparison is decided on it."""
    rate = _peak(points, key)
    if rate.problem != MISSING and doubted(points, key):
        return replace(rate, problem=CONTRADICTED)
    return rate


def _peak(points: Points, key: str) -> Rate:
    """The highest mean received over the offered rates, ± the standard deviation of its
    repeats.

    Generator-short points count towards the peak: what the sink received the SUT forwarded,
    at the load the generator did offer. They never count as the SUT's loss, though, and a
    point where the sink dropped frames counts for nothing. The peak is the SUT's limit only
    when the SUT was offered, in full, more than the peak and lost frames there; its interval
    then reaches up to the best single repeat of any point, which the SUT did forward, and, if
    the peak's own point lost nothing (the SUT carried all it was offered there), up to the
    next offered rate: the limit lies somewhere between the two rates, which the sweep's step
    cannot tell apart (a peak of exactly 300 kpps says "at least 300, below 500"). Loss at
    rates below the peak (a stall of this VM, say) shows no limit. Otherwise the peak is only
    a lower bound: the generator's limit (some point from the peak up fell short) or the SUT
    never saturated."""
    pts = points.get(key) or []
    if not pts:
        return Rate(key, problem=MISSING)
    counted = [p for p in pts if not p.sink_dropped]
    if not counted:
        peak = max(p.mean_pps for p in pts)
        return Rate(key, peak, peak, peak, GENERATOR_LIMITED)
    # of points that carried as much, one that lost frames shows the limit itself
    best = max(counted, key=lambda p: (p.mean_pps, is_lossy(p)))
    if any(is_lossy(p) for p in fully_offered(pts) if p.target_pps > best.mean_pps):
        high = max([best.mean_pps + best.std_pps, *(p.max_pps for p in counted)])
        # it carried what it was offered: its limit lies above, up to the next offered rate
        nxt = min((p.target_pps for p in pts if p.target_pps > best.target_pps), default=None)
        stepped = not is_lossy(best) and nxt is not None
        if nxt is not None and stepped:
            high = max(high, nxt)
        return Rate(key, best.mean_pps, best.mean_pps - best.std_pps, high, stepped=stepped)
    above = [p for p in pts if p.target_pps >= best.target_pps]
    problem = (GENERATOR_LIMITED if any(p.generator_short or p.sink_dropped for p in above)
               else UNSATURATED)
    return Rate(key, best.mean_pps, best.mean_pps, best.mean_pps, problem)


def search_rate(series: str, row: SearchRow | None) -> Rate:
    """A throughput search's lower bound, within its final interval widened to every repeat's
    lower bound when the search was repeated (``row`` is then the median repeat). A search
    stopped at its ceiling (the generator's calibrated maximum) or floor found the testbed's
    edge, not the SUT's rate; so did one whose upper bound is a load the generator could not
    offer."""
    if row is None or row.lower_pps is None or row.upper_pps is None:
        return Rate(series, problem=MISSING)
    problem = (AT_FLOOR if row.result.get("lower_is_min")
               else AT_CEILING if row.result.get("upper_is_max")
               else GENERATOR_LIMITED if row.result.get("upper_is_testbed") else "")
    found = repeated.lowers(row)
    low = min([row.lower_pps, *found])
    high = max([row.upper_pps, *found])
    return Rate(series, row.lower_pps, low, high, problem, repeated.repeats(row) > 1)


def higher(a: Rate, b: Rate) -> Rate:
    """The higher of two rates; if either is only a bound, which is higher is unknown."""
    for r in (a, b):
        if r.problem:
            return r
    return a if a.pps >= b.pps else b


# --------------------------------------------------------------------------- comparisons


@dataclass(frozen=True)
class Check:
    """One comparison a claim rests on: ``ok`` is True or False once decided, None when the
    data cannot decide it; ``causes`` then pairs each reason with the series behind it."""

    what: str
    ok: bool | None
    causes: tuple[tuple[str, str], ...] = ()

    @property
    def reasons(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(reason for reason, _ in self.causes))


def undecided_check(what: str, rates: Sequence[Rate]) -> Check | None:
    causes = tuple((r.problem, r.series) for r in rates if r.problem)
    return Check(what, None, causes) if causes else None


def at_least(what: str, x: Rate, y: Rate, k: float) -> Check:
    """Is ``x >= k * y``? Decided only when both are the SUT's own rates and the gap from the
    threshold clears their combined spread: a claim must not turn on a difference that the
    repeats themselves show."""
    open_ = undecided_check(what, (x, y))
    if open_ is not None:
        return open_
    if x.low >= k * y.high:
        return Check(what, True)
    if x.high < k * y.low:
        return Check(what, False)
    return Check(what, None, ((WITHIN_SPREAD, f"{what}: {x.fmt()} vs {k:.2f} x {y.fmt()}"),))


def within(what: str, a: Rate, b: Rate, share: float) -> Check:
    """Are ``a`` and ``b`` within ``share`` of the larger: the smaller at least (1 - share)
    times the larger, beyond the spread."""
    lo, hi = sorted((a, b), key=lambda r: r.pps)
    return at_least(what, lo, hi, 1 - share)


def causes_of(checks: Sequence[Check]) -> dict[str, list[str]]:
    """Each reason with the series (or comparisons) behind it, each named once."""
    out: dict[str, list[str]] = {}
    for c in checks:
        for reason, where in c.causes:
            if where not in out.setdefault(reason, []):
                out[reason].append(where)
    return out


def decide(checks: Sequence[Check]) -> tuple[str, tuple[str, ...], str]:
    """Verdict, reasons and a sentence from a claim's comparisons. One contradiction is enough
    to differ; holding needs every comparison decided, and at least one of them. Undecided
    with a series missing is ``not measurable`` (run what is missing); undecided on stored data
    is ``inconclusive`` (measure differently)."""
    if not checks:
        return INCONCLUSIVE, (NO_CHECKS,), f"{NO_CHECKS}: no comparison could be formed"
    failed = [c.what for c in checks if c.ok is False]
    open_ = [c for c in checks if c.ok is None]
    causes = causes_of(open_)
    reasons = tuple(sorted(causes))
    notes = "; ".join(f"{r}: {', '.join(w)}" for r, w in causes.items())
    if failed:
        also = f" (undecided: {notes})" if notes else ""
        return DIFFERS, reasons, "contradicted: " + "; ".join(failed) + also
    if not open_:
        return HOLDS, (), ""
    return (NOT_MEASURABLE if MISSING in causes else INCONCLUSIVE), reasons, notes
