"""The latency attack on a platform that `vrlab up` built: B's frames timed in both conditions,
A's flood policed by the engine, the run stored, and the platform left as it was (its engine
counting on, its ports' settings back, still forwarding), also after the attack is killed -9
and `vrlab clean` runs. Needs root."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import yaml

from vrlab import cabled, nsexec
from vrlab.attack_result import FLOOD, ROUND, ROUTER_B, stored_attack
from vrlab.engines.ebpf.engine import EbpfEngine, EngineIds
from vrlab.ledger import NETNS_DIR, Ledger, alive
from vrlab.platform.lifecycle import PlatformState
from vrlab.platform_traffic import A_POLICED
from vrlab.store.db import Store

if TYPE_CHECKING:
    from conftest import VrlabEnv

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root to create namespaces"),
]

SPEC: dict[str, Any] = {
    "name": "atk",
    "routers": [
        {"name": "red", "share_kpps": 20,
         "ports": [{"name": "eth0", "address": "10.0.0.1/24"},
                   {"name": "eth1", "address": "10.1.0.1/24"}]},
        {"name": "blue",
         "ports": [{"name": "eth0", "address": "10.0.0.1/24"},
                   {"name": "eth1", "address": "10.1.0.1/24"}]},
    ],
}
ATTACK = ("latency", "--attack", "--platform", "atk", "--attacker", "red", "--victim", "blue",
          "--generator", "xdp")


@pytest.fixture(params=["tc", "xdp"])
def platform(request: pytest.FixtureRequest, vrlab_env: VrlabEnv,
             tmp_path: Path) -> Iterator[PlatformState]:
    path = tmp_path / "atk.yaml"
    path.write_text(yaml.safe_dump({**SPEC, "hook": request.param}))
    r = vrlab_env.run_cli("up", str(path), timeout=120)
    assert r.returncode == 0, r.stderr
    st = PlatformState.read("atk")
    assert st is not None
    try:
        yield st
    finally:
        d = vrlab_env.run_cli("down", "atk", timeout=60)
        assert d.returncode == 0, d.stderr
        assert vrlab_env.ledger_paths() == [], "a ledger outlived the platform and the attack"
        left = [n for n in os.listdir(NETNS_DIR) if n.startswith(f"vrl{st.run_id}-")]
        assert left == [], f"namespaces left behind: {left}"


def ingress(st: PlatformState) -> list[tuple[str, str]]:
    """The engine's ends of red's and blue's eth0, where the attack's frames come in."""
    return [(f"vrl{st.run_id}-eng", f"vrl{st.run_id}r{i}p0") for i in (0, 1)]


def _rps(dev: str) -> str:
    return nsexec.read_file(f"/sys/class/net/{dev}/queues/rx-0/rps_cpus")


def port_settings(st: PlatformState) -> list[tuple[bool, str]]:
    return [(bool(nsexec.run_in(ns, cabled.gro_state, dev)),
             str(nsexec.run_in(ns, _rps, dev, with_sysfs=True))) for ns, dev in ingress(st)]


def counters(st: PlatformState) -> list[dict[str, int]]:
    assert st.engine is not None
    e = EbpfEngine.open(EngineIds(**st.engine))
    try:
        return [e.counters(i) for i in (0, 1)]
    finally:
        e.close()


def forwards(env: VrlabEnv, router: str) -> bool:
    """A ping from the router's eth0 site to its eth1 site gets its answer."""
    r = env.run_cli("exec", f"{router}/eth0", "--", "ping", "-c", "1", "-W", "2", "10.1.0.2")
    return r.returncode == 0


def test_b_is_timed_a_is_policed_and_the_platform_is_left_as_it_was(
        vrlab_env: VrlabEnv, platform: PlatformState) -> None:
    st = platform
    settings, before = port_settings(st), counters(st)
    r = vrlab_env.run_cli(*ATTACK, "--duration", "0.3", "--repeats", "2", "--json",
                          timeout=300)
    assert r.returncode == 0, r.stderr
    (data,) = json.loads(r.stdout)["attack"]
    assert (data["platform"], data["attacker"], data["victim"]) == ("atk", "red", "blue")
    assert data["attacker_ports"] == ["eth0", "eth1"] and data["engine"] == "ebpf"
    assert data["a_share_pps"] == 20_000 and data["a_flood_pps"] == 60_000
    assert data["b_pps"] == 50_000 and data["rounds"] == 2
    for cond in ("b_beside_share", "b_under_flood"):
        b = data[cond]
        assert b["count"] > 1_000, f"B's frames were not timed {cond}"
        assert 0 < b["p50_ns"] <= b["p99_ns"] <= b["p999_ns"] <= b["max_ns"]
    assert data["verdict"] in ("meets", "misses", "inconclusive") and data["why"]
    # the flood is three times the share: at least half of it is beyond the share
    assert data["a_policed_by_engine"]
    assert data["a_policed"]["flood"] > data["a_sent"]["flood"] / 2
    assert data["a_policed"]["flood"] > 2 * data["a_policed"]["share"]

    with Store(vrlab_env.db) as s:
        run = s.run(data["run_id"])
        trials = s.trials(data["run_id"])
        back = stored_attack(s, data["run_id"])
    assert run.kind == "latency-attack" and run.scenario == "platform:atk"
    assert run.params["attacker"] == "red" and run.params["victim"] == "blue"
    assert sorted((t.result.extra[ROUND], t.result.extra[FLOOD]) for t in trials) == \
        [(0.0, 0.0), (0.0, 1.0), (1.0, 0.0), (1.0, 1.0)]
    assert all(ROUTER_B in t.result.latency for t in trials)
    assert all(t.result.extra[A_POLICED] > 0 for t in trials if t.result.extra[FLOOD])
    assert back.flood.merged.count == data["b_under_flood"]["count"]

    # the engine counted on (nothing reset), the policed frames are red's, blue was not policed
    after = counters(st)
    for i in (0, 1):
        assert all(after[i][k] >= before[i][k] for k in before[i]), (before, after)
    assert after[0]["policed"] - before[0]["policed"] >= data["a_policed"]["flood"]
    assert after[1]["policed"] == before[1]["policed"]
    # only the platform's ledger is left, its ports' settings are back, and it still forwards
    assert [p.stem for p in vrlab_env.ledger_paths()] == [st.run_id]
    assert port_settings(st) == settings
    assert forwards(vrlab_env, "red") and forwards(vrlab_env, "blue")


@pytest.mark.parametrize("platform", ["tc"], indirect=True)
def test_a_killed_attack_is_cleaned_up_and_the_platform_keeps_running(
        vrlab_env: VrlabEnv, platform: PlatformState) -> None:
    st = platform
    settings = port_settings(st)
    p = vrlab_env.spawn_cli(*ATTACK, "--duration", "1", "--repeats", "5")
    try:
        deadline = time.monotonic() + 60
        while True:  # until the attack's agents are up and the first trial runs
            attacks = [Ledger(x) for x in vrlab_env.ledger_paths() if x.stem != st.run_id]
            procs = [e for a in attacks for e in a.entries() if e.kind == "proc"]
            if len(procs) == 4:
                break
            assert p.poll() is None, p.communicate()
            assert time.monotonic() < deadline, "the attack never started its agents"
            time.sleep(0.1)
        time.sleep(1.0)
        assert port_settings(st) != settings, "the attack did not turn GRO on"
        p.send_signal(signal.SIGKILL)
        p.wait(10)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait(10)
        p.communicate()
    c = vrlab_env.run_cli("clean", timeout=60)
    assert c.returncode == 0, c.stderr
    assert "GRO off again" in c.stdout, c.stdout
    assert [x.stem for x in vrlab_env.ledger_paths()] == [st.run_id]
    assert port_settings(st) == settings
    assert not any(alive(int(e.data["pid"]), e.data.get("start")) for e in procs)
    assert forwards(vrlab_env, "red") and forwards(vrlab_env, "blue")
