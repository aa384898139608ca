"""The bpf(2) system call and a small eBPF assembler, through ctypes.

Why hand-assembled: the shared engine's program is about 250 instructions, and compiling
C would need clang/LLVM (hundreds of MB, not on a fresh machine) plus an ELF loader with map
relocations (libbpf has no maintained Python binding; bcc needs kernel headers this kernel does
not ship). The kernel's verifier checks every instruction we hand it, and the system tests run
the program on real frames, so the risk of hand assembly is caught where it matters.

Only what the engine needs is here: maps (create, update, lookup, delete, iterate, by id),
program load with the verifier's log on failure, and object info."""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from vrlab.errors import KernelError

_libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
_SYS_BPF = 321  # x86_64

# commands
MAP_CREATE, MAP_LOOKUP_ELEM, MAP_UPDATE_ELEM, MAP_DELETE_ELEM, MAP_GET_NEXT_KEY = 0, 1, 2, 3, 4
PROG_LOAD = 5
PROG_ATTACH = 8
PROG_GET_FD_BY_ID, MAP_GET_FD_BY_ID, OBJ_GET_INFO_BY_FD = 13, 14, 15

# map types
MAP_HASH, MAP_ARRAY, MAP_PERCPU_ARRAY = 1, 2, 6
PROG_SCHED_CLS = 3
# attach types
TCX_INGRESS = 46

# instruction classes, sizes, modes, ops
LD, LDX, ST, STX, ALU, JMP, JMP32, ALU64 = 0, 1, 2, 3, 4, 5, 6, 7
W, H, B, DW = 0x00, 0x08, 0x10, 0x18
IMM, MEM, ATOMIC = 0x00, 0x60, 0xC0
K, X = 0x00, 0x08
ALU_OPS = {"add": 0x00, "sub": 0x10, "mul": 0x20, "or": 0x40, "and": 0x50, "lsh": 0x60,
           "rsh": 0x70, "xor": 0xA0, "mov": 0xB0, "arsh": 0xC0}
JMP_OPS = {"ja": 0x00, "jeq": 0x10, "jgt": 0x20, "jge": 0x30, "jset": 0x40, "jne": 0x50,
           "jsgt": 0x60, "jsge": 0x70, "jlt": 0xA0, "jle": 0xB0}
CALL, EXIT = 0x80, 0x90
PSEUDO_MAP_FD = 1
ATOMIC_ADD = 0x00
FETCH = 0x01


def sys_bpf(cmd: int, attr: bytes | bytearray) -> int:
    buf = ctypes.create_string_buffer(bytes(attr), len(attr))
    ret = int(_libc.syscall(_SYS_BPF, cmd, buf, len(attr)))
    if ret < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return ret


def sys_bpf_buf(cmd: int, buf: ctypes.Array[ctypes.c_char]) -> int:
    ret = int(_libc.syscall(_SYS_BPF, cmd, buf, len(buf)))
    if ret < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return ret


def _addr(buf: ctypes.Array[ctypes.c_char]) -> int:
    return ctypes.addressof(buf)


# --------------------------------------------------------------------------- maps


class Map:
    """A kernel BPF map held by an fd; keys and values are bytes of the declared sizes."""

    def __init__(self, fd: int, key_size: int, value_size: int, max_entries: int,
                 percpu: bool = False) -> None:
        self.fd = fd
        self.key_size = key_size
        self.value_size = value_size
        self.max_entries = max_entries
        self.percpu = percpu

    @classmethod
    def create(cls, map_type: int, key_size: int, value_size: int, max_entries: int,
               name: str) -> Map:
        attr = bytearray(72)
        struct.pack_into("=IIIIIII", attr, 0, map_type, key_size, value_size, max_entries,
                         0, 0, 0)
        attr[28:28 + 15] = name.encode()[:15].ljust(15, b"\0")
        try:
            fd = sys_bpf(MAP_CREATE, attr)
        except OSError as e:
            raise KernelError(f"creating BPF map {name}: {e.strerror}") from e
        return cls(fd, key_size, value_size, max_entries, map_type == MAP_PERCPU_ARRAY)

    @classmethod
    def from_id(cls, map_id: int) -> Map:
        attr = struct.pack("=I", map_id).ljust(16, b"\0")
        try:
            fd = sys_bpf(MAP_GET_FD_BY_ID, attr)
        except OSError as e:
            raise KernelError(f"BPF map id {map_id} is gone ({e.strerror}): is the platform "
                              "still up?") from e
        info = map_info(fd)
        return cls(fd, info.key_size, info.value_size, info.max_entries,
                   info.type == MAP_PERCPU_ARRAY)

    @property
    def _value_bytes(self) -> int:
        if not self.percpu:
            return self.value_size
        return ((self.value_size + 7) // 8) * 8 * possible_cpus()

    def _op(self, cmd: int, key: bytes, value: ctypes.Array[ctypes.c_char] | None,
            flags: int = 0) -> None:
        kbuf = ctypes.create_string_buffer(key, self.key_size)
        attr = ctypes.create_string_buffer(32)
        struct.pack_into("=IIQQQ", attr, 0, self.fd, 0, _addr(kbuf),
                         _addr(value) if value is not None else 0, flags)
        sys_bpf_buf(cmd, attr)

    def update(self, key: bytes, value: bytes) -> None:
        vbuf = ctypes.create_string_buffer(value, self._value_bytes)
        try:
            self._op(MAP_UPDATE_ELEM, key, vbuf)
        except OSError as e:
            raise KernelError(f"BPF map update failed: {e.strerror}") from e

    def lookup(self, key: bytes) -> bytes | None:
        vbuf = ctypes.create_string_buffer(self._value_bytes)
        try:
            self._op(MAP_LOOKUP_ELEM, key, vbuf)
        except OSError:
            return None
        return vbuf.raw

    def lookup_percpu(self, key: bytes) -> list[bytes]:
        raw = self.lookup(key)
        if raw is None:
            return []
        step = ((self.value_size + 7) // 8) * 8
        return [raw[i:i + self.value_size] for i in range(0, len(raw), step)]

    def delete(self, key: bytes) -> bool:
        try:
            self._op(MAP_DELETE_ELEM, key, None)
        except OSError:
            return False
        return True

    def iter_keys(self) -> Iterator[bytes]:
        prev: bytes | None = None
        while True:
            kbuf = ctypes.create_string_buffer(prev or b"", self.key_size)
            nbuf = ctypes.create_string_buffer(self.key_size)
            attr = ctypes.create_string_buffer(32)
            struct.pack_into("=IIQQ", attr, 0, self.fd, 0,
                             _addr(kbuf) if prev is not None else 0, _addr(nbuf))
            try:
                sys_bpf_buf(MAP_GET_NEXT_KEY, attr)
            except OSError:
                return
            prev = nbuf.raw
            yield prev

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


@dataclass(frozen=True)
class MapInfo:
    type: int
    id: int
    key_size: int
    value_size: int
    max_entries: int
    name: str


def map_info(fd: int) -> MapInfo:
    info = ctypes.create_string_buffer(88)
    attr = ctypes.create_string_buffer(16)
    struct.pack_into("=IIQ", attr, 0, fd, len(info), _addr(info))
    sys_bpf_buf(OBJ_GET_INFO_BY_FD, attr)
    t, mid, ks, vs, me, _flags = struct.unpack_from("=IIIIII", info.raw, 0)
    name = info.raw[24:40].split(b"\0", 1)[0].decode()
    return MapInfo(t, mid, ks, vs, me, name)


def tcx_attach(prog_fd: int, ifindex: int) -> bool:
    """Attach a SCHED_CLS program to a device's ingress with tcx (Linux 6.6+), from inside the
    device's network namespace: the kernel resolves the index there. The attachment is not tied
    to a link fd, so it lives as long as the device. Returns False if the program was already
    attached there (running ``up`` again)."""
    attr = struct.pack("=IIII", ifindex, prog_fd, TCX_INGRESS, 0).ljust(40, b"\0")
    try:
        sys_bpf(PROG_ATTACH, attr)
    except OSError as e:
        if e.errno == errno.EEXIST:
            return False
        raise
    return True


def possible_cpus() -> int:
    """Per-CPU maps hold one value per *possible* CPU (not online): read the kernel's list."""
    text = Path("/sys/devices/system/cpu/possible").read_text().strip()
    n = 0
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        n = max(n, int(hi or lo) + 1)
    return n


# --------------------------------------------------------------------------- assembler


@dataclass
class Asm:
    """Instructions with symbolic jump labels, resolved by ``assemble``."""

    insns: list[tuple[int, int, int, int, int] | tuple[str, str]] = field(default_factory=list)

    def _emit(self, code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> None:
        self.insns.append((code, dst, src, off, imm))

    # ALU
    def alu64(self, op: str, dst: int, imm: int) -> None:
        self._emit(ALU64 | ALU_OPS[op] | K, dst, 0, 0, imm)

    def alu64r(self, op: str, dst: int, src: int) -> None:
        self._emit(ALU64 | ALU_OPS[op] | X, dst, src)

    def alu32(self, op: str, dst: int, imm: int) -> None:
        self._emit(ALU | ALU_OPS[op] | K, dst, 0, 0, imm)

    def mov(self, dst: int, src: int) -> None:
        self.alu64r("mov", dst, src)

    def movi(self, dst: int, imm: int) -> None:
        self.alu64("mov", dst, imm)

    # memory
    def ldx(self, size: int, dst: int, src: int, off: int) -> None:
        self._emit(LDX | size | MEM, dst, src, off)

    def stx(self, size: int, dst: int, off: int, src: int) -> None:
        self._emit(STX | size | MEM, dst, src, off)

    def st(self, size: int, dst: int, off: int, imm: int) -> None:
        self._emit(ST | size | MEM, dst, 0, off, imm)

    def atomic_add(self, size: int, dst: int, off: int, src: int, fetch: bool = False) -> None:
        self._emit(STX | size | ATOMIC, dst, src, off, ATOMIC_ADD | (FETCH if fetch else 0))

    def ld_map(self, dst: int, m: Map) -> None:
        self._emit(LD | DW | IMM, dst, PSEUDO_MAP_FD, 0, m.fd)
        self._emit(0, 0, 0, 0, 0)

    # control
    def jmp(self, op: str, dst: int, imm: int, label: str) -> None:
        self.insns.append((f"{op}:k:{dst}:{imm}", label))

    def jmpr(self, op: str, dst: int, src: int, label: str) -> None:
        self.insns.append((f"{op}:x:{dst}:{src}", label))

    def ja(self, label: str) -> None:
        self.insns.append(("ja:k:0:0", label))

    def label(self, name: str) -> None:
        self.insns.append(("label", name))

    def call(self, helper: int) -> None:
        self._emit(JMP | CALL, 0, 0, 0, helper)

    def exit(self) -> None:
        self._emit(JMP | EXIT)

    def assemble(self) -> bytes:
        labels: dict[str, int] = {}
        pc = 0
        for ins in self.insns:
            if ins[0] == "label":
                labels[str(ins[1])] = pc
            else:
                pc += 1
        out = bytearray()
        pc = 0
        for ins in self.insns:
            if ins[0] == "label":
                continue
            if isinstance(ins[0], str):
                spec, target = ins[0], str(ins[1])
                op, kind, a, b = spec.split(":")
                if target not in labels:
                    raise KernelError(f"BPF assembler: no label {target}")
                off = labels[target] - pc - 1
                code = JMP | JMP_OPS[op] | (X if kind == "x" else K)
                dst = int(a)
                src, imm = (int(b), 0) if kind == "x" else (0, int(b))
                out += struct.pack("<BBhi", code, dst | (src << 4), off, imm)
            else:
                code, dst, src, off, imm = ins
                out += struct.pack("<BBhi", code, dst | (src << 4), off, imm)
            pc += 1
        return bytes(out)


def load_program(insns: bytes, name: str, prog_type: int = PROG_SCHED_CLS) -> int:
    """Load a program; on refusal raise with the verifier's own explanation."""
    license_ = ctypes.create_string_buffer(b"GPL")
    code = ctypes.create_string_buffer(insns, len(insns))
    log = ctypes.create_string_buffer(1 << 20)

    def attempt(log_level: int) -> int:
        attr = ctypes.create_string_buffer(128)
        struct.pack_into("=IIQQIIQ", attr, 0, prog_type, len(insns) // 8, _addr(code),
                         _addr(license_), log_level, len(log) if log_level else 0,
                         _addr(log) if log_level else 0)
        struct.pack_into("=15s", attr, 48, name.encode()[:15])
        return sys_bpf_buf(PROG_LOAD, attr)

    try:
        return attempt(0)
    except OSError:
        pass
    try:  # again, this time asking the verifier to explain
        return attempt(1)
    except OSError as e:
        text = log.value.decode(errors="replace").strip().splitlines()
        raise KernelError(f"the kernel refused BPF program {name}: {e.strerror}\n"
                          + "\n".join(text[-25:])) from e
