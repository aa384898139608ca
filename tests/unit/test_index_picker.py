"""The engine's device numbering: every device a platform adds stays out of the uplinks'
buckets of the kernel's 256-bucket interface-index hash (see build.IndexPicker)."""

from __future__ import annotations

from vrlab.platform.build import IndexPicker


def test_no_added_device_shares_an_uplinks_bucket() -> None:
    used = [1, 2, 3, 7]  # lo, two uplinks, something that was there before
    p = IndexPicker(used, uplinks=[2, 3])
    got = [p.take() for _ in range(1200)]
    assert len(set(got)) == len(got)
    assert not set(got) & set(used)
    assert all(i % 256 not in (2, 3) for i in got)
    assert min(got) == 8  # dense from the namespace's highest index
    # a chain per bucket of at most ceil(1200 / 254) + what was there
    per_bucket: dict[int, int] = {}
    for i in got:
        per_bucket[i % 256] = per_bucket.get(i % 256, 0) + 1
    assert max(per_bucket.values()) <= 5


def test_indexes_already_taken_are_skipped() -> None:
    p = IndexPicker([1, 2, 10, 11, 12], uplinks=[2])
    assert [p.take() for _ in range(3)] == [13, 14, 15]
    p = IndexPicker([1, 250, 255], uplinks=[258])  # an uplink in bucket 2 (258 % 256)
    got = [p.take() for _ in range(5)]
    assert got == [256, 257, 259, 260, 261]
