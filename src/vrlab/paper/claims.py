"""The paper's claims, each judged from stored measurements with thresholds stated up front.

Pure functions of sweep points and search rows, so a verdict can be recomputed from the database
at any time and tested without root. A verdict is never written by hand: each claim states the
comparisons it rests on, and :mod:`vrlab.paper.verdicts` decides them (holds, differs,
inconclusive or not measurable, with the reasons) only where the data can carry them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace

from vrlab.paper.claim import SIMILAR, Claim, rel
from vrlab.paper.link_claim import direct_carried, direct_lost, direct_open, generator
from vrlab.paper.verdicts import (
    AT_FLOOR,
    DIFFERS,
    HOLDS,
    INCONCLUSIVE,
    LOWER_BOUNDS,
    MISSING,
    NO_CHECKS,
    NOT_MEASURABLE,
    UNBUILDABLE,
    Check,
    Points,
    Rate,
    at_least,
    causes_of,
    decide,
    doubted,
    fully_offered,
    higher,
    is_lossy,
    search_rate,
    series_problem,
    sweep_rate,
    within,
)
from vrlab.store.rows import SearchRow, SweepPoint

HYBRID_DROP = (0.15, 0.45)  # the paper's "about 30% lower", with room either side
MUCH_LOWER = 0.80  # "much more costly": at most 80% of the other's peak
FAR_BELOW = 2.0  # "far below": at least 2x lower (the paper saw ~6x)
FALLS = 0.95  # "falls as N grows": the largest N is at least 5% below the smallest
HOST_FAVOURED = 1.2  # bridged breakdown: the host gets at least 1.2x each guest
EVEN_SPLIT = 0.8  # routed breakdown: host and mean guest within 0.8-1.25x of each other
SHARED_GOAL = 0.9  # the shared engine's aggregate >= 0.9 x one native router


def _judge(head: tuple[int, str, str], checks: Sequence[Check], measured: str, rule: str,
           numbers: str = "", hint: str = "") -> Claim:
    """A claim from its comparisons. The numbers computed from the figures are shown only with
    holds or differs, where the figures carried them; otherwise the reasons come first."""
    verdict, reasons, said = decide(checks)
    gone = tuple(sorted(causes_of([c for c in checks if c.ok is None]).get(MISSING, [])))
    if verdict == NOT_MEASURABLE:
        if checks and all(c.reasons == (MISSING,) for c in checks):  # none of it was stored
            return Claim(*head, verdict, f"missing sweeps: {', '.join(gone)}", hint, reasons,
                         gone)
        return Claim(*head, verdict, measured, f"{said}; {hint}" if hint else said, reasons,
                     gone)
    parts = [said, numbers, rule] if verdict in (HOLDS, DIFFERS) else [said, rule]
    return Claim(*head, verdict, measured, ". ".join(p for p in parts if p), reasons, gone)


# --------------------------------------------------------------------------- the claims


def _present(*rates: Rate) -> bool:
    return all(r.problem != MISSING for r in rates)


def _exact(*rates: Rate) -> bool:
    return all(not r.problem for r in rates)


def _ratio(a: Rate, b: Rate) -> tuple[str, float] | None:
    """``a / b`` written as the bound it is: "≥ " when ``a`` is only a lower bound (or ``b`` an
    upper one), "≤ " the other way; None when the bounds leave it open."""
    if not _present(a, b) or not b.pps:
        return None
    up = a.problem in LOWER_BOUNDS or b.problem == AT_FLOOR
    down = a.problem == AT_FLOOR or b.problem in LOWER_BOUNDS
    if up and down:
        return None
    return ("≥ " if up else "≤ " if down else ""), a.pps / b.pps


def native(points: Points) -> Claim:
    """All three sweeps must be the SUT's limits: a routed sweep that never lost a frame only
    says routing is at least as fast as the generator, not how it compares with bridging."""
    quote = ("Native bridged and routed forwarding differ very little; the hybrid configuration "
             "forwards about 30% less.")
    b, r, h = (sweep_rate(points, k) for k in ("native-bridged", "native-routed",
                                               "native-hybrid"))
    best = higher(b, r)
    lo, hi = HYBRID_DROP
    checks = [within(f"bridged and routed within {SIMILAR:.0%}", b, r, SIMILAR),
              at_least(f"hybrid at least {lo:.0%} below the better", best, h, 1 / (1 - lo)),
              at_least(f"hybrid at most {hi:.0%} below the better", h, best, 1 - hi)]
    parts = [f"bridged vs routed differ by {rel(b.pps, r.pps):.0%}"] if _exact(b, r) else []
    hybrid = _ratio(h, best)
    if hybrid:
        parts.append(f"hybrid forwards {hybrid[0]}{hybrid[1]:.0%} of the better one")
    numbers = "; ".join(parts)
    return _judge((2, quote, "Fig. 5"), checks,
                  f"bridged {b.fmt()}, routed {r.fmt()}, hybrid {h.fmt()}",
                  f"similar = within {SIMILAR:.0%}; hybrid accepted {lo:.0%}-{hi:.0%} below "
                  "(paper ~30%)", numbers, "run fig5")


def idle_guests(points: Points, ns: Sequence[int]) -> Claim:
    """Every N against its native reference; a pair in which either peak is the generator's
    says nothing about what idle guests cost the host."""
    quote = ("Idle guest domains do not change the host's forwarding rate, bridged or routed.")
    rows, checks, devs = [], [], []
    for io, base in (("bridged", "native-hybrid"), ("routed", "native-routed")):
        ref = sweep_rate(points, base)
        for n in ns:
            s = sweep_rate(points, f"host-{io}-n{n}")
            checks.append(within(f"{io} N={n} within {SIMILAR:.0%} of native", ref, s, SIMILAR))
            rows.append(f"{io} N={n}: {s.fmt()} vs {base} {ref.fmt()}")
            if _exact(ref, s):
                devs.append(rel(ref.pps, s.pps))
    numbers = f"largest deviation from native {max(devs):.0%}" if devs else ""
    return _judge((3, quote, "Fig. 7, 8"), checks, "; ".join(rows),
                  f"threshold {SIMILAR:.0%}; host-bridged is native-hybrid (a bridge on each "
                  "port, routing between them) with the guests' veths in the bridges, so "
                  "native-hybrid is its reference", numbers,
                  "run fig7/fig8")


def bridged_costs(points: Points, n: int) -> Claim:
    quote = "Bridged I/O costs the host much more than routed I/O."
    b, r = sweep_rate(points, f"host-bridged-n{n}"), sweep_rate(points, f"host-routed-n{n}")
    check = at_least(f"bridged at most {MUCH_LOWER:.0%} of routed", r, b, 1 / MUCH_LOWER)
    ratio = _ratio(b, r)
    numbers = f"bridged forwards {ratio[0]}{ratio[1]:.0%} of routed" if ratio else ""
    return _judge((4, quote, "Fig. 7 vs 8"), [check],
                  f"N={n}: host-bridged {b.fmt()}, host-routed {r.fmt()}",
                  f"holds at ≤ {MUCH_LOWER:.0%}", numbers, "run fig7/fig8")


def _falls(what: str, first: Rate, last: Rate, ns: Sequence[int]) -> Check:
    """Does the largest N forward at most FALLS of the smallest? A single N cannot show a fall,
    and comparing a sweep with itself must not count as one that failed to fall."""
    if min(ns) == max(ns):
        return Check(what, None, ((NO_CHECKS, f"only N={min(ns)}"),))
    return at_least(what, first, last, 1 / FALLS)


def _has_kind(points: Points, kind: str) -> bool:
    return any(k.startswith("guest-") and k.endswith(f"-{kind}") and v
               for k, v in points.items())


def guests_only(points: Points, ns: Sequence[int], kind: str = "") -> Claim:
    """Claim 5; ``kind="userspace"`` judges the same claim on guests whose forwarder is a
    userspace engine process (the sweeps keyed ``...-userspace``)."""
    quote = ("Guest-only forwarding is far below host forwarding (about 6x lower with 6 "
             "guests) and falls as N grows; bridged and routed are similar.")
    figure = "Fig. 9" + (f" ({kind} guests)" if kind else "")
    rule = (f"far below = native at least {FAR_BELOW:.0f}x the guests' aggregate; falls = "
            f"the largest N at most {FALLS:.0%} of the smallest; similar = bridged and routed "
            f"within {2 * SIMILAR:.0%}. A namespace guest forwards in the host's own kernel "
            "with no hypervisor switch, so a smaller gap here than on Xen is a finding, not a "
            "fault")
    hint = "run fig9u" if kind else "run fig9"
    if not ns:
        return _judge((5, quote, figure), [], "no guest counts", rule, hint=hint)
    sfx = f"-{kind}" if kind else ""
    ref = sweep_rate(points, "native-routed")
    lo, hi = min(ns), max(ns)
    parts, checks, last = [], [], {}
    for io in ("bridged", "routed"):
        first = sweep_rate(points, f"guest-{io}-n{lo}{sfx}")
        last[io] = sweep_rate(points, f"guest-{io}-n{hi}{sfx}")
        checks += [at_least(f"{io}: native {FAR_BELOW:.0f}x N={hi}", ref, last[io], FAR_BELOW),
                   _falls(f"{io}: N={hi} falls below N={lo}", first, last[io], ns)]
        ratio = _ratio(ref, last[io])
        factor = f", native/guests(N={hi}) = {ratio[0]}{ratio[1]:.1f}x" if ratio else ""
        parts.append(f"{io}: N={lo} {first.fmt()}, N={hi} {last[io].fmt()}{factor}")
    checks.append(within(f"bridged and routed within {2 * SIMILAR:.0%} at N={hi}",
                         last["bridged"], last["routed"], 2 * SIMILAR))
    measured = "; ".join(parts) + f"; native routed {ref.fmt()}"
    return _judge((5, quote, figure), checks, measured, rule, hint=hint)


def mixed_falls(points: Points, ns: Sequence[int]) -> Claim:
    quote = "With the host and guests forwarding together, the aggregate falls as N grows."
    rule = f"falls = the largest N at most {FALLS:.0%} of the smallest"
    if not ns:
        return _judge((6, quote, "Fig. 10"), [], "no guest counts", rule, hint="run fig10")
    lo, hi = min(ns), max(ns)
    parts, checks = [], []
    for io in ("bridged", "routed"):
        a, z = sweep_rate(points, f"mixed-{io}-n{lo}"), sweep_rate(points, f"mixed-{io}-n{hi}")
        checks.append(_falls(f"{io}: N={hi} falls below N={lo}", a, z, ns))
        parts.append(f"{io}: N={lo} {a.fmt()}, N={hi} {z.fmt()}")
    return _judge((6, quote, "Fig. 10"), checks, "; ".join(parts), rule,
                  hint="run fig10")


def _top_point(pts: Sequence[SweepPoint]) -> SweepPoint | None:
    """The highest offered rate at which the SUT lost frames with the generator keeping up:
    the breakdown the paper describes is the one under overload."""
    if series_problem(pts):
        return None
    return max((p for p in fully_offered(pts) if is_lossy(p)), key=lambda p: p.target_pps)


def _router_rate(series: str, p: SweepPoint, pps: float) -> Rate:
    """Per-router spread is not stored: each router is given its share of the point's spread."""
    spread = p.std_pps * pps / p.mean_pps if p.mean_pps else 0.0
    return Rate(series, pps, pps - spread, pps + spread)


def _host_and_guest(points: Points, key: str) -> tuple[Rate, Rate, str]:
    """The host's rate and the mean guest's at the top point, and a line for the table."""
    pts = points.get(key) or []
    if pts and doubted(points, key):
        rate = sweep_rate(points, key)
        return rate, rate, rate.fmt()
    top = _top_point(pts)
    guests = [v for k, v in top.router_mean_pps.items() if k != "r0"] if top else []
    if top is None or not guests:
        rate = sweep_rate(points, key)
        if not rate.problem:  # the SUT saturated, but no guest was counted
            rate = Rate(f"{key} guests", problem=MISSING)
        return rate, rate, rate.fmt()
    host, g = top.router_mean_pps.get("r0", 0.0), sum(guests) / len(guests)
    ratio = host / g if g else float("inf")
    line = (f"host {host / 1e3:.0f} kpps, mean guest {g / 1e3:.0f} kpps (×{ratio:.2f}) at "
            f"{top.target_pps / 1e3:.0f} kpps offered")
    return _router_rate(f"{key} host", top, host), _router_rate(f"{key} guests", top, g), line


def breakdown(points: Points, ns: Sequence[int]) -> Claim:
    """Bridged at every N, routed at the largest: each needs its own sweep, so one N measured
    alone cannot carry the claim."""
    quote = ("Per router: with bridged I/O the host (dom0) gets more than each guest; with "
             "routed I/O and 6 guests the difference is almost invisible.")
    parts, checks = [], []
    for n in ns:
        for io in ("bridged", "routed"):
            host, guest, line = _host_and_guest(points, f"mixed-{io}-n{n}")
            parts.append(f"{io} N={n}: {line}")
            if io == "bridged":
                checks.append(at_least(f"bridged N={n}: host ≥ {HOST_FAVOURED}x each guest",
                                       host, guest, HOST_FAVOURED))
            elif n == max(ns):
                checks.append(within(f"routed N={n}: host and guests within "
                                     f"{EVEN_SPLIT}-{1 / EVEN_SPLIT:.2f}x", host, guest,
                                     1 - EVEN_SPLIT))
    return _judge((7, quote, "Fig. 11, 12"), checks, "; ".join(parts),
                  f"holds when bridged host/guest ≥ {HOST_FAVOURED} and routed host/guest "
                  f"within {EVEN_SPLIT}-{1 / EVEN_SPLIT:.2f} at the largest N, both at the "
                  "highest offered rate where the SUT lost frames", hint="run fig11/fig12")


def shared_engine(native_ndr: SearchRow | None, shared: Mapping[int, SearchRow | None]) -> Claim:
    """The paper's future work: the shared engine's aggregate NDR beside one native router's, at
    each N searched. A search at its ceiling only bounds the rate from below, so two searches
    both at the ceiling compare the generator with itself."""
    quote = ("One forwarding engine shared by all virtual routers in the privileged domain "
             f"keeps at least {SHARED_GOAL:.0%} of one native router's loss-free rate.")
    base = search_rate("native-routed", native_ndr)
    rates = {n: search_rate(f"shared N={n}", row) for n, row in sorted(shared.items())}
    checks = [at_least(f"N={n}: shared ≥ {SHARED_GOAL:.0%} of native", r, base, SHARED_GOAL)
              for n, r in rates.items()]
    measured = "; ".join(f"N={n} {r.fmt()}" for n, r in rates.items()) + \
        f"; native {base.fmt()}"
    ratios = [f"N={n} {q[0]}{q[1]:.2f}" for n, r in rates.items()
              if (q := _ratio(r, base)) is not None]
    claim = _judge((8, quote, "Sec. 6"), checks, measured,
                   f"holds when every shared NDR interval lies at or above {SHARED_GOAL:.0%} "
                   "of the native one at every N measured",
                   "shared / native: " + ", ".join(ratios) if ratios else "",
                   hint="run the shared figure")
    capped = [n for n, r in rates.items() if r.problem in LOWER_BOUNDS]
    clear = all(c.ok or (rates[n].problem in LOWER_BOUNDS and not base.problem
                         and rates[n].low >= SHARED_GOAL * base.high)
                for n, c in zip(rates, checks, strict=True))
    if claim.verdict == INCONCLUSIVE and capped and clear:
        # the floors already clear the goal: say so, beside why that decides nothing
        floors = ", ".join(f"N={n} ≥ {rates[n].pps / base.pps:.2f}" for n in capped)
        claim = replace(claim, why=(
            f"{claim.why}; where the engine's searches stopped at the testbed's limit, their "
            f"floors alone clear the goal (shared / native: {floors}), but a verdict is never "
            "drawn from a search the testbed stopped: it waits for a run whose testbed "
            "outruns the engine (the calibration in the report's header says how fast this "
            "one was)"))
    return claim


def across_hosts(claim: Claim, unbuilt: Mapping[str, str]) -> Claim:
    """``claim`` as it stands across the machines of a testbed file that cannot build the
    series of ``unbuilt`` (series -> the testbed's reason): a claim that needed one of them is
    not measurable there, whatever the series that were measured say (a claim is about every
    series it names, and this testbed cannot show all of them); the reasons are said first,
    then what the measured series did say."""
    hit = [s for s in claim.missing if s in unbuilt]
    if not hit:
        return claim
    by_reason: dict[str, list[str]] = {}
    for s in hit:
        by_reason.setdefault(unbuilt[s], []).append(s)
    why = f"{UNBUILDABLE}: " + "; ".join(f"{', '.join(ss)}: {r}" for r, ss in by_reason.items())
    if claim.verdict != NOT_MEASURABLE:
        why += f"; on the series measured it is {claim.verdict}: {claim.why}"
    elif len(hit) < len(claim.missing) and claim.why:
        why += f"; {claim.why}"
    return replace(claim, verdict=NOT_MEASURABLE, why=why,
                   reasons=tuple(sorted({*claim.reasons, MISSING, UNBUILDABLE})))


def all_claims(points: Points, cal: Mapping[int, float], cal_ip: int = 4,
               unbuilt: Mapping[str, str] | None = None,
               no_calibration: str = "") -> list[Claim]:
    """Every claim the sweeps and the calibration judge. Across the machines of a testbed
    file: ``unbuilt``, each series the testbed cannot build with the reason, and
    ``no_calibration``, why it cannot calibrate ("" where it can); the claims resting on them
    are not measurable, with those reasons."""
    from vrlab.paper.figures import GUEST_N, IDLE_N, MIXED_N

    out = [generator(cal, cal_ip, no_calibration, direct_carried(points, sorted(cal)),
                     direct_lost(points, sorted(cal)), direct_open(points, sorted(cal))),
           native(points), idle_guests(points, IDLE_N),
           bridged_costs(points, max(IDLE_N)), guests_only(points, GUEST_N),
           mixed_falls(points, MIXED_N), breakdown(points, (3, 6))]
    if _has_kind(points, "userspace"):  # userspace guests, judged beside the namespace ones
        out.insert(5, guests_only(points, GUEST_N, "userspace"))
    return [across_hosts(c, unbuilt) for c in out] if unbuilt else out


def which_kind(points: Points) -> str:
    """One sentence: which guest kind reproduces the paper's Fig. 9 shape here, said only when
    both kinds were decided (an inconclusive kind neither reproduces nor fails to)."""
    from vrlab.paper.figures import GUEST_N

    kinds = {"netns": guests_only(points, GUEST_N),
             "userspace": guests_only(points, GUEST_N, "userspace")}
    done = {k: c for k, c in kinds.items() if c.verdict in (HOLDS, DIFFERS)}
    if len(done) < 2:
        return ""
    holds = [k for k, c in done.items() if c.verdict == HOLDS]
    if holds:
        who = " and ".join(f"`{k}`" for k in holds)
        return (f"Guest kinds: {who} guests reproduce the shape of the paper's Fig. 9 (far "
                "below native, falling as N grows); " + "; ".join(
                    f"{k}: {c.measured}" for k, c in done.items()) + ".")
    return ("Guest kinds: neither `netns` nor `userspace` guests reproduce the shape of the "
            "paper's Fig. 9 on this machine; " + "; ".join(
                f"{k}: {c.measured}" for k, c in done.items()) + ".")
