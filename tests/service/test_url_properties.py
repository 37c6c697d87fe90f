"""Properties of the URL policy over generated input (hypothesis): a password never survives redact(),
and an address literal is refused exactly when its class needs a permission the defaults do not give."""

from __future__ import annotations

import string

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from service.errors import ServiceError
from service.settings import Settings
from service.urls import METADATA_ADDRESSES, check_stream_url, redact

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


@settings(max_examples=300, deadline=None)
@given(ip=st.ip_addresses(), port=st.none() | st.integers(1, 65535))
def test_address_literals_follow_the_policy(ip, port):
    host = f"[{ip}]" if ip.version == 6 else str(ip)
    url = f"rtsp://{host}{f':{port}' if port else ''}/stream"
    plain = ip.ipv4_mapped if ip.version == 6 and ip.ipv4_mapped is not None else ip
    refused = (plain in METADATA_ADDRESSES or plain.is_link_local or plain.is_loopback or plain.is_unspecified
               or plain.is_multicast or plain.is_reserved)
    try:
        check_stream_url(url, DEFAULTS)
        accepted = True
    except ServiceError as e:
        assert e.status == 422 and "refused" in e.message, e.message
        accepted = False
    assert accepted != refused, (url, plain)


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
