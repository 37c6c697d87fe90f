"""Properties of the URL policy over generated input (hypothesis): a password never survives redact(),
and an address literal is refused exactly when its class, or that of an IPv4 address it carries, needs a
permission the defaults do not give."""

from __future__ import annotations

import ipaddress
import string

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from service.cameras.urls import METADATA_ADDRESSES, check_stream_url, redact
from service.errors import ServiceError
from service.settings import Settings

DEFAULTS = Settings(_env_file=None)
USERINFO = string.ascii_letters + string.digits + "-._~!$&'()*+,;=%:@"  # what a user may type, "@" included


@settings(max_examples=300, deadline=None)
@given(scheme=st.sampled_from(["rtsp", "rtsps", "http", "https"]), user=st.text(USERINFO, min_size=1, max_size=12),
       password=st.text(USERINFO, min_size=6, max_size=24), host=st.ip_addresses(v=4).map(str),
       path=st.text(string.ascii_letters + "/._-", max_size=20), context=st.sampled_from(
           ["{}", "cannot open: {}: Connection refused", '"WebSocket /ws?x={}" [accepted]']))
def test_a_password_never_survives_redaction(scheme, user, password, host, path, context):
    url = f"{scheme}://{user}:{password}@{host}/{path}"
    assume(password not in f"{scheme}://{host}/{path}" and password not in context)
    out = redact(context.format(url))
    assert password not in out and f"{scheme}://***@{host}/" in out


def _v6(prefix: int, bits: int, v4: ipaddress.IPv4Address, shift: int = 0) -> ipaddress.IPv6Address:
    return ipaddress.IPv6Address(prefix << (128 - bits) | int(v4) << shift)


# IPv6 forms that carry an IPv4 address: mapped, NAT64 (well-known prefix), 6to4, Teredo, IPv4-compatible
CARRIERS = st.one_of(
    st.ip_addresses(v=4).map(lambda v4: _v6(0xFFFF, 96, v4)),
    st.ip_addresses(v=4).map(lambda v4: _v6(0x64FF9B, 32, v4)),
    st.ip_addresses(v=4).map(lambda v4: _v6(0x2002, 16, v4, 80)),
    st.tuples(st.ip_addresses(v=4), st.ip_addresses(v=4)).map(
        lambda sc: ipaddress.IPv6Address(0x20010000 << 96 | int(sc[0]) << 64 | (~int(sc[1]) & 0xFFFFFFFF))),
    st.ip_addresses(v=4).map(lambda v4: _v6(0, 96, v4)),
)


def carried(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> list:
    """What the policy must judge: an IPv4-mapped or NAT64 address is its IPv4 address; another IPv6 address is
    itself and every IPv4 address it embeds (6to4, Teredo server and client, IPv4-compatible)."""
    if ip.version == 4:
        return [ip]
    last32 = ipaddress.IPv4Address(ip.packed[-4:])
    if ip.ipv4_mapped is not None or ip in ipaddress.ip_network("64:ff9b::/96"):
        return [last32]
    compatible = ip in ipaddress.ip_network("::/96") and int(ip) > 1
    return [ip, *filter(None, [ip.sixtofour, *(ip.teredo or ()), compatible and last32])]


@settings(max_examples=500, deadline=None)
@given(ip=st.ip_addresses() | CARRIERS, port=st.none() | st.integers(1, 65535))
def test_address_literals_follow_the_policy(ip, port):
    host = f"[{ip}]" if ip.version == 6 else str(ip)
    url = f"rtsp://{host}{f':{port}' if port else ''}/stream"
    refused = any(p in METADATA_ADDRESSES or p.is_link_local or p.is_loopback or p.is_unspecified or p.is_multicast
                  or p.is_reserved for p in carried(ip))
    try:
        check_stream_url(url, DEFAULTS)
        accepted = True
    except ServiceError as e:
        assert e.status == 422 and "refused" in e.message, e.message
        accepted = False
    assert accepted != refused, (url, carried(ip))


@settings(max_examples=300, deadline=None)
@given(text=st.text(max_size=200))
def test_any_text_is_answered_with_a_reason(text):
    """Whatever is sent as a stream URL (no scheme needing DNS here), the answer is a target or a 422."""
    assume("://" not in text)
    try:
        check_stream_url(text, DEFAULTS)
    except ServiceError as e:
        assert e.status == 422 and e.message
    else:
        raise AssertionError(f"accepted {text!r}")
