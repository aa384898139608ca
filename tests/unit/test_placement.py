"""Where the testbed puts the shared engine: its hook, settled per placement and recorded."""

from __future__ import annotations

import pytest

from vrlab import method, placement, profiles, spec
from vrlab.store.db import Store


def _pinned(generator: placement.GeneratorPath) -> placement.Placement:
    return placement.choose(True, "generator", cpus=2, generator=generator)


@pytest.mark.parametrize(("requested", "generator", "pinned", "hook"), [
    ("auto", "xdp", True, "xdp"),  # every SUT's receive goes through a cpumap: XDP steered
    ("auto", "sendmmsg", True, "tc"),  # its frames are socket buffers before the SUT's poll
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
    assert sc.sut.hook == "auto" and sc2.sut.hook == "xdp"
    assert ctx2.placement.as_record()["engine_hook"] == "xdp"
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
    auto, _ = spec.load("shared")  # auto with the XDP generator: XDP, steered to the SUT
    ctx3, _ = method.placed(ctx, auto)
    assert ctx3.placement.as_record()["xdp_cpu"] == "sut"
    tc, _ = spec.load("shared", {"sut.hook": "tc"})  # tc: no XDP CPU to record
    ctx4, _ = method.placed(ctx, tc)
    assert "xdp_cpu" not in ctx4.placement.as_record()


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


def test_the_xdp_generator_steers_the_suts_receive_to_its_cpu_and_says_so() -> None:
    xdp = _pinned("xdp")
    assert xdp.sut_rx == "cpumap" and xdp.as_record()["sut_rx"] == "cpumap"
    assert "SUT receive (cpumap) on CPU 1" in xdp.describe()
    # the sendmmsg generator's frames are socket buffers before the SUT sees them: RPS alone,
    # recorded as every record before steering was
    mmsg = _pinned("sendmmsg")
    assert mmsg.sut_rx == "rps" and "sut_rx" not in mmsg.as_record()
    assert "SUT receive (RPS)" in mmsg.describe()
    assert placement.choose(False, generator="xdp").sut_rx == "rps"


def test_userspace_engines_and_remote_suts_keep_rps() -> None:
    xdp = _pinned("xdp")
    user = placement.for_userspace(xdp)
    assert user.sut_cpu == user.generator_cpu and user.sut_rx == "rps"
    assert placement.rps_only(xdp).sut_rx == "rps"
    assert placement.rps_only(xdp).generator == "xdp"


def test_a_sut_on_a_machine_of_its_own_gives_the_engine_tc() -> None:
    """Across hosts the SUT's receive is RPS's: its frames are socket buffers at the engine."""
    assert placement.engine_hook("auto", placement.rps_only(_pinned("xdp"))) == "tc"


@pytest.mark.parametrize(("generator", "requested", "sink_rx"), [
    ("xdp", "auto", "xdp"),  # the engine settles at XDP: its frames reach the sink unbuilt
    ("xdp", "xdp", "xdp"),
    ("xdp", "tc", "rps"),  # at tc the engine sends socket buffers, which RPS hands on
    ("sendmmsg", "xdp", "rps"),  # no cpumap steering: a testbed received with RPS alone
])
def test_the_sink_counts_at_xdp_only_behind_an_engine_forwarding_at_xdp(
        generator: placement.GeneratorPath, requested: str, sink_rx: str) -> None:
    pl = placement.for_engine(_pinned(generator), requested, "sut")
    assert pl.sink_rx == sink_rx
    rec = pl.as_record()
    if sink_rx == "xdp":
        assert rec["sink_rx"] == "xdp"
        assert "sink counting at XDP" in pl.describe() and "sink receive" not in pl.describe()
    else:
        assert "sink_rx" not in rec  # recorded as every record before the XDP sink was
        assert "sink receive (RPS) on CPU" in pl.describe()


def test_a_native_router_and_a_testbed_of_machines_keep_the_tc_sink(tmp_path: object) -> None:
    store = Store(tmp_path / "r.sqlite")  # type: ignore[operator]
    ctx = method.RunContext(store, _pinned("xdp"), profiles.get("quick"))
    native, _ = spec.load("native-routed")
    assert method.placed(ctx, native)[0].placement.sink_rx == "rps"
    shared, _ = spec.load("shared")
    at_xdp = method.placed(ctx, shared)[0].placement
    assert at_xdp.sink_rx == "xdp"
    assert placement.rps_only(at_xdp).sink_rx == "rps"
