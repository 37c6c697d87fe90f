"""Every connect() a process, its threads and its children make, seen by strace: how a test shows that a
service it drove connected to nothing beyond loopback."""

from __future__ import annotations

import ipaddress
import re
import shutil
from pathlib import Path

# connect(7, {sa_family=AF_INET, sin_port=htons(554), sin_addr=inet_addr("192.168.1.20")}, 16) = ...
# connect(7, {sa_family=AF_INET6, sin6_port=htons(554), ..., inet_pton(AF_INET6, "2002::1", &sin6_addr), ...
_CONNECT = re.compile(r'connect\(\d+, \{sa_family=AF_INET6?, sin6?_port=htons\((?P<port>\d+)\),'
                      r'.*?(?:inet_addr\("(?P<v4>[^"]+)"\)|inet_pton\(AF_INET6, "(?P<v6>[^"]+)")')


def traced(argv: list[str], log: Path) -> list[str]:
    """`argv` under strace, recording its connect() calls (and those of every thread and child) in `log`."""
    strace = shutil.which("strace", path="/usr/sbin:/usr/bin:/sbin:/bin")
    if strace is None:
        raise RuntimeError("strace is not installed: run scripts/system-deps.sh")
    return [strace, "-f", "-qq", "--seccomp-bpf", "-e", "trace=connect", "-e", "signal=none",
            "-o", str(log), "--", *argv]


def connects(log: Path) -> list[tuple[str, int]]:
    """(address, port) of every IPv4 and IPv6 connect() in a trace, in order, refused ones included."""
    out = []
    for m in _CONNECT.finditer(log.read_text(errors="replace")):
        out.append((m["v4"] or m["v6"], int(m["port"])))
    return out


def is_local(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%")[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback or ip.is_unspecified  # the unspecified address reaches this host


def beyond_loopback(log: Path) -> list[str]:
    """The connects of a trace that went, or tried to go, beyond this machine ("address:port")."""
    return [f"{a}:{p}" for a, p in connects(log) if not is_local(a)]
