"""A kernel BPF map held by an fd, read and written through libbpf's map calls.

The shared engine's maps outlive the command that made them (its attachments hold the program,
the program its maps), so later commands reopen them by kernel id: this class works on an fd,
whether it came from a loaded object or from an id."""

from __future__ import annotations

import ctypes
import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass

from vrlab.bpf import libbpf
from vrlab.errors import KernelError

#: UAPI ``enum bpf_map_type`` (linux/bpf.h)
MAP_HASH, MAP_ARRAY, MAP_PERCPU_HASH, MAP_PERCPU_ARRAY = 1, 2, 5, 6
MAP_LRU_PERCPU_HASH = 10
#: the leading fields of UAPI ``struct bpf_map_info``: type, id, key_size, value_size,
#: max_entries, map_flags, name[16]
_INFO = struct.Struct("=IIIIII16s")
#: the leading fields of UAPI ``struct bpf_prog_info``: type, id
_PROG_INFO = struct.Struct("=II")


@dataclass(frozen=True)
class MapInfo:
    type: int
    id: int
    key_size: int
    value_size: int
    max_entries: int
    name: str


def map_info(fd: int) -> MapInfo:
    t, mid, ks, vs, me, _flags, name = _INFO.unpack_from(libbpf.obj_info(fd, _INFO.size))
    return MapInfo(t, mid, ks, vs, me, name.split(b"\0", 1)[0].decode())


def prog_id(fd: int) -> int:
    return int(_PROG_INFO.unpack_from(libbpf.obj_info(fd, _PROG_INFO.size))[1])


class BpfMap:
    """Keys and values are bytes of the map's declared sizes; a per-CPU map's value is one
    slot per possible CPU, each rounded up to 8 bytes."""

    def __init__(self, fd: int) -> None:
        info = map_info(fd)
        self.fd = fd
        self.id = info.id
        self.key_size = info.key_size
        self.value_size = info.value_size
        self.max_entries = info.max_entries
        self.percpu = info.type in (MAP_PERCPU_HASH, MAP_PERCPU_ARRAY, MAP_LRU_PERCPU_HASH)

    @classmethod
    def from_id(cls, map_id: int) -> BpfMap:
        try:
            fd = libbpf.fd_by_id("map", map_id)
        except OSError as e:
            raise KernelError(f"BPF map id {map_id} is gone ({e.strerror}): is the platform "
                              "still up?") from e
        return cls(fd)

    @property
    def _step(self) -> int:
        return (self.value_size + 7) // 8 * 8

    @property
    def _value_bytes(self) -> int:
        return self._step * libbpf.possible_cpus() if self.percpu else self.value_size

    def update(self, key: bytes, value: bytes) -> None:
        k = ctypes.create_string_buffer(key, self.key_size)
        v = ctypes.create_string_buffer(value, self._value_bytes)
        ret = libbpf.lib().bpf_map_update_elem(self.fd, k, v, 0)
        if ret < 0:
            raise KernelError(f"BPF map update failed: {os.strerror(-ret)}")

    def lookup(self, key: bytes) -> bytes | None:
        k = ctypes.create_string_buffer(key, self.key_size)
        v = ctypes.create_string_buffer(self._value_bytes)
        if libbpf.lib().bpf_map_lookup_elem(self.fd, k, v) < 0:
            return None
        return v.raw

    def lookup_percpu(self, key: bytes) -> list[bytes]:
        raw = self.lookup(key)
        if raw is None:
            return []
        return [raw[i:i + self.value_size] for i in range(0, len(raw), self._step)]

    def delete(self, key: bytes) -> bool:
        k = ctypes.create_string_buffer(key, self.key_size)
        return bool(libbpf.lib().bpf_map_delete_elem(self.fd, k) == 0)

    def iter_keys(self) -> Iterator[bytes]:
        prev: ctypes.Array[ctypes.c_char] | None = None
        while True:
            nxt = ctypes.create_string_buffer(self.key_size)
            if libbpf.lib().bpf_map_get_next_key(self.fd, prev, nxt) < 0:
                return
            prev = nxt
            yield nxt.raw

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
