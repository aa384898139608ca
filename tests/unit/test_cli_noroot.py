"""The ``vrlab`` command where it needs no root: help, plans, and refusing bad input before
anything is built. Run as a subprocess (``python -m vrlab.cli``), the way a user runs it."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from vrlab import spec
from vrlab.cli.main import cli
from vrlab.plan.wiring import make_plan

if TYPE_CHECKING:
    from conftest import VrlabEnv

SUBCOMMANDS = sorted(cli.commands)


def assert_nothing_built(env: VrlabEnv, created: list[str]) -> None:
    assert env.ledger_paths() == [], "a ledger was started, so something was about to be built"
    assert created == [], f"namespaces were created: {created}"


# --------------------------------------------------------------------------- help


def test_the_documented_subcommands_exist() -> None:
    assert {"plan", "sweep", "calibrate", "clean", "status", "scenarios", "results",
            "export", "plot"} <= set(SUBCOMMANDS)


def test_top_level_help(vrlab_env: VrlabEnv) -> None:
    r = vrlab_env.run_cli("--help")
    assert r.returncode == 0, r.stderr
    for name in SUBCOMMANDS:
        assert name in r.stdout


@pytest.mark.parametrize("sub", SUBCOMMANDS)
def test_every_subcommand_has_help(vrlab_env: VrlabEnv, sub: str) -> None:
    r = vrlab_env.run_cli(sub, "--help")
    assert r.returncode == 0, r.stderr
    assert f"Usage: python -m vrlab.cli {sub}" in r.stdout
    assert not vrlab_env.ledger_paths()


def test_version(vrlab_env: VrlabEnv) -> None:
    import vrlab

    r = vrlab_env.run_cli("--version")
    assert r.returncode == 0 and vrlab.__version__ in r.stdout


def test_scenarios_lists_every_builtin(vrlab_env: VrlabEnv) -> None:
    r = vrlab_env.run_cli("scenarios")
    assert r.returncode == 0, r.stderr
    for name in spec.builtin_names():
        assert name in r.stdout


# --------------------------------------------------------------------------- plan


def test_plan_prints_what_would_be_built(vrlab_env: VrlabEnv) -> None:
    r, created = vrlab_env.run_cli_sealed("plan", "native-routed")
    assert r.returncode == 0, r.stderr
    p = make_plan(spec.load("native-routed")[0], "XXXX")
    text = r.stdout
    for title in ("namespaces", "addresses", "routes", "neighbours"):
        assert title in text
    for n in p.namespaces:
        assert n.name in text
    for a in p.addresses:
        assert a.cidr in text
    for rt in p.routes:
        assert rt.dst in text and rt.via in text
    for nb in p.neighbours:
        assert nb.ip in text and nb.mac in text
    assert_nothing_built(vrlab_env, created)


def test_plan_options_override_the_scenario(vrlab_env: VrlabEnv) -> None:
    r = vrlab_env.run_cli("plan", "host-routed", "--guests", "3", "--routers", "4")
    assert r.returncode == 0, r.stderr
    assert "vrlXXXX-g3" in r.stdout and "vrlXXXX-g4" not in r.stdout
    for i in range(4):
        assert f"198.19.{i}.0/24" in r.stdout
    assert "198.19.4.0/24" not in r.stdout


def test_plan_of_a_bad_file_names_the_field_and_builds_nothing(vrlab_env: VrlabEnv,
                                                               tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\nsut:\n  io: bridgd\n")
    r, created = vrlab_env.run_cli_sealed("plan", str(bad))
    assert r.returncode == 2
    err = " ".join(r.stderr.split())  # the console may wrap long lines
    assert str(bad) in err
    assert "sut.io" in err
    assert "'routed', 'bridged' or 'hybrid'" in err
    assert "Traceback" not in r.stderr
    assert_nothing_built(vrlab_env, created)


def test_plan_of_an_unknown_name_lists_the_builtins(vrlab_env: VrlabEnv) -> None:
    r = vrlab_env.run_cli("plan", "no-such-scenario")
    assert r.returncode == 2
    err = " ".join(r.stderr.split())
    for name in spec.builtin_names():
        assert name in err


def test_bad_guest_count_on_the_command_line(vrlab_env: VrlabEnv) -> None:
    r = vrlab_env.run_cli("plan", "host-routed", "--guests", "65")
    assert r.returncode == 2
    assert "sut.guests" in r.stderr


@pytest.mark.parametrize(("args", "hint"), [
    (["--rates", "10:5:1"], "--rates"),
    (["--rates", "fast"], "START:STOP:STEP"),
    (["--duration", "0"], "--duration"),
    (["--repeats", "0"], "--repeats"),
])
def test_sweep_refuses_bad_values_before_building(vrlab_env: VrlabEnv, args: list[str],
                                                  hint: str) -> None:
    r, created = vrlab_env.run_cli_sealed("sweep", "native-routed", "--no-plot", *args)
    assert r.returncode == 2, r.stderr
    assert hint in r.stderr
    assert_nothing_built(vrlab_env, created)
    assert not vrlab_env.db.exists(), "no run may be stored for a refused sweep"


def test_up_refuses_a_bad_platform_before_building(vrlab_env: VrlabEnv, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\nrouters:\n  - name: red\n    ports:\n"
                   "      - {name: eth0, address: 10.0.0.1/24, uplink: nowhere}\n"
                   "    forwarding: sideways\n")
    r, created = vrlab_env.run_cli_sealed("up", str(bad))
    assert r.returncode == 2, r.stderr
    assert "routers[0].forwarding: Input should be 'shared' or 'guest'" in r.stderr
    assert_nothing_built(vrlab_env, created)


def test_down_and_exec_without_a_platform_say_so(vrlab_env: VrlabEnv) -> None:
    for args in (("down",), ("exec", "red", "--", "true")):
        r = vrlab_env.run_cli(*args)
        assert r.returncode == 2 and "no platform is up" in r.stderr, r.stderr


@pytest.mark.parametrize(("args", "needle"), [
    (["native-routed", "--attack"], "is not the shared platform"),
    (["shared", "--attack", "--routers", "4"], "--attack --routers 4"),
    (["shared", "--attack", "--engine", "userspace"], "the attack runs on ebpf or guests"),
])
def test_latency_attack_refuses_what_it_cannot_measure(vrlab_env: VrlabEnv, args: list[str],
                                                        needle: str) -> None:
    r, created = vrlab_env.run_cli_sealed("latency", *args, "--generator", "xdp")
    assert r.returncode != 0
    assert needle in r.stderr, r.stderr
    assert_nothing_built(vrlab_env, created)


@pytest.mark.parametrize(("args", "needle"), [
    (["--attack", "--platform", "nope", "--attacker", "a", "--victim", "b"],
     "--platform nope: no platform nope is up"),
    (["--attack", "--platform", "nope"], "name the routers with --attacker ROUTER"),
    (["--platform", "nope", "--attacker", "a", "--victim", "b"],
     "--platform nope: takes --attack and no SCENARIO"),
    (["shared", "--attack", "--platform", "nope"], "--platform nope: takes --attack and no"),
    (["--attack", "--platform", "nope", "--engine", "ebpf"],
     "--platform nope --engine: a scenario's option"),
    (["shared", "--attack", "--attacker", "a"], "--attacker: only with --attack --platform"),
    ([], "give a SCENARIO"),
])
def test_latency_attack_on_a_platform_refuses_before_anything_runs(
        vrlab_env: VrlabEnv, args: list[str], needle: str) -> None:
    r, created = vrlab_env.run_cli_sealed("latency", *args, "--generator", "xdp")
    assert r.returncode == 2
    assert needle in r.stderr, r.stderr
    assert_nothing_built(vrlab_env, created)


# --------------------------------------------------------------------------- --testbed

def _testbed_file(tmp_path: Path) -> Path:
    """A valid testbed file whose hosts answer nothing (192.0.2.0/24 is TEST-NET-1)."""
    (tmp_path / "id").write_text("unused\n")
    p = tmp_path / "lab.yaml"
    p.write_text("name: lab\nhosts:\n"
                 "  tester: {address: 192.0.2.1, key: id, roles: [tester]}\n"
                 "  sut: {address: 192.0.2.2, key: id, roles: [sut]}\n"
                 "cables:\n  - {from: 'tester:eth1', to: 'sut:eth1'}\n"
                 "  - {from: 'sut:eth2', to: 'tester:eth2'}\n")
    return p


def _three_host_file(tmp_path: Path) -> Path:
    """A valid testbed file whose generator and sink are two machines (none answers)."""
    (tmp_path / "id").write_text("unused\n")
    p = tmp_path / "three.yaml"
    p.write_text("name: three\nhosts:\n"
                 "  tg: {address: 192.0.2.1, key: id, roles: [tg]}\n"
                 "  sut: {address: 192.0.2.2, key: id, roles: [sut]}\n"
                 "  ts: {address: 192.0.2.3, key: id, roles: [ts]}\n"
                 "cables:\n  - {from: 'tg:eth1', to: 'sut:eth1'}\n"
                 "  - {from: 'sut:eth2', to: 'ts:eth1'}\n")
    return p


@pytest.mark.parametrize(("argv", "says"), [
    (["latency", "native-routed", "--ndr-kpps", "100", "--pdr-kpps", "100"],
     "sink's clock minus the generator's"),
    (["calibrate"], "the file names no cable between them: add calibration_cable: {from: "
     "\"tg:IF\", to: \"ts:IF\"}"),
])
def test_a_generator_and_sink_on_two_hosts_are_refused_before_connecting(
        vrlab_env: VrlabEnv, tmp_path: Path, argv: list[str], says: str) -> None:
    """Latency needs tg and ts on one machine, calibration that or a cable between them; the
    refusal names the two hosts and the fix, and no host is tried (192.0.2.x would time
    out)."""
    r, created = vrlab_env.run_cli_sealed(*argv, "--testbed", str(_three_host_file(tmp_path)))
    text = " ".join((r.stdout + r.stderr).split())
    assert r.returncode == 2, text
    assert f"{argv[0]} --testbed:" in text and says in text, text
    assert "(host tg)" in text and "(host ts)" in text, text
    assert "put tg and ts on one tester host" in text, text
    assert_nothing_built(vrlab_env, created)


def test_latency_across_two_machines_is_refused_even_with_a_calibration_cable(
        vrlab_env: VrlabEnv, tmp_path: Path) -> None:
    """The cable links the generator to the sink, but their clocks stay two."""
    p = _three_host_file(tmp_path)
    p.write_text(p.read_text() + "calibration_cable: {from: 'tg:eth2', to: 'ts:eth2'}\n")
    r, created = vrlab_env.run_cli_sealed("latency", "native-routed", "--ndr-kpps", "100",
                                          "--pdr-kpps", "100", "--testbed", str(p))
    text = " ".join((r.stdout + r.stderr).split())
    assert r.returncode == 2, text
    assert "latency --testbed:" in text and "sink's clock minus the generator's" in text, text
    assert_nothing_built(vrlab_env, created)


def test_latency_attack_on_a_generator_and_sink_on_two_hosts_is_refused_before_connecting(
        vrlab_env: VrlabEnv, tmp_path: Path) -> None:
    """B's one-way latency needs tg and ts on one clock: the refusal names the two hosts and
    the fix, and no host is tried (192.0.2.x would time out)."""
    r, created = vrlab_env.run_cli_sealed("latency", "shared", "--attack", "--testbed",
                                          str(_three_host_file(tmp_path)))
    text = " ".join((r.stdout + r.stderr).split())
    assert r.returncode == 2, text
    assert "latency --attack --testbed: the generator (host tg) and the sink (host ts) are two " \
        "machines, and router B's one-way latency takes the sink's clock minus the " \
        "generator's" in text, text
    assert "put tg and ts on one tester host" in text, text
    assert "Traceback" not in text
    assert_nothing_built(vrlab_env, created)


def test_reproduce_across_hosts_with_nothing_it_can_build_is_refused_before_connecting(
        vrlab_env: VrlabEnv, tmp_path: Path) -> None:
    """Fig. 4 links tg straight to ts: with the two on separate machines there is nothing of it
    to measure, and that is said before any host is tried."""
    r, created = vrlab_env.run_cli_sealed("reproduce", "--testbed",
                                          str(_three_host_file(tmp_path)), "--only", "fig4",
                                          "--out", str(tmp_path / "out"))
    text = " ".join((r.stdout + r.stderr).split())
    assert r.returncode == 2, text
    assert "reproduce --testbed: nothing of fig4 can be measured" in text, text
    assert "Not measurable across hosts: TG→TS, 1 flow, TG→TS, 8 flows, TG→TS, 32 flows (tg " \
        "(host tg) and ts (host ts) are two machines" in text, text
    assert "192.0.2" not in text, "refused before any host was tried"
    assert not (tmp_path / "out").exists()
    assert_nothing_built(vrlab_env, created)


def test_reproduce_across_hosts_checks_the_file_first(vrlab_env: VrlabEnv,
                                                      tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: lab\nhosts: {}\n")
    r, created = vrlab_env.run_cli_sealed("reproduce", "--testbed", str(bad), "--only", "fig5")
    assert r.returncode == 2, r.stdout + r.stderr
    assert "bad.yaml" in r.stdout + r.stderr
    assert_nothing_built(vrlab_env, created)


def test_ndr_across_hosts_needs_its_upper_bound(vrlab_env: VrlabEnv, tmp_path: Path) -> None:
    r, created = vrlab_env.run_cli_sealed("ndr", "native-routed", "--testbed",
                                          str(_testbed_file(tmp_path)))
    assert r.returncode == 2, r.stdout + r.stderr
    text = " ".join((r.stdout + r.stderr).split())
    assert "no calibration of testbed lab" in text and "give --max-kpps" in text, text
    assert "vrlab calibrate --testbed" in text, text
    assert_nothing_built(vrlab_env, created)
