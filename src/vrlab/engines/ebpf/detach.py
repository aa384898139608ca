"""The shared engine's programs on interfaces vrlab did not create (a testbed file's cabled
ports), recorded in the ledger and removed again.

On a device vrlab makes, the engine's attachments go with the device. A cabled interface stays,
and its XDP program or tcx attachment (neither held by a link fd) stays with it after the process
that attached it is gone, holding the engine's program and maps. So the interface is recorded
(ledger kind ``attach``) *before* the engine attaches there, and :func:`undo` detaches what of
the engine's is attached to it, found by program name: a program someone else attached is never
touched. Acts in the calling process's network namespace (the machine's own)."""

from __future__ import annotations

import ctypes
import os
import struct

from pyroute2 import IPRoute

from vrlab.bpf import libbpf
from vrlab.engines.ebpf import layout
from vrlab.ledger import Entry, Ledger

#: the ledger kind of an interface the engine attaches to
KIND = "attach"
#: the engine's program names, as the kernel keeps them (BPF_OBJ_NAME_LEN: 15 characters)
NAMES = frozenset(n[:15] for n in (layout.XDP_PROGRAM, layout.TC_PROGRAM))
#: UAPI ``struct bpf_prog_info`` up to its name: type, id, tag[8], jited and xlated lengths,
#: their pointers, load time, uid, nr_map_ids, map_ids, name[16]
_PROG_INFO = struct.Struct("=II8sIIQQQIIQ16s")
#: the most programs one tcx ingress is asked for
_MAX_TCX = 64


def record(led: Ledger, dev: str) -> None:
    """Say in ``led`` that the engine may attach to ``dev`` (before it does)."""
    led.record(KIND, dev=dev)


def prog_name(prog_id: int) -> str:
    """The kernel's name of program ``prog_id`` ("" when it is gone)."""
    try:
        fd = libbpf.fd_by_id("prog", prog_id)
    except OSError:
        return ""
    try:
        raw = libbpf.obj_info(fd, _PROG_INFO.size)
    finally:
        os.close(fd)
    name: bytes = _PROG_INFO.unpack_from(raw)[-1]
    return name.split(b"\0", 1)[0].decode(errors="replace")


#: UAPI ``XDP_ATTACHED_*`` (linux/if_link.h) -> the flags that detach that mode
_MODE_FLAGS = {1: libbpf.XDP_FLAGS_DRV_MODE, 2: libbpf.XDP_FLAGS_SKB_MODE}


def _xdp(ipr: IPRoute, index: int) -> tuple[int, int]:
    """The XDP program id on a device (0: none) and the flags that detach it (its mode)."""
    link = ipr.get_links(index)[0]
    xdp = link.get_attr("IFLA_XDP")
    if xdp is None:
        return 0, 0
    mode = xdp.get_attr("IFLA_XDP_ATTACHED") or 0
    if isinstance(mode, str):  # pyroute2 names the mode: xdp, xdpgeneric, xdpoffload, ...
        mode = 2 if "generic" in mode else 0 if "offload" in mode or mode == "none" else 1
    return int(xdp.get_attr("IFLA_XDP_PROG_ID") or 0), _MODE_FLAGS.get(int(mode), 0)


def _tcx_ids(index: int) -> list[int]:
    so = libbpf.lib()
    query = so.bpf_prog_query
    query.restype = ctypes.c_int
    query.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_uint32,
                      ctypes.POINTER(ctypes.c_uint32), ctypes.POINTER(ctypes.c_uint32),
                      ctypes.POINTER(ctypes.c_uint32)]
    ids = (ctypes.c_uint32 * _MAX_TCX)()
    count = ctypes.c_uint32(_MAX_TCX)
    flags = ctypes.c_uint32(0)
    if query(index, libbpf.BPF_TCX_INGRESS, 0, ctypes.byref(flags), ids,
             ctypes.byref(count)) < 0:
        return []  # a kernel without tcx: nothing of ours can be there
    return [int(ids[i]) for i in range(count.value)]


def _tcx_detach(prog_id: int, index: int) -> bool:
    so = libbpf.lib()
    detach = so.bpf_prog_detach2
    detach.restype = ctypes.c_int
    detach.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
    try:
        fd = libbpf.fd_by_id("prog", prog_id)
    except OSError:
        return False
    try:
        return int(detach(fd, index, libbpf.BPF_TCX_INGRESS)) == 0
    finally:
        os.close(fd)


def attached(dev: str) -> list[str]:
    """What of the engine's is attached to ``dev``: "xdp" and "tcx" entries."""
    with IPRoute() as ipr:
        idx = ipr.link_lookup(ifname=dev)
        if not idx:
            return []
        out = ["xdp"] if prog_name(_xdp(ipr, idx[0])[0]) in NAMES else []
    out += ["tcx" for i in _tcx_ids(idx[0]) if prog_name(i) in NAMES]
    return out


def detach(dev: str) -> list[str]:
    """Detach the engine's programs from ``dev``; returns what was detached."""
    done: list[str] = []
    with IPRoute() as ipr:
        idx = ipr.link_lookup(ifname=dev)
        if not idx:
            return done
        index = int(idx[0])
        prog, flags = _xdp(ipr, index)
        if prog_name(prog) in NAMES:  # native or generic, each detached in its own mode
            libbpf.check(libbpf.lib().bpf_xdp_detach(index, flags, None),
                         f"detaching the engine's XDP program from {dev}")
            done.append(f"the engine's XDP program on {dev}")
    for pid in _tcx_ids(index):
        if prog_name(pid) in NAMES and _tcx_detach(pid, index):
            done.append(f"the engine's tcx program on {dev}")
    return done


def undo(entries: list[Entry]) -> list[str]:
    """Detach the engine from every interface ``entries`` record, newest first."""
    done: list[str] = []
    for e in reversed(entries):
        if e.kind == KIND:
            done += detach(str(e.data["dev"]))
    return done
