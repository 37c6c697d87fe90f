"""Every connection to a camera is made here, in Python, to an address the URL policy allowed a moment before:
FFmpeg only ever connects to a relay on loopback, one per open stream.

- RTSP: FFmpeg opens rtsp://127.0.0.1:<relay>/<path>; the relay connects to the camera (TLS for rtsps) and reads
  the camera's replies as FFmpeg's RTSP client does, refusing a 3xx reply, whose Location FFmpeg would follow to any
  host on its own (it has no option to stop that). The camera sees the relay's address in the request URIs.
- HTTP(S): the relay is FFmpeg's HTTP proxy, so every hop (the camera, each redirect, each HLS or DASH playlist,
  segment and key) arrives as a request for a named host and is checked on its own; the Host header and the TLS
  server name stay the camera's, and TLS runs end to end between FFmpeg and the camera.

A name is resolved by the policy, never by FFmpeg, and the relay connects only to the addresses that were checked
(no second lookup that DNS could answer differently). A camera that cannot be reached is reported as such and no
more: why (refused, unreachable, timed out) is logged at debug level, so that the API is no port scanner.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import os
import re
import select
import socket
import ssl
import threading
from collections.abc import Callable
from urllib.parse import urlsplit, urlunsplit

from service.cameras.urls import allowed_addresses, redact
from service.errors import ServiceError
from service.settings import Settings

log = logging.getLogger("ocrgan.streams")
DEFAULT_PORTS = {"rtsp": 554, "rtsps": 322, "http": 80, "https": 443}
MAX_HEAD = 64 * 1024  # an HTTP request head from FFmpeg, an RTSP status line from a camera
CHUNK = 64 * 1024
TLS_POLL_S = 0.05  # a TLS read waits this long for the camera at a time, so that a write never waits longer
# where FFmpeg may connect or read from for an HTTP(S) camera: its own network code through the relay, nothing else
# (no udp/rtp, which an SDP file could aim anywhere, no file)
HTTP_PROTOCOLS = "http,https,tcp,tls,httpproxy,crypto"
# the demuxers an HTTP(S) camera may use: the camera formats, and HLS/DASH with the formats of their segments and
# renditions. Left out are those that open further URLs without the relay's proxy option (concat, image2
# patterns, sdp, imf): those connections would not go through the relay.
HTTP_FORMATS = "mpjpeg,mjpeg,mpegts,mov,matroska,flv,h264,hevc,avi,ogg,hls,dash,aac,mp3,ac3,eac3,webvtt"


class Refused(Exception):
    """A hop the policy does not allow; the message is safe to show."""


class Relay:
    """The relay of one open stream, listening from construction until close(); `url` and `av_options()` are what
    FFmpeg is to open. Raises Refused when FFmpeg would not keep to it."""

    def __init__(self, url: str, settings: Settings, connect_timeout_s: float) -> None:
        parts = urlsplit(url)
        self.scheme = parts.scheme.lower()
        self.rtsp = self.scheme in ("rtsp", "rtsps")
        if not self.rtsp and os.environ.get("no_proxy", "").strip():  # FFmpeg reads the lowercase one only
            raise Refused("the no_proxy environment variable is set, and FFmpeg would connect directly to the "
                          "hosts it names (a redirect may lead anywhere), past the URL policy; unset no_proxy for "
                          "the service to use HTTP cameras")
        self.host = parts.hostname or ""
        self.port = parts.port or DEFAULT_PORTS[self.scheme]
        self.settings = settings
        self.connect_timeout_s = connect_timeout_s
        self.refusal: str | None = None  # the first hop refused, said for the API
        self.unreachable = False  # an allowed address could not be connected to
        self.reached = False  # a connection to a camera was made
        self._listener = socket.create_server(("127.0.0.1", 0))
        relay = f"127.0.0.1:{self._listener.getsockname()[1]}"
        self.proxy = f"http://{relay}"
        userinfo = parts.netloc.rpartition("@")[0]  # up to the last "@", as FFmpeg reads it
        netloc = f"{userinfo}@{relay}" if userinfo else relay
        self.url = urlunsplit(parts._replace(scheme="rtsp", netloc=netloc)) if self.rtsp else url
        self._sockets: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._closed = False
        self._accepter = threading.Thread(target=self._accept, name="ocrgan-relay", daemon=True)
        self._accepter.start()

    def av_options(self) -> dict[str, str]:
        """FFmpeg options that send its every connection through the relay."""
        if self.rtsp:
            return {"rtsp_transport": "tcp", "protocol_whitelist": "tcp"}  # one TCP connection, RTP interleaved
        return {"http_proxy": self.proxy, "protocol_whitelist": HTTP_PROTOCOLS, "format_whitelist": HTTP_FORMATS,
                "http_persistent": "0"}  # HLS: a connection per request, each checked and sent on in origin form

    def close(self) -> None:
        with self._lock:
            self._closed = True
            sockets = [self._listener, *self._sockets]
        for s in sockets:
            _shut(s)
        self._accepter.join(timeout=5)

    # --- connections from FFmpeg -----------------------------------------------------------------
    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # closed
            if not self._track(client):
                return
            threading.Thread(target=self._serve, args=(client,), name="ocrgan-relay-conn", daemon=True).start()
            if self.rtsp:  # FFmpeg's RTSP client opens one connection: nobody else gets one
                _shut(self._listener)
                return

    def _serve(self, client: socket.socket) -> None:
        upstream = None
        try:
            if self.rtsp:
                upstream = self._connect(self.host, self.port)
                if self.scheme == "rtsps":
                    upstream = self._tls(upstream, self.host)
                self._pipe(client, upstream, RtspReplies().feed)
            else:
                upstream = self._proxy(client)
                if upstream is not None:
                    self._pipe(client, upstream, None)
        except Refused as e:
            self._refuse(str(e))
        except OSError as e:  # FFmpeg went away, or the camera did
            log.debug("stream relay for %s:%d: connection ended: %s", self.host, self.port, e)
        finally:
            self._release(client)
            if upstream is not None:
                self._release(upstream)

    def _proxy(self, client: socket.socket) -> socket.socket | None:
        """Read FFmpeg's proxy request and connect where it asks, if the policy allows: the connection, or None
        after an error answer."""
        client.settimeout(self.connect_timeout_s)
        head = _read_head(client)
        line = head.split(b"\r\n", 1)[0].decode("latin-1")
        method, _, rest = line.partition(" ")
        target, _, version = rest.rpartition(" ")
        try:
            scheme, host, port = _proxy_target(method, target)
            if scheme not in self.settings.allowed_schemes:
                raise Refused(f"the camera led to a {scheme} URL ({redact(target)}); {scheme} is not allowed")
            upstream = self._connect(host, port)
        except Refused as e:
            self._refuse(str(e))
            client.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            return None
        except OSError:
            client.sendall(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            return None
        client.settimeout(None)
        if method == "CONNECT":
            client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
        else:  # on in origin form: GET /path HTTP/1.1, as if FFmpeg had connected itself
            parts = urlsplit(target)
            origin = urlunsplit(("", "", parts.path or "/", parts.query, ""))
            upstream.sendall(f"{method} {origin} {version}".encode("latin-1") + head[len(line):])
        return upstream

    # --- connections to cameras --------------------------------------------------------------------
    def _connect(self, host: str, port: int) -> socket.socket:
        """A connection to an address of `host` the policy allows now; raises Refused, or OSError when none of the
        allowed addresses answers (the reason is logged at debug level only)."""
        where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        hop = "" if (host.lower(), port) == (self.host.lower(), self.port) else f"the camera led to {where}: "
        try:
            addresses = allowed_addresses(host, self.settings)
        except ServiceError as e:
            raise Refused(f"{hop}{e.message}") from e
        error: OSError = OSError("no address")
        for address in addresses:
            family = socket.AF_INET6 if ":" in address else socket.AF_INET
            sock = socket.socket(family, socket.SOCK_STREAM)
            if not self._track(sock):
                raise OSError("the relay is closed")
            sock.settimeout(self.connect_timeout_s)
            try:
                sock.connect((address, port))
            except OSError as e:
                error = e
                self._release(sock)
                continue
            sock.settimeout(None)
            self.reached = True
            return sock
        log.debug("stream relay for %s:%d: %s:%d could not be reached at %s: %s", self.host, self.port, host, port,
                  ", ".join(addresses), error)
        self.unreachable = True
        raise error

    def _tls(self, sock: socket.socket, host: str) -> socket.socket:
        """rtsps: the relay speaks TLS to the camera and plain RTSP to FFmpeg on loopback, so that it can read the
        replies. Certificates are not verified, as FFmpeg does not by default (cameras carry self-signed ones)."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        try:
            ipaddress.ip_address(host)
            name = None  # no server name for an address
        except ValueError:
            name = host
        sock.settimeout(self.connect_timeout_s)
        try:
            tls = context.wrap_socket(sock, server_hostname=name)  # takes the connection over from sock
        except OSError as e:
            log.debug("stream relay for %s:%d: no TLS session: %s", self.host, self.port, e)
            self.unreachable = True
            raise
        finally:
            self._release(sock)
        tls.settimeout(None)
        if not self._track(tls):
            raise OSError("the relay is closed")
        return tls

    # --- plumbing ------------------------------------------------------------------------------
    def _pipe(self, client: socket.socket, upstream: socket.socket, replies: Callable[[bytes], bytes] | None) -> None:
        """Copy both ways until either side ends; what the camera sends passes through `replies` first (a refusal
        is noted before FFmpeg sees the connection end). A TLS connection to the camera is used by one thread at a
        time: OpenSSL's connection must not be read in one thread while another writes to it (when that happened,
        about one rtsps open in 40 lost FFmpeg's first request and timed out)."""

        def check(data: bytes) -> bytes:
            try:
                return replies(data) if replies else data
            except Refused as e:
                self._refuse(str(e))
                raise

        link = _Link(upstream)
        out = threading.Thread(target=_copy, args=(_Link(client), link, None), name="ocrgan-relay-out", daemon=True)
        out.start()
        try:
            _copy(link, _Link(client), check)
        finally:
            out.join()

    def _refuse(self, message: str) -> None:
        log.debug("stream relay for %s:%d refused: %s", self.host, self.port, message)
        if self.refusal is None:
            self.refusal = message

    def _release(self, s: socket.socket) -> None:
        with self._lock:
            self._sockets.discard(s)
        _shut(s)

    def _track(self, s: socket.socket) -> bool:
        """Remember a socket so that close() ends it; False (and closed) once the relay is closed."""
        with self._lock:
            if not self._closed:
                self._sockets.add(s)
                return True
        _shut(s)
        return False


class _Link:
    """One side of a relayed connection. A TLS socket is made non-blocking and every read and write of it holds
    one lock, so the two copying threads never use its OpenSSL connection at once; a read waits for the camera's
    bytes outside the lock, TLS_POLL_S at a time (poll, not select: a busy service has descriptors past 1024)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self._lock: threading.Lock | None = None
        if isinstance(sock, ssl.SSLSocket):
            self._lock = threading.Lock()
            sock.setblocking(False)

    def _wait(self, events: int) -> None:
        poller = select.poll()
        try:
            poller.register(self.sock, events)
        except ValueError as e:  # closed by Relay.close(), from another thread
            raise OSError("the connection is closed") from e
        poller.poll(TLS_POLL_S * 1000)

    def recv(self) -> bytes:
        if self._lock is None:
            return self.sock.recv(CHUNK)
        while True:
            if not self.sock.pending():
                self._wait(select.POLLIN)
            with self._lock:
                try:
                    return self.sock.recv(CHUNK)
                except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
                    continue  # no whole record yet

    def sendall(self, data: bytes) -> None:
        if self._lock is None:
            self.sock.sendall(data)
            return
        view = memoryview(data)
        with self._lock:
            while view:
                try:
                    view = view[self.sock.send(view):]
                except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
                    self._wait(select.POLLIN | select.POLLOUT)


def _copy(src: _Link, dst: _Link, replies: Callable[[bytes], bytes] | None) -> None:
    """src to dst until src ends or either fails; then both are shut, which ends the copy the other way too."""
    try:
        while data := src.recv():
            dst.sendall(replies(data) if replies else data)
    except OSError:
        pass
    finally:
        for s in (dst.sock, src.sock):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)


def _shut(s: socket.socket) -> None:
    with contextlib.suppress(OSError):
        s.shutdown(socket.SHUT_RDWR)
    s.close()


def _proxy_target(method: str, target: str) -> tuple[str, str, int]:
    """(scheme, host, port) of a proxy request from FFmpeg: CONNECT host:port for https, an absolute http URI
    otherwise."""
    try:
        if method == "CONNECT":
            scheme, parts = "https", urlsplit(f"//{target}")
        else:
            scheme, parts = "http", urlsplit(target)
            if parts.scheme != "http":
                raise ValueError("not an http URI")
        if not parts.hostname:
            raise ValueError("no host")
        return scheme, parts.hostname, parts.port or DEFAULT_PORTS[scheme]
    except ValueError as e:
        raise Refused(f"the camera led to a URL that cannot be used ({redact(target)}: {e})") from e


def _read_head(sock: socket.socket) -> bytes:
    """An HTTP request head, up to and including its blank line."""
    head = b""
    while b"\r\n\r\n" not in head:
        data = sock.recv(CHUNK)
        if not data or len(head) > MAX_HEAD:
            raise OSError("no request from FFmpeg")
        head += data
    return head


# --- RTSP replies, read as FFmpeg reads them (libavformat/rtsp.c, ff_rtsp_read_reply) ------------------------------
_WORD = re.compile(rb"[ \t]*([^ \t]*)")  # get_word(): skips spaces and tabs, then up to the next one
_C_INT = re.compile(rb"[ \t\n\v\f\r]*([+-]?[0-9]+)")  # what atoi() and strtol() read
_CONTENT_LENGTH = re.compile(rb"(?i)content-length:(.*)", re.DOTALL)
LINE_MAX = 4095  # FFmpeg keeps this much of a line, the rest is dropped


def _c_int(text: bytes, bits: int = 32) -> int:
    """`text` read by strtol() and stored in a C int of `bits` bits (0 when it holds no number)."""
    m = _C_INT.match(text)
    if not m:
        return 0
    v = max(min(int(m[1]), 2**63 - 1), -(2**63))
    return (v + 2 ** (bits - 1)) % 2**bits - 2 ** (bits - 1)


class RtspReplies:
    """What an RTSP server sends, cut where FFmpeg's client cuts it: lines end at "\\n" with every "\\r" dropped, a
    NUL ends the line's text, an empty line ends the headers, "$" where a line has no text yet opens an interleaved
    packet (3 more bytes: channel, 16-bit length), and a Content-Length body follows the headers. A reply whose
    status is 3xx is refused before FFmpeg sees it; everything else passes unchanged. Only the status line is ever
    held back, until it is whole."""

    def __init__(self) -> None:
        self._pending = bytearray()
        self._skip = 0  # bytes of a packet or a body still to pass
        self._line_start = True  # nothing of the current line read yet
        self._lines = 0  # lines of the current message so far
        self._line = bytearray()  # the text of the current header line so far (a status line stays in _pending)
        self._length = 0  # the current message's Content-Length

    def feed(self, data: bytes) -> bytes:
        """The bytes that may go on to FFmpeg now; raises Refused at a redirect."""
        buf = self._pending
        buf += data
        pos, n = 0, len(buf)
        while pos < n:
            if self._skip:
                step = min(self._skip, n - pos)
                pos += step
                self._skip -= step
                continue
            if self._line_start:
                while pos < n and buf[pos] == 0x0D:
                    pos += 1
                if pos == n:
                    break
                if buf[pos] == 0x24:  # "$": an interleaved packet
                    if n - pos < 4:
                        break
                    self._skip = 4 + int.from_bytes(buf[pos + 2:pos + 4], "big")
                    continue
                self._line_start = False
            end = buf.find(b"\n", pos)
            if self._lines == 0:  # the status line: held back until it is whole
                if end < 0:
                    if n - pos > MAX_HEAD:
                        raise Refused("the camera sent an RTSP reply that cannot be read")
                    break
                self._end_line(bytes(buf[pos:end]))
            else:
                if end < 0:  # FFmpeg keeps LINE_MAX characters of a line, not counting "\r"
                    self._line += bytes(buf[pos:n]).replace(b"\r", b"")
                    del self._line[LINE_MAX:]
                    pos = n
                    break
                self._end_line(bytes(self._line) + bytes(buf[pos:end]))
                self._line.clear()
            pos = end + 1
            self._line_start = True
        out = bytes(buf[:pos])
        del buf[:pos]
        return out

    def _end_line(self, raw: bytes) -> None:
        text = raw.replace(b"\r", b"")[:LINE_MAX].split(b"\0", 1)[0]
        if not text:  # the end of the headers (or, as the first line, of an empty message)
            self._skip = self._length if self._lines and self._length > 0 else 0
            self._lines = self._length = 0
            return
        if self._lines == 0:
            self._status(text)
        elif m := _CONTENT_LENGTH.match(text):
            self._length = _c_int(m[1])
        self._lines += 1

    @staticmethod
    def _status(line: bytes) -> None:
        first = _WORD.match(line)
        if not first[1].startswith(b"RTSP/"):
            return  # a request from the server, not a reply
        code = _c_int(_WORD.match(line, first.end())[1])
        if 300 <= code < 400:
            raise Refused(f"the camera answered with a redirect (RTSP {code}); redirects are refused, "
                          "register the URL it redirects to instead")
