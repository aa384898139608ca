"""The shared forwarding engine as kernel objects: four BPF maps, its programs, their
attachments.

The program is C (``engine.bpf.c``), compiled with clang at first use and loaded with libbpf;
one object holds it for both hooks. The engine outlives the command that built it: each
device's attachment (XDP, tcx, or a tc filter) holds a program, the program holds its maps.
Later commands (``vrlab status``, ``vrlab up`` again, the benchmark) find them again by the ids
kept in the platform's state file, so nothing is pinned in bpffs and nothing is left behind
once the devices are deleted."""

from __future__ import annotations

import errno
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pyroute2 import IPRoute

from vrlab import net, nsexec
from vrlab.bpf import libbpf, toolchain
from vrlab.bpf.maps import MAP_HASH, BpfMap, prog_id
from vrlab.engines.ebpf import layout
from vrlab.errors import KernelError

#: where the engine runs on the devices frames arrive on to be forwarded: ``auto`` is XDP
#: where the driver runs it natively, else tc
HookChoice = Literal["xdp", "tc", "auto"]
#: how those devices were attached: native XDP, generic XDP (the stated fallback of ``xdp``),
#: tcx, or a clsact tc filter (kernels before 6.6)
Attachment = Literal["xdp", "xdp-generic", "tcx", "clsact"]
#: clang's flags beyond the toolchain's: the share's atomic fetch-and-add needs BPF v3
CFLAGS = ("-mcpu=v3",)
#: Whether the ports map is a hash instead of an array (the array is one bounds check and one
#: load where a hash hashes, walks a bucket and compares; bench/engine_variants.py flips this
#: to measure the difference).
PORTS_AS_HASH = False
#: frames a steered CPU's queue holds (``steer_to``): bursts wait there, as they do in the
#: kernel's 1000-frame backlog on the tc hook, where a veth's own ring holds 256. The kernel's
#: largest, as the testbed's own receive steering takes (``vrlab.traffic.xdp.steer``)
STEER_QUEUE = libbpf.CPUMAP_MAX_QUEUE


def hook_of(attachment: str) -> str:
    """The hook (xdp or tc) an attachment is one of."""
    return "xdp" if attachment.startswith("xdp") else "tc"


@dataclass(frozen=True)
class EngineIds:
    """What finds a running engine again: kernel object ids, stable while it lives. ``prog``
    is the tc program, ``xdp_prog`` the XDP one."""

    prog: int
    ports: int
    stats: int
    police: int
    macs: int
    xdp_prog: int = 0


def compiled() -> Path:
    """The engine's object file, compiled at first use (``vrlab.bpf.toolchain``)."""
    return toolchain.build(layout.SOURCE, headers=[layout.HEADER], flags=CFLAGS)


def _probe_tbid(obj: libbpf.BpfObject) -> None:
    """Refuse a kernel whose ``bpf_fib_lookup`` lacks BPF_FIB_LOOKUP_TBID: the program would
    load there and then drop every frame as an error."""
    verdict = libbpf.run_once(obj.program_fd(layout.PROBE_TBID), bytes(64))
    if verdict != 2:  # XDP_PASS
        raise KernelError("this kernel's bpf_fib_lookup lacks BPF_FIB_LOOKUP_TBID (Linux "
                          f"6.5+; this is {os.uname().release}): the shared engine looks each "
                          "frame up in its router's own table with it; use forwarding: guest")


class EbpfEngine:
    def __init__(self, progs: dict[str, int], ports: BpfMap, stats: BpfMap, police: BpfMap,
                 macs: BpfMap, fresh: bool = False) -> None:
        self.progs = progs  # program name -> fd
        self.ports = ports
        self.stats = stats
        self.police = police
        self.macs = macs
        #: how the fast devices were attached (``attach``); None until then or when opened
        self.attachment: str | None = None
        #: the cpus and steer maps of an engine made here (``steer_to``)
        self.steering: tuple[BpfMap, BpfMap] | None = None
        # router -> the (map, key) of its port entries, so a share can flag them; known
        # from the start for an engine made here, read from the maps once for one opened
        self._entries: dict[int, list[tuple[BpfMap, bytes]]] | None = {} if fresh else None

    @classmethod
    def create(cls) -> EbpfEngine:
        """Compile (at first use), load, and check the kernel can run it."""
        path = compiled()
        with libbpf.BpfObject(path, load=False) as obj:
            if PORTS_AS_HASH:
                ports = obj.map_handle("ports")
                libbpf.check(libbpf.lib().bpf_map__set_type(ports, MAP_HASH), "ports map type")
                libbpf.check(libbpf.lib().bpf_map__set_max_entries(ports, layout.MAX_PORTS),
                             "ports map size")
            obj.load()
            _probe_tbid(obj)
            progs = {p: libbpf.dup(obj.program_fd(p))
                     for p in (layout.TC_PROGRAM, layout.XDP_PROGRAM, layout.CPUMAP_PROGRAM)}
            maps = {m: BpfMap(libbpf.dup(obj.map_fd(m))) for m in layout.MAPS}
        engine = cls(progs, maps["ports"], maps["stats"], maps["police"], maps["macs"],
                     fresh=True)
        engine.steering = (maps["cpus"], maps["steer"])
        return engine

    @classmethod
    def open(cls, ids: EngineIds) -> EbpfEngine:
        progs = {}
        for name, pid in ((layout.TC_PROGRAM, ids.prog), (layout.XDP_PROGRAM, ids.xdp_prog)):
            if not pid:
                continue
            try:
                progs[name] = libbpf.fd_by_id("prog", pid)
            except OSError as e:
                raise KernelError(f"the engine's BPF program (id {pid}) is gone: "
                                  f"{e.strerror}; run `vrlab down` and `vrlab up` again") from e
        return cls(progs, BpfMap.from_id(ids.ports), BpfMap.from_id(ids.stats),
                   BpfMap.from_id(ids.police), BpfMap.from_id(ids.macs))

    def ids(self) -> EngineIds:
        xdp = self.progs.get(layout.XDP_PROGRAM)
        return EngineIds(prog=prog_id(self.progs[layout.TC_PROGRAM]), ports=self.ports.id,
                         stats=self.stats.id, police=self.police.id, macs=self.macs.id,
                         xdp_prog=prog_id(xdp) if xdp is not None else 0)

    def close(self) -> None:
        for m in (self.ports, self.stats, self.police, self.macs, *(self.steering or ())):
            m.close()
        for fd in self.progs.values():
            os.close(fd)
        self.progs = {}

    # ------------------------------------------------------------------ configuration

    def set_port(self, ifindex: int, kind: int, table: int, router: int, peer: int,
                 mac: str, lower: int = 0, on_uplink: bool = False) -> None:
        """``peer``: for a router port, the punt link's engine end; for a punt link, the port.
        ``mac``: the port's (frames to any other are punted). ``lower``/``on_uplink``: a
        macvlan port on a shared uplink: frames to ``mac`` arriving on the uplink are this
        port's, and what leaves by this port goes straight out of ``lower``. A router's share
        (``set_share``) is flagged in its entries, before or after."""
        if not 0 <= router < layout.MAX_ROUTERS:
            raise KernelError(f"router index {router} is beyond the engine's "
                              f"{layout.MAX_ROUTERS}")
        _check_index(ifindex)
        policed = self._police_limit(router) > 0
        mac_bytes = bytes(int(x, 16) for x in mac.split(":"))
        # the FIB lookup's input device: the uplink under a macvlan port, one device for all
        # routers (measured: touching each router's own input device per frame costs, at 256
        # routers, a few hundred ns of cache misses; the lookup itself ignores it)
        value = layout.PORT_ENTRY.pack(kind=kind, table=table, router=router, peer=peer,
                                       fib_in=lower or ifindex, lower=lower, mac=mac_bytes,
                                       flags=layout.FLAG_POLICED if policed else 0)
        keys = [(self.ports, struct.pack("=I", ifindex))]
        if on_uplink:
            keys.append((self.macs, mac_bytes + b"\0\0"))
        for m, k in keys:
            m.update(k, value)
        if self._entries is not None:
            self._entries.setdefault(router, []).extend(keys)

    def set_uplink(self, ifindex: int) -> None:
        _check_index(ifindex)
        self.ports.update(struct.pack("=I", ifindex),
                          layout.PORT_ENTRY.pack(kind=layout.KIND_UPLINK, fib_in=ifindex))

    def set_share(self, router: int, pps: int | None) -> None:
        """A packet-rate share in frames per second; None lifts it. The program reads a zero
        limit as none, so a frame between the two writes (limit, then the router's flags) is
        never wrongly dropped. The finest share is one frame per ~1 ms slot (~950 pps)."""
        per_slot = 0 if not pps else max(1, round(pps * (1 << layout.POLICE_SLOT_SHIFT) / 1e9))
        self.police.update(struct.pack("=I", router), layout.POLICE_ENTRY.pack(limit=per_slot))
        for m, k in self._router_entries(router):
            v = m.lookup(k)
            if v is None:
                continue
            fields = layout.PORT_ENTRY.unpack(v)
            if fields["kind"] != layout.KIND_PORT:
                continue  # a punt link: frames from the guest are never policed
            fields["flags"] = layout.FLAG_POLICED if per_slot else 0
            m.update(k, layout.PORT_ENTRY.pack(**fields))

    def policed(self, router: int) -> bool:
        """Whether the engine's maps hold a share for ``router`` (read back, not remembered:
        what another process set counts too)."""
        return self._police_limit(router) > 0

    def _police_limit(self, router: int) -> int:
        v = self.police.lookup(struct.pack("=I", router))
        return int(layout.POLICE_ENTRY.unpack(v)["limit"]) if v else 0

    def _router_entries(self, router: int) -> list[tuple[BpfMap, bytes]]:
        if self._entries is None:  # an engine opened by id: read its entries once
            self._entries = {}
            for m in (self.ports, self.macs):
                for k in m.iter_keys():
                    v = m.lookup(k)
                    if v is None:
                        continue
                    e = layout.PORT_ENTRY.unpack(v)
                    if e["kind"] == layout.KIND_PORT:
                        self._entries.setdefault(int(e["router"]), []).append((m, k))
        return self._entries.get(router, [])

    def attach(self, ns: str, devices: list[tuple[int, str, bool]],
               hook: HookChoice = "auto") -> str:
        """The programs at the ingress of every device (ifindex, name, fast) in namespace
        ``ns``, in one child process entered into it. Returns how the fast devices were
        attached (``Attachment``), also kept in ``attachment``.

        ``fast``: the device frames arrive on to be forwarded (a shared uplink, a dedicated
        port). Those get the hook: XDP, native (the first device decides; ``auto`` takes tc
        where native XDP is refused, ``xdp`` generic XDP), or tc: tcx where the kernel has it
        (6.6+), which runs the program straight from the receive path where a clsact qdisc
        goes through the classifier layer first (perf at 256 routers: ~4% of the forwarding
        CPU), else a clsact filter. The others (punt links, macvlan ports: ARP, broadcasts,
        the guests' own frames, all already socket buffers) get a clsact filter, because
        every tcx attachment costs an RCU grace period under the RTNL lock when it is made and
        again when its device goes (measured: `vrlab up`/`down` of 64 routers took 5.4/4.0 s
        with tcx on all 256 devices, 3.2/0.7 s with tc).

        A frame XDP redirects into a veth is taken only while the veth's peer runs NAPI: the
        caller turns GRO on at the far end of every device the engine sends out of
        (``platform.build``)."""
        way = nsexec.run_in(ns, _attach_all, self.progs[layout.XDP_PROGRAM],
                            self.progs[layout.TC_PROGRAM], devices, hook)
        self.attachment = str(way)
        if hook_of(self.attachment) == "tc":  # attached nowhere: they go with these fds
            for name in (layout.XDP_PROGRAM, layout.CPUMAP_PROGRAM):
                os.close(self.progs.pop(name))
        return self.attachment

    def steer_to(self, cpu: int, queue: int = STEER_QUEUE) -> None:
        """On the XDP hook, forward on ``cpu``: XDP runs inside the receiving veth's poll, on
        the CPU of whoever sent into the veth (a generator's, in the testbed); this hands each
        frame on to ``cpu`` through a cpumap entry with a queue of ``queue`` frames, whose
        kernel thread runs the forwarding half (the tc hook gets the same from RPS)."""
        if self.steering is None or layout.CPUMAP_PROGRAM not in self.progs:
            raise KernelError("only an engine made here and attached with XDP can be steered")
        if not 0 <= cpu < layout.MAX_CPUS:
            raise KernelError(f"CPU {cpu} is beyond the engine's {layout.MAX_CPUS}")
        cpus, steer = self.steering
        cpus.update(struct.pack("=I", cpu),
                    libbpf.cpumap_value(queue, self.progs[layout.CPUMAP_PROGRAM]))
        steer.update(struct.pack("=I", 0), struct.pack("=I", cpu + 1))

    # ------------------------------------------------------------------ reading

    def counters(self, router: int) -> dict[str, int]:
        out = {}
        for reason, name in enumerate(layout.EBPF_REASONS):
            vals = self.stats.lookup_percpu(struct.pack("=I", router * layout.SLOTS + reason))
            out[name] = sum(struct.unpack("=Q", v)[0] for v in vals)
        return out


def _check_index(ifindex: int) -> None:
    if not 0 < ifindex < layout.MAX_IFINDEX:
        raise KernelError(f"interface index {ifindex} is beyond the engine's ports map "
                          f"({layout.MAX_IFINDEX}); `vrlab down` and `vrlab up` renumber the "
                          "devices")


#: errnos that mean "this kernel or driver has no such attachment", not a failure
_UNSUPPORTED = (errno.EINVAL, errno.EOPNOTSUPP)


def tcx_attach(prog_fd: int, ifindex: int) -> bool:
    """tcx at a device's ingress (``libbpf.tcx_attach``); a module-level name so a test or
    benchmark can take tcx away."""
    return libbpf.tcx_attach(prog_fd, ifindex)


def _xdp(prog_fd: int, ifindex: int, flags: int) -> int:
    """Attach XDP; the errno of a refusal (0: attached)."""
    return libbpf.errno_of(libbpf.lib().bpf_xdp_attach(ifindex, prog_fd, flags, None))


def _attach_fast(xdp_fd: int, tc_fd: int, ifindex: int, name: str, want: str,
                 ipr: IPRoute) -> str:
    """Attach a fast device as ``want`` (an ``Attachment``, or "auto"/"xdp"/"tc" for the
    first device, which decides). Returns the attachment made."""
    if want in ("auto", "xdp"):
        err = _xdp(xdp_fd, ifindex, libbpf.XDP_FLAGS_DRV_MODE)
        if not err:
            return "xdp"
        if err not in _UNSUPPORTED:
            raise KernelError(f"attaching the engine to {name} (XDP): {os.strerror(err)}")
        if want == "auto":
            return _attach_fast(xdp_fd, tc_fd, ifindex, name, "tc", ipr)
        want = "xdp-generic"
    if want == "xdp-generic":
        err = _xdp(xdp_fd, ifindex, libbpf.XDP_FLAGS_SKB_MODE)
        if err:
            raise KernelError(f"attaching the engine to {name} (generic XDP): "
                              f"{os.strerror(err)}")
        return "xdp-generic"
    if want in ("tc", "tcx"):
        try:
            tcx_attach(tc_fd, ifindex)
            return "tcx"
        except OSError as e:
            if e.errno not in _UNSUPPORTED or want == "tcx":
                raise KernelError(f"attaching the engine to {name} (tcx): {e.strerror}") from e
    net.tc_ingress_filter(ipr, ifindex, tc_fd, name, "vrlab_eng")
    return "clsact"


def _attach_all(xdp_fd: int, tc_fd: int, devices: list[tuple[int, str, bool]],
                hook: HookChoice) -> str:
    """In the devices' namespace (a child of ``nsexec.run_in``)."""
    way: str = hook
    with IPRoute() as ipr:
        for ifindex, name, fast in devices:
            if fast:
                way = _attach_fast(xdp_fd, tc_fd, ifindex, name, way, ipr)
            else:
                net.tc_ingress_filter(ipr, ifindex, tc_fd, name, "vrlab_eng")
    return way if way in ("xdp", "xdp-generic", "tcx", "clsact") else f"none ({hook})"
