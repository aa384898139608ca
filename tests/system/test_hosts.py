"""Hosts reached over SSH: three simulated hosts (each a network, mount and PID namespace of its
own running Debian's sshd, see vrlab.hosts.sim), checked and driven only through SSH, and every
way a connection can fail reported as one clear error naming the host.

Needs root and /usr/sbin/sshd (openssh-server)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import simlab
import yaml

from vrlab.hosts import sim
from vrlab.hosts import spec as testbed_spec
from vrlab.hosts.errors import HostAuthFailed, HostLost, HostUnreachable, RemoteCommandFailed
from vrlab.hosts.ssh import Output, connect
from vrlab.ledger import NETNS_DIR, Ledger, alive

if TYPE_CHECKING:
    from conftest import VrlabEnv

pytestmark = simlab.NEEDS


lab = simlab.lab_fixture(sim.THREE)


def run_on(lab: sim.SimLab, host: str, argv: list[str], timeout: float = 20) -> Output:
    async def go() -> Output:
        tb, _ = testbed_spec.load(lab.testbed)
        s = await connect(tb, host)
        try:
            return await s.run(argv, timeout=timeout)
        finally:
            await s.close()
    return asyncio.run(go())


def variant(lab: sim.SimLab, tmp_path: Path, host: str, **changes: object) -> Path:
    """The lab's testbed file with some of ``host``'s fields changed."""
    data = yaml.safe_load(lab.testbed.read_text())
    data["hosts"][host].update(changes)
    p = tmp_path / "testbed.yaml"
    p.write_text(yaml.safe_dump(data))
    return p


def test_hosts_check_passes_on_the_lab(lab: sim.SimLab, vrlab_env: VrlabEnv) -> None:
    r = vrlab_env.run_cli("hosts", "check", "--testbed", str(lab.testbed), timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    for name in ("tg", "sut", "ts"):
        assert name in r.stdout
    assert r.stdout.count(" ok ") == 3, r.stdout
    assert os.uname().release in r.stdout, "each host reports its kernel"


def test_each_host_is_a_machine_of_its_own(lab: sim.SimLab) -> None:
    """Its own /run (so its own vrlab ledger), its own processes, only its own interfaces."""
    run_on(lab, "tg", ["touch", "/run/vrltest-mark"])
    assert run_on(lab, "tg", ["ls", "/run"]).stdout.split().count("vrltest-mark") == 1
    assert "vrltest-mark" not in run_on(lab, "sut", ["ls", "/run"]).stdout
    assert not Path("/run/vrltest-mark").exists()
    links = run_on(lab, "sut", ["ls", "/sys/class/net"]).stdout.split()
    tb, _ = testbed_spec.load(lab.testbed)
    assert sorted(links) == sorted(["lo", *tb.interfaces("sut"),
                                    f"vrl{lab.ledger.run_id}-mgmt"])
    assert run_on(lab, "ts", ["sh", "-c", "echo $$"]).stdout.strip() != str(os.getpid())
    assert run_on(lab, "ts", ["cat", "/proc/1/comm"]).stdout.strip() == "sshd"


def test_a_failing_command_names_host_and_command(lab: sim.SimLab) -> None:
    with pytest.raises(RemoteCommandFailed, match=r"host sut .*`ls /nonexistent` exited 2"):
        run_on(lab, "sut", ["ls", "/nonexistent"])


def test_a_command_past_its_limit(lab: sim.SimLab) -> None:
    with pytest.raises(RemoteCommandFailed, match=r"still running after 0\.5 s"):
        run_on(lab, "tg", ["sleep", "30"], timeout=0.5)


def test_arguments_reach_the_host_unchanged(lab: sim.SimLab) -> None:
    odd = "a b; echo injected $(id) 'q' \"d\""
    assert run_on(lab, "tg", ["printf", "%s", odd]).stdout == odd


def test_unreachable_host(lab: sim.SimLab, tmp_path: Path) -> None:
    tb, _ = testbed_spec.load(variant(lab, tmp_path, "sut", port=2))
    with pytest.raises(HostUnreachable, match=r"host sut \(root@.*:2\): connection refused"):
        asyncio.run(connect(tb, "sut"))


def test_a_key_the_host_does_not_know(lab: sim.SimLab, tmp_path: Path) -> None:
    other = tmp_path / "other_key"
    sim._write_key(other)
    tb, _ = testbed_spec.load(variant(lab, tmp_path, "ts", key=str(other)))
    with pytest.raises(HostAuthFailed, match="refused the key"):
        asyncio.run(connect(tb, "ts"))


def test_a_host_key_not_in_known_hosts(lab: sim.SimLab, tmp_path: Path) -> None:
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    tb, _ = testbed_spec.load(variant(lab, tmp_path, "tg", known_hosts=str(empty)))
    with pytest.raises(HostAuthFailed, match="host key is not the one in"):
        asyncio.run(connect(tb, "tg"))


def test_check_reports_every_unfit_host(vrlab_env: VrlabEnv) -> None:
    """A lab of its own: a cable unplugged (both its ends go down), then a host powered off."""
    lab = sim.start(*sim.TESTER)
    try:
        tb, _ = testbed_spec.load(lab.testbed)
        (_, tester_if), (_, sut_if) = tb.cables[0].ends
        unplug = ["ip", "-n", lab.hosts["sut"].ns, "link", "set", sut_if, "down"]
        subprocess.run(unplug, check=True)
        r = vrlab_env.run_cli("hosts", "check", "--testbed", str(lab.testbed), timeout=120)
        assert r.returncode == 3, r.stdout + r.stderr
        table = " ".join(r.stdout.split())
        assert f"{sut_if} down" in table and f"{tester_if} down" in table, table
        assert "2 of 2 host(s) unfit: tester, sut" in r.stderr
        subprocess.run([*unplug[:-1], "up"], check=True)
        lab.power_off("tester")
        r = vrlab_env.run_cli("hosts", "check", "--testbed", str(lab.testbed), timeout=120)
        assert r.returncode == 3
        assert "connection refused" in " ".join(r.stdout.split())
        assert "1 of 2 host(s) unfit: tester" in r.stderr
    finally:
        lab.stop()
    assert not any((NETNS_DIR / h.ns).exists() for h in lab.hosts.values())
    assert not lab.workdir.exists()


START_AND_WAIT = """
import sys
import time
from vrlab.hosts import sim
lab = sim.start(*sim.THREE)
print(lab.ledger.path, *[h.pid for h in lab.hosts.values()], flush=True)
sys.stdin.read()
"""


def test_a_killed_labs_hosts_die_and_clean_removes_the_rest(vrlab_env: VrlabEnv) -> None:
    """kill -9 of the process that started the lab powers its hosts off (their first
    processes die with it); `vrlab clean` then removes the namespaces and cables."""
    p = subprocess.Popen([sys.executable, "-c", START_AND_WAIT], env=vrlab_env.env,
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout is not None
        ledger_path, *pids = p.stdout.readline().split()
        led = Ledger(Path(ledger_path))
        starts = {int(e.data["pid"]): e.data["start"] for e in led.entries() if e.kind == "proc"}
        assert sorted(starts) == sorted(int(x) for x in pids)
    finally:
        p.send_signal(signal.SIGKILL)
        p.wait()
    namespaces = [e.data["name"] for e in led.entries() if e.kind == "netns"]
    folders = [Path(e.data["path"]) for e in led.entries() if e.kind == "dir"]
    assert folders and all(f.is_dir() for f in folders)
    assert all((NETNS_DIR / n).exists() for n in namespaces)
    r = vrlab_env.run_cli("clean")
    assert r.returncode == 0, r.stdout + r.stderr
    assert not any((NETNS_DIR / n).exists() for n in namespaces)
    assert not any(alive(pid, start) for pid, start in starts.items())
    assert not any(f.exists() for f in folders)
    assert not led.path.exists()


def remote_ledger_procs(lab: sim.SimLab, host: str) -> int:
    """How many processes the host's own ledgers name (its /run/vrlab, not this machine's)."""
    out = run_on(lab, host, ["sh", "-c", "cat /run/vrlab/runs/*.jsonl 2>/dev/null; true"])
    return out.stdout.count('"kind": "proc"')


def test_clean_testbed_removes_a_killed_runs_leftovers_on_each_host(
        lab: sim.SimLab, vrlab_env: VrlabEnv, tmp_path: Path) -> None:
    """A sweep started on the SUT host over SSH, killed with -9 once its generator and sink
    run: `vrlab clean --testbed` removes its namespaces there, leaves a vrlab-looking
    namespace no ledger names, and leaves the other hosts as they were."""
    vrlab = yaml.safe_load(lab.testbed.read_text())["hosts"]["sut"]["vrlab"]
    keep = "vrltest-keep"
    run_on(lab, "sut", ["ip", "netns", "add", keep])
    sweep = ["env", f"VRLAB_DB={tmp_path / 'remote.sqlite'}", vrlab, "sweep", "native-routed",
             "--profile", "quick", "--rates", "50:50:50", "--duration", "60", "--no-plot"]
    background = 'setsid "$@" >/dev/null 2>&1 </dev/null & echo $!'
    pid = run_on(lab, "sut", ["sh", "-c", background, "sh", *sweep]).stdout.strip()
    deadline = time.monotonic() + 120
    while remote_ledger_procs(lab, "sut") < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert remote_ledger_procs(lab, "sut") >= 2, "the sweep's generator and sink never started"
    run_on(lab, "sut", ["kill", "-KILL", pid])
    # a killed process takes a moment to exit; until it has, its run is rightly alive to clean
    gone = 'while [ -e /proc/$1 ] && ! grep -q ") [ZX] " /proc/$1/stat; do sleep 0.1; done'
    run_on(lab, "sut", ["timeout", "30", "sh", "-c", gone, "sh", pid])
    before = run_on(lab, "sut", ["ip", "netns", "list"]).stdout
    assert before.count("vrl") >= 4, before  # tg, sut, ts and the one to keep

    r = vrlab_env.run_cli("clean", "--testbed", str(lab.testbed), timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "sut: removed namespace" in r.stdout
    assert "tg: clean: 0 object(s) removed" in r.stdout
    after = run_on(lab, "sut", ["ip", "netns", "list"]).stdout.split()
    assert after[:1] == [keep] and len(after) <= 2, after  # `ip netns list` may add "(id: N)"
    assert remote_ledger_procs(lab, "sut") == 0
    assert not run_on(lab, "sut", ["sh", "-c", "ls /run/vrlab/runs"]).stdout.strip()
    run_on(lab, "sut", ["ip", "netns", "delete", keep])


def test_clean_testbed_reports_a_host_it_cannot_reach(vrlab_env: VrlabEnv) -> None:
    lab = sim.start(*sim.TESTER)
    try:
        lab.power_off("sut")
        r = vrlab_env.run_cli("clean", "--testbed", str(lab.testbed), timeout=300)
        assert r.returncode == 3, r.stdout + r.stderr
        assert "tester: clean: 0 object(s) removed" in r.stdout
        assert "not cleaned: sut" in r.stderr
    finally:
        lab.stop()


def test_a_host_that_powers_off_mid_command(vrlab_env: VrlabEnv) -> None:
    """The command's connection breaks: HostLost, naming the host and the command."""
    lab = sim.start(*sim.TESTER)
    try:
        tb, _ = testbed_spec.load(lab.testbed)

        async def go() -> None:
            s = await connect(tb, "sut")
            try:
                running = asyncio.create_task(s.run(["sleep", "60"], timeout=120))
                await s.run(["true"])  # the sleep's channel is open by now
                lab.power_off("sut")
                await running
            finally:
                await s.close()

        with pytest.raises(HostLost, match=r"host sut .*connection lost while running "
                           r"`sleep 60`.*reboot"):
            asyncio.run(go())
    finally:
        lab.stop()


def test_vrlab_hosts_sim_runs_a_lab_until_terminated(vrlab_env: VrlabEnv) -> None:
    p = vrlab_env.spawn_cli("hosts", "sim", "--layout", "tester")
    try:
        assert p.stdout is not None
        testbed = Path(p.stdout.readline().strip())
        tb, _ = testbed_spec.load(testbed)
        assert (tb.tg, tb.sut) == ("tester", "sut")
        r = vrlab_env.run_cli("hosts", "check", "--testbed", str(testbed), timeout=120)
        assert r.returncode == 0, r.stdout + r.stderr
    finally:
        p.terminate()
        _, err = p.communicate(timeout=60)
    assert p.returncode == 143, err
    assert "simulated hosts stopped" in err
    assert not testbed.parent.exists()
    assert vrlab_env.ledger_paths() == []
