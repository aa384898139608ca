"""A throughput search run several times: the median repeat stands for the configuration and
the repeats' lower bounds give its spread.

One zero-loss search on a shared VM is set by rare stalls as much as by the SUT's cost per
frame (the same configuration's NDR has varied by 2x between single searches), so the report
never rests on one. The median is a real search's row, not an average of bounds, so its final
interval, its ceiling and floor flags and its RFC 2544 figure stay those of one search; with an
even number of repeats the lower of the two middle ones is taken, the cautious side."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace

from vrlab.store.rows import SearchRow

#: keys the median row's ``result`` gains: every repeat's lower bound (None where a search found
#: none), and the run ids of the repeats, in the order they ran
REPEAT_LOWERS, REPEAT_RUNS = "repeat_lowers", "repeat_runs"
#: ...and how many repeats stopped at the testbed's limit (the calibrated maximum, or a load
#: the generator could not offer): their lower bounds are floors, not the SUT's rate
REPEAT_CAPPED = "repeat_capped"


def median_index(lowers: Sequence[float | None]) -> int:
    """Which repeat is the median by lower bound (the lower middle one of an even count); a
    repeat without a lower bound (it lost frames even at its floor) sorts lowest."""
    if not lowers:
        raise ValueError("no repeats to take a median of")
    def rank(i: int) -> tuple[float, int]:
        low = lowers[i]
        return (-1.0 if low is None else low, i)

    ranked = sorted(range(len(lowers)), key=rank)
    return ranked[(len(ranked) - 1) // 2]


def median_row(rows: Sequence[SearchRow]) -> SearchRow | None:
    """The median repeat by lower bound, its ``result`` extended with every repeat's lower
    bound."""
    if not rows:
        return None
    med = rows[median_index([r.lower_pps for r in rows])]
    extra: dict[str, object] = {REPEAT_LOWERS: [r.lower_pps for r in rows],
                                REPEAT_RUNS: [r.run_id for r in rows],
                                REPEAT_CAPPED: sum(1 for r in rows if capped(r))}
    return replace(med, result={**med.result, **extra})


def median_goals(repeats: Sequence[Mapping[str, SearchRow]]) -> dict[str, SearchRow]:
    """Per goal (NDR, PDR), the median repeat; each goal's median is taken on its own, as
    each goal's bounds are."""
    goals = list(dict.fromkeys(g for rep in repeats for g in rep))
    out = {}
    for goal in goals:
        row = median_row([rep[goal] for rep in repeats if goal in rep])
        if row is not None:
            out[goal] = row
    return out


def lowers(row: SearchRow) -> list[float]:
    """The repeats' lower bounds that exist; just the row's own for a single search."""
    got = row.result.get(REPEAT_LOWERS)
    if isinstance(got, list):
        return [float(x) for x in got if isinstance(x, int | float)]
    return [row.lower_pps] if row.lower_pps is not None else []


def repeats(row: SearchRow) -> int:
    got = row.result.get(REPEAT_LOWERS)
    return len(got) if isinstance(got, list) else 1


def spread(row: SearchRow) -> tuple[float, float] | None:
    """The lowest and highest lower bound of the repeats, or None without any."""
    found = lowers(row)
    return (min(found), max(found)) if found else None


def capped(row: SearchRow) -> bool:
    """Whether this one search stopped at the testbed's limit."""
    return bool(row.result.get("upper_is_max") or row.result.get("upper_is_testbed"))


def capped_repeats(row: SearchRow) -> int:
    """How many of the repeats stopped at the testbed's limit (for a single search, whether
    it did)."""
    got = row.result.get(REPEAT_CAPPED)
    return int(got) if isinstance(got, int) else int(capped(row))
