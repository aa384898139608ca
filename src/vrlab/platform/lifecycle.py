"""``vrlab up``, ``down``, ``exec`` and the platform part of ``status``.

A platform outlives the command that built it. Its ledger (the same kind the testbed keeps)
names every namespace, link and process; once ``up`` has finished, the ledger's owner becomes
the FIB sync agent, the platform's one long-lived process. So ``vrlab clean`` leaves a running
platform alone and removes one whose agent died with nobody to restart it, and ``vrlab up``
on a platform that is already up checks it and restarts what died (the agent re-syncs from
scratch without touching routes that are already right)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import socket
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pyroute2 import IPRoute

from vrlab import net, nsexec
from vrlab.engines.ebpf.engine import EbpfEngine, EngineIds
from vrlab.errors import KernelError, UsageError, VrlabError
from vrlab.ledger import Ledger, alive, state_dir
from vrlab.platform import build as pbuild
from vrlab.platform import control
from vrlab.platform.fibsync.config import SyncConfig, SyncRouter
from vrlab.platform.fibsync.daemon import spawn
from vrlab.platform.layout import PlatformLayout, make_layout
from vrlab.platform.spec import Platform
from vrlab.platform.spec import load as load_spec


def platforms_dir() -> Path:
    return state_dir() / "platforms"


@dataclass
class PlatformState:
    name: str
    run_id: str
    spec_path: str
    spec_sha: str
    engine: dict[str, int] | None = None
    #: how the engine was attached where frames arrive to be forwarded (xdp, xdp-generic,
    #: tcx, clsact: ``engines.ebpf.engine.Attachment``)
    hook: str | None = None
    agent: dict[str, int] | None = None
    birds: dict[str, dict[str, int]] = field(default_factory=dict)

    @property
    def workdir(self) -> Path:
        return platforms_dir() / self.name

    @property
    def ledger(self) -> Ledger:
        return Ledger(state_dir() / "runs" / f"{self.run_id}.jsonl")

    def save(self) -> None:
        platforms_dir().mkdir(parents=True, exist_ok=True)
        path = platforms_dir() / f"{self.name}.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=1))
        tmp.replace(path)

    @classmethod
    def read(cls, name: str) -> PlatformState | None:
        path = platforms_dir() / f"{name}.json"
        try:
            return cls(**json.loads(path.read_text()))
        except FileNotFoundError:
            return None

    def remove(self) -> None:
        (platforms_dir() / f"{self.name}.json").unlink(missing_ok=True)


def all_states() -> list[PlatformState]:
    d = platforms_dir()
    if not d.is_dir():
        return []
    out = []
    for p in sorted(d.glob("*.json")):
        st = PlatformState.read(p.stem)
        if st is not None:
            out.append(st)
    return out


def pick(name: str | None) -> PlatformState:
    """The platform a command means: the named one, or the only one that is up."""
    states = all_states()
    if name is not None:
        for st in states:
            if st.name == name:
                return st
        have = ", ".join(s.name for s in states) or "none is up"
        raise UsageError(f"no platform {name} is up ({have}); `vrlab up SPEC` builds one")
    if not states:
        raise UsageError("no platform is up; `vrlab up SPEC` builds one")
    if len(states) > 1:
        raise UsageError("several platforms are up (" + ", ".join(s.name for s in states)
                         + "); say which with --platform NAME")
    return states[0]


# --------------------------------------------------------------------------- agent


def _sync_config(layout: PlatformLayout, workdir: Path) -> SyncConfig:
    routers = tuple(
        SyncRouter(name=r.name, guest_ns=r.guest_ns, table=r.table,
                   ports={p.name: p.engine_if for p in r.ports}, subnets=r.subnets,
                   max_routes=r.spec.limit(None if shared else 4),
                   max_routes6=None if shared else r.spec.limit(6))
        for r in layout.routers if r.forwarding == "shared"
        for shared in (isinstance(r.spec.max_routes, int),))
    return SyncConfig(engine_ns=layout.engine_ns, routers=routers,
                      log_path=str(workdir / "fibsync.log"),
                      status_path=str(workdir / "fibsync.status.json"))


def start_agent(layout: PlatformLayout, workdir: Path, ledger: Ledger) -> tuple[int, int]:
    workdir.mkdir(parents=True, exist_ok=True)
    pid, start = spawn(_sync_config(layout, workdir), workdir / "fibsync.json")
    ledger.record("proc", pid=pid, start=start, what="fib sync agent")
    return pid, start


def wait_synced(layout: PlatformLayout, workdir: Path, timeout: float = 20.0) -> None:
    """Wait until every shared router's engine table holds its connected and static routes
    and its static neighbours: a trial must not start while the agent is still copying."""
    want = {r.table: (len(r.subnets) + len(r.spec.control_plane.routes),
                      {r.port(nb.port).engine_if for nb in r.spec.control_plane.neighbors},
                      len(r.spec.control_plane.neighbors))
            for r in layout.routers if r.forwarding == "shared"}
    deadline = time.monotonic() + timeout
    with IPRoute(netns=layout.engine_ns) as eng:
        names: dict[int, str] = {}
        while True:
            routes: dict[int, int] = {}
            for fam in (socket.AF_INET, socket.AF_INET6):
                for rt in eng.get_routes(family=fam):  # every table (table=0 would filter)
                    t = rt.get("RTA_TABLE") or rt["table"]
                    routes[t] = routes.get(t, 0) + 1
            if not names:
                names = {lk["index"]: lk.get("IFLA_IFNAME") for lk in eng.get_links()}
            neigh: dict[str, int] = {}
            for fam in (socket.AF_INET, socket.AF_INET6):
                for nb in eng.get_neighbours(family=fam):
                    n = names.get(nb["ifindex"], "")
                    neigh[n] = neigh.get(n, 0) + 1
            missing = [t for t, (nr, devs, nn) in want.items()
                       if routes.get(t, 0) < nr or sum(neigh.get(d, 0) for d in devs) < nn]
            if not missing:
                return
            if time.monotonic() > deadline:
                raise KernelError(f"the FIB sync agent did not mirror {len(missing)} router(s)' "
                                  f"tables in {timeout:.0f} s (e.g. table {missing[0]}); see "
                                  f"{workdir / 'fibsync.log'}")
            time.sleep(0.05)


def start_control_planes(layout: PlatformLayout, workdir: Path,
                         ledger: Ledger) -> dict[str, dict[str, int]]:
    birds = {}
    for r in layout.routers:
        pbuild.static_control_plane(r)
        if r.spec.control_plane.kind == "bird":
            pid, start = control.start_bird(r, workdir, ledger)
            birds[r.name] = {"pid": pid, "start": start}
    return birds


# --------------------------------------------------------------------------- up / down


def spec_digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def up(spec_path: str) -> tuple[PlatformState, bool, list[str]]:
    """Build the platform, or check and heal it if it is up already. Returns the state,
    whether it was built now, and what was restarted."""
    spec, text = load_spec(spec_path)
    net.require_root()
    sha = spec_digest(text)
    st = PlatformState.read(spec.name)
    if st is not None and st.ledger.path.exists():
        if st.spec_sha != sha:
            raise UsageError(f"platform {spec.name} is up with a different spec "
                             f"({st.spec_path}); `vrlab down {spec.name}` first")
        return st, False, heal(st, spec)
    if st is not None:  # a state file without its ledger: its objects are gone already
        st.remove()
    led = Ledger.create(f"platform {spec.name}")
    layout = make_layout(spec, led.run_id)
    st = PlatformState(spec.name, led.run_id, str(Path(spec_path).resolve()), sha)
    try:
        engine = pbuild.build(layout, led)
        if engine is not None:
            st.engine = asdict(engine.ids())
            st.hook = engine.attachment
            engine.close()
        st.birds = start_control_planes(layout, st.workdir, led)
        pid, start = start_agent(layout, st.workdir, led)
        st.agent = {"pid": pid, "start": start}
        st.save()
        led.record("owner", pid=pid, start=start, label=f"platform {spec.name} (fib sync agent)")
    except BaseException:
        net.teardown(led)
        st.remove()
        raise
    return st, True, []


def heal(st: PlatformState, spec: Platform) -> list[str]:
    """Restart the agent and BIRD daemons that died; everything else is left as it is."""
    layout = make_layout(spec, st.run_id)
    led = st.ledger
    restarted = []
    for r in layout.routers:
        b = st.birds.get(r.name)
        if b is not None and not alive(b["pid"], b["start"]):
            pid, start = control.start_bird(r, st.workdir, led)
            st.birds[r.name] = {"pid": pid, "start": start}
            restarted.append(f"bird for {r.name}")
    if st.agent is None or not alive(st.agent["pid"], st.agent["start"]):
        pid, start = start_agent(layout, st.workdir, led)
        st.agent = {"pid": pid, "start": start}
        led.record("owner", pid=pid, start=start, label=f"platform {spec.name} (fib sync agent)")
        restarted.append("fib sync agent (re-synced)")
    st.save()
    return restarted


def down(name: str | None) -> list[str]:
    st = pick(name)
    net.require_root()
    removed = net.teardown(st.ledger) if st.ledger.path.exists() else []
    st.remove()
    shutil.rmtree(st.workdir, ignore_errors=True)  # configs, sockets, the agent's log
    return removed


# --------------------------------------------------------------------------- status


@dataclass(frozen=True)
class RouterStatus:
    name: str
    forwarding: str
    guest_ns: str
    table: int
    routes: int
    counters: dict[str, int]
    refused: int


def layout_of(st: PlatformState) -> PlatformLayout:
    spec, _ = load_spec(st.spec_path)
    return make_layout(spec, st.run_id)


def router_status(st: PlatformState) -> list[RouterStatus]:
    layout = layout_of(st)
    engine = EbpfEngine.open(EngineIds(**st.engine)) if st.engine else None
    agent: dict[str, Any] = {}
    with contextlib.suppress(OSError, ValueError):
        agent = json.loads((st.workdir / "fibsync.status.json").read_text())
    out = []
    try:
        with IPRoute(netns=layout.engine_ns) as eng:
            for r in layout.routers:
                fams = (socket.AF_INET, socket.AF_INET6)
                if r.forwarding == "shared":
                    routes = sum(len(eng.get_routes(table=r.table, family=f)) for f in fams)
                else:
                    with IPRoute(netns=r.guest_ns) as g:
                        routes = sum(len(g.get_routes(table=254, family=f)) for f in fams)
                counters = engine.counters(r.index) if engine and r.forwarding == "shared" else {}
                per = agent.get("routers", agent).get(r.name, {}) if isinstance(agent, dict) else {}
                out.append(RouterStatus(r.name, r.forwarding, r.guest_ns, r.table, routes,
                                        counters, int(per.get("refused", 0))))
    finally:
        if engine is not None:
            engine.close()
    return out


# --------------------------------------------------------------------------- exec


def exec_target(st: PlatformState, target: str) -> str:
    """The namespace a target names: a router (its guest), ROUTER/PORT (the site behind a
    dedicated port), an uplink (its outside end), or 'engine'."""
    layout = layout_of(st)
    if target == "engine":
        return layout.engine_ns
    router_name, _, port = target.partition("/")
    for r in layout.routers:
        if r.name == router_name:
            if not port:
                return r.guest_ns
            for p in r.ports:
                if p.name == port:
                    if p.site_ns is None:
                        raise UsageError(f"{target}: port {port} is on an uplink; exec into "
                                         "the uplink's name instead")
                    return p.site_ns
            raise UsageError(f"{target}: {r.name} has no port {port}; ports: "
                             + ", ".join(p.name for p in r.ports))
    for u in layout.uplinks:
        if u.name == target and u.outside_ns:
            return u.outside_ns
    names = [r.name for r in layout.routers] + [u.name for u in layout.uplinks] + ["engine"]
    raise UsageError(f"{target}: not a router, ROUTER/PORT, uplink or 'engine' of platform "
                     f"{st.name}; one of: {', '.join(names)}")


def exec_in(ns: str, argv: list[str]) -> None:
    """Become the command inside the namespace (setns, then execvp): signals and the exit
    status are the command's own."""
    if not argv:
        raise UsageError("nothing to run: vrlab exec ROUTER -- CMD [ARGS...]")
    try:
        nsexec.enter(ns)
    except OSError as e:
        raise KernelError(f"cannot enter {ns}: {e}") from e
    try:
        os.execvp(argv[0], argv)
    except OSError as e:
        raise VrlabError(f"cannot run {argv[0]}: {e.strerror}") from e


__all__ = ["PlatformState", "alive", "down", "exec_in", "exec_target", "pick",
           "router_status", "up"]
