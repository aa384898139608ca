"""Which scenarios a testbed file's SUT can be (no host, no root): ``check_scenario`` accepts
exactly the configurations the SUT host's agent builds, and every refusal says why and names
what can be measured."""

from __future__ import annotations

from typing import Any

import pytest

from vrlab import spec
from vrlab.errors import UsageError
from vrlab.hosts.testbed import MEASURABLE, check_scenario

BUILT = ["native-routed", "native-bridged", "native-hybrid", "host-routed", "host-bridged",
         "guest-routed", "guest-bridged", "mixed-routed", "mixed-bridged"]
FORWARDING_GUESTS = ["guest-routed", "guest-bridged", "mixed-routed", "mixed-bridged"]


@pytest.mark.parametrize("name", BUILT)
@pytest.mark.parametrize("ip", [4, 6, 46])
def test_the_kernel_forwarding_configurations_are_measurable(name: str, ip: int) -> None:
    sc, _ = spec.load(name, {"traffic.ip": ip})
    check_scenario(sc)
    assert name in MEASURABLE


@pytest.mark.parametrize("overrides", [{}, {"sut.hook": "tc"}, {"sut.hook": "xdp"},
                                       {"sut.engine": "guests"}, {"traffic.ip": 46},
                                       {"sut.engine": "userspace"},
                                       {"sut.engine": "userspace", "traffic.ip": 6}])
def test_the_shared_platform_is_measurable(overrides: dict[str, Any]) -> None:
    """The eBPF engine (any hook), the platform's guests or the shared userspace engine, on
    the SUT host's cables."""
    sc, _ = spec.load("shared", overrides)
    check_scenario(sc)
    assert "shared" in MEASURABLE and "--engine userspace" in MEASURABLE


@pytest.mark.parametrize("name", FORWARDING_GUESTS)
def test_userspace_guests_are_measurable(name: str) -> None:
    sc, _ = spec.load(name, {"sut.guest_kind": "userspace"})
    check_scenario(sc)
    assert "guest_kind: userspace" in MEASURABLE


def test_every_builtin_scenario_is_measurable() -> None:
    """A new built-in scenario must be sorted in (or refused with its reason)."""
    assert sorted(spec.builtin_names()) == sorted([*BUILT, "shared"])


@pytest.mark.parametrize(("io", "forwarding"), [("bridged", "shared"), ("hybrid", "shared")])
def test_what_the_hosts_cannot_build_is_refused_naming_what_can(io: str,
                                                                 forwarding: str) -> None:
    """No scenario file can ask for these (the spec refuses them first); the rule still
    refuses them itself, so a new kind of SUT is refused until the hosts can build it."""
    sc = spec.Scenario.model_construct(
        name="odd", sut=spec.SutSpec.model_construct(io=io, forwarding=forwarding,
                                                     engine="ebpf"))
    with pytest.raises(UsageError) as e:
        check_scenario(sc)
    text = str(e.value)
    assert "scenario odd cannot be measured across hosts; " in text
    assert f"what can: {MEASURABLE}" in text
    assert "run odd without --testbed" in text
