"""Latency histograms: the probe's bucket layout against the hdrhistogram package, merging,
percentiles of known distributions, the stamp's checksum update, and the store's round trip
of a trial's latency (including a version-1 file migrated). No root."""

from __future__ import annotations

import random
import sqlite3
import struct
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from old_schema import downgrade

from vrlab import histogram
from vrlab.results import LatencySummary, RunInfo, TrialResult
from vrlab.store.db import Store
from vrlab.store.schema import SCHEMA_VERSION
from vrlab.traffic.frames import (
    ETH_HLEN,
    IP_HLEN,
    UDP_HLEN,
    Flow,
    build_frame,
    inet_checksum,
    probe_payload,
)


def test_layout_is_the_librarys() -> None:
    h = histogram.new()
    assert h.counts_len == histogram.COUNTS_LEN
    assert h.sub_bucket_half_count_magnitude == histogram.SUB_HALF_MAGNITUDE


@given(st.integers(min_value=0, max_value=histogram.HIGHEST_NS))
def test_counts_index_matches_hdrhistogram(v: int) -> None:
    h = histogram.new()
    assert histogram.counts_index(v) == h.get_counts_array_index(v)


@given(st.integers(min_value=0, max_value=histogram.COUNTS_LEN - 1))
def test_bucket_value_round_trip(i: int) -> None:
    v = histogram.bucket_value(i)
    assert v == histogram.new().get_value_from_index(i)
    assert histogram.counts_index(v) == i


@given(st.integers(min_value=1, max_value=histogram.HIGHEST_NS))
def test_bucket_holds_its_value_within_one_percent(v: int) -> None:
    low = histogram.bucket_value(histogram.counts_index(v))
    assert low <= v
    assert v - low <= max(1, v // 100)


def test_values_above_the_range_are_clamped_to_the_top() -> None:
    top = histogram.counts_index(histogram.HIGHEST_NS)
    assert histogram.counts_index(1 << 40) == top
    assert top == histogram.COUNTS_LEN - 1


def test_percentiles_of_a_uniform_distribution() -> None:
    """1..100000 ns, once each: p50 = 50 µs, p99 = 99 µs, each within the layout's 1%."""
    buckets: dict[int, int] = {}
    for v in range(1, 100_001):
        i = histogram.counts_index(v)
        buckets[i] = buckets.get(i, 0) + 1
    s = histogram.summarize(histogram.from_buckets(buckets))
    assert s.count == 100_000
    for got, want in ((s.p50_ns, 50_000), (s.p90_ns, 90_000), (s.p99_ns, 99_000),
                      (s.p999_ns, 99_900), (s.max_ns, 100_000)):
        assert abs(got - want) <= want * 0.01, (got, want)


def test_percentiles_of_an_exponential_distribution() -> None:
    rng = random.Random(7)
    values = sorted(int(rng.expovariate(1 / 20_000)) + 1 for _ in range(50_000))
    buckets: dict[int, int] = {}
    for v in values:
        i = histogram.counts_index(v)
        buckets[i] = buckets.get(i, 0) + 1
    s = histogram.summarize(histogram.from_buckets(buckets))
    for got, q in ((s.p50_ns, 0.5), (s.p90_ns, 0.9), (s.p99_ns, 0.99)):
        want = values[int(q * len(values)) - 1]
        assert abs(got - want) <= want * 0.011, (q, got, want)


def test_merging_equals_recording_everything_in_one() -> None:
    a = {histogram.counts_index(v): 3 for v in (1_000, 5_000, 20_000)}
    b = {histogram.counts_index(v): 2 for v in (2_000, 5_000, 400_000)}
    sa = histogram.summarize(histogram.from_buckets(a))
    sb = histogram.summarize(histogram.from_buckets(b))
    merged = histogram.summarize(histogram.merge([sa, sb]))
    both = dict(a)
    for i, n in b.items():
        both[i] = both.get(i, 0) + n
    one = histogram.summarize(histogram.from_buckets(both))
    assert merged.count == 15
    assert (merged.p50_ns, merged.p99_ns, merged.max_ns) == (one.p50_ns, one.p99_ns, one.max_ns)


def test_encoding_round_trips() -> None:
    s = histogram.summarize(histogram.from_buckets({histogram.counts_index(12_345): 7}))
    h = histogram.decode(s.hist)
    assert h.get_total_count() == 7
    assert histogram.summarize(h).p50_ns == s.p50_ns


def test_an_empty_histogram_summarizes_to_zeros() -> None:
    s = histogram.summarize(histogram.new())
    assert (s.count, s.p50_ns, s.max_ns) == (0, 0, 0)
    assert histogram.merge([s]).get_total_count() == 0


def test_minus_keeps_what_each_router_gained() -> None:
    before = {0: {5: 10, 6: 1}, 1: {7: 4}}
    after = {0: {5: 12, 6: 1, 9: 3}, 1: {7: 4}, 2: {1: 1}}
    assert histogram.minus(after, before) == {0: {5: 2, 9: 3}, 2: {1: 1}}


def test_out_of_layout_bucket_is_refused() -> None:
    with pytest.raises(ValueError):
        histogram.from_buckets({histogram.COUNTS_LEN: 1})


# -- the stamp in the frame ------------------------------------------------------------------


def stamp_like_the_generator(frame: bytes, now: int) -> bytes:
    """What xdpgen.bpf.c does: write the stamp, add its words to the UDP checksum."""
    off = ETH_HLEN + IP_HLEN
    csum = int.from_bytes(frame[off + 6:off + 8], "little")
    words = struct.unpack("<4H", struct.pack("<Q", now))
    total = (~csum & 0xFFFF) + sum(words)
    total = (total & 0xFFFF) + (total >> 16)
    total = (total & 0xFFFF) + (total >> 16)
    new = ~total & 0xFFFF or 0xFFFF
    pay = off + UDP_HLEN
    out = bytearray(frame)
    out[pay:pay + 8] = struct.pack("<Q", now)
    out[off + 6:off + 8] = new.to_bytes(2, "little")
    return bytes(out)


def udp_checksum_ok(frame: bytes) -> bool:
    ip = frame[ETH_HLEN:ETH_HLEN + IP_HLEN]
    udp = frame[ETH_HLEN + IP_HLEN:]
    pseudo = ip[12:20] + struct.pack("!BBH", 0, 17, len(udp))
    return inet_checksum(pseudo + udp) == 0


@given(st.integers(min_value=1, max_value=(1 << 64) - 1), st.integers(0, 300))
def test_stamped_frame_keeps_a_valid_udp_checksum(now: int, router: int) -> None:
    flow = Flow("r", "02:00:00:00:00:01", "02:00:00:00:00:02", "198.18.0.1", "198.19.3.4",
                1024 + router)
    frame = build_frame(flow, router_index=router)
    assert udp_checksum_ok(frame)
    assert frame[42:56] == probe_payload(router)
    assert udp_checksum_ok(stamp_like_the_generator(frame, now))


def test_frames_without_a_router_index_are_as_before() -> None:
    flow = Flow("r", "02:00:00:00:00:01", "02:00:00:00:00:02", "198.18.0.1", "198.19.3.4", 1024)
    assert build_frame(flow)[42:] == bytes((i * 7) & 0xFF for i in range(18))


# -- the store -------------------------------------------------------------------------------


def info() -> RunInfo:
    return RunInfo(kind="latency", scenario="native-routed", spec_yaml="", machine={},
                   placement={}, vrlab_version="0", profile="quick", params={})


def summary(*values: int) -> LatencySummary:
    return histogram.summarize(histogram.from_buckets(
        {histogram.counts_index(v): 1 for v in values}))


def test_store_round_trips_a_trials_latency(tmp_path: Path) -> None:
    lat = {"r0": summary(1_000, 2_000, 3_000), "r1": summary(50_000)}
    res = TrialResult(target_pps=1e5, duration_s=1.0, sent=100, received=100,
                      received_by_router={"r0": 50, "r1": 50}, achieved_pps=1e5, latency=lat)
    with Store(tmp_path / "r.sqlite") as st_:
        run = st_.start_run(info())
        st_.add_trial(run, res)
        st_.add_trial(run, TrialResult(1e5, 1.0, 1, 1, {"r0": 1}, 1e5))
        back = st_.trials(run)
    assert back[0].result.latency == lat
    assert back[1].result.latency == {}
    assert histogram.decode(back[0].result.latency["r0"].hist).get_total_count() == 3


def test_a_version_1_file_is_migrated_and_keeps_its_trials(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    with Store(path) as st_:
        run = st_.start_run(info())
        st_.add_trial(run, TrialResult(1e5, 1.0, 7, 7, {"r0": 7}, 1e5))
    downgrade(path, 1)
    with Store(path) as st_:
        assert st_.trials(run)[0].result.received == 7
        st_.add_trial(run, TrialResult(1e5, 1.0, 1, 1, {"r0": 1}, 1e5,
                                       latency={"r0": summary(900)}))
        assert st_.trials(run)[1].result.latency["r0"].count == 1
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    conn.close()


def test_stamp_sampling_keeps_the_stamped_rate_bounded() -> None:
    from vrlab.traffic.xdp.live import STAMP_SAMPLES_PPS, stamp_every

    assert stamp_every(10_000) == 1
    assert stamp_every(STAMP_SAMPLES_PPS) == 1
    assert stamp_every(STAMP_SAMPLES_PPS + 1) == 2
    for rate in (60_000, 400_000, 1_000_000, 3_000_000):
        n = stamp_every(rate)
        assert n & (n - 1) == 0
        assert STAMP_SAMPLES_PPS / 2 < rate / n <= STAMP_SAMPLES_PPS
