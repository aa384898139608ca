"""Options several commands share, and the run context they build from them."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from vrlab import placement, profiles
from vrlab.cli.console import console
from vrlab.method import RunContext
from vrlab.plan.model import Plan
from vrlab.store.db import Store
from vrlab.testbed import Testbed, TrafficSettings
from vrlab.traffic import senders
from vrlab.traffic.senders import GeneratorChoice

DEFAULT_OUT = Path("results")


#: ``--hook`` value: the engine at XDP, forwarding on the sender's CPU (``sut.xdp_cpu``)
XDP_SENDER = "xdp-sender"


def db_option(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--db", type=click.Path(dir_okay=False, path_type=Path), default=None,
                        help="Results database (SQLite). Default: $VRLAB_DB or "
                        "~/.local/share/vrlab/results.sqlite")(f)


def overrides(guests: int | None, flows: int | None, routers: int | None,
               engine: str | None = None, guest_kind: str | None = None,
               hook: str | None = None, ip: str | None = None) -> dict[str, Any]:
    o: dict[str, Any] = {}
    if ip is not None:
        o["traffic.ip"] = int(ip)
    if hook == XDP_SENDER:
        o.update({"sut.hook": "xdp", "sut.xdp_cpu": "sender"})
    elif hook is not None:
        o["sut.hook"] = hook
    if guest_kind is not None:
        o["sut.guest_kind"] = guest_kind
    if engine is not None:
        o["sut.engine"] = engine
    if guests is not None:
        o["sut.guests"] = guests
    if flows is not None:
        o["traffic.flows"] = flows
    if routers is not None:
        o["traffic.routers"] = routers
    return o


def placement_options(f: Callable[..., Any]) -> Callable[..., Any]:
    f = click.option("--generator", "generator", default="auto", show_default=True,
                     type=click.Choice(["auto", "xdp", "sendmmsg"]),
                     help="How the generator sends: XDP live frames (the kernel sends each "
                     "frame from a template; about 10x the headroom), AF_PACKET sendmmsg "
                     "(portable), or auto: XDP where it builds and the kernel has it.")(f)
    f = click.option("--sink-rx", type=click.Choice(["auto", "sut", "generator"]),
                     default="auto", show_default=True,
                     help="CPU for the sink's receive processing: the generator's (the SUT "
                     "keeps a CPU to itself; auto with the XDP generator), or the SUT's "
                     "(auto with sendmmsg, whose sender has no room for the sink).")(f)
    f = click.option("--pin/--no-pin", default=True, show_default=True,
                     help="Generator on CPU 0, SUT receive processing (RPS) on CPU 1.")(f)
    return f


def scenario_options(f: Callable[..., Any]) -> Callable[..., Any]:
    f = click.option("--hook", type=click.Choice(["xdp", XDP_SENDER, "tc", "auto"]),
                     default=None,
                     help="Scenario 'shared' with the eBPF engine only: run the engine at XDP "
                     "or tc. Default (auto): with the XDP generator in a pinned testbed, XDP "
                     "steered to the SUT's CPU, the faster hook there; tc where the SUT's "
                     "frames are socket buffers first (sendmmsg, a testbed file); native XDP "
                     "outside a testbed. xdp steers "
                     "the forwarding to the SUT's CPU (a cpumap); xdp-sender leaves it in the "
                     "generator's CPU, where XDP on a veth runs, so the result is at most "
                     "what the generator offers. Recorded with the results.")(f)
    f = click.option("--guest-kind", type=click.Choice(["netns", "userspace"]), default=None,
                     help="guest-*/mixed-* scenarios: forwarding guests forward in their "
                     "kernel (netns) or with a userspace engine process each (like a Xen "
                     "domU, scheduled by the OS).")(f)
    f = click.option("--engine", type=click.Choice(["ebpf", "guests", "userspace"]),
                     default=None,
                     help="Scenario 'shared' only: who forwards for the routers: the one "
                     "shared eBPF engine, each router in its own guest, or one shared "
                     "userspace engine process.")(f)
    f = click.option("--routers", type=int, default=None,
                     help="Destination prefixes (virtual routers) to split traffic over.")(f)
    f = click.option("--flows", type=int, default=None, help="UDP flows, 1-1024 (paper: 1-32).")(f)
    f = click.option("--guests", type=int, default=None, help="Number of guest namespaces N.")(f)
    return f


#: how a run's frames are named, by IP version
FAMILY = {4: "IPv4", 6: "IPv6", 46: "IPv4+IPv6"}


def calibrate_command(ip: int, flows: int, testbed: object = None) -> str:
    """The command that stores the calibration a run with frames of IP version ``ip`` and
    ``flows`` flows is capped by (on the generator and sink of ``testbed`` when one is
    given)."""
    return ("vrlab calibrate" + (f" --ip {ip}" if ip != 4 else "")
            + (f" --testbed {testbed}" if testbed else "") + f" --flows {flows}")


def ip_option(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--ip", type=click.Choice(["4", "6", "46"]), default=None,
                        help="IP version of the frames: 4, 6 (IPv6 in RFC 5180's 2001:2::/48, "
                        "74-byte frames, 78 on the wire), or 46 (dual stack: half the flows "
                        "each, every router both, all at 74 bytes). Latency runs send 76 "
                        "bytes (80 on the wire) instead, the smallest IPv6 frame with room for "
                        "the stamp. Default: the scenario's traffic.ip (4). Recorded with "
                        "every result.")(f)


def testbed_option_saying(help: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``--testbed FILE`` with the command's own account of what it does across machines."""
    return click.option("--testbed", "testbed", metavar="FILE", default=None,
                        type=click.Path(path_type=Path, dir_okay=False), help=help)


testbed_option = testbed_option_saying(
    "Measure across the machines of this testbed file (generator, SUT and sink reached over "
    "SSH; docs/multihost.md) instead of namespaces on this machine.")


def run_context(db: Path | None, pin: bool, sink_rx: str, profile: profiles.Profile,
                label: str, generator: str = "auto", testbed: Path | None = None) -> RunContext:
    """The store, the placement and the profile of a measuring command. ``generator`` is
    resolved here, once, so every trial of the run uses one path and its record says which.
    ``testbed``: a testbed file whose machines the run's testbeds are built on."""
    choice: GeneratorChoice = ("xdp" if generator == "xdp" else
                               "sendmmsg" if generator == "sendmmsg" else "auto")
    path, why = senders.resolve(choice)
    if why:
        console.print(f"generator: sendmmsg ({why})")
    if sink_rx == "auto":
        sink_rx = "generator" if path == "xdp" else "sut"
    where: placement.SinkWith = "generator" if sink_rx == "generator" else "sut"
    where_cpus = placement.choose(pin, where, generator=path)
    if testbed is None:
        return RunContext(Store(db), where_cpus, profile, label)
    from vrlab.hosts import spec as testbed_spec
    from vrlab.hosts.testbed import HostsTestbed
    from vrlab.hosts.tester import TesterTestbed

    file, _ = testbed_spec.load(testbed)
    where_cpus = placement.rps_only(where_cpus)

    def on_hosts(plan_for: Callable[[str], Plan], pl: placement.Placement,
                 traffic: TrafficSettings, name: str) -> Testbed:
        return HostsTestbed(file, plan_for, pl, traffic, name)

    def on_tester(where: placement.Placement, traffic: TrafficSettings, label: str,
                  ip: int = 4) -> Testbed:
        return TesterTestbed(file, where, traffic, label, ip)

    return RunContext(Store(db), where_cpus, profile, label, testbed=on_hosts,
                      testbed_name=file.name, direct=on_tester)


def tester_file(testbed: Path, command: str, why: str) -> None:
    """Refuse, before connecting, ``command --testbed`` on a file whose generator and sink
    are two machines (the command needs them on one)."""
    from vrlab.hosts import spec as testbed_spec
    from vrlab.hosts.testbed import require_tester

    require_tester(testbed_spec.load(testbed)[0], command, why)


def direct_file(testbed: Path, command: str) -> None:
    """Refuse, before connecting, ``command --testbed`` on a file whose generator cannot be
    linked straight to its sink (two machines and no calibration cable between them)."""
    from vrlab.hosts import spec as testbed_spec
    from vrlab.hosts.tester import require_direct

    require_direct(testbed_spec.load(testbed)[0], command)


def profile_from(name: str, rates: str | None, duration: float | None,
             repeats: int | None) -> profiles.Profile:
    return profiles.with_overrides(profiles.get(name), rates, duration, repeats)

