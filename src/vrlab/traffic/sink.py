"""The counting sink: nftables counters at the netdev ingress hook of the sink's port.

The kernel counts each frame against its router's destination prefix and drops it before the IP
layer: delivering frames to a UDP socket costs about two thirds of a CPU at these rates
(measured on this testbed), which would make the sink, not the SUT, the bottleneck. Per-router
counters are
the elements of one interval set (a lookup, not one rule per router), so counting stays cheap at
256 routers. An optional dynamic set counts per flow (5-tuple), to check the generator's flows.
IPv6 has sets of its own beside the IPv4 ones (``routers6``, ``flows6``)."""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Mapping, Sequence
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
    """Installs its own table (named after the run) in the current namespace. ``routers``:
    name -> the router's prefix, or its prefixes of either family (a dual-stack router has an
    IPv4 and an IPv6 one, both counted as its)."""

    kind = "nftables"

    def __init__(self, table: str, dev: str, routers: Mapping[str, str | Sequence[str]],
                 count_flows: bool = False):
        self.table = table
        self.names = list(routers)
        self.prefix_router: dict[str, str] = {}
        for name, ps in routers.items():
            for p in [ps] if isinstance(ps, str) else ps:
                self.prefix_router[str(ipaddress.ip_network(p))] = name
        self.nft = nftables.Nftables()
        self.nft.set_json_output(True)
        self.nft.set_handle_output(False)
        sets, rules = [], []
        for family, name, addr, match in ((4, "routers", "ipv4_addr", "ip"),
                                          (6, "routers6", "ipv6_addr", "ip6")):
            elems = ", ".join(p for p in self.prefix_router
                              if ipaddress.ip_network(p).version == family)
            if not elems:  # nftables takes no empty element list
                continue
            sets.append(f"set {name} {{ type {addr}; flags interval; counter; "
                        f"elements = {{ {elems} }} }}")
            rules.append(f"{match} daddr @{name} drop")
        flow_rules = []
        if count_flows:
            for name, addr, match, proto in (("flows", "ipv4_addr", "ip", "ip"),
                                             ("flows6", "ipv6_addr", "ip6", "ip6")):
                sets.append(f"set {name} {{ type {addr} . {addr} . inet_service . "
                            "inet_service; flags dynamic; counter; size 65536; }")
                flow_rules.append(f"meta protocol {proto} meta l4proto udp update @{name} "
                                  f"{{ {match} saddr . {match} daddr . udp sport . udp dport }}")
        body = "\n    ".join([*flow_rules, *rules])
        self._cmd(f"""
table netdev {table} {{
  {chr(10).join(sets)}
  chain ingress {{
    type filter hook ingress device "{dev}" priority 0; policy accept;
    {body}
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
        by_router = {r: 0 for r in self.names}
        other = 0
        flows: dict[tuple[str, str, int, int], int] = {}
        for obj in self._cmd(f"list table netdev {self.table}").get("nftables", []):
            if "set" in obj and obj["set"]["name"] in ("routers", "routers6"):
                for el in obj["set"].get("elem", []):
                    e = el["elem"]
                    pfx = e["val"]["prefix"]
                    key = str(ipaddress.ip_network(f"{pfx['addr']}/{pfx['len']}"))
                    by_router[self.prefix_router[key]] += int(e["counter"]["packets"])
            elif "set" in obj and obj["set"]["name"] in ("flows", "flows6"):
                for el in obj["set"].get("elem", []):
                    e = el["elem"]
                    s, d, sp, dp = e["val"]["concat"]
                    flows[(s, d, int(sp), int(dp))] = int(e["counter"]["packets"])
            elif "counter" in obj and obj["counter"]["name"] == "other":
                other = int(obj["counter"]["packets"])
        return Counts(by_router, other, flows)
