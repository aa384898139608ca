"""`vrlab reproduce --testbed` without the hosts: which series a testbed file's machines run
(decided by the same predicate every --testbed command uses), that the reproduction runs
exactly those through the ordinary sweep (on a stand-in testbed that needs no root), and how
the report names what was not measurable across hosts, in its tables, its latency section and
its verdicts."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType

import pytest

from vrlab import method, placement, profiles
from vrlab.errors import UsageError
from vrlab.hosts import spec as testbed_spec
from vrlab.hosts.testbed import check_scenario
from vrlab.method import RunContext
from vrlab.paper import across, claims, figures, reproduce, verdicts
from vrlab.paper.across import Across, HostRole
from vrlab.paper.figures import FIGURES, LATENCY, SweepKey
from vrlab.plan.model import Plan
from vrlab.results import RunInfo, TrialResult
from vrlab.store.db import Store
from vrlab.testbed import TrafficSettings

THREE = ("name: three\nhosts:\n"
         "  tg: {address: 192.0.2.1, key: id, roles: [tg]}\n"
         "  sut: {address: 192.0.2.2, key: id, roles: [sut]}\n"
         "  ts: {address: 192.0.2.3, key: id, roles: [ts]}\n"
         "cables:\n  - {from: 'tg:eth1', to: 'sut:eth1'}\n"
         "  - {from: 'sut:eth2', to: 'ts:eth1'}\n")
TESTER = ("name: pair\nhosts:\n"
          "  tester: {address: 192.0.2.1, key: id, roles: [tester]}\n"
          "  sut: {address: 192.0.2.2, key: id, roles: [sut]}\n"
          "cables:\n  - {from: 'tester:eth1', to: 'sut:eth1'}\n"
          "  - {from: 'sut:eth2', to: 'tester:eth2'}\n")


def reach_of(tmp_path: Path, text: str, ip: int = 4) -> Across:
    (tmp_path / "id").write_text("unused\n")
    p = tmp_path / "lab.yaml"
    p.write_text(text)
    file, _ = testbed_spec.load(p)
    return reproduce.testbed_reach(file, str(p), ip)


def every_key() -> list[SweepKey]:
    return list({k.key: k for k in (*(s for f in FIGURES.values() for s in f.series),
                                    *LATENCY)}.values())


def builds(key: SweepKey) -> bool:
    try:
        check_scenario(reproduce._load(key)[0])
    except UsageError:
        return False
    return True


# --------------------------------------------------------------------------- what is measured


@pytest.mark.parametrize("text", [THREE, TESTER])
def test_a_series_is_run_exactly_when_the_testbed_can_build_its_scenario(
        tmp_path: Path, text: str) -> None:
    on = reach_of(tmp_path, text)
    for key in every_key():
        if key.scenario != "direct":
            assert on.measurable(key) == builds(key), key.key
    for key in (figures.NATIVE_R, figures.NATIVE_B, figures.NATIVE_H):
        assert on.measurable(key)
    for key in (*FIGURES["shared"].series, *FIGURES["fig9u"].series,
                *FIGURES["fig10u"].series):
        assert on.measurable(key), key.key
    assert all(k.scenario == "direct" for k in every_key() if k.key in on.unbuilt)


def test_three_machines_have_no_tg_to_ts_link_and_no_common_clock(tmp_path: Path) -> None:
    on = reach_of(tmp_path, THREE)
    for key in FIGURES["fig4"].series:
        assert not on.measurable(key)
        assert on.unbuilt[key.key].startswith("tg (host tg) and ts (host ts) are two machines")
    assert on.no_direct and on.no_clock == across.NO_CLOCK
    assert "no common clock" in on.no_clock
    assert on.no_attack == across.NO_ATTACK and "no common clock" in on.no_attack
    assert [(h.name, h.roles) for h in on.hosts] == [("tg", ("tg",)), ("sut", ("sut",)),
                                                     ("ts", ("ts",))]


def test_a_calibration_cable_links_tg_to_ts_on_two_machines_without_a_clock(
        tmp_path: Path) -> None:
    on = reach_of(tmp_path, THREE + "calibration_cable: {from: 'tg:eth2', to: 'ts:eth2'}\n")
    assert all(on.measurable(k) for k in FIGURES["fig4"].series)
    assert on.no_direct == ""
    assert on.no_clock == across.NO_CLOCK, "two machines still have two clocks"


def test_without_the_cable_the_reason_names_the_field(tmp_path: Path) -> None:
    on = reach_of(tmp_path, THREE)
    assert "add calibration_cable: {from: \"tg:IF\", to: \"ts:IF\"}" in on.no_direct


def test_a_tester_host_calibrates_and_times(tmp_path: Path) -> None:
    on = reach_of(tmp_path, TESTER)
    assert all(on.measurable(k) for k in FIGURES["fig4"].series)
    assert on.no_direct == "" and on.no_clock == "" and on.no_attack == ""
    assert on.hosts[0] == HostRole("tester", ("tg", "ts"), "root@192.0.2.1:22")
    assert on.testbed == "pair"


class StandIn:
    """A testbed that forwards everything up to 400 kpps and records what it was built as."""

    def __init__(self, built: list[str], plan: Plan, label: str) -> None:
        built.append(plan.scenario)
        self.sink_kind = "stand-in"

    def __enter__(self) -> StandIn:
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None,
                 tb: TracebackType | None) -> None:
        pass

    def hosts(self) -> list[dict[str, str]]:
        return [{"role": r, "host": r, "destination": f"root@{r}:22", "hostname": f"m-{r}",
                 "kernel": "6.1", "cpu": "test cpu", "cpus": "2"} for r in ("tg", "sut", "ts")]

    def trial(self, rate: float, duration: float, **kw: float) -> TrialResult:
        got = round(min(rate, 400_000.0) * duration)
        return TrialResult(rate, duration, round(rate * duration), got, {"r0": got}, rate)


def stand_in_ctx(store: Store, built: list[str]) -> RunContext:
    def maker(plan_for: Callable[[str], Plan], where: placement.Placement,
              traffic: TrafficSettings, label: str) -> StandIn:
        return StandIn(built, plan_for("0001"), label)

    def direct(where: placement.Placement, traffic: TrafficSettings, label: str,
               ip: int = 4) -> StandIn:
        from vrlab.plan import wiring
        return StandIn(built, wiring.calibration_plan("0001", ip=ip), label)

    return RunContext(store, placement.choose(False), profiles.get("quick"),
                      testbed=maker,  # type: ignore[arg-type]
                      testbed_name="lab", direct=direct)  # type: ignore[arg-type]


@pytest.mark.parametrize(("text", "direct"), [(THREE, False), (TESTER, True)])
def test_the_reproduction_runs_only_what_the_testbed_builds(tmp_path: Path, text: str,
                                                            direct: bool) -> None:
    """Fig. 10 with userspace guests: native-routed and the userspace mixes run; Fig. 4's
    direct link runs on a tester host (through the context's direct testbed) and not on three
    machines."""
    on = reach_of(tmp_path, text)
    built: list[str] = []
    with Store(tmp_path / "r.sqlite") as st:
        md = reproduce.reproduce(stand_in_ctx(st, built), ["fig4", "fig10u"], tmp_path / "out",
                                 lambda m, r: None, calibrate=False, on=on)
        assert st.runs(kind="calibrate") == []
        hosts = {h["role"]: h["hostname"] for h in st.hosts(st.runs()[0].id)}
    measured = [k for k in figures.needed(["fig4", "fig10u"]) if on.measurable(k)]
    assert "native-routed" in built and len(built) == len(measured)
    assert sum(b.startswith("mixed") for b in built) == 4
    assert (built.count("calibration") == 3) == direct
    data = json.loads((tmp_path / "out" / "runs.json").read_text())
    assert data["testbed"] == on.testbed
    assert set(data["runs"]) == {k.key for k in measured}
    assert set(data["not_measurable"]) == {k.key for k in figures.needed(["fig4", "fig10u"])
                                           if not on.measurable(k)}
    assert hosts == {"tg": "m-tg", "sut": "m-sut", "ts": "m-ts"}
    text_ = md.read_text()
    assert f"reproduced across the hosts of testbed {on.testbed}" in text_
    assert "sut on sut (m-sut: test cpu ×2, Linux 6.1)" in text_


def test_on_three_machines_searches_run_uncapped_and_latency_is_said_not_measurable(
        tmp_path: Path) -> None:
    """The NDR figure's searches run on the hosts; with no tg→ts link there is no calibration
    to cap them (vrlab's own ceiling does), and with no common clock no latency run is started:
    the report's latency section says why instead of a number or an error."""
    on = reach_of(tmp_path, THREE)
    built: list[str] = []
    with Store(tmp_path / "r.sqlite") as st:
        md = reproduce.reproduce(stand_in_ctx(st, built), ["ndr"], tmp_path / "out",
                                 lambda m, r: None, calibrate=True, on=on)
        assert st.runs(kind="calibrate") == [] and st.runs(kind="latency") == []
        searched = st.runs(kind="ndr")
        assert searched and all(r.params["max_pps"] == method.CALIB_MAX_PPS for r in searched)
    assert {r.scenario for r in searched} == {k.scenario for k in FIGURES["ndr"].series
                                              if on.measurable(k)}
    latency = md.read_text().split("## Latency under load")[1]
    assert "Not measurable: tg and ts on two machines have no common clock" in latency


@pytest.mark.parametrize(("text", "attacks"), [(THREE, False), (TESTER, True)])
def test_the_attack_runs_on_a_tester_and_is_said_not_measurable_on_two_machines(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str, attacks: bool) -> None:
    """On a tester host the reproduction goes on to the attack as on one machine (it runs on
    whatever the latency runs measured); with tg and ts on two machines it never starts, and
    the report's attack subsection gives the reason."""
    on = reach_of(tmp_path, text)
    asked: list[dict[str, int]] = []

    def run_attacks(ctx: RunContext, lat_runs: dict[str, int], progress: object,
                    ip: int = 4) -> dict[str, int]:
        asked.append(dict(lat_runs))
        return {}

    monkeypatch.setattr(reproduce, "run_attacks", run_attacks)
    with Store(tmp_path / "r.sqlite") as st:
        md = reproduce.reproduce(stand_in_ctx(st, []), ["ndr"], tmp_path / "out",
                                 lambda m, r: None, calibrate=False, on=on)
    assert bool(asked) == attacks
    attack = md.read_text().split("### Under attack")[1]
    said = " ".join(attack.split()).lower()
    assert (f"{verdicts.UNBUILDABLE}: {across.NO_ATTACK}".lower() in said) == (not attacks)


# --------------------------------------------------------------------------- the report


REASON = "scenario native-hybrid cannot be measured across hosts yet (test)"


def on_three(**kw: object) -> Across:
    hosts = (HostRole("gen", ("tg",), "root@a:22"), HostRole("box", ("sut",), "root@b:22"),
             HostRole("sink", ("ts",), "root@c:22"))
    args: dict[str, object] = {"unbuilt": {figures.NATIVE_H.key: REASON},
                               "no_direct": "tg and ts are two machines (test)",
                               "no_clock": across.NO_CLOCK, "no_attack": across.NO_ATTACK}
    args.update(kw)
    return Across("lab", "lab.yaml", hosts, **args)  # type: ignore[arg-type]


def sweep(store: Store, key: SweepKey, capacity: float) -> int:
    """A sweep whose SUT forwards ``capacity`` and loses the rest, recorded on three hosts."""
    run = store.start_run(RunInfo(kind="sweep", scenario=key.scenario, spec_yaml="", machine={},
                                  placement={"pinned": "True"}, vrlab_version="0",
                                  profile="quick", params={}, label=key.key))
    for rep in range(2):
        for rate in (100_000.0, 300_000.0, 500_000.0):
            c = capacity * (1 + 0.01 * (2 * rep - 1))
            got = round(min(rate, c))
            store.add_trial(run, TrialResult(rate, 1.0, round(rate), got, {"r0": got}, rate),
                            repeat=rep)
    store.add_hosts(run, [{"role": r, "host": h, "destination": f"root@{h}:22",
                           "hostname": f"{h}-machine", "kernel": "6.1", "cpu": "cpu",
                           "cpus": "2"} for r, h in (("tg", "gen"), ("sut", "box"),
                                                     ("ts", "sink"))])
    store.finish_run(run, "done")
    return run


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store(tmp_path / "r.sqlite") as s:
        yield s


def claim_row(text: str, number: int) -> list[str]:
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("| ") and cells[0] == str(number):
            return cells
    raise AssertionError(f"no claim {number}")


def test_a_claim_resting_on_an_unbuildable_series_is_not_measurable_not_differs(
        store: Store, tmp_path: Path) -> None:
    """Bridged and routed, both saturated, differ by half: claim 2 differs on this machine;
    across hosts without the hybrid it is not measurable, and says why."""
    runs = {figures.NATIVE_B.key: sweep(store, figures.NATIVE_B, 400_000),
            figures.NATIVE_R.key: sweep(store, figures.NATIVE_R, 200_000)}
    for d in ("here", "on"):
        (tmp_path / d).mkdir()
    here = reproduce.write_report(store, ["fig5"], runs, {}, tmp_path / "here", "quick")
    assert claim_row(here.read_text(), 2)[3] == "**differs**"
    text = reproduce.write_report(store, ["fig5"], runs, {}, tmp_path / "on", "quick",
                                  on=on_three()).read_text()
    cells = claim_row(text, 2)
    assert cells[3] == "**not measurable**"
    assert cells[5].startswith(f"not measurable across hosts: native-hybrid: {REASON}")
    assert "on the series measured it is differs" in cells[5]
    assert f"| native-hybrid | not measurable across hosts: {REASON} | - | - | - |" in text
    assert (tmp_path / "on" / "fig5.png").exists()
    one = claim_row(text, 1)
    assert one[3] == "**not measurable**" and "tg and ts are two machines (test)" in one[5]
    assert "- calibration: not measurable across hosts: tg and ts are two machines (test)" \
        in text
    assert "reproduced across the hosts of testbed lab" in text
    assert "- testbed: `lab` (file `lab.yaml`): gen (tg, root@a:22); box (sut, root@b:22); " \
        "sink (ts, root@c:22)" in text
    assert "tg on gen (gen-machine: cpu ×2, Linux 6.1); sut on box" in text
    assert "holds" not in cells[3]


def test_without_tg_and_ts_on_one_machine_latency_is_not_measurable(store: Store,
                                                                   tmp_path: Path) -> None:
    text = reproduce.write_report(store, ["ndr"], {}, {}, tmp_path, "quick", {}, {}, {},
                                  on=on_three()).read_text()
    latency = text[text.index("## Latency under load"):]
    assert "Not measurable: tg and ts on two machines have no common clock" in latency
    assert "### Under attack" in latency
    assert "the attack measures router B's one-way latency" in latency
    assert not (tmp_path / "latency.json").exists()
    assert f"| native-hybrid | not measurable across hosts: {REASON} |" in text


def test_on_a_tester_latency_names_the_configurations_it_could_not_build(
        store: Store, tmp_path: Path) -> None:
    shared = SweepKey("shared", None, 4, 4, "ebpf")
    on = on_three(no_clock="", no_direct="", no_attack="",
                  unbuilt={shared.key: "no shared engine (test)"})
    text = reproduce.write_report(store, ["shared"], {}, {}, tmp_path, "quick", {}, {}, {},
                                  on=on).read_text()
    latency = text[text.index("## Latency under load"):]
    assert f"Not measurable across hosts: {shared.label} (no shared engine (test))." in latency
    section = text[text.index("## Beyond the paper"):text.index("## Latency")]
    assert f"{shared.label} (no shared engine (test))" in section
    assert "**Verdict: not measurable** — not measurable across hosts: shared N=4: no shared " \
        "engine (test)" in section


def test_a_figure_with_nothing_measured_is_a_table_of_reasons(store: Store,
                                                              tmp_path: Path) -> None:
    unbuilt = {k.key: "no guests here (test)" for k in FIGURES["fig11"].series}
    text = reproduce.write_report(store, ["fig11"], {}, {}, tmp_path, "quick",
                                  on=on_three(unbuilt=unbuilt)).read_text()
    for k in FIGURES["fig11"].series:
        assert f"| {k.label} | not measurable across hosts: no guests here (test) |" in text
    assert claim_row(text, 7)[3] == "**not measurable**"
    assert claim_row(text, 7)[5] == ("not measurable across hosts: mixed-bridged-n3: no guests "
                                     "here (test); run fig11/fig12")
    assert not list(tmp_path.glob("fig11*.png"))


def test_across_hosts_leaves_claims_without_unbuilt_series_as_they_are() -> None:
    c = claims.Claim(2, "q", "Fig. 5", verdicts.HOLDS, "m", "w")
    assert claims.across_hosts(c, {"native-hybrid": "x"}) is c
    missing = claims.Claim(3, "q", "Fig. 7", verdicts.NOT_MEASURABLE, "m", "run fig7",
                           (verdicts.MISSING,), ("host-bridged-n1", "host-routed-n1"))
    got = claims.across_hosts(missing, {"host-routed-n1": "why"})
    assert got.verdict == verdicts.NOT_MEASURABLE
    assert got.why == "not measurable across hosts: host-routed-n1: why; run fig7"
    assert verdicts.UNBUILDABLE in got.reasons
