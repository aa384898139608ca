"""Latency under attack on a platform that ``vrlab up`` built and left running: the scenario
attack of :mod:`vrlab.latency_attack` (router B's one-way latency while router A sends at its
share and while A floods at three times it, the two conditions alternating round by round,
stored as a run of kind ``latency-attack`` and judged by :mod:`vrlab.attack_result`), with the
user's own two routers instead of the ``shared`` scenario's, on the traffic of
:mod:`vrlab.platform_traffic` (one generator and one sink per router, in its sites).

Stored trials name the attacker ``r0`` and the victim ``r1``, as the scenario attack's do, so
:func:`vrlab.attack_result.stored_attack` reads them back; the run's parameters name the
routers, their ports and A's generator's CPU."""

from __future__ import annotations

from dataclasses import dataclass, replace

from vrlab.attack_paths import AttackRates, RouterPath
from vrlab.attack_result import (
    B_FRACTION,
    FLOOD,
    KIND,
    ROUND,
    ROUTER_A,
    AttackOutcome,
    Condition,
    require_runnable,
)
from vrlab.method import Progress, RunContext, stored_run
from vrlab.placement import Placement
from vrlab.platform_traffic import A_POLICED, A_SENT, B_SENT, AttackSetup, PlatformTraffic


@dataclass(frozen=True)
class PlatformAttackOutcome:
    """The attack's outcome (:class:`~vrlab.attack_result.AttackOutcome`: conditions, ratio,
    verdict) on a platform's routers, with what the engine did to A in each condition."""

    outcome: AttackOutcome
    platform: str
    attacker: RouterPath
    victim: RouterPath
    rates: AttackRates
    #: per condition ("share", "flood"): A's frames sent and the engine's policed count of A
    a_sent: dict[str, int]
    a_policed: dict[str, int]

    def as_json(self) -> dict[str, object]:
        a, b = self.attacker, self.victim
        return {**self.outcome.as_json(), "scenario": f"platform:{self.platform}",
                "platform": self.platform, "attacker": a.router, "victim": b.router,
                "attacker_ports": [a.src_port, a.dst_port],
                "victim_ports": [b.src_port, b.dst_port],
                "a_policed_by_engine": self.rates.policed, "a_sent": self.a_sent,
                "a_policed": self.a_policed, "notes": list(self.rates.notes)}


def placement_for(where: Placement, pt: PlatformTraffic) -> Placement:
    """The placement the run records: B's generator and the sinks' agents on the generator's
    CPU (A's generator's is in the run's parameters); the forwarding (``sut_cpu``) and the
    sinks' receive work where :class:`PlatformTraffic` put them."""
    if not where.pinned:
        return replace(where, engine_hook=pt.hook)
    fwd = pt.forwarding_cpu
    return replace(where, sut_cpu=fwd, sink_cpu=fwd, engine_hook=pt.hook,
                   xdp_cpu="sender" if pt.hook == "xdp" else None)


def run_platform_attack(ctx: RunContext, setup: AttackSetup, trial_s: float, rounds: int,
                        progress: Progress = lambda m, r: None) -> PlatformAttackOutcome:
    """The attack of ``setup`` (:func:`check`), ``rounds`` alternating rounds of trials of
    ``trial_s`` s, stored as a run of kind ``latency-attack``."""
    require_runnable(ctx.placement.generator, trial_s, rounds)
    st, a, b, rates = setup.state, setup.attacker, setup.victim, setup.rates
    params: dict[str, object] = {
        "engine": setup.engine, "a_share_pps": rates.share_pps,
        "flood_factor": rates.flood_factor, "b_pps": rates.b_pps, "trial_s": trial_s,
        "rounds": rounds, "routers": 2, "platform": st.name, "attacker": a.router,
        "victim": b.router, "attacker_ports": [a.src_port, a.dst_port],
        "victim_ports": [b.src_port, b.dst_port], "a_policed_by_engine": rates.policed,
        "ip": setup.ip, "frame_size": setup.frame_size}
    got = {False: Condition(), True: Condition()}
    sent = {"share": 0, "flood": 0}
    policed = {"share": 0, "flood": 0}
    label = f"latency attack on platform {st.name}"
    with PlatformTraffic(setup, ctx.placement, label) as pt:
        ctx = replace(ctx, placement=placement_for(ctx.placement, pt))
        params["attacker_cpu"] = pt.generator_cpus[ROUTER_A]
        with stored_run(ctx, KIND, f"platform:{st.name}", setup.spec_text, params, setup.ip,
                        setup.frame_size) as run_id:
            ctx.store.add_placement(run_id, sink="tc-bpf")
            for i in range(rounds):
                for flood in (False, True):
                    a_pps = rates.flood_pps if flood else rates.share_pps
                    res = pt.trial(a_pps, rates.b_pps, trial_s)
                    frac_b = res.extra[B_SENT] / res.sent if res.sent else 0.0
                    res = replace(res, extra={**res.extra, FLOOD: float(flood),
                                              ROUND: float(i), B_FRACTION: frac_b})
                    ctx.store.add_trial(run_id, res)
                    got[flood].add(res, frac_b)
                    cond = "flood" if flood else "share"
                    sent[cond] += int(res.extra[A_SENT])
                    policed[cond] += int(res.extra.get(A_POLICED, 0))
                    progress(f"{st.name}: A ({a.router}) at {a_pps / 1e3:.0f} kpps, B "
                             f"({b.router}) at {rates.b_pps / 1e3:.0f} kpps", res)
    outcome = AttackOutcome(run_id, setup.engine, rates.share_pps, rates.b_pps,
                            rates.flood_factor, trial_s, rounds, got[False], got[True],
                            setup.ip, setup.frame_size)
    return PlatformAttackOutcome(outcome, st.name, a, b, rates, sent, policed)
