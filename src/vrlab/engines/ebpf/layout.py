"""The engine's shared layouts, read from the one C header its BPF program is built with.

``engine.h`` defines the port and police entries, the entry kinds, the counter reasons and the
maps' sizes; this module parses it at import, so Python packs exactly what the program reads
(tests/unit/test_engine_program.py holds the parse against the compiled object's BTF)."""

from __future__ import annotations

from pathlib import Path

from vrlab.bpf import cheader

HEADER = Path(__file__).with_name("engine.h")
SOURCE = Path(__file__).with_name("engine.bpf.c")
_H = cheader.read(HEADER)

PORT_ENTRY = _H.structs["port_entry"]
POLICE_ENTRY = _H.structs["police_entry"]

_KINDS = _H.enum("entry_kind")
KIND_PORT, KIND_PUNT, KIND_UPLINK = _KINDS["KIND_PORT"], _KINDS["KIND_PUNT"], _KINDS["KIND_UPLINK"]

#: the per-router counters, in the order of ``enum reason`` (its slot in the stats map)
EBPF_REASONS: tuple[str, ...] = tuple(
    name.removeprefix("REASON_").lower()
    for name, _ in sorted(_H.enums["reason"], key=lambda item: item[1]))

MAX_IFINDEX = _H.defines["MAX_IFINDEX"]
MAX_ROUTERS = _H.defines["MAX_ROUTERS"]
MAX_PORTS = _H.defines["MAX_PORTS"]
MAX_CPUS = _H.defines["MAX_CPUS"]
SLOTS = _H.defines["SLOTS"]
POLICE_SLOT_SHIFT = _H.defines["POLICE_SLOT_SHIFT"]
FLAG_POLICED = _H.defines["FLAG_POLICED"]

#: the programs of the object: one per hook, the XDP hook's second half on a steered CPU,
#: and the TBID probe
XDP_PROGRAM = "vrlab_engine_xdp"
CPUMAP_PROGRAM = "vrlab_engine_cpumap"
TC_PROGRAM = "vrlab_engine_tc"
PROBE_TBID = "vrlab_probe_tbid"
#: its maps
MAPS = ("ports", "macs", "stats", "police", "cpus", "steer")
