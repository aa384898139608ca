"""The tester host of a testbed file on its own: its generator linked straight to its own sink,
as the paper's Fig. 4 links tg to ts, so that calibration and the latency floor measure that
machine's generator and sink the way they measure this machine's.

The file's cables run through the SUT, so the direct link is one vrlab makes on the tester: the
calibration plan (two namespaces of vrlab's and a veth pair between them) built by the tester's
own agent, in its ledger, removed when the testbed closes or by ``vrlab clean --testbed``.
Only a tester (tg and ts on one machine) has both ends; a file with tg and ts on two machines
is refused before connecting: no cable between them is named, and vrlab touches no interface
the file does not name."""

from __future__ import annotations

import functools
import secrets

from vrlab.hosts.spec import TestbedFile
from vrlab.hosts.testbed import START_S, HostsTestbed, require_tester
from vrlab.placement import Placement
from vrlab.plan import wiring
from vrlab.testbed import TrafficSettings

#: why a direct tg→ts testbed needs a tester host
NEEDS_TESTER = ("the generator linked straight to the sink needs both on one machine (the "
                "file names no cable between them)")


class TesterTestbed(HostsTestbed):
    """tg→ts on the tester host of ``file``, with frames of IP version ``ip``; the SUT host is
    not contacted."""

    def __init__(self, file: TestbedFile, placement: Placement, traffic: TrafficSettings,
                 label: str = "tester", ip: int = 4) -> None:
        """``ip``: the frames' IP version (4, 6, or 46 for the mix), as the SUT's were."""
        require_tester(file, label, NEEDS_TESTER)
        super().__init__(file, functools.partial(wiring.calibration_plan, ip=ip), placement,
                         traffic, label)
        self.ip = ip

    def _up(self) -> None:
        f = self.file
        run_id = secrets.token_hex(2)
        self.plan = plan = self._plan_for(run_id)
        self._open_roles({"tg": f.tg, "ts": f.ts})
        pl = self.placement
        made = self.agents["tg"].ask(
            {"op": "direct", "run_id": run_id, "ip": self.ip, "gro": pl.generator == "xdp",
             "sink_cpu": pl.sink_cpu if pl.pinned else None}, START_S)
        ns = {"tg": str(made["tg_ns"]), "ts": str(made["ts_ns"])}
        if ns != {"tg": plan.traffic.tg_ns, "ts": plan.traffic.ts_ns}:
            raise self.agents["tg"].failed(f"built namespaces {ns}, not the plan's")
        self.start_traffic(plan, ns)
