"""The libbpf calls vrlab needs, through ctypes (Debian's libbpf1).

libbpf reads a clang-built ELF object and its BTF, loads its maps and programs, and knows the
bpf(2) syscall number and attribute layout of every architecture, so nothing here hard-codes
them. Errors come back as negative errno values (libbpf 1.x's convention) and are raised as
``KernelError``; a missing libbpf is a ``ToolchainError``."""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import struct
from pathlib import Path

from vrlab.errors import KernelError, ToolchainError

#: UAPI ``BPF_F_TEST_XDP_LIVE_FRAMES`` (linux/bpf.h): frames really leave, and the program's
#: XDP_TX or XDP_REDIRECT verdict sends them.
BPF_F_TEST_XDP_LIVE_FRAMES = 1 << 1
#: UAPI ``XDP_FLAGS_*`` (linux/if_link.h): refuse to replace a program already attached, generic
#: XDP (run on skbs the device received), and native XDP (in the driver, refused where the
#: driver has none).
XDP_FLAGS_UPDATE_IF_NOEXIST = 1 << 0
XDP_FLAGS_SKB_MODE = 1 << 1
XDP_FLAGS_DRV_MODE = 1 << 2
#: UAPI ``enum bpf_attach_type`` (linux/bpf.h): an XDP program held by a link; tcx ingress.
BPF_XDP = 37
BPF_TCX_INGRESS = 46
#: The kernel's upper bound on ``batch_size`` in live-frames mode (TEST_XDP_MAX_BATCH).
MAX_BATCH_SIZE = 256
#: The kernel's largest queue for a cpumap entry (kernel/bpf/cpumap.c's sanity limit).
CPUMAP_MAX_QUEUE = 16384
#: UAPI ``BTF_KIND_STRUCT`` (linux/btf.h)
BTF_KIND_STRUCT = 4


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
        raise ToolchainError("libbpf not found: apt-get install libbpf1 (./bootstrap.sh does)")
    try:
        so = ctypes.CDLL(name, use_errno=True)
    except OSError as e:
        raise ToolchainError(f"cannot load {name}: {e}") from e
    vp, i, u32, sz = ctypes.c_void_p, ctypes.c_int, ctypes.c_uint32, ctypes.c_size_t
    cp = ctypes.c_char_p
    for fn, res, args in (
        ("bpf_object__open_file", vp, [cp, vp]),
        ("bpf_object__load", i, [vp]),
        ("bpf_object__close", None, [vp]),
        ("bpf_object__find_program_by_name", vp, [vp, cp]),
        ("bpf_object__next_program", vp, [vp, vp]),
        ("bpf_object__find_map_by_name", vp, [vp, cp]),
        ("bpf_object__next_map", vp, [vp, vp]),
        ("bpf_object__btf", vp, [vp]),
        ("bpf_program__fd", i, [vp]),
        ("bpf_program__name", cp, [vp]),
        ("bpf_program__section_name", cp, [vp]),
        ("bpf_program__set_autoload", i, [vp, ctypes.c_bool]),
        ("bpf_map__fd", i, [vp]),
        ("bpf_map__name", cp, [vp]),
        ("bpf_map__type", i, [vp]),
        ("bpf_map__key_size", u32, [vp]),
        ("bpf_map__value_size", u32, [vp]),
        ("bpf_map__max_entries", u32, [vp]),
        ("bpf_map__set_type", i, [vp, i]),
        ("bpf_map__set_max_entries", i, [vp, u32]),
        ("bpf_map__update_elem", i, [vp, vp, sz, vp, sz, ctypes.c_uint64]),
        ("bpf_map__lookup_elem", i, [vp, vp, sz, vp, sz, ctypes.c_uint64]),
        ("bpf_map_update_elem", i, [i, vp, vp, ctypes.c_uint64]),
        ("bpf_map_lookup_elem", i, [i, vp, vp]),
        ("bpf_map_delete_elem", i, [i, vp]),
        ("bpf_map_get_next_key", i, [i, vp, vp]),
        ("bpf_map_get_fd_by_id", i, [u32]),
        ("bpf_prog_get_fd_by_id", i, [u32]),
        ("bpf_obj_get_info_by_fd", i, [i, vp, ctypes.POINTER(u32)]),
        ("libbpf_num_possible_cpus", i, []),
        ("bpf_prog_attach", i, [i, i, i, u32]),
        ("bpf_prog_test_run_opts", i, [i, ctypes.POINTER(BpfTestRunOpts)]),
        ("bpf_xdp_attach", i, [i, i, u32, vp]),
        ("bpf_xdp_detach", i, [i, u32, vp]),
        ("bpf_link_create", i, [i, i, ctypes.c_int, ctypes.POINTER(BpfLinkCreateOpts)]),
        ("btf__find_by_name_kind", i, [vp, cp, u32]),
        ("btf__type_by_id", vp, [vp, u32]),
        ("btf__name_by_offset", cp, [vp, u32]),
        ("btf__resolve_size", ctypes.c_long, [vp, u32]),
    ):
        f = getattr(so, fn)
        f.restype, f.argtypes = res, args
    _lib = so
    return so


def check(ret: int, what: str) -> int:
    """``ret`` if it is not a negative errno, else a ``KernelError`` saying ``what`` failed."""
    if ret < 0:
        raise KernelError(f"{what}: {os.strerror(-ret)}")
    return ret


def errno_of(ret: int) -> int:
    """The errno of a libbpf return value (0 for success)."""
    return -ret if ret < 0 else 0


class BpfObject:
    """An opened (and unless told otherwise, loaded) BPF object file; its maps and programs
    live until ``close``. Opening alone reads the ELF file and needs no privilege; between
    ``BpfObject(path, load=False)`` and ``load()`` programs and maps can still be adjusted."""

    def __init__(self, path: Path, load: bool = True,
                 max_entries: dict[str, int] | None = None) -> None:
        """``max_entries``: array maps sized now, before loading, for what this use needs."""
        so = lib()
        obj = so.bpf_object__open_file(str(path).encode(), None)
        if not obj:
            err = ctypes.get_errno()
            raise KernelError(f"libbpf cannot open {path}: {os.strerror(err)}")
        self.path = path
        self._obj: int | None = obj
        try:
            for name, n in (max_entries or {}).items():
                check(so.bpf_map__set_max_entries(self.map_handle(name), n),
                      f"sizing map {name} to {n}")
        except BaseException:
            self.close()
            raise
        if load:
            self.load()

    @property
    def handle(self) -> int:
        if self._obj is None:
            raise KernelError(f"the BPF object {self.path.name} is closed")
        return self._obj

    def load(self) -> None:
        try:
            check(lib().bpf_object__load(self.handle),
                  f"loading {self.path.name} (is this process root?)")
        except BaseException:
            self.close()
            raise

    def sections(self) -> dict[str, str]:
        """Each program's name and the ELF section it is in (its type, for libbpf)."""
        so, out, prog = lib(), {}, None
        while prog := so.bpf_object__next_program(self.handle, prog):
            out[so.bpf_program__name(prog).decode()] = so.bpf_program__section_name(prog).decode()
        return out

    def _program(self, name: str) -> int:
        prog = lib().bpf_object__find_program_by_name(self.handle, name.encode())
        if not prog:
            raise KernelError(f"no BPF program {name!r} in {self.path.name}")
        return int(prog)

    def set_autoload(self, name: str, load: bool) -> None:
        check(lib().bpf_program__set_autoload(self._program(name), load),
              f"autoload of program {name}")

    def program_fd(self, name: str) -> int:
        return check(lib().bpf_program__fd(self._program(name)), f"fd of program {name}")

    def map_handle(self, name: str) -> int:
        m = lib().bpf_object__find_map_by_name(self.handle, name.encode())
        if not m:
            raise KernelError(f"no map {name} in {self.path.name}")
        return int(m)

    def maps(self) -> dict[str, tuple[int, int, int, int]]:
        """Each map's name and (type, key size, value size, max entries), as declared."""
        so, out, m = lib(), {}, None
        while m := so.bpf_object__next_map(self.handle, m):
            out[so.bpf_map__name(m).decode()] = (so.bpf_map__type(m), so.bpf_map__key_size(m),
                                                 so.bpf_map__value_size(m),
                                                 so.bpf_map__max_entries(m))
        return out

    def map_fd(self, name: str) -> int:
        return check(lib().bpf_map__fd(self.map_handle(name)), f"fd of map {name}")

    def update(self, map_name: str, key: int, value: bytes) -> None:
        """Set element ``key`` (a u32) of the array map ``map_name`` to ``value``."""
        m = self.map_handle(map_name)
        k = ctypes.c_uint32(key)
        v = ctypes.create_string_buffer(value, len(value))
        check(lib().bpf_map__update_elem(m, ctypes.byref(k), ctypes.sizeof(k), v, len(value), 0),
              f"updating {map_name}[{key}]")

    def lookup(self, map_name: str, key: int, size: int) -> bytes:
        """Element ``key`` (a u32) of the array map ``map_name``: ``size`` bytes, which for a
        per-CPU map is every possible CPU's value, each padded to 8 bytes, one after another."""
        m = self.map_handle(map_name)
        k = ctypes.c_uint32(key)
        v = ctypes.create_string_buffer(size)
        check(lib().bpf_map__lookup_elem(m, ctypes.byref(k), ctypes.sizeof(k), v, size, 0),
              f"reading {map_name}[{key}]")
        return v.raw

    def btf(self) -> int:
        """The object's BTF (libbpf's ``struct btf *``), owned by the object."""
        b = lib().bpf_object__btf(self.handle)
        if not b:
            raise KernelError(f"{self.path.name} has no BTF (compile it with -g)")
        return int(b)

    def close(self) -> None:
        if self._obj is not None:
            lib().bpf_object__close(self._obj)
            self._obj = None

    def __enter__(self) -> BpfObject:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def dup(fd: int) -> int:
    """A descriptor of the same kernel object that outlives the object file's own."""
    return os.dup(fd)


def cpumap_value(queue: int, prog_fd: int = -1) -> bytes:
    """A cpumap entry (UAPI ``struct bpf_cpumap_val``): its queue's size, then the fd of the
    program its kernel thread runs on each frame (-1: none, the frame goes up the stack)."""
    return struct.pack("=Ii", queue, prog_fd)


def xdp_attach(ifindex: int, prog_fd: int, flags: int = 0) -> None:
    """Attach a program to a link of the caller's namespace (by default native mode where the
    driver has it, as veth does). It stays attached after its fd is closed, until detached or
    the link goes."""
    check(lib().bpf_xdp_attach(ifindex, prog_fd, flags, None),
          f"attaching XDP to ifindex {ifindex}")


def xdp_detach(ifindex: int) -> None:
    check(lib().bpf_xdp_detach(ifindex, 0, None), f"detaching XDP from ifindex {ifindex}")


def xdp_link(ifindex: int, prog_fd: int, flags: int = 0) -> int:
    """Attach a program to a link of the caller's namespace through a BPF link, and return the
    link's fd: closing it (or the process ending) detaches the program."""
    opts = BpfLinkCreateOpts(sz=ctypes.sizeof(BpfLinkCreateOpts), flags=flags)
    return check(lib().bpf_link_create(prog_fd, ifindex, BPF_XDP, ctypes.byref(opts)),
                 f"attaching XDP to ifindex {ifindex} through a BPF link")


def tcx_attach(prog_fd: int, ifindex: int) -> bool:
    """Attach a SCHED_CLS program to a device's ingress with tcx (Linux 6.6+), from inside the
    device's network namespace: the kernel resolves the index there. The attachment is not tied
    to a link fd, so it lives as long as the device. Returns False if the program was already
    attached there (running ``up`` again); raises ``OSError`` with the kernel's errno otherwise
    (EINVAL: a kernel without tcx)."""
    ret = lib().bpf_prog_attach(prog_fd, ifindex, BPF_TCX_INGRESS, 0)
    if ret == -errno.EEXIST:
        return False
    if ret < 0:
        raise OSError(-ret, os.strerror(-ret))
    return True


def tcx_link(ifindex: int, prog_fd: int) -> int:
    """Attach a SCHED_CLS program at the ingress of a link of the caller's namespace with tcx
    (Linux 6.6+), held by a BPF link: its fd is returned, and closing it (or the process
    ending, or the device going with its namespace) detaches the program."""
    opts = BpfLinkCreateOpts(sz=ctypes.sizeof(BpfLinkCreateOpts), flags=0)
    return check(lib().bpf_link_create(prog_fd, ifindex, BPF_TCX_INGRESS, ctypes.byref(opts)),
                 f"attaching tcx ingress to ifindex {ifindex}")


def prog_run(prog_fd: int, opts: ctypes._Pointer[BpfTestRunOpts]) -> None:
    """One BPF_PROG_RUN; ``opts`` is a prebuilt pointer, so the hot path allocates nothing."""
    ret = lib().bpf_prog_test_run_opts(prog_fd, opts)
    if ret < 0:
        raise KernelError(f"BPF_PROG_RUN: {os.strerror(-ret)}")


def run_once(prog_fd: int, frame: bytes, ctx: XdpMd | None = None) -> int:
    """Run a program once on ``frame`` (BPF_PROG_RUN) and return its verdict."""
    return run_timed(prog_fd, frame, ctx)[0]


def run_timed(prog_fd: int, frame: bytes, ctx: XdpMd | None = None,
             repeat: int = 1) -> tuple[int, int]:
    """Run a program ``repeat`` times on ``frame`` (BPF_PROG_RUN): its verdict, and the
    nanoseconds one run took as the kernel averages them over ``repeat``."""
    data = ctypes.create_string_buffer(frame, len(frame))
    opts = BpfTestRunOpts(sz=ctypes.sizeof(BpfTestRunOpts), data_in=ctypes.addressof(data),
                          data_size_in=len(frame), repeat=repeat)
    if ctx is not None:
        opts.ctx_in = ctypes.addressof(ctx)
        opts.ctx_size_in = ctypes.sizeof(XdpMd)
    prog_run(prog_fd, ctypes.pointer(opts))
    return int(opts.retval), int(opts.duration)


def fd_by_id(kind: str, obj_id: int) -> int:
    """A new fd of the program (``kind`` "prog") or map ("map") with this kernel id; raises
    ``OSError`` when it is gone."""
    get = lib().bpf_prog_get_fd_by_id if kind == "prog" else lib().bpf_map_get_fd_by_id
    ret = int(get(obj_id))
    if ret < 0:
        raise OSError(-ret, os.strerror(-ret))
    return ret


def obj_info(fd: int, size: int) -> bytes:
    """The kernel's ``bpf_prog_info`` or ``bpf_map_info`` of an fd, its first ``size`` bytes."""
    buf = ctypes.create_string_buffer(size)
    n = ctypes.c_uint32(size)
    check(lib().bpf_obj_get_info_by_fd(fd, buf, ctypes.byref(n)), "BPF object info")
    return buf.raw


def possible_cpus() -> int:
    """Per-CPU maps hold one value per *possible* CPU (not online)."""
    return check(lib().libbpf_num_possible_cpus(), "number of possible CPUs")
