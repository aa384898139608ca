"""Where the testbed puts the shared engine: its hook, settled per placement and recorded."""

from __future__ import annotations

import pytest

from vrlab import method, placement, profiles, spec
from vrlab.store.db import Store


def _pinned(generator: placement.GeneratorPath) -> placement.Placement:
    return placement.choose(True, "generator", cpus=2, generator=generator)


@pytest.mark.parametrize(("requested", "generator", "pinned", "hook"), [
    ("auto", "xdp", True, "tc"),  # XDP would run in the generator's CPU's poll
    ("auto", "sendmmsg", True, "tc"),  # its veth_xmit also runs the peer's poll on CPU 0
    ("auto", "xdp", False, "auto"),  # unpinned: no SUT CPU to keep apart
    ("xdp", "xdp", True, "xdp"),  # asked for: measured as asked
    ("tc", "sendmmsg", True, "tc"),
])
def test_engine_hook(requested: str, generator: placement.GeneratorPath, pinned: bool,
                     hook: str) -> None:
    pl = _pinned(generator) if pinned else placement.choose(False, generator=generator)
    assert placement.engine_hook(requested, pl) == hook


def test_a_placement_records_the_engine_hook_only_where_there_is_an_engine() -> None:
    pl = _pinned("xdp")
    assert "engine_hook" not in pl.as_record()
    rec = placement.Placement(**{**pl.__dict__, "engine_hook": "tc"}).as_record()
    assert rec["engine_hook"] == "tc" and rec["generator"] == "xdp"


def test_a_shared_scenario_runs_at_the_settled_hook_and_records_it(tmp_path: object) -> None:
    store = Store(tmp_path / "r.sqlite")  # type: ignore[operator]
    ctx = method.RunContext(store, _pinned("xdp"), profiles.get("quick"))
    sc, _ = spec.load("shared")
    ctx2, sc2 = method.placed(ctx, sc)
    assert sc.sut.hook == "auto" and sc2.sut.hook == "tc"
    assert ctx2.placement.as_record()["engine_hook"] == "tc"
    native, _ = spec.load("native-routed")
    ctx3, native2 = method.placed(ctx, native)
    assert native2 is native and "engine_hook" not in ctx3.placement.as_record()
    xdp, _ = spec.load("shared", {"sut.hook": "xdp"})
    ctx4, xdp2 = method.placed(ctx, xdp)
    assert xdp2.sut.hook == "xdp" and ctx4.placement.engine_hook == "xdp"


def test_the_engine_at_xdp_records_which_cpu_it_forwards_on(tmp_path: object) -> None:
    store = Store(tmp_path / "r.sqlite")  # type: ignore[operator]
    ctx = method.RunContext(store, _pinned("xdp"), profiles.get("quick"))
    steered, _ = spec.load("shared", {"sut.hook": "xdp"})
    ctx1, _ = method.placed(ctx, steered)
    assert ctx1.placement.as_record()["xdp_cpu"] == "sut"
    sender, _ = spec.load("shared", {"sut.hook": "xdp", "sut.xdp_cpu": "sender"})
    ctx2, sc2 = method.placed(ctx, sender)
    assert ctx2.placement.as_record()["xdp_cpu"] == "sender" and sc2.sut.xdp_cpu == "sender"
    assert "on CPU 0 (the sender's poll)" in ctx2.placement.describe()
    tc, _ = spec.load("shared")  # auto: tc in a pinned testbed, no XDP CPU to record
    ctx3, _ = method.placed(ctx, tc)
    assert "xdp_cpu" not in ctx3.placement.as_record()


def test_only_the_engine_at_xdp_has_a_cpu_to_choose() -> None:
    from vrlab.errors import SpecError

    with pytest.raises(SpecError) as e:
        spec.load("shared", {"sut.xdp_cpu": "sender"})
    assert "sut.xdp_cpu" in str(e.value) and "hook: xdp" in str(e.value)
    with pytest.raises(SpecError):
        spec.load("shared", {"sut.hook": "xdp", "sut.xdp_cpu": "elsewhere"})


def test_the_cli_hook_xdp_sender_is_xdp_on_the_senders_cpu() -> None:
    from vrlab.cli.options import XDP_SENDER, overrides

    assert overrides(None, None, None, hook=XDP_SENDER) == {"sut.hook": "xdp",
                                                            "sut.xdp_cpu": "sender"}
    assert overrides(None, None, None, hook="xdp") == {"sut.hook": "xdp"}
