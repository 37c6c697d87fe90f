"""The suite runs where nothing can be reached beyond loopback (`make test` runs it through
scripts/loopback-only.sh), and the connect() trace the service tests rely on sees a connection that
tries to leave."""

from __future__ import annotations

import errno
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from testkit.connect_trace import beyond_loopback, is_local, traced

HOW = "run the suite through `make test`, or `scripts/loopback-only.sh python -m pytest`"


def interfaces() -> list[str]:
    lines = Path("/proc/net/dev").read_text().splitlines()[2:]  # this network namespace's interfaces
    return [line.split(":")[0].strip() for line in lines]


def nameservers() -> list[str]:
    text = Path("/etc/resolv.conf").read_text() if Path("/etc/resolv.conf").exists() else ""
    return [w[1] for w in (line.split() for line in text.splitlines()) if len(w) > 1 and w[0] == "nameserver"]


@pytest.fixture
def isolated() -> None:
    """Fails, without touching the network, unless only loopback is up and names resolve on loopback."""
    if interfaces() != ["lo"]:
        pytest.fail(f"network interfaces {interfaces()} are up besides loopback: {HOW}")
    if not all(is_local(ns) for ns in nameservers()):
        pytest.fail(f"names resolve through {nameservers()}, beyond loopback: {HOW}")


def test_only_loopback_is_up(isolated):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))  # and loopback works
        s.listen()
        with socket.create_connection(s.getsockname(), timeout=2):
            pass


def test_an_address_beyond_loopback_cannot_be_reached(isolated):
    for family, address in ((socket.AF_INET, ("192.0.2.1", 9)), (socket.AF_INET6, ("2001:db8::1", 9))):
        with socket.socket(family, socket.SOCK_STREAM) as s, pytest.raises(OSError) as e:
            s.connect(address)  # a documentation address: refused here before any packet is sent
        assert e.value.errno in (errno.ENETUNREACH, errno.EADDRNOTAVAIL), e.value


def test_the_trace_sees_a_connect_beyond_loopback(isolated, tmp_path):
    log = tmp_path / "connects.log"
    code = ("import socket\n"
            "for fam, addr in ((socket.AF_INET, ('127.0.0.1', 9)), (socket.AF_INET, ('192.0.2.1', 9)),"
            " (socket.AF_INET6, ('2001:db8::1', 554))):\n"
            "    try: socket.socket(fam).connect(addr)\n"
            "    except OSError: pass\n")
    subprocess.run(traced([sys.executable, "-c", code], log), check=True, timeout=60)
    assert beyond_loopback(log) == ["192.0.2.1:9", "2001:db8::1:554"]
