"""Shared fixtures: every test gets its own ledger directory and results database, and whatever a
test built (in-process or through a CLI subprocess) is torn down from those ledgers afterwards,
whether the test passed or not.

As root the ledger directories live under /run, not in pytest's temporary folder: a session
killed mid-test (a CI timeout, ``kill -9``) leaves its ledgers there, and the next session
removes what they name before it starts. In pytest's folder they would be deleted, ledgers and
all, three sessions later, leaving namespaces nothing names."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

import vrlab

#: Where this session imports vrlab from (the source tree, or an installed copy): CLI subprocesses
#: are pointed at the same place, so in-process and subprocess tests exercise the same code.
VRLAB_PATH = Path(vrlab.__file__).resolve().parents[1]

try:  # hypothesis keeps no example database in the work tree
    from hypothesis import settings

    settings.register_profile("vrlab", database=None, deadline=None)
    settings.load_profile("vrlab")
except ImportError:  # pragma: no cover - hypothesis is a dev dependency
    pass


@dataclass(frozen=True)
class VrlabEnv:
    """Where this test's vrlab keeps its state, and how to run the CLI against it."""

    state_dir: Path
    db: Path
    env: dict[str, str]  # for subprocesses: the isolated paths, and PYTHONPATH reaching src/

    @property
    def runs_dir(self) -> Path:
        return self.state_dir / "runs"

    def ledger_paths(self) -> list[Path]:
        return sorted(self.runs_dir.glob("*.jsonl")) if self.runs_dir.is_dir() else []

    def cli_args(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "vrlab.cli", *args]

    def run_cli(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self.cli_args(*args), env=self.env, capture_output=True,
                              text=True, timeout=timeout, check=False)

    def spawn_cli(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(self.cli_args(*args), env=self.env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)

    def run_sealed(self, argv: Sequence[str],
                   timeout: float = 60) -> tuple[subprocess.CompletedProcess[str], list[str]]:
        """Run ``argv`` and return, with its result, the namespaces it created.

        As root, ``argv`` runs in a private mount namespace whose /run/netns is an empty tmpfs:
        whatever it creates is listed there, and vanishes with it, whatever other vrlab runs do
        on the host meanwhile. Without root it cannot create any; the host's list is compared."""
        if os.geteuid() != 0:
            before = _netns_names()
            r = subprocess.run(list(argv), env=self.env, capture_output=True, text=True,
                               timeout=timeout, check=False)
            return r, sorted(_netns_names() - before)
        listing = self.db.parent / f"netns-{os.urandom(4).hex()}.txt"
        script = ('mkdir -p /run/netns && mount -t tmpfs vrltest-seal /run/netns || exit 99\n'
                  '"$@"; rc=$?\nls -1 /run/netns > "$VRLTEST_LISTING"\nexit $rc\n')
        r = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script,
                            "sealed", *argv], env={**self.env, "VRLTEST_LISTING": str(listing)},
                           capture_output=True, text=True, timeout=timeout, check=False)
        assert r.returncode != 99, f"could not seal /run/netns: {r.stderr}"
        return r, listing.read_text().split()

    def run_cli_sealed(self, *args: str,
                       timeout: float = 60) -> tuple[subprocess.CompletedProcess[str], list[str]]:
        return self.run_sealed(self.cli_args(*args), timeout)


def _netns_names() -> set[str]:
    d = Path("/run/netns")
    return set(os.listdir(d)) if d.is_dir() else set()


def _subprocess_env(state_dir: Path, db: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["VRLAB_STATE_DIR"] = str(state_dir)
    env["VRLAB_DB"] = str(db)
    rest = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    paths: Sequence[str] = [str(VRLAB_PATH), *rest]
    env["PYTHONPATH"] = os.pathsep.join(paths)
    return env


def _tear_down(paths: Iterable[Path], spare_running: bool = False, whose: str = "") -> int:
    """Remove whatever each ledger of ``paths`` names; how many were left: a ledger whose
    owner still runs (with ``spare_running``), or whose teardown failed (said on stderr, and
    the others cleaned all the same). ``whose``: a killed session's name, to say each object
    it left."""
    from vrlab import ledger, net

    kept = 0
    for path in paths:
        led = ledger.Ledger(path)
        try:
            if spare_running and led.owner_alive():
                kept += 1
                continue
            for what in net.teardown(led):
                if whose:
                    print(f"conftest: {whose} left {what}: removed", file=sys.stderr)
        except Exception as e:
            kept += 1
            print(f"conftest: tearing down {path} failed: {e}", file=sys.stderr)
    return kept


def _teardown_everything(state_dir: Path) -> None:
    """Remove whatever any ledger under ``state_dir`` names (a failed test's leftovers)."""
    runs = state_dir / "runs"
    if os.geteuid() == 0 and runs.is_dir():
        _tear_down(sorted(runs.glob("*.jsonl")))


#: the root sessions' ledger directories, one folder per session named by its pid and start time
STATE_ROOT = Path("/run/vrlab-tests")


def reap_session(session: Path, me: Path) -> None:
    """Tear down what the ledgers of a session no longer running left, then its folder. A
    ledger whose owner still runs (a CLI the killed session started, still going) is left, and
    the folder with it, for a later session; so is a ledger that cannot be read, said on
    stderr, for someone to check by hand as `vrlab clean` asks."""
    from vrlab import ledger

    pid, _, start = session.name.partition("-")
    if session != me and pid.isdigit() and start.isdigit() \
            and ledger.alive(int(pid), int(start)):
        return
    if not _tear_down(sorted(session.rglob("runs/*.jsonl")), spare_running=True,
                      whose=session.name):
        shutil.rmtree(session, ignore_errors=True)


@pytest.fixture(scope="session")
def state_root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Where this session's ledger directories go: without root, pytest's temporary folder
    (nothing it could build outlives it); as root, a folder of its own under :data:`STATE_ROOT`,
    after removing what killed sessions left there."""
    if os.geteuid() != 0:
        yield tmp_path_factory.mktemp("state")
        return
    from vrlab import ledger

    pid = os.getpid()
    me = STATE_ROOT / f"{pid}-{ledger.proc_start_time(pid)}"
    for session in sorted(STATE_ROOT.glob("*")) if STATE_ROOT.is_dir() else ():
        reap_session(session, me)
    me.mkdir(parents=True)
    try:
        yield me
    finally:
        reap_session(me, me)
        with contextlib.suppress(OSError):  # another session's folder is still there
            STATE_ROOT.rmdir()


def state_dir_in(root: Path, name: str) -> Path:
    """A new ledger directory of this session's (``state_root``), named ``name-...``."""
    return Path(tempfile.mkdtemp(prefix=f"{name}-", dir=root))


@pytest.fixture(autouse=True)
def vrlab_env(tmp_path_factory: pytest.TempPathFactory, state_root: Path,
              monkeypatch: pytest.MonkeyPatch) -> Iterator[VrlabEnv]:
    root = tmp_path_factory.mktemp("vrlab")
    state_dir, db = state_dir_in(state_root, "test"), root / "results.sqlite"
    monkeypatch.setenv("VRLAB_STATE_DIR", str(state_dir))
    monkeypatch.setenv("VRLAB_DB", str(db))
    try:
        yield VrlabEnv(state_dir, db, _subprocess_env(state_dir, db))
    finally:
        _teardown_everything(state_dir)
        if not any(state_dir.rglob("runs/*.jsonl")):
            shutil.rmtree(state_dir, ignore_errors=True)
