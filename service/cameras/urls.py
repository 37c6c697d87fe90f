"""Stream URL policy: allowed schemes, no file sources or link-local/metadata hosts unless allowed (IPv6 forms that
carry an IPv4 address are judged by that address too), names that resolve, and credentials redacted wherever a URL is
shown (responses, logs, metric labels, error messages). cameras/relay.py holds every connection to the policy."""

from __future__ import annotations

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
NAT64 = ipaddress.ip_network("64:ff9b::/96")  # the well-known prefix (RFC 6052): the last 32 bits are the IPv4 address
IPV4_COMPATIBLE = ipaddress.ip_network("::/96")  # deprecated (RFC 4291), ::a.b.c.d
SETTINGS = {"link-local": "OCRGAN_ALLOW_LINK_LOCAL", "loopback": "OCRGAN_ALLOW_LOOPBACK",
            "private": "OCRGAN_ALLOW_PRIVATE_ADDRESSES", "public": "OCRGAN_ALLOW_PUBLIC_ADDRESSES"}
RESOLVE_TIMEOUT_S = 2.0
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def redact(text: str) -> str:
    """Hide `user:pass@` and secret-looking query values in a URL, or in any text that contains URLs."""
    return _SECRET_QUERY.sub(r"\1***", _USERINFO.sub(r"\g<scheme>***@", text))


@dataclass(frozen=True)
class StreamTarget:
    url: str  # the camera's URL, which FFmpeg opens through service/cameras/relay.py (a path for file sources)
    is_file: bool


def _classify(ip: Address) -> str:
    """The address class, each with its own permission."""
    if ip in METADATA_ADDRESSES or ip.is_link_local:
        return "link-local"
    if ip.is_loopback or ip.is_unspecified:
        return "loopback"
    if ip.is_multicast or ip.is_reserved:
        return "reserved"
    if ip.is_private or not ip.is_global:  # RFC 1918, ULA, and the shared space 100.64/10 (CGNAT, Tailscale)
        return "private"
    return "public"


def _stands_for(ip: Address) -> list[Address]:
    """What a connection to `ip` reaches, each part classified by the policy: an IPv4-mapped or NAT64 address is the
    IPv4 address it carries; a 6to4, Teredo (server and client) or IPv4-compatible address is the IPv4 addresses it
    embeds and itself. The local-use NAT64 prefix 64:ff9b:1::/48 may carry its IPv4 address at several places
    (RFC 8215), so it is not unwrapped and stays reserved."""
    if ip.version == 4:
        return [ip]
    if ip.ipv4_mapped is not None:
        return [ip.ipv4_mapped]
    if ip in NAT64:
        return [ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)]
    embedded: list[ipaddress.IPv4Address] = []
    if ip.sixtofour is not None:
        embedded.append(ip.sixtofour)
    if ip.teredo is not None:
        embedded.extend(ip.teredo)
    if ip in IPV4_COMPATIBLE and int(ip) > 1:  # not :: or ::1
        embedded.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    return [*embedded, ip]


def _lookup(host: str) -> list[str]:
    """The addresses DNS (or /etc/hosts) gives for `host`, each once; [] when it gives none."""
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError, ValueError):  # unresolvable, or not a valid name
        return []
    return list(dict.fromkeys(str(ai[4][0]) for ai in infos))


def _numeric(host: str) -> list[str]:
    """The address `host` spells in a form inet_aton() reads (127.1, 0x7f000001, 2130706433), or [] (no lookup)."""
    try:
        return [str(socket.getaddrinfo(host, None, type=socket.SOCK_STREAM, flags=socket.AI_NUMERICHOST)[0][4][0])]
    except (OSError, UnicodeError, ValueError):
        return []


def _resolve(host: str) -> list[str]:
    """Addresses of `host`; refused (422) when it resolves to nothing within the timeout, so that FFmpeg is never left
    to resolve a name the policy could not check."""
    out: list[str] = []
    t = threading.Thread(target=lambda: out.extend(_lookup(host)), name="ocrgan-resolve", daemon=True)
    t.start()
    t.join(RESOLVE_TIMEOUT_S)
    addresses = list(out)
    if not addresses:
        within = f" within {RESOLVE_TIMEOUT_S:g}s" if t.is_alive() else ""
        raise ServiceError(422, f"host {host} does not resolve{within}")
    return addresses


def allowed_addresses(host: str, settings: Settings, resolve: bool = True) -> list[str]:
    """The addresses of `host`, every one allowed by the settings: what a connection to it may use, and nothing
    else; raises ServiceError(422) saying what is refused. Without `resolve` a name is not looked up (and no
    address is returned for it); an address in any spelling always is checked."""
    name = host.lower().rstrip(".")
    if name in METADATA_HOSTS and not settings.allow_link_local:
        raise ServiceError(422, f"host {host} is a cloud metadata endpoint; refused")
    if name == "localhost" or name.endswith(".localhost"):
        addresses = ["127.0.0.1"]
    else:
        try:
            addresses = [str(ipaddress.ip_address(name.strip("[]").split("%")[0]))]
        except ValueError:
            addresses = _numeric(name) or (_resolve(name) if resolve else [])
    allowed = {"link-local": settings.allow_link_local, "loopback": settings.allow_loopback,
               "private": settings.allow_private_addresses, "public": settings.allow_public_addresses,
               "reserved": False}
    for a in addresses:
        ip = ipaddress.ip_address(a.split("%")[0])
        for part in _stands_for(ip):
            kind = _classify(part)
            if not allowed[kind]:
                how = f" (set {SETTINGS[kind]}=true to allow)" if kind in SETTINGS else ""
                what = a if part == ip else f"{part}, carried by {a}"
                raise ServiceError(422, f"host {host} is a {kind} address ({what}); refused{how}")
    return addresses


def check_stream_url(url: str, settings: Settings, resolve: bool = True) -> StreamTarget:
    """Validate a camera URL against the settings; raises ServiceError(422) saying what is refused. Without
    `resolve` its host name is not looked up: for a camera registered before, whose worker and relay check the
    name at every connection and report a lookup that fails, rather than leave the camera unstarted."""
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
    allowed_addresses(parts.hostname, settings, resolve)
    return StreamTarget(urlunsplit(parts._replace(scheme=scheme)), False)
