"""The relay holds every connection to a camera to the URL policy: HTTP redirects are checked hop by hop, RTSP
redirects refused (in every form FFmpeg reads as one), HLS segments on other hosts checked, names resolved once by
the policy and connected to at the checked address, and a camera that cannot be reached is reported in one way
whatever the reason. Loopback servers only: a redirect aimed beyond loopback is never connected to, which the
connect() trace of the service shows."""

from __future__ import annotations

import contextlib
import logging
import threading
import time

import av
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from service.cameras import urls
from service.cameras.relay import Refused, RtspReplies
from service.cameras.source import UNREACHABLE, FrameSource, SourceError, SourceOptions
from service.cameras.urls import StreamTarget, check_stream_url
from service.settings import Settings
from testkit.connect_trace import beyond_loopback, connects
from testkit.servers import LOOPBACK_ONLY, AppProcess, free_port, wait_for
from testkit.synthetic import write_video
from tests.service.junk_servers import Backlogged, SameAnswer, SilentTCP, StaticHTTP, self_signed, tls_context

POLICY = Settings(_env_file=None, **LOOPBACK_ONLY)
METADATA = "169.254.169.254"


def frames(url: str, policy: Settings = POLICY, n: int = 3, timeout: float = 3) -> int:
    """Open `url` as the service does (open and read timeouts of `timeout` seconds) and read `n` frames."""
    with FrameSource(StreamTarget(url, False), SourceOptions(timeout, timeout, policy), threading.Event()) as source:
        for i, _ in enumerate(source.frames(), 1):
            if i == n:
                return i
    return 0


def failure(url: str, policy: Settings = POLICY, timeout: float = 3) -> str:
    with pytest.raises(SourceError) as e:
        frames(url, policy, timeout=timeout)
    return str(e.value)


def connections(witness: SilentTCP) -> int:
    """The connections a witness got, counted once any made so far has been accepted (within 0.2 s)."""
    time.sleep(0.5)
    return len(witness.conns)


@pytest.fixture(scope="module")
def segment(tmp_path_factory, clip_frames) -> bytes:
    """An MPEG-TS segment of 30 frames."""
    return write_video(tmp_path_factory.mktemp("hls") / "seg.ts", clip_frames).read_bytes()


def playlist(*uris: str, key: str | None = None) -> tuple[int, dict[str, str], bytes]:
    body = "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:0\n"
    body += f'#EXT-X-KEY:METHOD=AES-128,URI="{key}",IV=0x{0:032x}\n' if key else ""
    body += "".join(f"#EXTINF:1.2,\n{u}\n" for u in uris) + "#EXT-X-ENDLIST\n"
    return 200, {"Content-Type": "application/vnd.apple.mpegurl"}, body.encode()


def redirect(location: str) -> tuple[int, dict[str, str], bytes]:
    return 302, {"Location": location}, b""


def hls(segment: bytes) -> dict[str, tuple[int, dict[str, str], bytes]]:
    return {"/live.m3u8": playlist("seg.ts"), "/seg.ts": (200, {"Content-Type": "video/mp2t"}, segment)}


@pytest.fixture
def resolver(monkeypatch):
    """Answers for names, in turn, instead of DNS (which this network namespace has not): {name: [[addresses]...]};
    the last answer repeats."""
    answers: dict[str, list[list[str]]] = {}

    def lookup(host: str) -> list[str]:
        turns = answers.get(host, [[]])
        return turns.pop(0) if len(turns) > 1 else turns[0]

    monkeypatch.setattr(urls, "_lookup", lookup)
    return answers


# --- RTSP replies, cut as FFmpeg cuts them ---------------------------------------------------------------------------
def reply(status: int, body: bytes = b"") -> bytes:
    return f"RTSP/1.0 {status} X\r\nCSeq: 2\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body


def packet(payload: bytes) -> bytes:
    return b"$\x00" + len(payload).to_bytes(2, "big") + payload


def feed(data: bytes, cuts: list[int], out: list[bytes] | None = None) -> bytes:
    """`data` through the RTSP reply reader in pieces cut at `cuts`; what went on to FFmpeg (collected in `out` as it
    goes, for when the reader refuses)."""
    replies, out, last = RtspReplies(), [] if out is None else out, 0
    for cut in [*sorted(c % (len(data) + 1) for c in cuts), len(data)]:
        out.append(replies.feed(data[last:cut]))
        last = max(last, cut)
    return b"".join(out)


PARTS = st.one_of(st.builds(reply, st.sampled_from([200, 401, 404, 454, 500]), st.binary(max_size=40)),
                  st.builds(packet, st.binary(max_size=300)))


@settings(max_examples=300, deadline=None)
@given(parts=st.lists(PARTS, max_size=8), cuts=st.lists(st.integers(0, 10_000), max_size=6))
def test_what_is_not_a_redirect_passes_unchanged_however_it_is_cut(parts, cuts):
    data = b"".join(parts)
    assert feed(data, cuts) == data


@settings(max_examples=200, deadline=None)
@given(parts=st.lists(PARTS, max_size=5), status=st.integers(300, 399), cuts=st.lists(st.integers(0, 4000), max_size=4))
def test_a_redirect_never_reaches_ffmpeg(parts, status, cuts):
    before = b"".join(parts)
    out: list[bytes] = []
    with pytest.raises(Refused, match=f"redirect \\(RTSP {status}\\)"):
        feed(before + reply(status) + reply(200), cuts, out)
    assert len(b"".join(out)) <= len(before)  # nothing of the redirect's status line went on


# Status lines FFmpeg's RTSP client reads as redirects (each checked against FFmpeg itself below)
REDIRECTS = {
    "plain": b"RTSP/1.0 302 Found\r\nLocation: {loc}\r\n\r\n",
    "bare newlines": b"RTSP/1.0 301 Moved\nLocation: {loc}\n\n",
    "blanks and a sign": b" \tRTSP/1.0 \t+303 See\r\nLocation: {loc}\r\n\r\n",
    "a vertical tab": b"RTSP/1.0 \x0b307 Moved\r\nLocation: {loc}\r\n\r\n",
    "after a packet": b"\r$\x00\x00\x03abcRTSP/1.0 302 Found\r\nLocation: {loc}\r\n\r\n",
    "after a body": b"RTSP/1.0 200 OK\r\nCONTENT-LENGTH: +3\r\n\r\nabcRTSP/1.0 302 Found\r\nLocation: {loc}\r\n\r\n",
    # "\r" does not count towards the 4095 characters FFmpeg keeps of a line: the length is read whole
    "after a body of a long header": b"RTSP/1.0 200 OK\r\nContent-Length:" + b"\r" * 5000 + b"5\r\n\r\n"
                                     b"abcdeRTSP/1.0 302 Found\r\nLocation: {loc}\r\n\r\n",
}


@pytest.mark.parametrize("form", REDIRECTS)
@pytest.mark.parametrize("size", [1, 7, 1000, 100_000])
def test_each_redirect_form_is_refused_however_it_is_cut(form, size):
    data = REDIRECTS[form].replace(b"{loc}", b"rtsp://169.254.169.254/")
    out: list[bytes] = []
    with pytest.raises(Refused, match="redirect"):
        feed(data, list(range(size, len(data), size)), out)
    assert len(b"".join(out)) <= data.rindex(b"RTSP/1.0")  # nothing of the redirect's status line went on


# Text with a 3xx status in it that FFmpeg's RTSP client does not read as a status line: it passes
PASSED = {
    "in a body": lambda loc: reply(200, b"RTSP/1.0 302 Found\r\nLocation: %s\r\n\r\n" % loc),
    "in a packet": lambda loc: packet(b"\nRTSP/1.0 302 Found\r\nLocation: %s\r\n\r\n" % loc),
    "a request from the server": lambda loc: b"REDIRECT %s RTSP/1.0\r\nCSeq: 1\r\n\r\n" % loc,
    "after a NUL": lambda loc: b"\0RTSP/1.0 302 Found\r\nLocation: %s\r\n\r\n" % loc,  # the NUL ends the line
}


@pytest.mark.parametrize("form", PASSED)
def test_what_ffmpeg_does_not_read_as_a_status_passes(form):
    text = PASSED[form](b"rtsp://169.254.169.254/")
    assert feed(text, []) == text


@pytest.mark.slow
@pytest.mark.parametrize("form", PASSED)
def test_ffmpeg_follows_none_of_what_the_relay_lets_pass(form):
    """Were FFmpeg to follow one of these, it would connect to the Location itself, past the relay."""
    with SilentTCP() as witness:
        with SameAnswer(PASSED[form](f"rtsp://127.0.0.1:{witness.port}/x".encode())) as camera:
            with contextlib.suppress(av.FFmpegError):
                av.open(f"rtsp://127.0.0.1:{camera.port}/cam", options={"rtsp_transport": "tcp", "timeout": "500000"},
                        timeout=(1, 1)).close()
            assert camera.requests
        assert connections(witness) == 0


@pytest.mark.slow
@pytest.mark.parametrize("form", REDIRECTS)
def test_ffmpeg_follows_each_redirect_form_and_the_relay_refuses_it(form):
    """FFmpeg on its own follows each form to another camera (a silent witness on loopback); through the relay it
    never connects there, and the API learns why."""
    with SilentTCP() as witness:
        answer = REDIRECTS[form].replace(b"{loc}", f"rtsp://127.0.0.1:{witness.port}/x".encode())
        with SameAnswer(answer) as camera:
            url = f"rtsp://127.0.0.1:{camera.port}/cam"
            with pytest.raises(av.FFmpegError):
                av.open(url, options={"rtsp_transport": "tcp", "timeout": "500000"}, timeout=(2, 2))
            wait_for(lambda: witness.conns, 5, what="FFmpeg following the redirect")
            followed = connections(witness)
            assert failure(url).startswith("refused: the camera answered with a redirect")
        assert connections(witness) == followed  # none more through the relay


def test_an_rtsps_redirect_is_refused_inside_tls(tmp_path):
    """Every open: when the relay's two copying threads used the TLS connection at once, about one open in 40 lost
    FFmpeg's request and timed out instead."""
    with SameAnswer(REDIRECTS["plain"].replace(b"{loc}", b"rtsps://169.254.169.254/x"), tls_context(tmp_path)) as cam:
        reasons = [failure(f"rtsps://127.0.0.1:{cam.port}/cam") for _ in range(20)]
        assert all(r.startswith("refused: the camera answered with a redirect") for r in reasons), reasons
        assert cam.requests[0].startswith("OPTIONS rtsp://127.0.0.1:")  # read in the clear by the relay


def test_an_rtsps_camera_streams_through_the_relay(rtsp, tmp_path):
    """Video over TLS end to end: the relay holds TLS to the camera, FFmpeg decodes what it passes on."""
    server = rtsp(fps=25, tls=self_signed(tmp_path))
    for _ in range(3):
        assert frames(f"rtsps://127.0.0.1:{server.port}/cam", n=25) == 25


def test_closing_an_rtsps_stream_midway_ends_its_relay_quietly(rtsp, tmp_path, monkeypatch):
    """Closing the source while video flows shuts the TLS connection under both copying threads: they end, and
    neither raises."""
    errors = []
    monkeypatch.setattr(threading, "excepthook", lambda args: errors.append(args.exc_value))
    server = rtsp(fps=25, tls=self_signed(tmp_path))
    for _ in range(3):
        assert frames(f"rtsps://127.0.0.1:{server.port}/cam", n=5) == 5  # closed with frames still coming

    def relays() -> list[str]:
        return [t.name for t in threading.enumerate() if t.name.startswith("ocrgan-relay")]

    wait_for(lambda: not relays(), 5, what="the relay's threads ending")
    assert errors == []


# --- HTTP: every hop checked -------------------------------------------------------------------------------------
@pytest.mark.parametrize(("location", "why"), [
    ("http://169.254.169.254/latest/meta-data/", "169.254.169.254:80: host 169.254.169.254 is a link-local address "
                                                 "(169.254.169.254); refused (set OCRGAN_ALLOW_LINK_LOCAL=true"),
    ("http://10.1.2.3:8080/", "10.1.2.3:8080: host 10.1.2.3 is a private address (10.1.2.3); refused "
                              "(set OCRGAN_ALLOW_PRIVATE_ADDRESSES=true"),
    ("https://[2002:a9fe:a9fe::]/", "[2002:a9fe:a9fe::]:443: host 2002:a9fe:a9fe:: is a link-local address "
                                    "(169.254.169.254, carried by 2002:a9fe:a9fe::); refused"),
])
def test_an_http_redirect_to_a_refused_address_is_refused(location, why):
    with StaticHTTP({"/video": redirect(location)}) as camera:
        assert failure(camera.url("/video")).startswith(f"refused: the camera led to {why}")
        assert camera.paths() == ["/video"]


def test_an_http_redirect_to_an_allowed_camera_is_followed(segment):
    with StaticHTTP(hls(segment)) as real, StaticHTTP({"/video": redirect(real.url("/live.m3u8"))}) as camera:
        assert frames(camera.url("/video")) == 3
        assert real.paths() == ["/live.m3u8", "/seg.ts"]


def test_hls_segments_and_keys_are_held_to_the_policy(segment):
    for live in (playlist(f"http://{METADATA}/seg.ts"), playlist("seg.ts", key=f"http://{METADATA}/key")):
        with StaticHTTP({"/live.m3u8": live, "/seg.ts": (200, {}, segment)}) as camera:
            assert failure(camera.url("/live.m3u8")).startswith("refused: the camera led to 169.254.169.254:80")
    with StaticHTTP(hls(segment)) as camera:  # segments beside the playlist: through the relay, one by one
        assert frames(camera.url("/live.m3u8")) == 3


def test_formats_that_open_urls_past_the_relay_are_not_read(segment):
    """A concat list would make FFmpeg fetch its entries itself; it is not among an HTTP camera's formats."""
    with StaticHTTP({"/list": (200, {}, b"ffconcat version 1.0\nfile seg.ts\n"), "/seg.ts": (200, {}, segment)}) as cam:
        assert failure(cam.url("/list")).startswith("cannot open:")
        assert cam.paths() == ["/list"]


def test_no_proxy_in_the_environment_refuses_http_cameras(monkeypatch, segment):
    monkeypatch.setenv("no_proxy", "localhost")  # FFmpeg would connect to localhost past the relay
    with StaticHTTP(hls(segment)) as camera:
        assert "unset no_proxy" in failure(camera.url("/live.m3u8"))
        assert camera.paths() == []
    assert failure(f"rtsp://127.0.0.1:{free_port()}/x") == f"cannot open: {UNREACHABLE}"  # RTSP has no proxy


# --- names: resolved once, by the policy; that address is the one connected to ---------------------------------
def test_a_name_is_connected_to_at_the_address_the_policy_checked(resolver, segment):
    """The network namespace has no DNS: the camera works only because the relay connects to the checked address
    (FFmpeg never resolves the name); the camera still sees its own name in the Host header."""
    resolver["camera.test"] = [["127.0.0.1"]]
    with StaticHTTP(hls(segment)) as camera:
        url = camera.url("/live.m3u8", host="camera.test")
        assert frames(url) == 3
        assert {host for _, host, _ in camera.requests} == {f"camera.test:{camera.port}"}


def test_https_keeps_the_camera_name_for_tls_and_host(resolver, segment, tmp_path):
    resolver["camera.test"] = [["127.0.0.1"]]
    with StaticHTTP(hls(segment), tls=tls_context(tmp_path)) as camera:
        assert frames(camera.url("/live.m3u8", host="camera.test")) == 3
        assert camera.requests[0] == ("/live.m3u8", f"camera.test:{camera.port}", "camera.test")


def test_a_name_that_turns_to_a_refused_address_is_not_connected_to(resolver):
    """DNS rebinding: allowed at registration, link-local by the time of the connection."""
    resolver["camera.test"] = [["127.0.0.1"], [METADATA]]
    with SilentTCP() as camera:
        url = f"rtsp://camera.test:{camera.port}/cam"
        check_stream_url(url, POLICY)  # the first answer
        assert failure(url) == (f"refused: host camera.test is a link-local address ({METADATA}); refused "
                                "(set OCRGAN_ALLOW_LINK_LOCAL=true to allow)")
        assert connections(camera) == 0


# --- one message for a camera that cannot be reached -----------------------------------------------------------
def test_a_camera_that_cannot_be_reached_says_so_and_no_more(caplog):
    """Nothing refused, a port that drops connections and one that refuses them read alike in the API; why is in
    the debug log only."""
    caplog.set_level(logging.DEBUG, logger="ocrgan.streams")
    with Backlogged() as dropping:
        cameras = [f"rtsp://127.0.0.1:{free_port()}/x", f"http://127.0.0.1:{free_port()}/x",
                   f"rtsp://127.0.0.1:{dropping.port}/x"]
        errors = [failure(url) for url in cameras]
    assert errors == [f"cannot open: {UNREACHABLE}"] * 3
    assert "Connection refused" in caplog.text and "timed out" in caplog.text


# --- the whole service, traced ---------------------------------------------------------------------------------
@pytest.mark.slow
def test_the_service_never_connects_where_a_camera_redirects_it(checkpoint, tmp_path):
    """`ocrgan serve` under strace, with cameras that redirect to the metadata address and to the LAN over HTTP,
    HLS and RTSP: every one refused, with the reason in the API, and not one connect() beyond loopback."""
    env = {"OCRGAN_CHECKPOINT": str(checkpoint), "OCRGAN_REGISTRY_PATH": str(tmp_path / "streams.json"),
           "OCRGAN_DEVICE": "cpu", "OCRGAN_TORCH_THREADS": "1", "OCRGAN_OPEN_TIMEOUT_SECONDS": "2",
           "OCRGAN_RECONNECT_CAP_SECONDS": "1"}
    trace = tmp_path / "connects.log"
    with (StaticHTTP({"/meta": redirect(f"http://{METADATA}/latest/meta-data/"), "/lan": redirect("http://192.168.1.1/"),
                      "/live.m3u8": playlist(f"http://{METADATA}/seg.ts")}) as http,
          SameAnswer(REDIRECTS["plain"].replace(b"{loc}", f"rtsp://{METADATA}/x".encode())) as rtsp):
        cams = {"meta": http.url("/meta"), "lan": http.url("/lan"), "hls": http.url("/live.m3u8"),
                "rtsp": f"rtsp://127.0.0.1:{rtsp.port}/cam"}
        app = AppProcess(env, tmp_path / "service.log", trace_connects=trace)
        try:
            for sid, url in cams.items():
                assert app.client.post("/streams", json={"id": sid, "url": url}).status_code == 201
            for url, words in [("rtsp://[2002:a9fe:a9fe::]/", "link-local"), ("rtsp://camera.invalid/", "resolve")]:
                r = app.client.post("/streams", json={"id": "x", "url": url})
                assert r.status_code == 422 and words in r.json()["detail"], r.text

            def errors() -> dict[str, str]:
                return {sid: app.client.get(f"/streams/{sid}").json()["last_error"] or "" for sid in cams}

            wait_for(lambda: all(errors().values()), 30, what="every camera failing")
            seen = errors()
        finally:
            app.stop()  # the trace is complete once the service has exited
    assert {("127.0.0.1", http.port), ("127.0.0.1", rtsp.port)} <= set(connects(trace))  # the trace sees them
    assert beyond_loopback(trace) == []
    assert all(e.startswith("refused: the camera") for e in seen.values()), seen
