"""The paper's figures as data: which sweeps each needs and how it is drawn. A sweep needed by
several figures (the native baselines) is measured once per reproduction."""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True)
class SweepKey:
    """One sweep of a reproduction: a scenario with N guests, or the direct tg→ts link."""

    scenario: str  # built-in scenario name, or "direct"
    guests: int | None = None
    flows: int = 1
    routers: int | None = None  # scenario shared: routers, each with its share of the flows
    engine: str | None = None  # scenario shared: ebpf | guests
    guest_kind: str | None = None  # guest-*/mixed-*: netns (default) | userspace
    hook: str | None = None  # scenario shared, engine ebpf: xdp | tc (None: the testbed's choice)
    xdp_cpu: str | None = None  # hook xdp: sut | sender (None: sut, steered to the SUT's CPU)

    @property
    def key(self) -> str:
        g = "" if self.guests is None else f"-n{self.guests}"
        f = "" if self.flows == 1 else f"-f{self.flows}"
        r = "" if self.routers is None else f"-r{self.routers}"
        e = "" if self.engine is None else f"-{self.engine}"
        k = "" if self.guest_kind is None else f"-{self.guest_kind}"
        h = "" if self.hook is None else f"-{self.hook}"
        c = "" if self.xdp_cpu is None else f"-{self.xdp_cpu}"
        return f"{self.scenario}{g}{r}{e}{h}{c}{k}{f}"

    @property
    def label(self) -> str:
        if self.scenario == "direct":
            return f"TG→TS, {self.flows} flow{'s' if self.flows > 1 else ''}"
        if self.routers is not None:
            hook = "" if self.hook is None else f" at {'XDP' if self.hook == 'xdp' else 'tc'}"
            hook += " on the sender's CPU" if self.xdp_cpu == "sender" else ""
            return f"{self.scenario} ({self.engine or 'ebpf'}{hook}), N={self.routers}"
        if self.guests is None:
            return self.scenario
        kind = "" if self.guest_kind is None else f" ({self.guest_kind})"
        return f"{self.scenario}{kind}, N={self.guests}"


@dataclass(frozen=True)
class Figure:
    name: str
    paper: str
    title: str
    series: tuple[SweepKey, ...]
    per_router: bool = False  # the breakdown figures: one panel per sweep, routers stacked
    ndr: bool = False  # a throughput search per series (bar chart), not a sweep
    scaling: bool = False  # a throughput search per series, drawn against the router count
    note: str = ""  # what a reader must know to read the figure, under its heading


def _n(scenario: str, ns: tuple[int, ...]) -> tuple[SweepKey, ...]:
    return tuple(SweepKey(scenario, n) for n in ns)


NATIVE_R, NATIVE_B, NATIVE_H = (SweepKey("native-routed"), SweepKey("native-bridged"),
                                SweepKey("native-hybrid"))
IDLE_N = (1, 2, 4, 6)
GUEST_N = (1, 2, 4, 6)
MIXED_N = (2, 3, 4, 6)
SHARED_N = (1, 4, 16, 64)
#: the router counts at which a reproduction also measures the shared engine at each named hook
#: (once each) and at XDP left on the sender's CPU, beside the main series at the hook the
#: testbed settles for ``auto`` (placement.engine_hook). The named hook that is the settled one
#: is that series itself, measured once (:func:`measured_as`)
SHARED_HOOKS_N = (1, 64)
#: the hooks named beside the main series
HOOKS = ("tc", "xdp")


def _u(scenario: str, ns: tuple[int, ...]) -> tuple[SweepKey, ...]:
    """Guests whose forwarder is a userspace engine process."""
    return tuple(SweepKey(scenario, n, guest_kind="userspace") for n in ns)


#: why the userspace guests' figures are the generator's limit sooner than the kernel ones
USERSPACE_NOTE = (
    "The userspace engines have the SUT's CPU to themselves; all of the SUT's kernel work (a "
    "socket buffer for every frame, the host's routing or bridging of it to the guest and "
    "back, the copy into the engine's ring) runs on the generator's CPU instead, because an "
    "engine that shares its CPU with that work livelocks (`placement.for_userspace`, "
    "docs/design-notes.md). That work, not the generator's own, fills the generator's CPU "
    "here, so the generator falls short sooner than in the kernel's figures. Where the guests "
    "lost frames at a rate above a series' peak that the generator offered in full, the peak "
    "is their limit, short points or not; otherwise, where the generator fell short, it is "
    "what they forwarded at least (≥), not their limit.")


#: what the tg→ts link measures: the testbed's own CPU as every SUT run has it
DIRECT_NOTE = (
    "With the XDP generator, ts's port is received here the way the SUT's ingress is in every "
    "run (`sut_rx` cpumap in the placement): its poll hands each frame to the SUT's CPU, "
    "which builds its socket buffer, and the sink counts it after RPS on the generator's CPU. "
    "So the generator's CPU does per frame what it does with a SUT in between, and this "
    "link's loss-free rate is the testbed's own limit in those runs.")


def _shared(engine: str, ns: tuple[int, ...] = SHARED_N, hook: str | None = None,
            xdp_cpu: str | None = None) -> tuple[SweepKey, ...]:
    """One flow per router, so every router's table is used (bench/shared_engine.py goes to
    256 routers; a reproduction stops at 64 to keep the main job short)."""
    return tuple(SweepKey("shared", None, n, n, engine, hook=hook, xdp_cpu=xdp_cpu)
                 for n in ns)


FIGURES: dict[str, Figure] = {f.name: f for f in (
    Figure("fig4", "Fig. 4", "TG to TS link performance (generator calibration)",
           tuple(SweepKey("direct", None, f) for f in (1, 8, 32)), note=DIRECT_NOTE),
    Figure("fig5", "Fig. 5", "Native: bridged vs routed vs hybrid",
           (NATIVE_B, NATIVE_R, NATIVE_H)),
    Figure("fig7", "Fig. 7", "Host bridged forwarding with N idle guests vs native",
           (NATIVE_H, *_n("host-bridged", IDLE_N))),
    Figure("fig8", "Fig. 8", "Host routed forwarding with N idle guests vs native",
           (NATIVE_R, *_n("host-routed", IDLE_N))),
    Figure("fig9", "Fig. 9", "Guest-only aggregate forwarding, bridged and routed, vs native",
           (NATIVE_R, *_n("guest-bridged", GUEST_N), *_n("guest-routed", GUEST_N))),
    Figure("fig9u", "Fig. 9 (userspace guests)",
           "Guest-only aggregate forwarding with userspace forwarders in the guests, vs native",
           (NATIVE_R, *_u("guest-bridged", GUEST_N), *_u("guest-routed", GUEST_N)),
           note=USERSPACE_NOTE),
    Figure("fig10", "Fig. 10", "Host plus N guests, aggregate, bridged and routed, vs native",
           (NATIVE_R, *_n("mixed-bridged", MIXED_N), *_n("mixed-routed", MIXED_N))),
    Figure("fig10u", "Fig. 10 (userspace guests)",
           "Host plus N userspace-forwarding guests, aggregate, vs native",
           (NATIVE_R, *_u("mixed-bridged", (2, 6)), *_u("mixed-routed", (2, 6))),
           note=USERSPACE_NOTE),
    Figure("fig11", "Fig. 11", "Per-router breakdown: host + 3 guests",
           (SweepKey("mixed-bridged", 3), SweepKey("mixed-routed", 3)), per_router=True),
    Figure("fig12", "Fig. 12", "Per-router breakdown: host + 6 guests",
           (SweepKey("mixed-bridged", 6), SweepKey("mixed-routed", 6)), per_router=True),
    Figure("ndr", "RFC 2544 / RFC 9971",
           "Throughput (MLRsearch NDR) of the native and host configurations",
           (NATIVE_B, NATIVE_R, NATIVE_H, *_n("host-bridged", IDLE_N),
            *_n("host-routed", IDLE_N)), ndr=True),
    Figure("shared", "Sec. 6 (future work)",
           "One shared forwarding engine vs forwarding in each router's guest",
           (NATIVE_R, *_shared("ebpf"), *_shared("guests"),
            *(k for h in HOOKS for k in _shared("ebpf", SHARED_HOOKS_N, h)),
            *_shared("ebpf", SHARED_HOOKS_N, "xdp", "sender")),
           ndr=True, scaling=True),
)}


#: the configurations whose latency under load the report shows (when their throughput was
#: searched): the native ones, and 4 routers on the shared engine and in their guests
LATENCY: tuple[SweepKey, ...] = (NATIVE_B, NATIVE_R, NATIVE_H,
                                 SweepKey("shared", None, 4, 4, "ebpf"),
                                 SweepKey("shared", None, 4, 4, "guests"))


#: the searches `vrlab reproduce` repeats in rounds, its median reported with the repeats'
#: span: those a verdict rests on (the native configurations and the shared engine at its
#: testbed hook), and the host-routed ones, whose NDR lies at the generator's limit on a small
#: machine, where one search swings with the machine's slow spells. The others (host-bridged,
#: the routers forwarding in their guests, the engine at XDP) it runs once, for the main job's
#: time.
REPEATED: frozenset[str] = frozenset(
    {NATIVE_B.key, NATIVE_R.key, NATIVE_H.key} | {s.key for s in _shared("ebpf")}
    | {s.key for s in _n("host-routed", IDLE_N)})


def measured_as(key: SweepKey, auto_hook: str | None) -> SweepKey:
    """The series that measures ``key`` when the testbed settles the engine's ``auto`` hook to
    ``auto_hook``: the engine at that hook, steered to the SUT's CPU, is the main series
    (hook None), not a search of its own."""
    if key.engine == "ebpf" and key.hook is not None and key.hook == auto_hook and \
            key.xdp_cpu is None:
        return replace(key, hook=None)
    return key


def searches(names: list[str], auto_hook: str | None = None) -> list[SweepKey]:
    """The configurations whose throughput the named figures search for, each once; with
    ``auto_hook``, the testbed's hook for the shared engine, a series at that named hook is
    left to the main series that measures it (:func:`measured_as`)."""
    seen: dict[str, SweepKey] = {}
    for n in names:
        if FIGURES[n].ndr:
            for s in FIGURES[n].series:
                seen.setdefault(s.key, measured_as(s, auto_hook))
    return list({k.key: k for k in seen.values()}.values())


def needed(names: list[str]) -> list[SweepKey]:
    """Every sweep the named figures need, each once, in a stable order."""
    seen: dict[str, SweepKey] = {}
    for n in names:
        if FIGURES[n].ndr:
            continue
        for s in FIGURES[n].series:
            seen.setdefault(s.key, s)
    return list(seen.values())
