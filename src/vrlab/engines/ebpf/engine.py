"""The shared forwarding engine as kernel objects: four BPF maps, one program, its attachments.

The engine outlives the command that built it: each port's ingress attachment (tcx, or a tc
filter on kernels before 6.6) holds the program, the program holds its maps. Later commands
(``vrlab status``, ``vrlab up`` again, the benchmark) find them again by the ids kept in the
platform's state file, so nothing is pinned in bpffs and nothing is left behind once the
ports are deleted."""

from __future__ import annotations

import ctypes
import errno
import os
import struct
from dataclasses import dataclass

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from vrlab import nsexec
from vrlab.engines.ebpf import bpf, program
from vrlab.errors import KernelError

MAX_PORTS = 4096
MAX_ROUTERS = 1024
#: The ports map is an array indexed by interface index, not a hash: the verifier turns an
#: array lookup into one bounds check and one load, where a hash lookup hashes the key, walks a
#: bucket and compares (perf at 256 routers: 4-5% of the forwarding CPU for the two per frame).
#: Devices are numbered by the build (build.IndexPicker), densely from the namespace's highest.
MAX_IFINDEX = 16384
INGRESS_PARENT = 0xFFFFFFF2  # clsact's ingress hook
FILTER_PRIO = 1


@dataclass(frozen=True)
class EngineIds:
    """What finds a running engine again: kernel object ids, stable while it lives."""

    prog: int
    ports: int
    stats: int
    police: int
    macs: int


class EbpfEngine:
    def __init__(self, prog_fd: int, ports: bpf.Map, stats: bpf.Map, police: bpf.Map,
                 macs: bpf.Map, fresh: bool = False) -> None:
        self.prog_fd = prog_fd
        self.ports = ports
        self.stats = stats
        self.police = police
        self.macs = macs
        # router -> the (map, key) of its port entries, so a share can flag them; known
        # from the start for an engine made here, read from the maps once for one opened
        self._entries: dict[int, list[tuple[bpf.Map, bytes]]] | None = {} if fresh else None

    @classmethod
    def create(cls, tag: str) -> EbpfEngine:
        ports = bpf.Map.create(bpf.MAP_ARRAY, 4, program.ENTRY_SIZE, MAX_IFINDEX,
                               f"{tag}_ports")
        stats = bpf.Map.create(bpf.MAP_PERCPU_ARRAY, 4, 8, MAX_ROUTERS * program.SLOTS,
                               f"{tag}_stats")
        police = bpf.Map.create(bpf.MAP_ARRAY, 4, 32, MAX_ROUTERS, f"{tag}_police")
        macs = bpf.Map.create(bpf.MAP_HASH, 8, program.ENTRY_SIZE, MAX_PORTS, f"{tag}_macs")
        fd = bpf.load_program(program.build(ports, stats, police, macs), f"{tag}_eng")
        return cls(fd, ports, stats, police, macs, fresh=True)

    @classmethod
    def open(cls, ids: EngineIds) -> EbpfEngine:
        attr = struct.pack("=I", ids.prog).ljust(16, b"\0")
        try:
            fd = bpf.sys_bpf(bpf.PROG_GET_FD_BY_ID, attr)
        except OSError as e:
            raise KernelError(f"the engine's BPF program (id {ids.prog}) is gone: "
                              f"{e.strerror}; run `vrlab down` and `vrlab up` again") from e
        return cls(fd, bpf.Map.from_id(ids.ports), bpf.Map.from_id(ids.stats),
                   bpf.Map.from_id(ids.police), bpf.Map.from_id(ids.macs))

    def ids(self) -> EngineIds:
        return EngineIds(prog=prog_id(self.prog_fd), ports=bpf.map_info(self.ports.fd).id,
                         stats=bpf.map_info(self.stats.fd).id,
                         police=bpf.map_info(self.police.fd).id,
                         macs=bpf.map_info(self.macs.fd).id)

    def close(self) -> None:
        for m in (self.ports, self.stats, self.police, self.macs):
            m.close()
        if self.prog_fd >= 0:
            os.close(self.prog_fd)
            self.prog_fd = -1

    # ------------------------------------------------------------------ configuration

    def set_port(self, ifindex: int, kind: int, table: int, router: int, peer: int,
                 lower: int = 0, mac: str | None = None) -> None:
        """``peer``: for a router port, the punt link's engine end; for a punt link, the port.
        ``lower``/``mac``: a macvlan port on a shared uplink: frames to ``mac`` arriving on the
        uplink are this port's, and what leaves by this port goes straight out of ``lower``.
        A router's share (``set_share``) is flagged in its entries, before or after."""
        if not 0 <= router < MAX_ROUTERS:
            raise KernelError(f"router index {router} is beyond the engine's {MAX_ROUTERS}")
        _check_index(ifindex)
        # the FIB lookup's input device: the uplink under a macvlan port, one device for all
        # routers (measured: touching each router's own input device per frame costs, at 256
        # routers, a few hundred ns of cache misses; the lookup itself ignores it)
        policed = self._police_limit(router) > 0
        value = struct.pack(program.ENTRY, kind, table, router, peer, lower or ifindex, lower,
                            program.FLAG_POLICED if policed else 0, 0)
        keys = [(self.ports, struct.pack("=I", ifindex))]
        if mac is not None:
            keys.append((self.macs, bytes(int(x, 16) for x in mac.split(":")) + b"\0\0"))
        for m, k in keys:
            m.update(k, value)
        if self._entries is not None:
            self._entries.setdefault(router, []).extend(keys)

    def set_uplink(self, ifindex: int) -> None:
        _check_index(ifindex)
        self.ports.update(struct.pack("=I", ifindex),
                          struct.pack(program.ENTRY, program.KIND_UPLINK, 0, 0, 0, ifindex, 0, 0,
                                      0))

    def set_share(self, router: int, pps: int | None) -> None:
        """A packet-rate share in frames per second; None lifts it. The program reads a zero
        limit as none, so a frame between the two writes (limit, then the router's flags) is
        never wrongly dropped. The finest share is one frame per ~1 ms slot (~950 pps)."""
        per_slot = 0 if not pps else max(1, round(pps * (1 << program.POLICE_SLOT_SHIFT) / 1e9))
        self.police.update(struct.pack("=I", router), struct.pack("=QQQQ", 0, 0, per_slot, 0))
        for m, k in self._router_entries(router):
            v = m.lookup(k)
            if v is None or struct.unpack_from("=I", v)[0] != program.KIND_PORT:
                continue  # gone, or a punt link (frames from the guest are never policed)
            fields = list(struct.unpack(program.ENTRY, v))
            fields[program.ENTRY_FLAGS // 4] = program.FLAG_POLICED if per_slot else 0
            m.update(k, struct.pack(program.ENTRY, *fields))

    def _police_limit(self, router: int) -> int:
        v = self.police.lookup(struct.pack("=I", router))
        return struct.unpack("=QQQQ", v)[2] if v else 0

    def _router_entries(self, router: int) -> list[tuple[bpf.Map, bytes]]:
        if self._entries is None:  # an engine opened by id: read its entries once
            self._entries = {}
            for m in (self.ports, self.macs):
                for k in m.iter_keys():
                    v = m.lookup(k)
                    if v is None:
                        continue
                    kind, _t, r = struct.unpack_from("=III", v)
                    if kind == program.KIND_PORT:
                        self._entries.setdefault(r, []).append((m, k))
        return self._entries.get(router, [])

    def attach(self, ns: str, devices: list[tuple[int, str, bool]]) -> str:
        """The program at the ingress of every device (ifindex, name, fast) in namespace
        ``ns``, in one child process entered into it.

        ``fast``: the device frames arrive on to be forwarded (a shared uplink, a dedicated
        port). Those get tcx where the kernel has it (6.6+): it runs the program straight from
        the receive path, where a clsact qdisc goes through the tc classifier layer and its
        statistics first (perf at 256 routers: ~4% of the forwarding CPU). The others (punt
        links, macvlan ports: ARP, broadcasts, the guests' own frames) get a clsact filter,
        because every tcx attachment costs an RCU grace period under the RTNL lock when it is
        made and again when its device goes (measured: `vrlab up`/`down` of 64 routers took
        5.4/4.0 s with tcx on all 256 devices, 3.2/0.7 s with tc). Returns "tcx" or "tc", the
        way the fast devices were attached."""
        return nsexec.run_in(ns, _attach_all, self.prog_fd, devices)

    # ------------------------------------------------------------------ reading

    def counters(self, router: int) -> dict[str, int]:
        out = {}
        for reason, name in enumerate(program.EBPF_REASONS):
            vals = self.stats.lookup_percpu(struct.pack("=I", router * program.SLOTS + reason))
            out[name] = sum(struct.unpack("=Q", v)[0] for v in vals)
        return out


def _check_index(ifindex: int) -> None:
    if not 0 < ifindex < MAX_IFINDEX:
        raise KernelError(f"interface index {ifindex} is beyond the engine's ports map "
                          f"({MAX_IFINDEX}); `vrlab down` and `vrlab up` renumber the devices")


def _attach_all(prog_fd: int, devices: list[tuple[int, str, bool]]) -> str:
    """In the devices' namespace (a child of ``nsexec.run_in``)."""
    way = "tcx"
    with IPRoute() as ipr:
        for ifindex, name, fast in devices:
            if fast and way == "tcx":
                try:
                    bpf.tcx_attach(prog_fd, ifindex)
                    continue
                except OSError as e:
                    if e.errno not in (errno.EINVAL, errno.EOPNOTSUPP):
                        raise KernelError(f"attaching the engine to {name}: {e.strerror}"
                                          ) from e
                    way = "tc"  # no tcx in this kernel
            _tc_attach(ipr, prog_fd, ifindex, name)
    return way


def _tc_attach(ipr: IPRoute, prog_fd: int, ifindex: int, name: str) -> None:
    """clsact on the device, the program as its ingress filter in direct-action mode."""
    try:
        ipr.tc("add", "clsact", ifindex)
    except NetlinkError as e:
        if e.code != errno.EEXIST:
            raise KernelError(f"adding clsact to {name}: {e}") from e
    try:
        ipr.tc("replace-filter", "bpf", ifindex, ":1", fd=prog_fd, name="vrlab_eng",
               parent=INGRESS_PARENT, prio=FILTER_PRIO, protocol=0x0003, direct_action=True)
    except NetlinkError as e:
        raise KernelError(f"attaching the engine to {name}: {e}") from e


def prog_id(fd: int) -> int:
    info = ctypes.create_string_buffer(256)
    attr = ctypes.create_string_buffer(16)
    struct.pack_into("=IIQ", attr, 0, fd, len(info), ctypes.addressof(info))
    bpf.sys_bpf_buf(bpf.OBJ_GET_INFO_BY_FD, attr)
    return int(struct.unpack_from("=I", info.raw, 4)[0])
