"""Which sink counts where, decided before anything is loaded: the nftables sink cannot count at
XDP, and a hook the BPF sink has no program for is refused by name."""

from __future__ import annotations

import pytest

from vrlab.errors import VrlabError
from vrlab.traffic import sinks
from vrlab.traffic.xdp import tcsink


def test_nftables_cannot_count_at_xdp_and_says_what_can() -> None:
    with pytest.raises(VrlabError) as e:
        sinks.open_sink("nftables", "vrl0sink", "eth0", {"r0": "198.19.0.0/24"}, at="xdp")
    assert "not at xdp" in str(e.value) and "BPF sink" in str(e.value)


def test_the_bpf_sink_refuses_a_hook_it_has_no_program_for() -> None:
    with pytest.raises(VrlabError) as e:
        tcsink.TcSink(None, {"r0": "198.19.0.0/24"}, at="egress")
    assert "'egress'" in str(e.value) and "tc, xdp" in str(e.value)
