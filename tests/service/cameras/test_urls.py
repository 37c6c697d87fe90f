"""Stream URL policy and credential redaction."""

from __future__ import annotations

import time

import pytest

from service.cameras import urls
from service.cameras.urls import allowed_addresses, check_stream_url, redact
from service.errors import ServiceError
from service.settings import Settings


@pytest.fixture
def settings():
    return Settings(_env_file=None)


@pytest.mark.parametrize("url", [
    "rtsp://10.0.0.5:554/stream1", "rtsps://192.168.1.20/live", "http://172.16.3.4/video.mjpg",
    "https://8.8.8.8/cam.m3u8", "RTSP://10.0.0.5/x", "rtsp://100.64.1.2/x",  # the shared space (CGNAT, Tailscale)
    "rtsp://[64:ff9b::808:808]/x", "rtsp://[2002:808:808::1]/x",  # NAT64 and 6to4 forms of a public address
])
def test_allowed(settings, url):
    target = check_stream_url(url, settings)
    assert not target.is_file and target.url.lower() == url.lower()


@pytest.mark.parametrize(("url", "words"), [
    ("file:///etc/passwd", "file sources"),
    ("/dev/video0", "file sources"),
    ("relative/clip.mp4", "file sources"),
    ("ftp://10.0.0.5/x", "scheme 'ftp'"),
    ("gopher://10.0.0.5/x", "scheme 'gopher'"),
    ("rtmp://10.0.0.5/x", "scheme 'rtmp'"),
    ("http://169.254.169.254/latest/meta-data", "link-local"),
    ("http://[fd00:ec2::254]/latest", "link-local"),
    ("http://metadata.google.internal/computeMetadata", "metadata"),
    ("rtsp://[::ffff:169.254.1.1]/x", "link-local"),
    ("rtsp://169.254.10.10/x", "link-local"),
    ("rtsp://127.0.0.1:8554/cam", "loopback"),
    ("rtsp://localhost/cam", "loopback"),
    ("rtsp://[::1]/cam", "loopback"),
    ("rtsp://0.0.0.0/cam", "loopback"),
    ("rtsp:///nohost", "no host"),
    ("rtsp://10.0.0.5/x\r\nInjected: 1", "control characters"),
    ("http://100.100.100.200/latest/meta-data", "link-local"),  # Alibaba Cloud's metadata endpoint
    ("http://2852039166/latest/meta-data", "link-local"),  # 169.254.169.254 as one decimal number
    ("http://0xa9fea9fe/latest/meta-data", "link-local"),  # ... and in hex
    ("rtsp://[fe80::1%25eth0]/x", "link-local"),
    ("rtsp://127.1/x", "loopback"),
    ("rtsp://[::ffff:127.0.0.1]/x", "loopback"),
    ("rtsp://[::1/x", "cannot be parsed"),
    ("rtsp://cam.local:99999/x", "cannot be parsed"),
    # IPv6 forms that carry an IPv4 address are judged by it: 6to4, NAT64, Teredo (server, client), IPv4-compatible
    ("rtsp://[2002:a9fe:a9fe::]/", "link-local address (169.254.169.254, carried by 2002:a9fe:a9fe::)"),
    ("rtsp://[2002:7f00:1::5]/x", "loopback address (127.0.0.1, carried by 2002:7f00:1::5)"),
    ("rtsp://[64:ff9b::a9fe:a9fe]/x", "link-local address (169.254.169.254, carried by 64:ff9b::a9fe:a9fe)"),
    ("rtsp://[64:ff9b::127.0.0.1]/x", "loopback address (127.0.0.1, carried by 64:ff9b::7f00:1)"),
    ("rtsp://[2001:0:a9fe:a9fe::1:1]/x", "link-local address (169.254.169.254, carried by"),  # the Teredo server
    ("rtsp://[2001:0:808:808:0:0:5601:5601]/x", "link-local address (169.254.169.254, carried by"),  # the client
    ("rtsp://[::a9fe:a9fe]/x", "link-local address (169.254.169.254, carried by ::a9fe:a9fe)"),
    ("rtsp://[::ffff:0:a9fe:a9fe]/x", "reserved"),  # IPv4-translated (RFC 2765)
    ("rtsp://[64:ff9b:1::a9fe:a9fe]/x", "reserved"),  # local-use NAT64: where its IPv4 address sits is not known
    # a name that does not resolve is refused, not left for FFmpeg to look up later
    ("rtsp://camera.invalid/x", "host camera.invalid does not resolve"),
])
def test_refused(settings, url, words):
    with pytest.raises(ServiceError) as e:
        check_stream_url(url, settings)
    assert e.value.status == 422 and words in e.value.message


def test_permissions(tmp_path):
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(b"x")
    s = Settings(_env_file=None, allow_file_sources=True, allow_loopback=True, allow_link_local=True,
                 allow_private_addresses=False, allowed_schemes=["rtsp", "http"])
    assert check_stream_url(str(clip), s).is_file
    assert check_stream_url(f"file://{clip}", s).url == str(clip)
    assert check_stream_url("rtsp://127.0.0.1/x", s)
    assert check_stream_url("http://169.254.169.254/x", s)
    with pytest.raises(ServiceError, match="private"):
        check_stream_url("rtsp://10.1.2.3/x", s)
    with pytest.raises(ServiceError, match="no such file"):
        check_stream_url(str(tmp_path / "missing.mp4"), s)


def test_cameras_can_be_kept_off_the_internet():
    lan = Settings(_env_file=None, allow_public_addresses=False)
    assert check_stream_url("rtsp://10.0.0.5/x", lan)
    with pytest.raises(ServiceError, match=r"public address.*OCRGAN_ALLOW_PUBLIC_ADDRESSES"):
        check_stream_url("rtsp://8.8.8.8/x", lan)
    loopback = Settings(_env_file=None, allow_loopback=True, allow_private_addresses=False,
                        allow_public_addresses=False)
    assert check_stream_url("rtsp://127.0.0.1:8554/x", loopback)
    for url in ("rtsp://8.8.8.8/x", "rtsp://192.168.1.20:554/stream1", "rtsp://[2001:4860::8888]/x",
                "rtsp://[64:ff9b::808:808]/x", "rtsp://[2002:808:808::]/x"):
        with pytest.raises(ServiceError, match="refused"):
            check_stream_url(url, loopback)
    assert check_stream_url("rtsp://[64:ff9b::a00:5]/x", lan)  # NAT64 to a LAN camera: a LAN address
    with pytest.raises(ServiceError, match="public address"):
        check_stream_url("rtsp://[2002:a00:5::]/x", lan)  # 6to4 goes through a relay on the internet


def test_every_address_of_a_name_is_checked_and_returned(monkeypatch, settings):
    answers = {"cam.test": ["10.0.0.5", "2001:db8::5"], "two.test": ["10.0.0.6", "169.254.169.254"]}
    monkeypatch.setattr(urls, "_lookup", lambda host: answers.get(host, []))
    assert allowed_addresses("cam.test", settings) == ["10.0.0.5", "2001:db8::5"]  # what a connection may use
    with pytest.raises(ServiceError, match=r"host two.test is a link-local address \(169.254.169.254\)"):
        check_stream_url("rtsp://two.test/x", settings)
    with pytest.raises(ServiceError, match=r"host gone\.test does not resolve$"):
        check_stream_url("rtsp://gone.test/x", settings)


def test_without_lookup_addresses_are_still_checked(monkeypatch, settings):
    """A camera registered before is checked again without DNS at start-up (its worker looks the name up at every
    connection); an address, however it is spelled, needs no lookup and is checked there and then."""
    monkeypatch.setattr(urls, "_lookup", lambda host: pytest.fail(f"looked up {host}"))
    assert check_stream_url("rtsp://camera.test/x", settings, resolve=False).url == "rtsp://camera.test/x"
    for url in ("http://2852039166/latest", "rtsp://127.1/x", "rtsp://[2002:a9fe:a9fe::]/"):
        with pytest.raises(ServiceError, match="refused"):
            check_stream_url(url, settings, resolve=False)


def test_a_name_that_resolves_too_slowly_is_refused(monkeypatch, settings):
    monkeypatch.setattr(urls, "RESOLVE_TIMEOUT_S", 0.1)
    monkeypatch.setattr(urls, "_lookup", lambda host: time.sleep(1) or ["10.0.0.5"])
    with pytest.raises(ServiceError, match=r"host slow\.test does not resolve within 0\.1s"):
        check_stream_url("rtsp://slow.test/x", settings)


def test_redact():
    assert redact("rtsp://admin:hunter2@10.0.0.5:554/s") == "rtsp://***@10.0.0.5:554/s"
    assert redact("rtsp://admin@10.0.0.5/s") == "rtsp://***@10.0.0.5/s"
    assert redact("http://cam/x.mjpg?user=a&password=hunter2&fps=5") == "http://cam/x.mjpg?user=a&password=***&fps=5"
    text = "cannot open: rtsp://u:p@h/x: Connection refused"
    assert redact(text) == "cannot open: rtsp://***@h/x: Connection refused"
    assert redact("rtsp://10.0.0.5/s") == "rtsp://10.0.0.5/s"
    ws = '"WebSocket /ws/streams?api_key=s3cret" [accepted]'
    assert redact(ws) == '"WebSocket /ws/streams?api_key=***" [accepted]'
    assert redact("https://cam/live.m3u8?access_token=abc&x=1") == "https://cam/live.m3u8?access_token=***&x=1"
