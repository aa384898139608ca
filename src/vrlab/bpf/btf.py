"""Struct layouts as a compiled BPF object's BTF records them: what clang really laid out, to
hold the layouts Python reads from the C header (``vrlab.bpf.cheader``) against."""

from __future__ import annotations

import ctypes
import struct

from vrlab.bpf import libbpf
from vrlab.bpf.libbpf import BpfObject
from vrlab.errors import KernelError

#: UAPI ``struct btf_type`` (linux/btf.h): name_off, info, size; then ``vlen`` members of
#: ``struct btf_member``: name_off, type, offset (in bits; with kind_flag, the low 24 bits)
_TYPE = struct.Struct("=III")
_MEMBER = struct.Struct("=III")


def struct_layout(obj: BpfObject, name: str) -> tuple[int, dict[str, tuple[int, int]]]:
    """(size, {field: (offset, size)}) of ``struct name`` in the object's BTF, in bytes."""
    so, btf = libbpf.lib(), obj.btf()
    type_id = so.btf__find_by_name_kind(btf, name.encode(), libbpf.BTF_KIND_STRUCT)
    if type_id < 0:
        raise KernelError(f"no struct {name} in the BTF of {obj.path.name}")
    addr = so.btf__type_by_id(btf, type_id)
    _name, info, size = _TYPE.unpack(ctypes.string_at(addr, _TYPE.size))
    vlen, kind_flag = info & 0xFFFF, info >> 31
    raw = ctypes.string_at(addr + _TYPE.size, _MEMBER.size * vlen)
    fields = {}
    for k in range(vlen):
        name_off, member_type, offset = _MEMBER.unpack_from(raw, k * _MEMBER.size)
        bits = offset & 0xFFFFFF if kind_flag else offset
        fields[so.btf__name_by_offset(btf, name_off).decode()] = (
            bits // 8, int(so.btf__resolve_size(btf, member_type)))
    return size, fields
