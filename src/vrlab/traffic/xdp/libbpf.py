"""The handful of libbpf calls the XDP generator needs, through ctypes.

libbpf (Debian's libbpf1) does what the project's own hand-rolled ``bpf(2)`` wrapper in
``vrlab.engines.ebpf.bpf`` does not: it reads a clang-built ELF object and its BTF, and it
knows the bpf(2) syscall number and attribute layout of every architecture. Errors come back as
negative errno values (libbpf 1.x's convention) and are raised as ``KernelError``."""

from __future__ import annotations

import ctypes
import ctypes.util
import os
from pathlib import Path

from vrlab.errors import KernelError, TrafficError

#: UAPI ``BPF_F_TEST_XDP_LIVE_FRAMES`` (linux/bpf.h): frames really leave, and the program's
#: XDP_TX or XDP_REDIRECT verdict sends them.
BPF_F_TEST_XDP_LIVE_FRAMES = 1 << 1
#: UAPI ``XDP_FLAGS_SKB_MODE`` (linux/if_link.h): generic XDP, run on skbs the device received.
XDP_FLAGS_SKB_MODE = 1 << 1
#: UAPI ``BPF_XDP`` of ``enum bpf_attach_type`` (linux/bpf.h): an XDP program held by a link.
BPF_XDP = 37
#: UAPI ``BPF_TCX_INGRESS`` (Linux 6.6+): a SCHED_CLS program at a device's ingress, held by a
#: link.
BPF_TCX_INGRESS = 46
#: The kernel's upper bound on ``batch_size`` in live-frames mode (TEST_XDP_MAX_BATCH).
MAX_BATCH_SIZE = 256


class XdpMd(ctypes.Structure):
    """UAPI ``struct xdp_md``: the context handed to the program, here mostly its ingress."""

    _fields_ = [
        ("data", ctypes.c_uint32),
        ("data_end", ctypes.c_uint32),
        ("data_meta", ctypes.c_uint32),
        ("ingress_ifindex", ctypes.c_uint32),
        ("rx_queue_index", ctypes.c_uint32),
        ("egress_ifindex", ctypes.c_uint32),
    ]


class BpfTestRunOpts(ctypes.Structure):
    """libbpf's ``struct bpf_test_run_opts`` (bpf/bpf.h); ``sz`` tells libbpf which fields this
    caller knows, so an older or newer libbpf reads it correctly."""

    _fields_ = [
        ("sz", ctypes.c_size_t),
        ("data_in", ctypes.c_void_p),
        ("data_out", ctypes.c_void_p),
        ("data_size_in", ctypes.c_uint32),
        ("data_size_out", ctypes.c_uint32),
        ("ctx_in", ctypes.c_void_p),
        ("ctx_out", ctypes.c_void_p),
        ("ctx_size_in", ctypes.c_uint32),
        ("ctx_size_out", ctypes.c_uint32),
        ("retval", ctypes.c_uint32),
        ("repeat", ctypes.c_int),
        ("duration", ctypes.c_uint32),
        ("flags", ctypes.c_uint32),
        ("cpu", ctypes.c_uint32),
        ("batch_size", ctypes.c_uint32),
    ]


class BpfLinkCreateOpts(ctypes.Structure):
    """The leading fields of libbpf's ``struct bpf_link_create_opts``: ``sz`` says only these
    are given, and libbpf reads the others as zero."""

    _fields_ = [("sz", ctypes.c_size_t), ("flags", ctypes.c_uint32)]


_lib: ctypes.CDLL | None = None


def lib() -> ctypes.CDLL:
    """libbpf, loaded once, with the signatures of the functions used here."""
    global _lib
    if _lib is not None:
        return _lib
    name = ctypes.util.find_library("bpf")
    if name is None:
        raise TrafficError("libbpf not found: apt-get install libbpf1 (./bootstrap.sh does)")
    try:
        so = ctypes.CDLL(name, use_errno=True)
    except OSError as e:
        raise TrafficError(f"cannot load {name}: {e}") from e
    vp, i, u32 = ctypes.c_void_p, ctypes.c_int, ctypes.c_uint32
    for fn, res, args in (
        ("bpf_object__open_file", vp, [ctypes.c_char_p, vp]),
        ("bpf_object__load", i, [vp]),
        ("bpf_object__close", None, [vp]),
        ("bpf_object__find_program_by_name", vp, [vp, ctypes.c_char_p]),
        ("bpf_program__fd", i, [vp]),
        ("bpf_object__next_program", vp, [vp, vp]),
        ("bpf_program__name", ctypes.c_char_p, [vp]),
        ("bpf_program__section_name", ctypes.c_char_p, [vp]),
        ("bpf_prog_test_run_opts", i, [i, ctypes.POINTER(BpfTestRunOpts)]),
        ("bpf_xdp_attach", i, [i, i, u32, vp]),
        ("bpf_xdp_detach", i, [i, u32, vp]),
        ("bpf_link_create", i, [i, i, ctypes.c_int, ctypes.POINTER(BpfLinkCreateOpts)]),
        ("bpf_object__find_map_by_name", vp, [vp, ctypes.c_char_p]),
        ("bpf_map__update_elem", i, [vp, vp, ctypes.c_size_t, vp, ctypes.c_size_t,
                                     ctypes.c_uint64]),
        ("bpf_map__lookup_elem", i, [vp, vp, ctypes.c_size_t, vp, ctypes.c_size_t,
                                     ctypes.c_uint64]),
        ("bpf_map__set_max_entries", i, [vp, u32]),
        ("libbpf_num_possible_cpus", i, []),
    ):
        f = getattr(so, fn)
        f.restype, f.argtypes = res, args
    _lib = so
    return so


def _check(ret: int, what: str) -> int:
    if ret < 0:
        raise KernelError(f"{what}: {os.strerror(-ret)}")
    return ret


class BpfObject:
    """An opened (and unless told otherwise, loaded) BPF object file; its programs live until
    ``close``. Opening alone reads the ELF file and needs no privilege."""

    def __init__(self, path: Path, load: bool = True,
                 max_entries: dict[str, int] | None = None) -> None:
        """``max_entries``: array maps sized now, before loading, for what this use needs."""
        so = lib()
        obj = so.bpf_object__open_file(str(path).encode(), None)
        if not obj:
            err = ctypes.get_errno()
            raise KernelError(f"libbpf cannot open {path}: {os.strerror(err)}")
        self._obj: int | None = obj
        try:
            for name, n in (max_entries or {}).items():
                _check(so.bpf_map__set_max_entries(self._map(name), n),
                       f"sizing map {name} to {n}")
            if not load:
                return
            _check(so.bpf_object__load(obj), f"loading {path.name} (is this process root?)")
        except BaseException:
            self.close()
            raise

    def sections(self) -> dict[str, str]:
        """Each program's name and the ELF section it is in (its type, for libbpf)."""
        if self._obj is None:
            raise KernelError("the BPF object is closed")
        so, out, prog = lib(), {}, None
        while prog := so.bpf_object__next_program(self._obj, prog):
            out[so.bpf_program__name(prog).decode()] = so.bpf_program__section_name(prog).decode()
        return out

    def program_fd(self, name: str) -> int:
        if self._obj is None:
            raise KernelError("the BPF object is closed")
        prog = lib().bpf_object__find_program_by_name(self._obj, name.encode())
        if not prog:
            raise KernelError(f"no BPF program {name!r} in the object")
        return _check(lib().bpf_program__fd(prog), f"fd of program {name}")

    def _map(self, map_name: str) -> int:
        if self._obj is None:
            raise TrafficError("the BPF object is closed")
        m: int | None = lib().bpf_object__find_map_by_name(self._obj, map_name.encode())
        if not m:
            raise TrafficError(f"no map {map_name} in the BPF object")
        return m

    def lookup(self, map_name: str, key: int, size: int) -> bytes:
        """Element ``key`` (a u32) of the array map ``map_name``: ``size`` bytes, which for a
        per-CPU map is every possible CPU's value, each padded to 8 bytes, one after another."""
        m = self._map(map_name)
        k = ctypes.c_uint32(key)
        v = ctypes.create_string_buffer(size)
        _check(lib().bpf_map__lookup_elem(m, ctypes.byref(k), ctypes.sizeof(k), v, size, 0),
               f"reading {map_name}[{key}]")
        return v.raw

    def update(self, map_name: str, key: int, value: bytes) -> None:
        """Set element ``key`` (a u32) of the array map ``map_name`` to ``value``."""
        m = self._map(map_name)
        k = ctypes.c_uint32(key)
        v = ctypes.create_string_buffer(value, len(value))
        _check(lib().bpf_map__update_elem(m, ctypes.byref(k), ctypes.sizeof(k), v, len(value), 0),
               f"updating {map_name}[{key}]")

    def close(self) -> None:
        if self._obj is not None:
            lib().bpf_object__close(self._obj)
            self._obj = None

    def __enter__(self) -> BpfObject:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def xdp_attach(ifindex: int, prog_fd: int) -> None:
    """Attach a program to a link of the caller's namespace (native mode where the driver has
    it, as veth does). It stays attached after its fd is closed, until detached or the link
    goes."""
    _check(lib().bpf_xdp_attach(ifindex, prog_fd, 0, None), f"attaching XDP to ifindex {ifindex}")


def xdp_detach(ifindex: int) -> None:
    _check(lib().bpf_xdp_detach(ifindex, 0, None), f"detaching XDP from ifindex {ifindex}")


def xdp_link(ifindex: int, prog_fd: int, flags: int = 0) -> int:
    """Attach a program to a link of the caller's namespace through a BPF link, and return the
    link's fd: closing it (or the process ending) detaches the program."""
    opts = BpfLinkCreateOpts(sz=ctypes.sizeof(BpfLinkCreateOpts), flags=flags)
    return _check(lib().bpf_link_create(prog_fd, ifindex, BPF_XDP, ctypes.byref(opts)),
                  f"attaching XDP to ifindex {ifindex} through a BPF link")


def tcx_link(ifindex: int, prog_fd: int) -> int:
    """Attach a SCHED_CLS program at the ingress of a link of the caller's namespace with tcx
    (Linux 6.6+), held by a BPF link: its fd is returned, and closing it (or the process
    ending, or the device going with its namespace) detaches the program."""
    opts = BpfLinkCreateOpts(sz=ctypes.sizeof(BpfLinkCreateOpts), flags=0)
    return _check(lib().bpf_link_create(prog_fd, ifindex, BPF_TCX_INGRESS, ctypes.byref(opts)),
                  f"attaching tcx ingress to ifindex {ifindex}")


def possible_cpus() -> int:
    """CPUs a per-CPU map holds a value for (the possible ones, not only the online)."""
    return _check(lib().libbpf_num_possible_cpus(), "counting the possible CPUs")


def prog_run(prog_fd: int, opts: ctypes._Pointer[BpfTestRunOpts]) -> None:
    """One BPF_PROG_RUN; ``opts`` is a prebuilt pointer, so the hot path allocates nothing."""
    ret = lib().bpf_prog_test_run_opts(prog_fd, opts)
    if ret < 0:
        raise KernelError(f"BPF_PROG_RUN: {os.strerror(-ret)}")
