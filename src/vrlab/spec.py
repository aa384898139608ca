"""Scenario specs: what the user asked for, validated before anything touches the kernel.

A scenario is a YAML file. The built-in ones ship inside the package (``vrlab scenarios``); a user
may pass a path instead of a name. Validation is typed (pydantic) and every problem is reported
with its attribute path and what would be valid, the way netlab reports a bad topology: the user
fixes the file once, not one error per run."""

from __future__ import annotations

import ipaddress
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from vrlab.errors import SpecError
from vrlab.framesize import min_frame
from vrlab.platform.spec import EngineHook
from vrlab.validate import problems, read_spec_file, read_yaml

IoMode = Literal["routed", "bridged", "hybrid"]
Forwarding = Literal["host", "guests", "mixed", "shared"]
EngineKind = Literal["ebpf", "guests", "userspace"]
GuestKind = Literal["netns", "userspace"]
XdpCpu = Literal["sut", "sender"]
IpVersion = Literal[4, 6, 46]

#: RFC 2544 (§C.2.2) reserves 198.18.0.0/15 for benchmarking: traffic never leaves the testbed
#: namespaces, and these addresses cannot be confused with anything on a real network.
BENCH_NET = ipaddress.IPv4Network("198.18.0.0/15")
MAX_ROUTERS = 256
MAX_GUESTS = 64


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SutSpec(_Model):
    """How the system under test is wired: the paper's I/O channel and who forwards."""

    io: IoMode = Field("routed", description="routed | bridged | hybrid I/O between ports/guests")
    forwarding: Forwarding = Field(
        "host", description="host: the SUT forwards everything; guests: each guest forwards its "
        "router's share; mixed: the host forwards one share and guests the rest; shared: the "
        "virtual-router platform, one router per traffic.routers, each with a control-plane "
        "guest, forwarded as sut.engine says")
    engine: EngineKind = Field(
        "ebpf", description="forwarding: shared only. ebpf: the one shared engine in the host; "
        "guests: each router forwards in its own guest (the paper's domU case); userspace: one "
        "shared userspace (Python/numpy) engine process for every router")
    hook: EngineHook = Field(
        "auto", description="engine ebpf only: where the shared engine runs; xdp (native, "
        "generic XDP as a stated fallback), tc (tcx, or a clsact filter before Linux 6.6), or "
        "auto: native XDP where it works, else tc")
    xdp_cpu: XdpCpu = Field(
        "sut", description="hook xdp only: which CPU the engine forwards on. XDP runs in the "
        "receiving veth's poll, on the CPU of whoever sent into it (the generator's, in a "
        "testbed); sut: handed on to the SUT's CPU through a cpumap; sender: left there, so "
        "the engine shares the generator's CPU and its result is at most the generator's")
    guest_kind: GuestKind = Field(
        "netns", description="how a forwarding guest forwards: netns = its kernel's IP "
        "forwarding; userspace = a forwarding process of its own, scheduled like a Xen domU")
    guests: int = Field(0, ge=0, le=MAX_GUESTS, description="number of guest namespaces")
    bridge_nf_call_iptables: bool = Field(
        False, description="let bridged frames traverse iptables (br_netfilter); off = pure L2")

    @model_validator(mode="after")
    def _guests_for_forwarding(self) -> SutSpec:
        if self.forwarding == "guests" and self.guests < 1:
            raise ValueError("guests: forwarding 'guests' needs at least 1 guest "
                             "(set guests: N or --guests N)")
        if self.forwarding == "mixed" and self.guests < 1:
            raise ValueError("guests: forwarding 'mixed' needs at least 1 guest "
                             "(set guests: N or --guests N)")
        if self.forwarding == "shared" and self.guests:
            raise ValueError("guests: forwarding 'shared' gives every router its own guest; "
                             "set the number of routers with traffic.routers (--routers N) "
                             "and leave guests at 0")
        if self.forwarding == "shared" and self.io != "routed":
            raise ValueError("io: the shared platform's ports are routed (macvlan ports on the "
                             "uplinks); use io: routed")
        if self.guest_kind == "userspace" and self.forwarding not in ("guests", "mixed"):
            raise ValueError("guest_kind: only forwarding guests (forwarding: guests or mixed) "
                             "have a forwarder to choose; for a shared userspace engine use "
                             "forwarding: shared with engine: userspace")
        if self.io == "bridged" and (self.guests or self.forwarding != "host"):
            raise ValueError(
                "io: bridged is pure layer 2 (one bridge, no IP layer) and cannot reach guests; "
                "use io: hybrid, the paper's bridged I/O channel (bridges with guests attached)")
        return self


class TrafficSpec(_Model):
    """The packet template (TRex's split: what a frame looks like, apart from how fast it goes)."""

    flows: int = Field(1, ge=1, le=1024, description="distinct UDP flows, spread over the routers")
    frame_size: int | None = Field(
        None, ge=60, le=1514,
        description="Ethernet frame without FCS; default: the smallest of the IP version, 60 "
        "(64 bytes on the wire) for IPv4, 74 (78 on the wire, RFC 5180) for IPv6 and the mix")
    routers: int | None = Field(
        None, ge=1, le=MAX_ROUTERS,
        description="destination prefixes (one per virtual router); default: one per forwarder")
    ip: IpVersion = Field(
        4, description="IP version of the frames: 4, 6 (IPv6, RFC 5180's 2001:2::/48), or 46 "
        "(dual stack: half the flows IPv4, half IPv6, every router both)")

    @property
    def size(self) -> int:
        """The frame size a run uses: ``frame_size``, or the IP version's smallest."""
        return self.frame_size if self.frame_size is not None else min_frame(self.ip)

    @model_validator(mode="after")
    def _fits_ip(self) -> TrafficSpec:
        if self.frame_size is not None and self.frame_size < min_frame(self.ip):
            raise ValueError(f"frame_size: {self.frame_size} is below the smallest frame of "
                             f"ip {self.ip}, {min_frame(self.ip)} bytes without FCS (78 on the "
                             f"wire, RFC 5180); set frame_size to {min_frame(self.ip)} or more, "
                             "or leave it unset")
        return self


class Scenario(_Model):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,40}$")
    description: str = ""
    paper: str = Field("", description="the figure(s) of the paper this reproduces")
    sut: SutSpec = SutSpec()
    traffic: TrafficSpec = TrafficSpec()

    @property
    def forwarders(self) -> list[str]:
        """Who forwards each router's share: 'host' or 'gN'. One router per forwarder."""
        g = [f"g{i}" for i in range(1, self.sut.guests + 1)]
        if self.sut.forwarding == "host":
            return ["host"]
        if self.sut.forwarding == "shared":
            n = self.traffic.routers or 1
            return [f"r{i}" for i in range(n)]
        if self.sut.forwarding == "guests":
            return g
        return ["host", *g]

    @property
    def userspace(self) -> bool:
        """Whether userspace engines forward (they need their own CPU placement)."""
        return self.sut.guest_kind == "userspace" or (
            self.sut.forwarding == "shared" and self.sut.engine == "userspace")

    @property
    def router_count(self) -> int:
        return self.traffic.routers or len(self.forwarders)

    @model_validator(mode="after")
    def _routers_fit(self) -> Scenario:
        n = self.traffic.routers
        if self.sut.hook != "auto" and (self.sut.engine != "ebpf"
                                        or self.sut.forwarding != "shared"):
            raise ValueError("sut.hook: only the shared eBPF engine (forwarding: shared, "
                             "engine: ebpf) has a hook to choose; remove hook")
        if self.sut.xdp_cpu != "sut" and self.sut.hook != "xdp":
            raise ValueError("sut.xdp_cpu: only the engine at XDP (hook: xdp) has a CPU to "
                             "choose; set hook: xdp or remove xdp_cpu")
        if self.sut.engine != "ebpf" and self.sut.forwarding != "shared":
            raise ValueError("sut.engine: only forwarding 'shared' has an engine to choose; "
                             "remove engine or set forwarding: shared")
        if (n is not None and self.sut.forwarding not in ("host", "shared")
                and n != len(self.forwarders)):
            raise ValueError(
                f"traffic.routers: {n} must equal the number of forwarders "
                f"({len(self.forwarders)}) when sut.forwarding is {self.sut.forwarding}; "
                "leave it unset")
        return self


# --------------------------------------------------------------------------- loading


def builtin_dir() -> Path:
    return Path(str(resources.files("vrlab") / "scenarios"))


def builtin_names() -> list[str]:
    return sorted(p.stem for p in builtin_dir().glob("*.yaml"))


def resolve(name_or_path: str) -> Path:
    """A built-in name, or a path to a YAML file. Unknown names list what exists."""
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml") or p.exists():
        if not p.exists():
            raise SpecError(name_or_path, [("(file)", "no such file; give a path to a YAML "
                                            "scenario or one of: " + ", ".join(builtin_names()))])
        return p
    q = builtin_dir() / f"{name_or_path}.yaml"
    if not q.is_file():
        raise SpecError(name_or_path, [("(name)", "not a built-in scenario; choose one of: "
                                        + ", ".join(builtin_names()) + ", or give a .yaml path")])
    return q


def parse(data: object, source: str, overrides: dict[str, Any] | None = None) -> Scenario:
    """Validate a mapping as a scenario. ``overrides`` are dotted paths from the command line
    (``{"sut.guests": 4}``), applied before validation so their errors name the same paths."""
    if not isinstance(data, dict):
        raise SpecError(source, [("(top)", "a scenario must be a YAML mapping with at least "
                                  "'name:'")])
    merged: dict[str, Any] = {k: (dict(v) if isinstance(v, dict) else v) for k, v in data.items()}
    for dotted, value in (overrides or {}).items():
        head, _, tail = dotted.partition(".")
        if tail:
            sub = merged.setdefault(head, {})
            if isinstance(sub, dict):
                sub[tail] = value
        else:
            merged[head] = value
    try:
        return Scenario.model_validate(merged)
    except ValidationError as e:
        docs = "the scenarios in src/vrlab/scenarios/"
        raise SpecError(source, problems(e, Scenario, docs)) from None


def load(name_or_path: str, overrides: dict[str, Any] | None = None) -> tuple[Scenario, str]:
    """Load and validate a scenario; returns it with its YAML text (stored with every run)."""
    path = resolve(name_or_path)
    text = read_spec_file(path, "scenario")
    data = read_yaml(text, str(path))
    scenario = parse(data, str(path), overrides)
    if overrides:
        text = yaml.safe_dump(scenario.model_dump(mode="json"), sort_keys=False)
    return scenario, text
