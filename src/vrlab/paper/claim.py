"""One of the paper's claims as the report states it: the record every claim's judgement
returns, and what two or more of them share. Apart from :mod:`vrlab.paper.claims` so the
testbed's own claim (:mod:`vrlab.paper.link_claim`) can return the same record without the
rest of the claims."""

from __future__ import annotations

from dataclasses import dataclass

SIMILAR = 0.10  # "differ little": peaks within 10% of each other


@dataclass(frozen=True)
class Claim:
    number: int
    quote: str
    figure: str
    verdict: str  # one of VERDICTS
    measured: str
    why: str
    reasons: tuple[str, ...] = ()  # why comparisons stayed undecided (MISSING, ...), sorted
    missing: tuple[str, ...] = ()  # the series it needed that were never stored


def rel(a: float, b: float) -> float:
    """How far apart two rates are, as a share of the larger."""
    return abs(a - b) / max(a, b) if max(a, b) > 0 else 0.0
