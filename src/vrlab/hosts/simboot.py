"""The first process of a simulated host: ``python -m vrlab.hosts.simboot NETNS SSHD_CONFIG``.

A simulated host is a network namespace *and* a mount and PID namespace of its own, so what
vrlab does there through SSH (its ledger under /run/vrlab, the namespaces it mounts under
/run/netns, the processes it starts) stays on that host as on a separate machine. This process
dies with the process that started the lab, enters the network namespace, unshares the mount
and PID namespaces, and forks the host's "init": that child mounts a fresh /run, /proc and
/sys, hides root's shell start-up files, and becomes OpenSSH's sshd. It dies with this
process (PR_SET_PDEATHSIG), and as the PID namespace's first process it takes every process
of the host with it: stopping this one by its pid is the host's power switch."""

from __future__ import annotations

import ctypes
import os
import pwd
import signal
import sys
from types import FrameType

from vrlab import nsexec

CLONE_NEWNS = 0x00020000
CLONE_NEWPID = 0x20000000
MS_BIND = 4096
MS_REC = 16384
MS_PRIVATE = 1 << 18
SSHD = "/usr/sbin/sshd"
#: what bash reads when sshd starts it, hidden on a simulated host
STARTUP_FILES = (".bashrc", ".profile", ".bash_profile", ".bash_login")

_libc = ctypes.CDLL(None, use_errno=True)


def _mount(source: bytes, target: bytes, fstype: bytes | None, flags: int,
           data: bytes | None) -> None:
    if _libc.mount(source, target, fstype, flags, data) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mount {target.decode()}: {os.strerror(err)}")


def _init(config: str) -> None:
    """The host's first process: its own /run, /proc and /sys, then sshd in the foreground."""
    nsexec.die_with_parent()
    _mount(b"none", b"/", None, MS_REC | MS_PRIVATE, None)
    _mount(b"vrl-run", b"/run", b"tmpfs", 0, b"mode=0755")
    # root's shell start-up files are this machine's, not the simulated host's: they may run
    # anything (a version manager's rehash, with a lock a powered-off host would leave behind)
    home = pwd.getpwuid(0).pw_dir
    for name in STARTUP_FILES:
        path = os.path.join(home, name)
        if os.path.isfile(path):
            _mount(b"/dev/null", path.encode(), None, MS_BIND, None)
    _mount(b"proc", b"/proc", b"proc", 0, None)
    _mount(b"sysfs", b"/sys", b"sysfs", 0, None)
    os.mkdir("/run/sshd", 0o755)  # sshd's privilege-separation directory
    os.execv(SSHD, [SSHD, "-D", "-e", "-f", config])


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python -m vrlab.hosts.simboot NETNS SSHD_CONFIG", file=sys.stderr)
        return 2
    ns, config = argv
    nsexec.die_with_parent()  # a lab lives as long as the process that started it
    nsexec.enter(ns)
    if _libc.unshare(CLONE_NEWNS | CLONE_NEWPID) != 0:
        err = ctypes.get_errno()
        print(f"unshare: {os.strerror(err)}", file=sys.stderr)
        return 1
    child = os.fork()
    if child == 0:
        try:
            _init(config)
        except OSError as e:
            print(f"simulated host {ns}: {e}", file=sys.stderr)
        os._exit(1)

    def stop(_sig: int, _frame: FrameType | None) -> None:
        os.kill(child, signal.SIGKILL)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    _, status = os.waitpid(child, 0)
    return os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
