"""SSH failures that need no SSH server, each one error naming the host and what to check, and
the CLI's answer to a bad testbed file: the field, before anything connects. Real sockets and
files, no root."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from vrlab.hosts import spec
from vrlab.hosts.errors import HostAuthFailed, HostUnreachable
from vrlab.hosts.ssh import connect


def closed_port() -> int:
    """A local TCP port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make_testbed(tmp_path: Path, key_text: str, port: int) -> spec.TestbedFile:
    (tmp_path / "id").write_text(key_text)
    (tmp_path / "known_hosts").write_text("")
    data = {"name": "t", "known_hosts": "known_hosts",
            "hosts": {"tester": {"address": "127.0.0.1", "port": port, "key": "id",
                                 "roles": ["tester"]},
                      "sut": {"address": "127.0.0.1", "port": port, "key": "id",
                              "roles": ["sut"]}},
            "cables": [{"from": "tester:e1", "to": "sut:e1"},
                       {"from": "sut:e2", "to": "tester:e2"}]}
    p = tmp_path / "tb.yaml"
    p.write_text(yaml.safe_dump(data))
    return spec.load(p)[0]


def a_key() -> str:
    import asyncssh

    return asyncssh.generate_private_key("ssh-ed25519").export_private_key().decode()


def test_nothing_listening_is_unreachable(tmp_path: Path) -> None:
    port = closed_port()
    tb = make_testbed(tmp_path, a_key(), port)
    with pytest.raises(HostUnreachable,
                       match=rf"^host sut \(root@127\.0\.0\.1:{port}\): connection refused"):
        asyncio.run(connect(tb, "sut"))


def test_a_key_file_that_is_no_key(tmp_path: Path) -> None:
    tb = make_testbed(tmp_path, "hello\n", closed_port())
    with pytest.raises(HostAuthFailed, match=r"host tester .*key .*id.*hosts\.tester\.key"):
        asyncio.run(connect(tb, "tester"))


def test_the_cli_names_the_field_of_a_bad_testbed_file(tmp_path: Path) -> None:
    (tmp_path / "id").write_text("x")
    bad = {"name": "t", "hosts": {"a": {"address": "h", "key": "id", "roles": ["tester"]},
                                  "s": {"address": "h", "port": 0, "key": "id",
                                        "roles": ["sut"]}},
           "cables": [{"from": "a:e1", "to": "s:e1"}, {"from": "s:e2", "to": "a:e2"}]}
    p = tmp_path / "tb.yaml"
    p.write_text(yaml.safe_dump(bad))
    for args in (["hosts", "check"], ["clean"]):
        r = subprocess.run([sys.executable, "-m", "vrlab.cli", *args, "--testbed", str(p)],
                           capture_output=True, text=True, timeout=60, check=False)
        assert r.returncode == 2, r.stderr
        assert "hosts.s.port:" in r.stderr and "greater than or equal to 1" in r.stderr
