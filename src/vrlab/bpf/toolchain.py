"""Compile a BPF program's C source with clang at first use and keep the object in a cache.

Compiled at first use, not shipped: the object depends on the installed libbpf headers and
clang, and a wheel holding BPF bytecode would hide that. The cache key hashes the source, the
headers it includes, the compiler's version and its flags, so editing the program or upgrading
clang rebuilds it and nothing else does. The object is written to a temporary name and renamed
into place, so two processes building at once both end up with a whole file."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

from vrlab.errors import ToolchainError

CFLAGS = ("-O2", "-g", "-target", "bpf")
INSTALL = "apt-get install clang libbpf-dev (./bootstrap.sh installs them)"


def cache_dir() -> Path:
    """``$XDG_STATE_HOME/vrlab/bpf``, else ``~/.local/state/vrlab/bpf``: compiled objects
    survive reboots (unlike the ledgers under /run) and belong to the user who built them."""
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "vrlab" / "bpf"


def find_clang() -> str:
    clang = shutil.which("clang")
    if clang is None:
        raise ToolchainError(f"clang not found: vrlab compiles its BPF programs at first use; "
                             f"{INSTALL}")
    return clang


def _run(argv: list[str]) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    except OSError as e:
        raise ToolchainError(f"cannot run {argv[0]}: {e}") from e


def clang_version(clang: str) -> str:
    r = _run([clang, "--version"])
    if r.returncode != 0:
        raise ToolchainError(f"{clang} --version failed: {r.stderr.strip()}")
    return r.stdout.splitlines()[0].strip() if r.stdout else ""


def include_flags(clang: str) -> list[str]:
    """``-I/usr/include/<multiarch>``: ``linux/bpf.h`` includes ``asm/types.h``, which Debian
    keeps under the host's multiarch directory, where ``-target bpf`` does not look."""
    r = _run([clang, "-print-multiarch"])
    arch = r.stdout.strip() if r.returncode == 0 else ""
    d = Path("/usr/include") / arch
    return [f"-I{d}"] if arch and d.is_dir() else []


def _explain(stderr: str) -> str:
    if "bpf/bpf_helpers.h" in stderr and "not found" in stderr:
        return f"the libbpf headers are missing: {INSTALL}"
    if ("linux/bpf.h" in stderr or "asm/" in stderr) and "not found" in stderr:
        return "the kernel's UAPI headers are missing: apt-get install linux-libc-dev"
    return "clang could not compile it"


def build(source: Path, cache: Path | None = None, headers: Sequence[Path] = (),
          flags: Sequence[str] = ()) -> Path:
    """Path of the compiled object of ``source``, compiling it into ``cache`` if needed.
    ``headers``: the local files it includes (part of the cache key); ``flags``: clang's
    beyond ``CFLAGS``."""
    clang = find_clang()
    argv_flags = [*CFLAGS, *flags, *include_flags(clang)]
    h = hashlib.sha256()
    parts = [source.read_bytes(), *(p.read_bytes() for p in headers),
             clang_version(clang).encode(), " ".join(argv_flags).encode()]
    for part in parts:
        h.update(part)
        h.update(b"\0")
    out_dir = cache if cache is not None else cache_dir()
    out = out_dir / f"{source.name.removesuffix('.c')}-{h.hexdigest()[:16]}.o"
    if out.is_file():
        return out
    out_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out_dir, prefix=".build-", suffix=".o")
    os.close(fd)
    try:
        r = _run([clang, *argv_flags, "-c", str(source), "-o", tmp])
        if r.returncode != 0:
            raise ToolchainError(f"compiling {source.name}: {_explain(r.stderr)}\n"
                                 f"{r.stderr.strip()}")
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return out
