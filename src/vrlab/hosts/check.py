"""Is each host of a testbed fit to run its part? Checked over SSH before anything is built:
vrlab logs in as root, the kernel has what the testbed uses, the tools are there, vrlab is
the same version as here (the hosts build from the same plans), and each interface the cables
name exists, is up, and is not the one vrlab's own SSH session comes in on (configuring that
one would cut vrlab off from the host).

Every host is checked at once, each over its one connection, and a host that cannot be reached
is a row of the report like any other failure, so one run shows everything to fix."""

from __future__ import annotations

import asyncio
import ipaddress
import json
from dataclasses import dataclass, field

from vrlab import __version__
from vrlab.hosts.errors import HostError
from vrlab.hosts.spec import TestbedFile
from vrlab.hosts.ssh import Session, connect

#: commands vrlab runs on a host: iproute2 and nftables for the data path, python3 for vrlab
TOOLS = ("ip", "nft", "python3")
#: kernel features, each a file that exists where the feature does
FEATURES = {"/proc/self/ns/net": "network namespaces",
            "/proc/sys/net/ipv4/ip_forward": "IPv4 forwarding"}
#: interface states a cable may be in: ``unknown`` is what drivers without carrier report
USABLE = ("up", "unknown")
#: a check's commands are small; a host slower than this to answer one is not fit to measure
COMMAND_S = 20.0
_EACH_ARG = 'for a; do {test} || echo "$a"; done'


@dataclass
class HostReport:
    """What one host's checks found; ``problems`` empty means fit."""

    name: str
    roles: str
    destination: str
    kernel: str = "?"
    vrlab: str = "?"
    missing_tools: list[str] = field(default_factory=list)
    interfaces: dict[str, str] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


async def _missing(s: Session, test: str, args: list[str]) -> list[str]:
    """Which of ``args`` fail the shell ``test`` (``$a`` is the argument)."""
    r = await s.run(["sh", "-c", _EACH_ARG.format(test=test), "sh", *args], timeout=COMMAND_S)
    return r.stdout.split()


async def _facts(s: Session, tb: TestbedFile, rep: HostReport) -> None:
    uname, uid, tools, features, version, via = await asyncio.gather(
        s.run(["uname", "-r"], timeout=COMMAND_S),
        s.run(["id", "-u"], timeout=COMMAND_S),
        _missing(s, 'command -v "$a" >/dev/null 2>&1', list(TOOLS)),
        _missing(s, '[ -e "$a" ]', list(FEATURES)),
        s.run([s.spec.vrlab, "--version"], timeout=COMMAND_S, check=False),
        _ssh_interface(s))
    rep.kernel = uname.stdout.strip()
    if uid.stdout.strip() != "0":
        rep.problems.append(f"logs in as uid {uid.stdout.strip()}; vrlab builds namespaces "
                            f"and needs root (hosts.{s.name}.user: root)")
    rep.missing_tools = tools
    if tools:
        rep.problems.append(f"missing tools: {', '.join(tools)} (install iproute2, nftables, "
                            "python3)")
    for f in features:
        rep.problems.append(f"kernel without {FEATURES[f]} ({f} is missing)")
    if version.exit_status != 0:
        rep.vrlab = "missing"
        rep.problems.append(f"`{s.spec.vrlab} --version` failed ({version.exit_status}); "
                            f"install vrlab there or set hosts.{s.name}.vrlab to its path")
    else:
        rep.vrlab = version.stdout.strip().rsplit(" ", 1)[-1]
        if rep.vrlab != __version__:
            rep.problems.append(f"vrlab {rep.vrlab} there, {__version__} here; install the "
                                "same version on every host")
    for ifname in tb.interfaces(s.name):
        r = await s.run(["cat", f"/sys/class/net/{ifname}/operstate"], timeout=COMMAND_S,
                        check=False)
        state = r.stdout.strip() if r.exit_status == 0 else "missing"
        rep.interfaces[ifname] = state
        if ifname == via:
            rep.problems.append(f"{ifname} carries vrlab's own SSH session; cable another "
                                "interface (vrlab would cut itself off)")
        elif state == "missing":
            rep.problems.append(f"no interface {ifname}; fix the cables: entry or the host")
        elif state not in USABLE:
            rep.problems.append(f"interface {ifname} is {state}: check its cable")


async def _ssh_interface(s: Session) -> str | None:
    """The interface vrlab's SSH session arrives on (from SSH_CONNECTION's server address)."""
    conn = await s.run(["sh", "-c", 'echo "$SSH_CONNECTION"'], timeout=COMMAND_S)
    parts = conn.stdout.split()
    if len(parts) != 4:
        return None
    try:
        server = ipaddress.ip_address(parts[2].split("%")[0])
    except ValueError:
        return None
    addrs = await s.run(["ip", "-j", "addr", "show"], timeout=COMMAND_S, check=False)
    try:
        links = json.loads(addrs.stdout or "[]")
    except json.JSONDecodeError:
        return None
    for link in links:
        for a in link.get("addr_info", []):
            if a.get("local") and ipaddress.ip_address(a["local"]) == server:
                return str(link.get("ifname"))
    return None


async def check_host(tb: TestbedFile, name: str) -> HostReport:
    spec = tb.hosts[name]
    rep = HostReport(name, ", ".join(sorted(spec.role_set)), spec.destination)
    try:
        s = await connect(tb, name)
    except HostError as e:
        rep.problems.append(e.problem)
        return rep
    try:
        await _facts(s, tb, rep)
    except HostError as e:
        rep.problems.append(e.problem)
    finally:
        await s.close()
    return rep


async def check_all(tb: TestbedFile) -> list[HostReport]:
    """Every host's report, in the file's order."""
    return list(await asyncio.gather(*(check_host(tb, n) for n in tb.hosts)))
