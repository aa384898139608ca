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
    ("xdp", "tc", "cpumap"),  # at tc the engine sends socket buffers: handed to the sink's CPU
    ("sendmmsg", "xdp", "rps"),  # no cpumap steering: a testbed received with RPS alone
])
def test_the_sink_counts_in_the_suts_poll_only_behind_an_engine_forwarding_at_xdp(
        generator: placement.GeneratorPath, requested: str, sink_rx: str) -> None:
    pl = placement.for_engine(_pinned(generator), requested, "sut")
    assert pl.sink_rx == sink_rx
    rec = pl.as_record()
    if sink_rx == "xdp":
        assert rec["sink_rx"] == "xdp"
        assert "sink counting at XDP" in pl.describe() and "sink receive" not in pl.describe()
    elif sink_rx == "cpumap":
        assert rec["sink_rx"] == "cpumap"
        assert f"sink receive (cpumap) on CPU {pl.sink_cpu}" in pl.describe()
    else:
        assert "sink_rx" not in rec  # recorded as every record before the XDP sink was
        assert "sink receive (RPS) on CPU" in pl.describe()


def test_the_sink_takes_a_native_routers_frames_on_its_cpu_and_machines_keep_rps(
        tmp_path: object) -> None:
    store = Store(tmp_path / "r.sqlite")  # type: ignore[operator]
    ctx = method.RunContext(store, _pinned("xdp"), profiles.get("quick"))
    native, _ = spec.load("native-routed")
    assert method.placed(ctx, native)[0].placement.sink_rx == "cpumap"
    shared, _ = spec.load("shared")
    at_xdp = method.placed(ctx, shared)[0].placement
    assert at_xdp.sink_rx == "xdp"
    assert placement.rps_only(at_xdp).sink_rx == "rps"


def test_the_sink_hands_frames_to_its_own_cpu_only_where_it_shares_the_generators() -> None:
    """With the XDP generator and the sink on the generator's CPU; not with the sendmmsg
    generator, not with the sink on the SUT's CPU, not unpinned. The latency floor keeps the
    hand-off (it is the testbed's path in every run), userspace engines and a testbed of
    machines do not take it."""
    xdp = _pinned("xdp")
    assert xdp.sink_rx == "cpumap" and xdp.sink_cpu == xdp.generator_cpu
    assert _pinned("sendmmsg").sink_rx == "rps"
    assert placement.choose(True, "sut", cpus=2, generator="xdp").sink_rx == "rps"
    assert placement.choose(False, generator="xdp").sink_rx == "rps"
    floor = placement.floor(xdp)
    assert floor.sink_rx == "cpumap" and floor.sut_rx == "rps"
    assert placement.floor(placement.for_engine(xdp, "xdp", "sut")).sink_rx == "rps"
    assert placement.for_userspace(xdp).sink_rx == "rps"
    assert placement.rps_only(xdp).sink_rx == "rps"
