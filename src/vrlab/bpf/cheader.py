"""The layouts of a C header shared between a BPF program and Python, read from the header.

A BPF program and the Python code that fills its maps must agree on every byte of a map's key
and value. Written twice (a C struct and a ``struct`` format string) they drift apart, and the
kernel does not notice: a wrong offset shows as a wrong forward. So the header is the one
definition, and this reads it. It reads only a restricted C: ``#define NAME number``, enums of
names (``= number`` allowed) and structs of fixed-size unsigned fields and arrays of them, laid
out as clang lays them out for BPF (natural alignment, no packing); anything else in a
declaration is refused rather than guessed at. A test checks the result against the compiled
object's BTF."""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass
from pathlib import Path

from vrlab.errors import ToolchainError

#: field type -> (size, ``struct`` code)
_TYPES = {"__u8": (1, "B"), "__u16": (2, "H"), "__u32": (4, "I"), "__u64": (8, "Q")}
_COMMENT = re.compile(r"/\*.*?\*/|//[^\n]*", re.S)
_DEFINE = re.compile(r"^\s*#\s*define\s+(\w+)\s+(\w+)\s*$", re.M)
_ENUM = re.compile(r"\benum\s+(\w+)\s*\{([^}]*)\}\s*;")
_STRUCT = re.compile(r"\bstruct\s+(\w+)\s*\{([^}]*)\}\s*;")
_FIELD = re.compile(r"^(__u8|__u16|__u32|__u64)\s+(\w+)\s*(?:\[\s*(\w+)\s*\])?$")


@dataclass(frozen=True)
class Field:
    name: str
    offset: int
    type: str
    count: int  # 1 for a scalar; an array's length

    @property
    def size(self) -> int:
        return _TYPES[self.type][0] * self.count


@dataclass(frozen=True)
class CStruct:
    """A struct's fields, offsets and size, and a ``struct.Struct`` that packs it in the
    machine's byte order (the BPF program runs on this machine). A ``__u8`` array packs as
    bytes; other arrays are not supported."""

    name: str
    fields: tuple[Field, ...]
    size: int

    @property
    def codec(self) -> struct.Struct:
        fmt, at = "=", 0
        for f in self.fields:
            fmt += "x" * (f.offset - at)
            code = _TYPES[f.type][1]
            fmt += f"{f.count}s" if f.type == "__u8" and f.count > 1 else code * f.count
            at = f.offset + f.size
        return struct.Struct(fmt + "x" * (self.size - at))

    def offset(self, name: str) -> int:
        return self.field(name).offset

    def field(self, name: str) -> Field:
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(f"struct {self.name} has no field {name}")

    def pack(self, **values: int | bytes) -> bytes:
        """The struct with these fields set (every field not named is zero)."""
        unknown = set(values) - {f.name for f in self.fields}
        if unknown:
            raise KeyError(f"struct {self.name} has no field(s) {', '.join(sorted(unknown))}")
        args: list[int | bytes] = []
        for f in self.fields:
            v = values.get(f.name, b"" if f.type == "__u8" and f.count > 1 else 0)
            args.append(v)
        return self.codec.pack(*args)

    def unpack(self, data: bytes) -> dict[str, int | bytes]:
        return dict(zip([f.name for f in self.fields], self.codec.unpack_from(data),
                        strict=True))


@dataclass(frozen=True)
class Header:
    defines: dict[str, int]
    enums: dict[str, tuple[tuple[str, int], ...]]
    structs: dict[str, CStruct]

    def enum(self, name: str) -> dict[str, int]:
        return dict(self.enums[name])


def _number(text: str, defines: dict[str, int], where: str) -> int:
    if text in defines:
        return defines[text]
    try:
        return int(text, 0)
    except ValueError:
        raise ToolchainError(f"{where}: {text!r} is not a number or a #define of one") from None


def _struct(name: str, body: str, defines: dict[str, int], source: str) -> CStruct:
    fields: list[Field] = []
    at, align = 0, 1
    for decl in (d.strip() for d in body.split(";")):
        if not decl:
            continue
        m = _FIELD.match(" ".join(decl.split()))
        if m is None:
            raise ToolchainError(f"{source}: struct {name}: cannot read {decl!r} (only __u8, "
                                 "__u16, __u32, __u64 fields and arrays of them)")
        typ, fname, count = m.group(1), m.group(2), m.group(3)
        size = _TYPES[typ][0]
        at = (at + size - 1) // size * size
        n = _number(count, defines, f"{source}: struct {name}.{fname}") if count else 1
        if typ != "__u8" and n != 1:
            raise ToolchainError(f"{source}: struct {name}.{fname}: arrays of {typ} are not "
                                 "supported")
        fields.append(Field(fname, at, typ, n))
        at += size * n
        align = max(align, size)
    return CStruct(name, tuple(fields), (at + align - 1) // align * align)


def parse(text: str, source: str = "header") -> Header:
    text = _COMMENT.sub(" ", text)
    defines: dict[str, int] = {}
    for name, value in _DEFINE.findall(text):
        defines[name] = _number(value, defines, f"{source}: #define {name}")
    enums: dict[str, tuple[tuple[str, int], ...]] = {}
    for name, body in _ENUM.findall(text):
        items, nxt = [], 0
        for item in (i.strip() for i in body.split(",")):
            if not item:
                continue
            key, _, value = (s.strip() for s in item.partition("="))
            nxt = _number(value, defines, f"{source}: enum {name}") if value else nxt
            items.append((key, nxt))
            nxt += 1
        enums[name] = tuple(items)
    structs = {name: _struct(name, body, defines, source) for name, body in _STRUCT.findall(text)}
    return Header(defines, enums, structs)


def read(path: Path) -> Header:
    return parse(path.read_text(), path.name)
