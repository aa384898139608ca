"""A testbed file's generator linked straight to its sink, as the paper's Fig. 4 links tg to
ts, so that calibration (and, on one clock, the latency floor) measures that testbed's
generator and sink the way they measure this machine's. The SUT host is not contacted.

Two ways, by what the file has:

- a tester host (tg and ts on one machine): the file's cables run through the SUT, so the
  direct link is one vrlab makes there, the calibration plan (two namespaces of vrlab's and a
  veth pair between them) built by the tester's own agent (its ``direct`` request);
- tg and ts on two machines with a ``calibration_cable`` from the generator's host to the
  sink's: the generator sends on its end of that cable and the sink counts on the other, in
  each machine's own namespace, the frames addressed to the sink's port (its MAC address as
  the destination), as a sweep's generator and sink use the cables through the SUT.

Everything either makes is in the agents' ledgers, removed when the testbed closes or by
``vrlab clean --testbed``. Two machines with no cable between them are refused before
connecting: vrlab touches no interface the file does not name."""

from __future__ import annotations

import functools
import secrets
from dataclasses import replace

from vrlab.errors import UsageError
from vrlab.hosts.spec import CableSpec, TestbedFile
from vrlab.hosts.testbed import START_S, HostsTestbed, each_agent
from vrlab.placement import Placement, rps_mask, rps_path
from vrlab.plan import wiring
from vrlab.plan.model import Plan
from vrlab.testbed import TrafficSettings

#: the field of the testbed file that names the cable from tg's host straight to ts's
FIELD = "calibration_cable"


def no_direct(file: TestbedFile) -> str:
    """Why ``file``'s generator cannot be linked straight to its sink ("" when it can: a
    tester host, or a calibration cable between the two machines)."""
    if file.tg == file.ts or file.calibration_cable is not None:
        return ""
    return (f"tg (host {file.tg}) and ts (host {file.ts}) are two machines, and the file names "
            f"no cable between them: add {FIELD}: {{from: \"{file.tg}:IF\", to: "
            f"\"{file.ts}:IF\"}}, the generator's port cabled straight to the sink's, or put tg "
            "and ts on one tester host (roles: [tester])")


def require_direct(file: TestbedFile, command: str) -> None:
    """Refuse, before connecting, ``command`` on a file whose generator cannot be linked
    straight to its sink (:func:`no_direct`)."""
    why = no_direct(file)
    if why:
        raise UsageError(f"{command} --testbed: {why}")


class TesterTestbed(HostsTestbed):
    """tg→ts on the machines of ``file`` (its tester, or its calibration cable), with frames
    of IP version ``ip``; the SUT host is not contacted."""

    def __init__(self, file: TestbedFile, placement: Placement, traffic: TrafficSettings,
                 label: str = "tester", ip: int = 4) -> None:
        """``ip``: the frames' IP version (4, 6, or 46 for the mix), as the SUT's were."""
        require_direct(file, label)
        super().__init__(file, functools.partial(wiring.calibration_plan, ip=ip), placement,
                         traffic, label)
        self.ip = ip

    def _up(self) -> None:
        f = self.file
        run_id = secrets.token_hex(2)
        self.plan = plan = self._plan_for(run_id)
        self._open_roles({"tg": f.tg, "ts": f.ts})
        # the file has the cable only where tg and ts are two machines (a tester's is
        # refused), and two machines without one were refused in __init__
        if f.calibration_cable is None:
            self._on_tester(run_id, plan)
        else:
            self._over_cable(plan, f.calibration_cable)

    def _on_tester(self, run_id: str, plan: Plan) -> None:
        """The calibration plan built by the tester's agent; generator and sink in its
        namespaces."""
        pl = self.placement
        made = self.agents["tg"].ask(
            {"op": "direct", "run_id": run_id, "ip": self.ip, "gro": pl.generator == "xdp",
             "sink_cpu": pl.sink_cpu if pl.pinned else None}, START_S)
        ns = {"tg": str(made["tg_ns"]), "ts": str(made["ts_ns"])}
        if ns != {"tg": plan.traffic.tg_ns, "ts": plan.traffic.ts_ns}:
            raise self.agents["tg"].failed(f"built namespaces {ns}, not the plan's")
        self.start_traffic(plan, ns)

    def _over_cable(self, plan: Plan, cable: CableSpec) -> None:
        """The calibration cable's two ends checked (present, up) and their MAC addresses
        learnt; on the sink's end GRO for the XDP generator (a veth cable takes the frames
        XDP sends into it only while its peer runs NAPI) and the sink's receive work steered
        as the placement pins it; then the plan's frames sent from the generator's end to the
        sink's MAC address, in each machine's own namespace."""
        (_, tg_if), (_, ts_if) = cable.ends
        ports = self.run(each_agent(self.agents, {"op": "ports"}, START_S,
                                    {"tg": {"devs": [tg_if]}, "ts": {"devs": [ts_if]}}))
        macs = {d: str(p["mac"]) for r in ports.values() for d, p in r["ports"].items()}
        pl = self.placement
        ts: dict[str, object] = {"gro": [ts_if] if pl.generator == "xdp" else []}
        if pl.pinned and pl.sink_cpu is not None:
            ts["settings"] = [(rps_path(ts_if), rps_mask(pl.sink_cpu))]
        self.agents["ts"].ask({"op": "configure", **ts}, START_S)
        t = plan.traffic
        self.plan = replace(plan, traffic=replace(
            t, tg_dev=tg_if, ts_dev=ts_if, src_mac=macs[tg_if],
            routers=tuple(replace(r, dst_mac=macs[ts_if]) for r in t.routers)))
        self.start_traffic(self.plan)
