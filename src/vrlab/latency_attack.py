"""Latency under attack, measured: router B's one-way latency while router A sends at its
share, and while A floods at three times its share, on the ``shared`` scenario with two
routers, for the shared eBPF engine (which polices A to its share) and for guest forwarding
(which has nothing to hold A back). What it measured and the verdict are
:mod:`vrlab.attack_result`'s.

B sends at a steady rate throughout; the generator's frame list mixes A's and B's frames evenly
(:func:`vrlab.traffic.frames.mix`), so each router's rate is steady within a trial. The frames
are of the scenario's ``traffic.ip``: IPv4, IPv6 (RFC 5180's 2001:2::/48) or both, each
router's alternating between the families, at the smallest size that carries the stamp
(:func:`vrlab.framesize.min_timed_frame`). The two
conditions alternate, round after round, so a slow spell of the machine touches both. The
generator sends bursts of one size in both (:func:`same_bursts`), and the testbed alone
(tg→ts) is measured at the two conditions' total rates in the same run (:func:`floor`), so
a rise of B's latency under the flood is the router's, not the testbed's. Each trial is
stored with its condition and round, and whether an engine policed A (run kind
``latency-attack``).

Across the machines of a testbed file the same runs on a tester host (generator and sink on
one clock) and a SUT host: the platform is built there by its agent, and A's share is set in
the engine there through that agent (:meth:`vrlab.testbed.Testbed.set_share`)."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import replace

from vrlab import placement, spec
from vrlab.attack_result import (
    B_FRACTION,
    B_PPS,
    ENGINES,
    FLOOD,
    FLOOD_FACTOR,
    KIND,
    POLICED,
    ROUND,
    ROUTER_A,
    ROUTER_B,
    SHARE_PPS,
    AttackOutcome,
    Condition,
    Floor,
    require_runnable,
)
from vrlab.errors import UsageError, VrlabError
from vrlab.framesize import min_timed_frame
from vrlab.method import Progress, RunContext, placed, record_testbed, stored_run
from vrlab.placement import Placement
from vrlab.plan import wiring
from vrlab.plan.model import Plan
from vrlab.results import LATENCY_FLOOR, TrialResult
from vrlab.testbed import Testbed, TrafficSettings
from vrlab.traffic.agent import AgentLink
from vrlab.traffic.frames import build_frame, mix
from vrlab.traffic.xdp.live import default_burst


def scenario(engine: str, ip: int = 4) -> tuple[spec.Scenario, str]:
    """The ``shared`` scenario with two routers on ``engine`` and frames of IP version ``ip``
    (4, 6, 46), and its YAML."""
    if engine not in ENGINES:
        raise UsageError(f"--engine {engine}: the attack runs on {' or '.join(ENGINES)}")
    return spec.load("shared", {"traffic.routers": 2, "sut.engine": engine, "traffic.ip": ip})


def traffic(sc: spec.Scenario) -> TrafficSettings:
    """One flow per router and IP version, of frames that carry the stamp."""
    return TrafficSettings(flows=2, frame_size=min_timed_frame(sc.traffic.ip))


def testbed(sc: spec.Scenario, where: Placement, label: str) -> Testbed:
    """A testbed of :func:`scenario` on this machine, with :func:`traffic`; not yet up
    (``with`` it)."""
    return Testbed(lambda rid: wiring.make_plan(sc, rid), where, traffic(sc), label=label)


def same_bursts(share_pps: float = SHARE_PPS, b_pps: float = B_PPS) -> int:
    """The frames of each of the generator's bursts, in both conditions: as many as it sends
    at a time beside A's share (:func:`~vrlab.traffic.xdp.live.default_burst`). Left to
    itself it would send twice as many at a time under the flood, and every timed frame would
    wait behind twice as many others of its burst, in the generator, the router and the sink:
    a rise of B's latency that is the generator's grouping, not the flood's effect on the
    router (the testbed alone shows it, :func:`floor`)."""
    return default_burst(share_pps + b_pps)


def mix_turns(a: list[bytes], b: list[bytes], a_rate: float,
              b_rate: float) -> tuple[list[bytes], float]:
    """:func:`~vrlab.traffic.frames.mix` of A's frames and B's, each router's slots taking its
    frames in turn (one per IP version: every router sends both families evenly); and B's
    fraction of the list."""
    pattern, frac_b = mix(b"a", b"b", a_rate, b_rate)
    turn = {b"a": 0, b"b": 0}
    out = []
    for slot in pattern:
        own = a if slot == b"a" else b
        out.append(own[turn[slot] % len(own)])
        turn[slot] += 1
    return out, frac_b


def _timed(tb: Testbed) -> tuple[AgentLink, Plan]:
    """``tb``'s generator and plan, refused unless it is up and times its frames."""
    if tb.gen is None or tb.plan is None:
        raise VrlabError(f"testbed {tb.label} is not up: use it as `with Testbed(...)`")
    if not tb.traffic.latency:
        raise UsageError(f"testbed {tb.label} does not time its frames (its generator and "
                         "sink are not on one clock): the attack measures B's latency")
    return tb.gen, tb.plan


def measure(tb: Testbed, trial_s: float, rounds: int, *, share_pps: float = SHARE_PPS,
            b_pps: float = B_PPS, flood_factor: float = FLOOD_FACTOR,
            burst: int | None = None,
            record: Callable[[TrialResult], TrialResult] = lambda r: r,
            progress: Progress = lambda m, r: None) -> tuple[Condition, Condition]:
    """B's latency and loss beside A at ``share_pps`` and under A at ``flood_factor`` times
    it, ``rounds`` alternating rounds on ``tb`` (a ``shared`` testbed with two routers, on
    this machine or across a tester's and a SUT's; the eBPF engine, if any, polices A to
    ``share_pps``, wherever it runs: :meth:`~vrlab.testbed.Testbed.set_share`). ``burst``:
    frames per generator burst in both conditions (:func:`same_bursts`); None, the
    generator's own sizes."""
    gen, plan = _timed(tb)
    policed = tb.set_share(tb.router_names.index(ROUTER_A), round(share_pps))
    index = {n: i for i, n in enumerate(tb.router_names)}
    frames = {r: [build_frame(f, tb.frame_size, router_index=index[r])
                  for f in tb.flows if f.router == r] for r in (ROUTER_A, ROUTER_B)}
    got: dict[bool, Condition] = {False: Condition(), True: Condition()}
    for i in range(rounds):
        for flood in (False, True):
            a_pps = share_pps * (flood_factor if flood else 1.0)
            mixed, frac_b = mix_turns(frames[ROUTER_A], frames[ROUTER_B], a_pps, b_pps)
            gen.call("sender", dev=plan.traffic.tg_dev, frames=mixed, path="xdp", stamp=True)
            res = tb.trial(b_pps / frac_b, trial_s, warmup_s=0.1, residual_s=0.1,
                           burst=burst)
            res = record(replace(res, extra={**res.extra, FLOOD: float(flood),
                                             ROUND: float(i), B_FRACTION: frac_b,
                                             POLICED: float(policed)}))
            got[flood].add(res, frac_b)
            progress(f"{tb.label}: A at {a_pps / 1e3:.0f} kpps, B at {b_pps / 1e3:.0f} kpps",
                     res)
    return got[False], got[True]


def floor(tb: Testbed, trial_s: float, rounds: int, *, share_pps: float = SHARE_PPS,
          b_pps: float = B_PPS, flood_factor: float = FLOOD_FACTOR, burst: int | None = None,
          record: Callable[[TrialResult], TrialResult] = lambda r: r,
          progress: Progress = lambda m, r: None) -> Floor:
    """The testbed alone (``tb``: tg linked straight to ts) at the total rates of
    :func:`measure`'s two conditions, in as many alternating rounds of as long trials, with
    the same bursts: what the testbed's own latency does between the two loads. Each trial is
    marked as the floor's (``LATENCY_FLOOR``), with its condition and round."""
    _timed(tb)
    got: dict[bool, Condition] = {False: Condition(), True: Condition()}
    for i in range(rounds):
        for flood in (False, True):
            rate = share_pps * (flood_factor if flood else 1.0) + b_pps
            res = tb.trial(rate, trial_s, warmup_s=0.1, residual_s=0.1, burst=burst)
            res = record(replace(res, extra={**res.extra, FLOOD: float(flood),
                                             ROUND: float(i), LATENCY_FLOOR: 1.0}))
            got[flood].add_all(res)
            progress(f"{tb.label}: tg→ts alone at {rate / 1e3:.0f} kpps", res)
    return Floor(got[False], got[True])


def attack(engine: str, sut: AbstractContextManager[Testbed],
           alone: AbstractContextManager[Testbed], trial_s: float, rounds: int, *,
           ip: int = 4, burst: int | None = None, run_id: int = 0,
           record: Callable[[TrialResult], TrialResult] = lambda r: r,
           progress: Progress = lambda m, r: None,
           on_up: Callable[[Testbed], None] = lambda tb: None) -> AttackOutcome:
    """:func:`measure` on ``sut`` (the scenario's testbed, not yet up; ``on_up`` sees it up),
    then :func:`floor` on ``alone`` (tg→ts), with the same trials and bursts: the sequence
    every attack runs, stored (``record``, ``run_id``) or not."""
    with sut as tb:
        on_up(tb)
        share, flood = measure(tb, trial_s, rounds, burst=burst, record=record,
                               progress=progress)
    with alone as tb:
        base = floor(tb, trial_s, rounds, burst=burst, record=record, progress=progress)
    return AttackOutcome(run_id, engine, SHARE_PPS, B_PPS, FLOOD_FACTOR, trial_s, rounds,
                         share, flood, ip, min_timed_frame(ip), base, burst)


def run_attack(ctx: RunContext, engine: str, trial_s: float, rounds: int,
               progress: Progress = lambda m, r: None, ip: int = 4) -> AttackOutcome:
    """The attack on ``engine`` with frames of IP version ``ip``, on the testbed ``ctx``
    builds (this machine, or a testbed file's tester and SUT), stored as a run of kind
    ``latency-attack`` with the testbed's name and hosts as other runs store them."""
    sc, text = scenario(engine, ip)
    ctx, sc = placed(ctx, sc)
    require_runnable(ctx.placement.generator, trial_s, rounds)
    size = min_timed_frame(ip)
    burst = same_bursts()
    params: dict[str, object] = {
        "engine": engine, "a_share_pps": SHARE_PPS, "flood_factor": FLOOD_FACTOR,
        "b_pps": B_PPS, "trial_s": trial_s, "rounds": rounds, "routers": 2, "ip": ip,
        "frame_size": size, "burst_frames": burst}
    with stored_run(ctx, KIND, sc.name, text, params, ip, size) as run_id:

        def record(res: TrialResult) -> TrialResult:
            ctx.store.add_trial(run_id, res)
            return res

        return attack(
            engine,
            ctx.testbed(lambda rid: wiring.make_plan(sc, rid), ctx.placement, traffic(sc),
                        f"latency attack {engine}"),
            ctx.direct(placement.rps_only(ctx.placement), traffic(sc),
                       f"latency attack {engine} floor", ip),
            trial_s, rounds, ip=ip, burst=burst, run_id=run_id, record=record,
            progress=progress, on_up=lambda tb: record_testbed(ctx, run_id, tb))
