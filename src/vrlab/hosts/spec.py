"""The testbed file: which machines play the paper's roles (traffic generator ``tg``, system
under test ``sut``, traffic sink ``ts``), how vrlab reaches each over SSH, and which interface
on which machine is cabled to which.

Pure data, validated before anything connects: a mistake is reported with its attribute path
(``hosts.sut.port``, ``cables[1].to``) and the fix, like a scenario file. Physical interfaces are
named, never created: vrlab touches no interface the file does not name, so the cables are the
whole of what it may use on each machine besides its own namespaces."""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from vrlab.errors import SpecError
from vrlab.validate import problems, read_spec_file, read_yaml

Role = Literal["tg", "ts", "sut", "tester"]

#: a host's name in the file: short, so it fits in messages and tables
HOST_NAME = r"^[a-z][a-z0-9-]{0,30}$"
#: Linux interface names: at most 15 bytes, no '/', ':' or whitespace
IFNAME = re.compile(r"^[A-Za-z0-9_.@-]{1,15}$")
#: a DNS name (RFC 1123 labels); IP literals are checked with ipaddress
_DNS = re.compile(r"^(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.?)+$")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class HostSpec(_Model):
    """One machine and how to reach it."""

    address: str = Field(description="SSH destination: a DNS name or an IP address")
    port: int = Field(22, ge=1, le=65535, description="the SSH server's TCP port")
    user: str = Field("root", pattern=r"^[a-z_][a-z0-9_-]{0,31}$",
                      description="remote user; vrlab builds namespaces there, so root")
    key: Path = Field(description="private key file for this host (relative paths are taken "
                      "from the testbed file's folder)")
    known_hosts: Path | None = Field(
        None, description="known_hosts file that holds this host's key; default: the "
        "testbed's known_hosts, else ~/.ssh/known_hosts")
    roles: list[Role] = Field(min_length=1, description="tg, ts, sut; tester = tg and ts")
    vrlab: str = Field("vrlab", min_length=1, description="the command that runs vrlab on "
                       "this host (a path when it is not on the remote PATH)")

    @field_validator("address")
    @classmethod
    def _address(cls, v: str) -> str:
        try:
            ipaddress.ip_address(v)
            return v
        except ValueError:
            pass
        if not _DNS.match(v):
            raise ValueError(f"{v!r} is neither an IP address nor a DNS name; give what you "
                             "would pass to ssh, without user@ or :port (those are user: and "
                             "port:)")
        return v

    @field_validator("roles")
    @classmethod
    def _roles(cls, v: list[Role]) -> list[Role]:
        if len(set(v)) != len(v):
            raise ValueError("a role is listed twice; list each once")
        return v

    @property
    def role_set(self) -> frozenset[str]:
        out = set(self.roles)
        if "tester" in out:
            out |= {"tg", "ts"}
            out.discard("tester")
        return frozenset(out)

    @property
    def destination(self) -> str:
        return f"{self.user}@{self.address}:{self.port}"


class CableSpec(_Model):
    """One cable, in the direction the test traffic flows: ``from`` sends, ``to`` receives.

    Each end is ``HOST:INTERFACE``."""

    from_: str = Field(alias="from", description="HOST:INTERFACE that sends")
    to: str = Field(description="HOST:INTERFACE that receives")

    @field_validator("from_", "to")
    @classmethod
    def _end(cls, v: str) -> str:
        host, sep, ifname = v.partition(":")
        if not sep or not re.match(HOST_NAME, host) or not IFNAME.match(ifname):
            raise ValueError(f"{v!r} is not HOST:INTERFACE; write e.g. sut:enp1s0f0 (a host "
                             "named under hosts:, an interface name of at most 15 characters)")
        return v

    @property
    def ends(self) -> tuple[tuple[str, str], tuple[str, str]]:
        a, _, ai = self.from_.partition(":")
        b, _, bi = self.to.partition(":")
        return (a, ai), (b, bi)


class TestbedFile(_Model):
    """The whole testbed: its hosts, the two cables of the paper's TG -> SUT -> TS path, and
    optionally the TG -> TS cable calibration runs over when tg and ts are two machines."""

    __test__ = False  # not a pytest class, whatever its name

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,40}$", description="the testbed's name, "
                      "recorded with every result")
    description: str = ""
    known_hosts: Path | None = Field(None, description="known_hosts file for every host that "
                                     "does not name its own")
    connect_timeout_s: float = Field(10.0, gt=0, le=300, description="how long to wait for a "
                                     "host's SSH server before calling it unreachable")
    hosts: dict[str, HostSpec] = Field(min_length=2, description="name: host")
    cables: list[CableSpec] = Field(min_length=2, max_length=2, description="the cable from "
                                    "the generator to the SUT and the one from the SUT to the "
                                    "sink")
    calibration_cable: CableSpec | None = Field(
        None, description="optional, with tg and ts on two machines: a cable from the "
        "generator's host straight to the sink's, which calibration (the paper's Fig. 4) "
        "measures them over; a tester links its tg to its ts itself")

    @field_validator("hosts")
    @classmethod
    def _host_names(cls, v: dict[str, HostSpec]) -> dict[str, HostSpec]:
        for name in v:
            if not re.match(HOST_NAME, name):
                raise ValueError(f"host name {name!r} must be lowercase letters, digits and "
                                 "'-', starting with a letter, at most 31 characters")
        return v

    @model_validator(mode="after")
    def _roles_and_cables(self) -> TestbedFile:
        for role in ("tg", "sut", "ts"):
            having = [n for n, h in self.hosts.items() if role in h.role_set]
            if len(having) != 1:
                raise ValueError(f"hosts: exactly one host must have role {role} "
                                 f"(found {len(having)}: {', '.join(having) or 'none'}); "
                                 "tester stands for tg and ts on one host")
        sut = self.sut
        if self.hosts[sut].role_set != {"sut"}:
            raise ValueError(f"hosts: {sut} is the SUT and may play no other role; the "
                             "generator and sink belong on other machines")
        seen: dict[tuple[str, str], str] = {}
        for i, c in enumerate(self.cables):
            for field, (host, ifname) in zip(("from", "to"), c.ends, strict=True):
                where = f"cables[{i}].{field}"
                self._known_host(where, host)
                self._free_end(where, host, ifname, seen)
                seen[host, ifname] = where
        (a, _), (b, _) = self.cables[0].ends
        if (a, b) != (self.tg, sut):
            raise ValueError(f"cables: the first cable must run from the generator's host "
                             f"({self.tg}) to the SUT ({sut}); it runs {a} -> {b}")
        (a, _), (b, _) = self.cables[1].ends
        if (a, b) != (sut, self.ts):
            raise ValueError(f"cables: the second cable must run from the SUT ({sut}) to the "
                             f"sink's host ({self.ts}); it runs {a} -> {b}")
        if self.calibration_cable is not None:
            self._calibration_cable(self.calibration_cable, seen)
        return self

    def _calibration_cable(self, c: CableSpec, seen: dict[tuple[str, str], str]) -> None:
        """The direct cable: only between two machines, from the generator's host to the
        sink's, on interfaces no other cable ends at."""
        if self.tg == self.ts:
            raise ValueError(f"calibration_cable: {self.tg} is a tester (tg and ts on one "
                             "host), which links its generator to its sink itself (a veth pair "
                             "vrlab makes there); remove calibration_cable")
        for field, (host, ifname), want, role in zip(
                ("from", "to"), c.ends, (self.tg, self.ts), ("generator", "sink"), strict=True):
            where = f"calibration_cable.{field}"
            self._known_host(where, host)
            if host != want:
                raise ValueError(f"{where}: {host} is not the {role}'s host; the calibration "
                                 f"cable runs from the generator's host ({self.tg}) straight "
                                 f"to the sink's ({self.ts}): write {want}:INTERFACE")
            self._free_end(where, host, ifname, seen, ", so the calibration cable needs a "
                           "port of its own at each end")

    def _known_host(self, where: str, host: str) -> None:
        """A cable end's host is one of the file's."""
        if host not in self.hosts:
            raise ValueError(f"{where}: no host named {host!r}; hosts are "
                             f"{', '.join(self.hosts)}")

    @staticmethod
    def _free_end(where: str, host: str, ifname: str, seen: dict[tuple[str, str], str],
                  hint: str = "") -> None:
        """A cable end no earlier cable (``seen``: end -> where it was named) ends at."""
        if (host, ifname) in seen:
            raise ValueError(f"{where}: {host}:{ifname} is already the end of "
                             f"{seen[host, ifname]}; each interface takes one cable{hint}")

    def _with(self, role: str) -> str:
        return next(n for n, h in self.hosts.items() if role in h.role_set)

    @property
    def tg(self) -> str:
        return self._with("tg")

    @property
    def ts(self) -> str:
        return self._with("ts")

    @property
    def sut(self) -> str:
        return self._with("sut")

    @property
    def all_cables(self) -> list[CableSpec]:
        """The two cables through the SUT, and the calibration cable when there is one."""
        return [*self.cables, *([self.calibration_cable] if self.calibration_cable else [])]

    def interfaces(self, host: str) -> list[str]:
        """The interfaces of ``host`` the cables name (the calibration cable's too): the only
        ones vrlab may touch there."""
        return [ifname for c in self.all_cables for (h, ifname) in c.ends if h == host]

    def known_hosts_for(self, host: str) -> Path | None:
        return self.hosts[host].known_hosts or self.known_hosts


# --------------------------------------------------------------------------- loading

DOCS = "docs/multihost.md"


def _resolve(p: Path, base: Path) -> Path:
    p = p.expanduser()
    return p if p.is_absolute() else base / p


def _files_exist(tb: TestbedFile, base: Path) -> tuple[TestbedFile, list[tuple[str, str]]]:
    """Key and known_hosts paths made absolute (relative to the file's folder), and a problem
    for each that is not a readable file: found now, not at the first connection."""
    bad: list[tuple[str, str]] = []

    def check(path: Path, where: str, what: str) -> Path:
        full = _resolve(path, base)
        if not full.is_file():
            bad.append((where, f"{full}: no such file; give the path of the {what}"))
        elif not _readable(full):
            bad.append((where, f"{full}: cannot be read; check its permissions"))
        return full

    hosts = {}
    for name, h in tb.hosts.items():
        key = check(h.key, f"hosts.{name}.key", "private key vrlab logs in with")
        kh = (check(h.known_hosts, f"hosts.{name}.known_hosts", "known_hosts file")
              if h.known_hosts else None)
        hosts[name] = h.model_copy(update={"key": key, "known_hosts": kh})
    kh_all = (check(tb.known_hosts, "known_hosts", "known_hosts file")
              if tb.known_hosts else None)
    return tb.model_copy(update={"hosts": hosts, "known_hosts": kh_all}), bad


def _readable(p: Path) -> bool:
    try:
        with p.open("rb"):
            return True
    except OSError:
        return False


def parse(data: object, source: str, base: Path) -> TestbedFile:
    """Validate a mapping as a testbed file; paths in it are taken from ``base``."""
    if not isinstance(data, dict):
        raise SpecError(source, [("(top)", "a testbed file is a YAML mapping with name:, "
                                  f"hosts: and cables: (see {DOCS})")])
    try:
        tb = TestbedFile.model_validate(data)
    except ValidationError as e:
        raise SpecError(source, problems(e, TestbedFile, DOCS)) from None
    tb, bad = _files_exist(tb, base)
    if bad:
        raise SpecError(source, bad)
    return tb


def load(path: Path) -> tuple[TestbedFile, str]:
    """Read and validate a testbed file; returns it with its text (stored with results)."""
    text = read_spec_file(path, "testbed", f" (see {DOCS})")
    data = read_yaml(text, str(path))
    return parse(data, str(path), path.resolve().parent), text
