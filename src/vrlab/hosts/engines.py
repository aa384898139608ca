"""Userspace forwarding engines on a testbed file's SUT host: the guests' engines
(``--guest-kind userspace``), each a process of vrlab's in its guest's namespace on the SUT host,
forwarding between that guest's two veths as on one machine.

:func:`engine_parts` makes each engine's config from the plan (:mod:`vrlab.engines.userspace.
fromplan`, the same configs as locally) with the MAC addresses the machines really have (a
guest's next hop on a cable, the sink's port of a bridged guest); :func:`start` starts them in
the SUT host's agent, each in the ledger by pid and start time as the local testbed records
them. Their steal tables (the nftables tables that keep the kernel's stack off an engine's
ports) are in the guests' namespaces, so they go with them.

The shared userspace engine (``shared --engine userspace``) is not built here: its ports would
be the cabled interfaces themselves, its steal table in the machine's own namespace, where a
``kill -9`` would leave it (no ledger entry undoes one yet), and routers with MAC addresses of
their own need a cabled NIC to take frames for them (promiscuous mode)."""

from __future__ import annotations

from typing import Any

from vrlab.engines.userspace.config import EngineConfig
from vrlab.engines.userspace.fromplan import guest_config
from vrlab.engines.userspace.launch import UserspaceEngine
from vrlab.errors import UsageError
from vrlab.hosts.cabling import Cabling
from vrlab.ledger import Ledger
from vrlab.plan.model import Plan
from vrlab.plan.naming import ns_name

#: why ``shared --engine userspace`` is refused across hosts
SHARED_USERSPACE_NOT_YET = (
    "the shared userspace engine would read the cabled interfaces themselves, with its "
    "steal table (nftables) in the SUT machine's own namespace, which no ledger entry undoes "
    "after a kill -9 yet, and its routers' own MAC addresses need those NICs in promiscuous "
    "mode")
#: more engines than this share a smaller ring each, as on one machine
MANY = 8


def _moved(cfg: dict[str, Any], c: Cabling) -> dict[str, Any]:
    """``cfg`` (an engine config's dict) with each MAC address of a cable's end replaced by the
    one that port really has."""
    for r in cfg["routers"]:
        for i in r["interfaces"]:
            if "mac" in i:
                i["mac"] = c.mac.get(i["mac"], i["mac"])
        for rt in r["routes"]:
            rt["via_mac"] = c.mac.get(rt["via_mac"], rt["via_mac"])
    return cfg


def engine_parts(plan: Plan, c: Cabling, cpu: int | None) -> list[dict[str, Any]]:
    """The SUT agent's ``engines`` request: per guest engine, its config, its namespace and
    what the ledger calls it; ``cpu``: where the engines run (the placement's engine CPU)."""
    if "shared" in plan.userspace_engines:
        raise UsageError(f"--testbed: scenario {plan.scenario} cannot be measured across hosts "
                         f"({SHARED_USERSPACE_NOT_YET}); run it without --testbed")
    ring: dict[str, Any] = {"ring_frames": 1024} if len(plan.userspace_engines) > MANY else {}
    return [{"config": _moved(guest_config(plan, g, cpu=cpu, **ring).to_dict(), c),
             "ns": ns_name(plan.run_id, g), "what": f"engine of {g}"}
            for g in plan.userspace_engines]


def start(led: Ledger, parts: list[dict[str, Any]]) -> list[UserspaceEngine]:
    """Start the engines of ``parts`` (:func:`engine_parts`) on this machine; those started are
    stopped again if one fails."""
    out: list[UserspaceEngine] = []
    try:
        for p in parts:
            out.append(UserspaceEngine(EngineConfig.from_dict(p["config"]), str(p["ns"]),
                                       ledger=led, what=str(p["what"])))
    except BaseException:
        for e in out:
            e.stop()
        raise
    return out
