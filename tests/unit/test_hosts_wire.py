"""The lines between the controller and a host's `vrlab agent`: frames and the sink's counters
survive the trip through JSON, one message per line."""

from __future__ import annotations

import pytest

from vrlab.hosts import wire
from vrlab.traffic.sink import Counts


def test_frames_and_counts_survive_a_round_trip() -> None:
    frames = [bytes(range(60)), b"\n\x00\xff" * 20]
    counts = Counts(by_router={"r0": 5, "r1": 0}, other=2,
                    flows={("198.18.0.1", "198.19.0.1", 1024, 9): 5})
    msg = {"op": "call", "args": {"frames": frames, "n": 3}, "reply": {"counts": counts}}
    line = wire.dumps(msg)
    assert line.endswith("\n") and line.count("\n") == 1
    back = wire.loads(line)
    assert back["args"]["frames"] == frames
    assert back["reply"]["counts"] == counts
    assert back["reply"]["counts"].total == 5


def test_a_line_that_is_no_object_is_refused() -> None:
    with pytest.raises(ValueError, match="JSON object"):
        wire.loads("[1, 2]\n")
