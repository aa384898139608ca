"""The counting sink: nftables counters at the netdev ingress hook of the sink's port.

The kernel counts each frame against its router's destination prefix and drops it before the IP
layer: delivering frames to a UDP socket costs about two thirds of a CPU at these rates
(measured on this testbed), which would make the sink, not the SUT, the bottleneck. Per-router
counters are
the elements of one interval set (a lookup, not one rule per router), so counting stays cheap at
256 routers. An optional dynamic set counts per flow (5-tuple), to check the generator's flows."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import nftables

from vrlab.errors import TrafficError


@dataclass(frozen=True)
class Counts:
    by_router: dict[str, int]
    other: int
    flows: dict[tuple[str, str, int, int], int]

    @property
    def total(self) -> int:
        return sum(self.by_router.values())

    def minus(self, before: Counts) -> Counts:
        return Counts(
            by_router={k: v - before.by_router.get(k, 0) for k, v in self.by_router.items()},
            other=self.other - before.other,
            flows={k: v - before.flows.get(k, 0) for k, v in self.flows.items()
                   if v - before.flows.get(k, 0) > 0})


class NftSink:
    """Installs its own table (named after the run) in the current namespace."""

    kind = "nftables"

    def __init__(self, table: str, dev: str, routers: dict[str, str], count_flows: bool = False):
        self.table = table
        self.prefix_router = {p: r for r, p in routers.items()}
        self.nft = nftables.Nftables()
        self.nft.set_json_output(True)
        self.nft.set_handle_output(False)
        elems = ", ".join(routers.values())
        flows_set = flows_rule = ""
        if count_flows:
            flows_set = ("set flows { type ipv4_addr . ipv4_addr . inet_service . inet_service; "
                         "flags dynamic; counter; size 65536; }")
            flows_rule = ("meta l4proto udp update @flows "
                          "{ ip saddr . ip daddr . udp sport . udp dport }")
        self._cmd(f"""
table netdev {table} {{
  set routers {{ type ipv4_addr; flags interval; counter; elements = {{ {elems} }} }}
  {flows_set}
  chain ingress {{
    type filter hook ingress device "{dev}" priority 0; policy accept;
    {flows_rule}
    ip daddr @routers drop
    counter name other drop
  }}
  counter other {{ }}
}}""")

    def _cmd(self, text: str) -> dict[str, Any]:
        rc, out, err = self.nft.cmd(text)
        if rc != 0:
            raise TrafficError(f"nftables refused the sink's rules: {err.strip()}")
        return json.loads(out) if out else {}

    def read(self) -> Counts:
        by_router = {r: 0 for r in self.prefix_router.values()}
        other = 0
        flows: dict[tuple[str, str, int, int], int] = {}
        for obj in self._cmd(f"list table netdev {self.table}").get("nftables", []):
            if "set" in obj and obj["set"]["name"] == "routers":
                for el in obj["set"].get("elem", []):
                    e = el["elem"]
                    pfx = e["val"]["prefix"]
                    key = f"{pfx['addr']}/{pfx['len']}"
                    by_router[self.prefix_router[key]] = int(e["counter"]["packets"])
            elif "set" in obj and obj["set"]["name"] == "flows":
                for el in obj["set"].get("elem", []):
                    e = el["elem"]
                    s, d, sp, dp = e["val"]["concat"]
                    flows[(s, d, int(sp), int(dp))] = int(e["counter"]["packets"])
            elif "counter" in obj and obj["counter"]["name"] == "other":
                other = int(obj["counter"]["packets"])
        return Counts(by_router, other, flows)
