"""Userspace forwarding engines on a testbed file's SUT host: the guests' engines
(``--guest-kind userspace``), each a process of vrlab's in its guest's namespace on the SUT host,
forwarding between that guest's two veths as on one machine, and the shared engine
(``shared --engine userspace``), one process in the machine's own namespace forwarding for
every router between the two cabled interfaces themselves.

:func:`engine_parts` makes each engine's config from the plan (:mod:`vrlab.engines.userspace.
fromplan`, the same configs as locally) with the interfaces and MAC addresses the machines
really have (the cabled ports for the plan's SUT ports, a guest's next hop on a cable, the
sink's port of a bridged guest); :func:`start` starts them in the SUT host's agent, each in the
ledger by pid and start time as the local testbed records them. A guest's steal table (the
nftables table that keeps the kernel's stack off an engine's ports) is in the guest's
namespace and goes with it; the shared engine's is in the machine's own namespace, so it is
recorded in the ledger before the engine makes it (:func:`vrlab.cabled.steal_table`) and is
removed by the teardown, or by ``vrlab clean``, even after a ``kill -9``.

The shared engine's routers keep MAC addresses of their own, as locally: with two routers on
one cabled port they cannot both use the port's own MAC (the engine tells routers apart by
it), so the engine asks the port to take frames for those MACs too, by unicast memberships of
its own packet sockets that the kernel drops when they close
(:meth:`vrlab.engines.userspace.rings.RxPort.accept`); the cabled NIC's promiscuous flag is
never set, and nothing of it outlives the engine."""

from __future__ import annotations

from typing import Any

from vrlab import cabled
from vrlab.engines.userspace.config import EngineConfig
from vrlab.engines.userspace.fromplan import guest_config, shared_config
from vrlab.engines.userspace.launch import UserspaceEngine
from vrlab.hosts.cabling import Cabling
from vrlab.ledger import Ledger
from vrlab.plan.model import Plan
from vrlab.plan.naming import ns_name

#: more engines than this share a smaller ring each, as on one machine
MANY = 8


def _moved(cfg: dict[str, Any], c: Cabling) -> dict[str, Any]:
    """``cfg`` (an engine config's dict) with each of the plan's SUT ports replaced by the
    cabled interface it is and each MAC address of a cable's end by the one that port really
    has (a guest's veth and a router's MAC of its own stay as they are)."""
    cfg["ports"] = [c.dev.get(p, p) for p in cfg["ports"]]
    for r in cfg["routers"]:
        for i in r["interfaces"]:
            i["port"] = c.dev.get(i["port"], i["port"])
            if "mac" in i:
                i["mac"] = c.mac.get(i["mac"], i["mac"])
        for rt in r["routes"]:
            rt["port"] = c.dev.get(rt["port"], rt["port"])
            rt["via_mac"] = c.mac.get(rt["via_mac"], rt["via_mac"])
    return cfg


def shared_name(run_id: str) -> str:
    """The shared engine's name on a SUT host: its steal table
    (:attr:`~vrlab.engines.userspace.config.EngineConfig.steal_table`) in the machine's own
    namespace carries vrlab's prefix and the run's id, so no other run's table has it."""
    return f"shared_{run_id}"


def engine_parts(plan: Plan, c: Cabling, cpu: int | None) -> list[dict[str, Any]]:
    """The SUT agent's ``engines`` request: per engine, its config, its namespace (``""``: the
    machine's own, where the cabled ports are) and what the ledger calls it; ``cpu``: where
    the engines run (the placement's engine CPU)."""
    ring: dict[str, Any] = {"ring_frames": 1024} if len(plan.userspace_engines) > MANY else {}
    parts = []
    for g in plan.userspace_engines:
        if g == "shared":
            cfg = shared_config(plan, name=shared_name(plan.run_id), cpu=cpu, **ring)
            parts.append({"config": _moved(cfg.to_dict(), c), "ns": "",
                          "what": "shared engine"})
        else:
            parts.append({"config": _moved(guest_config(plan, g, cpu=cpu, **ring).to_dict(), c),
                          "ns": ns_name(plan.run_id, g), "what": f"engine of {g}"})
    return parts


def start(led: Ledger, parts: list[dict[str, Any]]) -> list[UserspaceEngine]:
    """Start the engines of ``parts`` (:func:`engine_parts`) on this machine; those started are
    stopped again if one fails. An engine in the machine's own namespace has its steal table
    recorded in ``led`` before it starts."""
    out: list[UserspaceEngine] = []
    try:
        for p in parts:
            cfg = EngineConfig.from_dict(p["config"])
            ns = str(p["ns"]) or None
            if ns is None and cfg.steal:
                cabled.steal_table(led, cfg.steal_table)
            out.append(UserspaceEngine(cfg, ns, ledger=led, what=str(p["what"])))
    except BaseException:
        for e in out:
            e.stop()
        raise
    return out
