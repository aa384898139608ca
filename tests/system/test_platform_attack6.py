"""The latency attack on a running platform with IPv6 frames: a dual-stack platform whose ports
take their IPv6 addresses from RFC 5180's benchmarking range (2001:2::/48), attacked with --ip 6
(and the dual-stack mix); B's frames timed, A's flood policed by the engine, the run stored
with its IP version and frame size. A port without IPv6 is refused by its spec field before
anything runs. Needs root."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import yaml
from test_platform_attack import counters

from vrlab.ledger import NETNS_DIR
from vrlab.platform.lifecycle import PlatformState
from vrlab.store.db import Store

if TYPE_CHECKING:
    from conftest import VrlabEnv

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root to create namespaces"),
]

PORTS = [{"name": "eth0", "addresses": ["10.0.0.1/24", "2001:2::1/64"]},
         {"name": "eth1", "addresses": ["10.1.0.1/24", "2001:2:0:1::1/64"]}]
SPEC: dict[str, Any] = {
    "name": "atk6",
    "routers": [
        {"name": "red", "share_kpps": 20,
         "ports": [*PORTS, {"name": "eth2", "address": "10.2.0.1/24"}]},
        {"name": "blue", "ports": PORTS},
    ],
}
ATTACK = ("latency", "--attack", "--platform", "atk6", "--attacker", "red", "--victim", "blue",
          "--generator", "xdp")


def guest_forwarded() -> dict[str, Any]:
    """:data:`SPEC` with both routers forwarded by their guests (which police nothing)."""
    return {**SPEC, "routers": [{"name": r["name"], "forwarding": "guest", "ports": r["ports"]}
                                for r in SPEC["routers"]]}


@pytest.fixture(params=["tc", "xdp"])
def platform(request: pytest.FixtureRequest, vrlab_env: VrlabEnv,
             tmp_path: Path) -> Iterator[PlatformState]:
    """The platform, its engine on the hook of the parameter ("guest": no engine, both
    routers forwarded by their guests)."""
    path = tmp_path / "atk6.yaml"
    data = guest_forwarded() if request.param == "guest" else {**SPEC, "hook": request.param}
    path.write_text(yaml.safe_dump(data))
    r = vrlab_env.run_cli("up", str(path), timeout=120)
    assert r.returncode == 0, r.stderr
    st = PlatformState.read("atk6")
    assert st is not None
    try:
        yield st
    finally:
        d = vrlab_env.run_cli("down", "atk6", timeout=60)
        assert d.returncode == 0, d.stderr
        assert vrlab_env.ledger_paths() == [], "a ledger outlived the platform and the attack"
        left = [n for n in os.listdir(NETNS_DIR) if n.startswith(f"vrl{st.run_id}-")]
        assert left == [], f"namespaces left behind: {left}"


@pytest.mark.parametrize(("platform", "ip"), [("tc", "6"), ("xdp", "46")], indirect=["platform"])
def test_an_ipv6_attack_times_b_polices_a_and_records_its_ip_version(
        vrlab_env: VrlabEnv, platform: PlatformState, ip: str) -> None:
    st = platform
    before = counters(st)
    r = vrlab_env.run_cli(*ATTACK, "--ip", ip, "--duration", "0.3", "--repeats", "2", "--json",
                          timeout=300)
    assert r.returncode == 0, r.stderr
    (data,) = json.loads(r.stdout)["attack"]
    assert (data["platform"], data["attacker"], data["victim"]) == ("atk6", "red", "blue")
    assert (data["ip"], data["frame_size"]) == (int(ip), 76)  # the smallest timed IPv6 frame
    for cond in ("b_beside_share", "b_under_flood"):
        b = data[cond]
        assert b["count"] > 1_000, f"B's frames were not timed {cond}"
        assert 0 < b["p50_ns"] <= b["p99_ns"] <= b["p999_ns"] <= b["max_ns"]
        assert b["loss_ratio"] < 0.5, f"B's frames were lost {cond}"
    assert data["a_policed"]["flood"] > data["a_sent"]["flood"] / 2
    assert data["a_policed"]["flood"] > 2 * data["a_policed"]["share"]
    with Store(vrlab_env.db) as s:
        run = s.run(data["run_id"])
    assert run.kind == "latency-attack" and (run.ip, run.frame_size) == (int(ip), 76)
    assert run.params["ip"] == int(ip)
    after = counters(st)
    # the policed frames are red's; blue's forwarded ones are its own, none policed
    assert after[0]["policed"] - before[0]["policed"] >= data["a_policed"]["flood"]
    assert after[1]["policed"] == before[1]["policed"]
    assert after[1]["forwarded"] - before[1]["forwarded"] >= \
        data["b_beside_share"]["count"] + data["b_under_flood"]["count"]


@pytest.mark.parametrize("platform", ["guest"], indirect=True)
def test_an_ipv6_attack_on_guest_forwarded_routers_times_b(
        vrlab_env: VrlabEnv, platform: PlatformState) -> None:
    r = vrlab_env.run_cli(*ATTACK, "--ip", "6", "--duration", "0.3", "--repeats", "1", "--json",
                          timeout=300)
    assert r.returncode == 0, r.stderr
    (data,) = json.loads(r.stdout)["attack"]
    assert data["engine"] == "guests" and (data["ip"], data["frame_size"]) == (6, 76)
    assert not data["a_policed_by_engine"]
    for cond in ("b_beside_share", "b_under_flood"):
        assert data[cond]["count"] > 1_000, f"B's frames were not timed {cond}"


@pytest.mark.parametrize("platform", ["tc"], indirect=True)
def test_ipv6_is_refused_on_a_port_without_an_ipv6_address(
        vrlab_env: VrlabEnv, platform: PlatformState) -> None:
    r = vrlab_env.run_cli(*ATTACK, "--attacker-ports", "eth0,eth2", "--ip", "6", timeout=60)
    assert r.returncode == 2, r.stderr
    assert "--attacker red: the site behind port eth2 has no IPv6 address " \
        "(routers[0].ports[2].addresses" in r.stderr, r.stderr
    assert [p.stem for p in vrlab_env.ledger_paths()] == [platform.run_id]
