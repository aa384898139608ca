"""The ``shared`` scenario's platform on a testbed file's SUT host, built by that host's agent.

The engine's namespace is the machine's own (its cabled interfaces are there, and are never
moved): it is given the plan's SUT namespace name for the run (:mod:`vrlab.nsalias`), so the
platform's build, its control planes and its FIB sync agent reach it as they reach the SUT
namespace on one machine. The two cabled interfaces are the platform's uplinks; every router
gets its macvlan port on each and its punt links, named with vrlab's prefix, and its
control-plane namespace. Each link and namespace goes through the ledger as on one machine; the
engine's programs on the cabled interfaces are recorded first (:mod:`vrlab.engines.ebpf.detach`),
since an XDP or tcx program outlives the process that attached it.

What the plan sets machine-wide in its SUT namespace is set here on the uplinks alone, as the
cabled SUTs do: IPv4 forwarding on each (``bpf_fib_lookup`` answers only for an input device
that forwards) and, with IPv6 frames, IPv6 on and forwarding on each. The one machine-wide
setting is ``net.ipv6.conf.default.addr_gen_mode`` 1 while the run lasts, so the devices the
platform adds get no IPv6 link-local address and send nothing of their own (no duplicate
address detection, no router solicitation) through the cables; it is put back at teardown.
Every setting is recorded with its old value, as :mod:`vrlab.cabled` does."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any

from pyroute2 import IPRoute

from vrlab import cabled, nsalias
from vrlab.engines.ebpf import detach
from vrlab.engines.ebpf.engine import EbpfEngine, hook_of
from vrlab.errors import KernelError
from vrlab.ledger import Ledger, state_dir
from vrlab.plan.naming import PREFIX
from vrlab.plan.shared import UPLINK_IN, UPLINK_OUT
from vrlab.platform import build as pbuild
from vrlab.platform import lifecycle
from vrlab.platform.layout import PlatformLayout, make_layout
from vrlab.platform.spec import parse

#: the least kernel whose tc hook vrlab can undo on an interface it did not create (tcx; a
#: clsact filter would leave its qdisc behind)
TCX_KERNEL = (6, 6)


def platform_part(spec: dict[str, Any], run_id: str, engine_ns: str, sut_in: str,
                  sut_out: str, ip: int, steer_cpu: int | None) -> dict[str, Any]:
    """The SUT agent's ``platform`` request: the platform file the scenario amounts to
    (:func:`vrlab.plan.shared.platform_spec`, with the MAC addresses the cables' far ends
    really have), the plan's run id (its names and MAC addresses) and SUT namespace name, the
    two cabled interfaces, the frames' IP version, and the CPU the engine forwards on at XDP
    (None: where XDP runs)."""
    return {"spec": spec, "run_id": run_id, "engine_ns": engine_ns, "sut_in": sut_in,
            "sut_out": sut_out, "ip": ip, "steer_cpu": steer_cpu}


def _kernel() -> tuple[int, int]:
    major, minor = os.uname().release.split(".")[:2]
    return int(major), int("".join(c for c in minor if c.isdigit()) or 0)


def _check(layout: PlatformLayout) -> None:
    """Refuse, before anything is made, what the machine has already in the engine's tables
    (its own routes would be mixed with the routers') or a tc hook that could not be undone."""
    tables = {r.table for r in layout.routers if r.forwarding == "shared"}
    with IPRoute() as ipr:
        for fam in (socket.AF_INET, socket.AF_INET6):
            for rt in ipr.get_routes(family=fam):  # every table (table=0 would filter)
                t = rt.get_attr("RTA_TABLE") or rt["table"]
                if t in tables:
                    raise KernelError(f"this machine has routes in table {t} already; the shared "
                                      f"engine keeps its routers' tables {min(tables)}-"
                                      f"{max(tables)} there: remove them first")
    if tables and layout.hook != "xdp" and _kernel() < TCX_KERNEL:
        raise KernelError(f"this kernel ({os.uname().release}) has no tcx (Linux 6.6+): the "
                          "engine's tc hook on a cabled interface would be a clsact filter that "
                          "vrlab cannot undo cleanly; use --hook xdp")


def build(led: Ledger, part: dict[str, Any]) -> tuple[EbpfEngine | None, dict[str, Any]]:
    """Make ``part`` (:func:`platform_part`) on this machine: the engine attached to the
    cabled interfaces, the routers' ports and control planes, the FIB sync agent, mirrored
    before this returns. Returns the engine and the reply (how it was attached)."""
    uplinks = {UPLINK_IN: str(part["sut_in"]), UPLINK_OUT: str(part["sut_out"])}
    run_id = str(part["run_id"])
    layout = make_layout(parse(dict(part["spec"]), "shared scenario"), run_id,
                         engine_ns=str(part["engine_ns"]), uplink_devs=uplinks)
    _check(layout)
    six = int(part["ip"]) != 4
    settings = [(f"/proc/sys/net/ipv4/conf/{d}/forwarding", "1") for d in uplinks.values()]
    if six:
        settings += [(f"/proc/sys/net/ipv6/conf/{d}/{k}", v) for d in uplinks.values()
                     for k, v in (("disable_ipv6", "0"), ("forwarding", "1"))]
    settings.append(("/proc/sys/net/ipv6/conf/default/addr_gen_mode", "1"))
    for path, value in settings:
        if Path(path).read_text().strip() != value:
            cabled.set_file(led, path, value)
    nsalias.name_own(led, layout.engine_ns)
    if any(r.forwarding == "shared" for r in layout.routers):
        for dev in uplinks.values():
            detach.record(led, dev)
    engine = pbuild.build(layout, led)
    try:
        _run(layout, led, engine, run_id, part.get("steer_cpu"))
    except BaseException:
        if engine is not None:
            engine.close()
        raise
    return engine, {"attach": engine.attachment if engine else ""}


def _run(layout: PlatformLayout, led: Ledger, engine: EbpfEngine | None, run_id: str,
         steer_cpu: Any) -> None:
    """The control planes and the FIB sync agent, in a folder of vrlab's for the run; the
    engine steered to ``steer_cpu`` at XDP; returns once the engine's tables are mirrored."""
    workdir = state_dir() / "testbeds" / f"{PREFIX}{run_id}"
    led.record("dir", path=str(workdir))
    workdir.mkdir(parents=True, exist_ok=True)
    lifecycle.start_control_planes(layout, workdir, led)
    if engine is not None:
        if hook_of(engine.attachment or "") == "xdp" and steer_cpu is not None:
            engine.steer_to(int(steer_cpu))
        lifecycle.start_agent(layout, workdir, led)
        lifecycle.wait_synced(layout, workdir)
