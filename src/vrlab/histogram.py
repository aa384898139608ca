"""Latency histograms: the bucket layout the sink's probe counts in, and the maintained
``hdrhistogram`` package for everything done with the counts (merging, percentiles, the
base64 encoding a trial's histogram is stored in).

The probe (``traffic/xdp/latency.bpf.c``) cannot call a library, so it counts into
HdrHistogram's own counts array: lowest value 1 ns, highest 2^34 - 1 ns (17 s, far beyond any
trial), 2 significant digits (256 sub-buckets, values within 1% of their bucket's). Because
the layout is the library's, a bucket index read from the kernel is recorded at its value and
lands in the same index; :func:`counts_index` mirrors the C code so the tests can hold the two
to the library. Pure: no kernel, no root."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Final

from hdrh.histogram import HdrHistogram

from vrlab.results import LatencySummary

LOWEST_NS: Final = 1
HIGHEST_NS: Final = (1 << 34) - 1
DIGITS: Final = 2
#: log2 of half the sub-buckets (128 of 256) and the counts array's length: those of
#: HdrHistogram(LOWEST_NS, HIGHEST_NS, DIGITS), written in the probe's C source too
SUB_HALF_MAGNITUDE: Final = 7
COUNTS_LEN: Final = 3584
#: The percentiles a trial's summary keeps, as in FD.io CSIT's latency tables.
PERCENTILES: Final = (50.0, 90.0, 99.0, 99.9)


def new() -> HdrHistogram:
    """An empty histogram of the probe's layout."""
    return HdrHistogram(LOWEST_NS, HIGHEST_NS, DIGITS)


def counts_index(value_ns: int) -> int:
    """The counts index of ``value_ns``, as the probe computes it (values above the range are
    clamped to its top)."""
    v = min(max(value_ns, 0), HIGHEST_NS)
    bucket = (v | 0xFF).bit_length() - (SUB_HALF_MAGNITUDE + 1)
    sub = v >> bucket
    return ((bucket + 1) << SUB_HALF_MAGNITUDE) + sub - (1 << SUB_HALF_MAGNITUDE)


def bucket_value(index: int) -> int:
    """The lowest value counted at ``index``."""
    bucket = (index >> SUB_HALF_MAGNITUDE) - 1
    sub = (index & ((1 << SUB_HALF_MAGNITUDE) - 1)) + (1 << SUB_HALF_MAGNITUDE)
    if bucket < 0:
        sub -= 1 << SUB_HALF_MAGNITUDE
        bucket = 0
    return sub << bucket


def from_buckets(buckets: Mapping[int, int]) -> HdrHistogram:
    """The histogram of the probe's sparse counts (counts index -> frames)."""
    h = new()
    for index, n in sorted(buckets.items()):
        if not 0 <= index < COUNTS_LEN:
            raise ValueError(f"bucket {index} is outside the probe's layout (0..{COUNTS_LEN - 1})")
        if n > 0:
            h.record_value(bucket_value(index), n)
    return h


def minus(after: Mapping[int, Mapping[int, int]],
          before: Mapping[int, Mapping[int, int]]) -> dict[int, dict[int, int]]:
    """Per router, the counts ``after`` has beyond ``before`` (two readings of the probe's
    cumulative counts); buckets that gained nothing are left out."""
    out: dict[int, dict[int, int]] = {}
    for r, buckets in after.items():
        old = before.get(r, {})
        d = {i: n - old.get(i, 0) for i, n in buckets.items() if n > old.get(i, 0)}
        if d:
            out[r] = d
    return out


def summarize(h: HdrHistogram) -> LatencySummary:
    """The percentiles and maximum of ``h``, with ``h`` itself encoded."""
    pct = h.get_percentile_to_value_dict(list(PERCENTILES)) if h.get_total_count() else {}
    return LatencySummary(
        count=int(h.get_total_count()),
        p50_ns=int(pct.get(50.0, 0)), p90_ns=int(pct.get(90.0, 0)),
        p99_ns=int(pct.get(99.0, 0)), p999_ns=int(pct.get(99.9, 0)),
        max_ns=int(h.get_max_value()), hist=encode(h))


def encode(h: HdrHistogram) -> str:
    """HdrHistogram's standard V2 base64 form, which any HdrHistogram implementation reads."""
    out = h.encode()
    return out.decode() if isinstance(out, bytes) else str(out)


def decode(text: str) -> HdrHistogram:
    return HdrHistogram.decode(text)


def merge(summaries: Iterable[LatencySummary]) -> HdrHistogram:
    """One histogram of several (routers of a trial, repeats of a load)."""
    h = new()
    for s in summaries:
        if s.count:
            h.add(decode(s.hist))
    return h


def summary_json(s: LatencySummary) -> dict[str, int]:
    """The percentiles without the histogram (that stays in the store)."""
    return {"count": s.count, "p50_ns": s.p50_ns, "p90_ns": s.p90_ns, "p99_ns": s.p99_ns,
            "p999_ns": s.p999_ns, "max_ns": s.max_ns}
