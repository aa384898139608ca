"""``vrlab latency --attack --platform NAME``: the latency attack on a platform that ``vrlab
up`` built, and the attack's table and verdict lines, which the scenario attack prints too."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import click
from rich.table import Table

from vrlab import attack_result as attack
from vrlab.attack_result import AttackOutcome
from vrlab.cli.console import console, out, progress
from vrlab.cli.options import FAMILY
from vrlab.method import RunContext
from vrlab.results import LatencySummary


def platform_options(f: Callable[..., Any]) -> Callable[..., Any]:
    f = click.option("--victim-ports", metavar="SRC,DST", default=None,
                     help="With --platform: the victim's ports (default: its first two "
                     "dedicated ports).")(f)
    f = click.option("--attacker-ports", metavar="SRC,DST", default=None,
                     help="With --platform: the attacker's ports, its frames sent from the site "
                     "behind SRC to the site behind DST (default: its first two dedicated "
                     "ports).")(f)
    f = click.option("--victim", metavar="ROUTER", default=None,
                     help="With --platform: router B, whose latency is measured.")(f)
    f = click.option("--attacker", metavar="ROUTER", default=None,
                     help="With --platform: router A, which keeps to its share_kpps, then "
                     "floods at 3x it.")(f)
    f = click.option("--platform", "platform_name", metavar="NAME", default=None,
                     help="With --attack (and no SCENARIO): run the attack on this running "
                     "platform (`vrlab up`), between --attacker and --victim, from site to "
                     "site behind their ports.")(f)
    return f


def _us(ns: int) -> str:
    return f"{ns / 1e3:.1f}"


def cells(s: LatencySummary | None) -> list[str]:
    """p50, p99, p99.9 and max in µs, dashes when nothing was timed."""
    if s is None or s.count == 0:
        return ["-"] * 4
    return [_us(s.p50_ns), _us(s.p99_ns), _us(s.p999_ns), _us(s.max_ns)]


def print_attacks(got: list[tuple[str, AttackOutcome]], head: str = "engine") -> None:
    """Each (label, outcome): B's latency and loss in both conditions, then the verdicts;
    ``head`` says what the labels are."""
    t = Table(head, "A", "B frames", "B loss", "B p50 µs", "B p99 µs", "B p99.9 µs",
              "B max µs", title="latency attack: router B beside A at its share and under "
              "A's flood")
    for label, g in got:
        for what, c in ((f"{g.share_pps / 1e3:.0f} kpps (share)", g.share),
                        (f"{g.share_pps * g.flood_factor / 1e3:.0f} kpps (flood)", g.flood)):
            m = c.merged
            t.add_row(f"{label} (run {g.run_id})", what, str(m.count), f"{c.loss_ratio:.2%}",
                      *cells(m))
    out.print(t)
    for label, g in got:
        if g.floor is not None:
            fs, ff = g.floor.share.merged, g.floor.flood.merged
            r = g.floor.ratio
            bursts = f"bursts of {g.burst} frames" if g.burst else "the generator's bursts"
            out.print(f"{label}: the testbed alone (tg→ts) at the same total rates, {bursts}: "
                      f"p99 {fs.p99_ns / 1e3:.1f} and "
                      f"{ff.p99_ns / 1e3:.1f} µs (ratio {'-' if r is None else f'{r:.2f}'})")
    for label, g in got:
        v = g.verdict
        out.print(f"{label}: B's p99 under A's flood against beside A's share, goal ≤ "
                  f"{attack.GOAL_RATIO:g}x: [bold]{v.status}[/] ({v.why})")


def platform_attack(platform: str | None, attacker: str | None, victim: str | None,
                    attacker_ports: str | None, victim_ports: str | None, ip: int,
                    duration_s: float, rounds: int, as_json: bool,
                    make_ctx: Callable[[], RunContext]) -> None:
    """Check the platform and the routers (before anything runs), then attack with frames of
    IP version ``ip``; a table or JSON (``{"attack": [...]}``, as the scenario attack
    prints)."""
    from vrlab import net, platform_attack, platform_traffic
    from vrlab.errors import UsageError

    if attacker is None or victim is None:
        raise UsageError("--attack --platform: name the routers with --attacker ROUTER (A, "
                         "which floods) and --victim ROUTER (B, which is timed)")
    setup = platform_traffic.check(platform, attacker, victim, attacker_ports, victim_ports, ip)
    net.require_root()
    ctx = make_ctx()
    a, b, r = setup.attacker, setup.victim, setup.rates
    for note in r.notes:
        console.print(f"[yellow]{note}[/]")
    console.print(
        f"latency attack on platform [bold]{setup.state.name}[/] "
        f"({attack.ENGINES[setup.engine]}): B = {b.router} {b.src_port}→{b.dst_port} at "
        f"{r.b_pps / 1e3:g} kpps; A = {a.router} {a.src_port}→{a.dst_port} at "
        f"{r.share_pps / 1e3:g} kpps" + (" (its share)" if r.policed else "")
        + f", then at {r.flood_factor:g}x; {FAMILY[ip]} frames of {setup.frame_size} bytes "
        f"(+4 FCS); {duration_s:g} s trials x {rounds} rounds")
    with progress(f"attack {setup.state.name}") as bars:
        res = platform_attack.run_platform_attack(ctx, setup, duration_s, rounds, bars.step)
    if as_json:
        out.print_json(json.dumps({"attack": [res.as_json()]}))
        return
    print_attacks([(f"{setup.state.name}: {a.router} → {b.router}", res.outcome)],
                  head="platform: A → B")
    sent, pol = res.a_sent, res.a_policed
    if setup.engine == "ebpf":
        out.print(f"the engine policed {pol['share']} of A's {sent['share']} frames beside "
                  f"the share and {pol['flood']} of {sent['flood']} under the flood")
