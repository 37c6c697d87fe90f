"""Stream URL policy: allowed schemes, no file sources or link-local/metadata hosts unless allowed,
and credentials redacted wherever a URL is shown (responses, logs, metric labels, error messages)."""

from __future__ import annotations

import contextlib
import ipaddress
import re
import socket
import threading
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from service.errors import ServiceError
from service.settings import Settings

METADATA_HOSTS = {"metadata.google.internal", "metadata", "instance-data", "instance-data.ec2.internal"}
METADATA_ADDRESSES = {ipaddress.ip_address(a) for a in (
    "169.254.169.254",  # AWS, GCP, Azure, OCI, DigitalOcean, OpenStack
    "fd00:ec2::254",  # AWS over IPv6
    "100.100.100.200",  # Alibaba Cloud (in the shared address space, not link-local)
)}
# user:pass@ up to the last "@" before the path: a password may hold a raw "@" (FFmpeg reads it so too)
_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)[^/\s]*@")
_SECRET_QUERY = re.compile(r"(?i)([?&][\w.-]*?(?:pass(?:word)?|pwd|token|key|secret|auth|sig|signature)=)[^&\s\"']*")
RESOLVE_TIMEOUT_S = 2.0


def redact(text: str) -> str:
    """Hide `user:pass@` and secret-looking query values in a URL, or in any text that contains URLs."""
    return _SECRET_QUERY.sub(r"\1***", _USERINFO.sub(r"\g<scheme>***@", text))


@dataclass(frozen=True)
class StreamTarget:
    url: str  # what FFmpeg opens (a path for file sources)
    is_file: bool


def _classify(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str:
    """The address class, each with its own permission."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip in METADATA_ADDRESSES or ip.is_link_local:
        return "link-local"
    if ip.is_loopback or ip.is_unspecified:
        return "loopback"
    if ip.is_multicast or ip.is_reserved:
        return "reserved"
    if ip.is_private or not ip.is_global:  # RFC 1918, ULA, and the shared space 100.64/10 (CGNAT, Tailscale)
        return "private"
    return "public"


def _resolve(host: str) -> list[str]:
    """Addresses of `host`, or [] when it cannot be resolved within the timeout."""
    out: list[str] = []

    def run() -> None:
        with contextlib.suppress(OSError, UnicodeError, ValueError):  # unresolvable, or not a valid name
            out.extend(ai[4][0] for ai in socket.getaddrinfo(host, None))

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(RESOLVE_TIMEOUT_S)
    return list(out)


def _check_host(host: str, settings: Settings) -> None:
    name = host.lower().rstrip(".")
    if name in METADATA_HOSTS and not settings.allow_link_local:
        raise ServiceError(422, f"host {host} is a cloud metadata endpoint; refused")
    if name == "localhost" or name.endswith(".localhost"):
        addresses = ["127.0.0.1"]
    else:
        try:
            addresses = [str(ipaddress.ip_address(name.strip("[]").split("%")[0]))]
        except ValueError:
            addresses = _resolve(name)
    allowed = {"link-local": settings.allow_link_local, "loopback": settings.allow_loopback,
               "private": settings.allow_private_addresses, "public": settings.allow_public_addresses,
               "reserved": False}
    setting = {"link-local": "OCRGAN_ALLOW_LINK_LOCAL", "loopback": "OCRGAN_ALLOW_LOOPBACK",
               "private": "OCRGAN_ALLOW_PRIVATE_ADDRESSES", "public": "OCRGAN_ALLOW_PUBLIC_ADDRESSES",
               "reserved": None}
    for a in addresses:
        kind = _classify(ipaddress.ip_address(a.split("%")[0]))
        if not allowed[kind]:
            how = f" (set {setting[kind]}=true to allow)" if setting[kind] else ""
            raise ServiceError(422, f"host {host} is a {kind} address ({a}); refused{how}")


def check_stream_url(url: str, settings: Settings) -> StreamTarget:
    """Validate a camera URL against the settings; raises ServiceError(422) saying what is refused."""
    url = url.strip()
    if any(c in url for c in "\r\n\t\0"):
        raise ServiceError(422, "the stream URL contains control characters")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises on a port that is not a number in range
    except ValueError as e:
        raise ServiceError(422, f"the stream URL cannot be parsed ({e})") from e
    scheme = parts.scheme.lower()
    if scheme in ("", "file") or (len(scheme) == 1 and url[1:3] in (":\\", ":/")):  # bare path, file://, C:\
        if not settings.allow_file_sources:
            raise ServiceError(422, "file sources and local paths are not allowed as streams "
                                    "(set OCRGAN_ALLOW_FILE_SOURCES=true to allow)")
        path = Path(parts.path if scheme == "file" else url)
        if not path.is_file():
            raise ServiceError(422, f"no such file: {path}")
        return StreamTarget(str(path), True)
    if scheme not in settings.allowed_schemes:
        allowed = ", ".join(settings.allowed_schemes)
        raise ServiceError(422, f"URL scheme {scheme!r} is not allowed (allowed: {allowed})")
    if not parts.hostname:
        raise ServiceError(422, f"the {scheme} URL has no host")
    _check_host(parts.hostname, settings)
    return StreamTarget(urlunsplit(parts._replace(scheme=scheme)), False)
