"""Misbehaving sources on loopback: an HTTP server answering with garbage bytes or with what it is told (a
redirect, a playlist), a TCP server that accepts and says nothing, one whose queue is full so that connecting
times out, one that answers every request with the same bytes (an RTSP redirect). Context managers; everything
is closed on exit."""

from __future__ import annotations

import contextlib
import os
import socket
import ssl
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from tests.deploy.tools import tool


def self_signed(folder: Path, name: str = "camera.test") -> tuple[Path, Path]:
    """PEM files (certificate, key) of a fresh self-signed certificate for `name` (as cameras carry)."""
    key, cert = folder / "key.pem", folder / "cert.pem"
    subprocess.run([tool("openssl"), "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out",
                    str(cert), "-days", "1", "-subj", f"/CN={name}"], check=True, capture_output=True, timeout=60)
    return cert, key


def tls_context(folder: Path, name: str = "camera.test") -> ssl.SSLContext:
    """A server context with a fresh self-signed certificate for `name`."""
    cert, key = self_signed(folder, name)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    return context


class _Garbage(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = os.urandom(64 * 1024)
        self.send_response(200)
        self.send_header("Content-Type", "video/mp4")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


class GarbageHTTP:
    def __enter__(self) -> GarbageHTTP:
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _Garbage)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/video.mp4"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


class StaticHTTP:
    """Answers GET with fixed responses, path -> (status, headers, body), 404 elsewhere; over TLS with `tls`.
    Records (path, Host header, TLS server name) of each request."""

    def __init__(self, routes: dict[str, tuple[int, dict[str, str], bytes]], tls: ssl.SSLContext | None = None):
        self.routes, self.tls = routes, tls
        self.requests: list[tuple[str, str | None, str | None]] = []
        self.server_names: list[str | None] = []

    def __enter__(self) -> StaticHTTP:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                sni = outer.server_names[-1] if outer.server_names else None
                outer.requests.append((self.path, self.headers.get("Host"), sni))
                status, headers, body = outer.routes.get(self.path, (404, {}, b""))
                self.send_response(status)
                for k, v in {**headers, "Content-Length": str(len(body))}.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        if self.tls is not None:
            self.tls.sni_callback = lambda sock, name, ctx: self.server_names.append(name)
            self.server.socket = self.tls.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        return self

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"{'https' if self.tls else 'http'}://{host}:{self.port}{path}"

    def paths(self) -> list[str]:
        return [r[0] for r in self.requests]

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


class _Acceptor:
    """A server on loopback that hands each connection it accepts to `_take`, in its accepting thread, until it is
    left; `port` is where it listens."""

    def __enter__(self):
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()
        return self

    def _accept(self) -> None:
        self.sock.settimeout(0.2)
        while not self.stop.is_set():
            try:
                conn = self.sock.accept()[0]
            except OSError:
                continue
            self._take(conn)

    def _take(self, conn: socket.socket) -> None:
        raise NotImplementedError

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join(5)
        self.sock.close()


class SameAnswer(_Acceptor):
    """Answers every request on every connection (a head up to its blank line) with the same bytes: an RTSP
    server that only ever redirects, say. Over TLS with `tls`; records the first line of each request."""

    def __init__(self, answer: bytes, tls: ssl.SSLContext | None = None) -> None:
        self.answer, self.tls = answer, tls
        self.requests: list[str] = []

    def _take(self, conn: socket.socket) -> None:
        threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn: socket.socket) -> None:
        with contextlib.suppress(OSError), conn:
            conn.settimeout(5)
            if self.tls is not None:
                conn = self.tls.wrap_socket(conn, server_side=True)
            data = b""
            while not self.stop.is_set() and (chunk := conn.recv(4096)):
                data += chunk
                while b"\r\n\r\n" in data:
                    head, data = data.split(b"\r\n\r\n", 1)
                    self.requests.append(head.split(b"\r\n", 1)[0].decode("latin-1"))
                    conn.sendall(self.answer)


class Backlogged:
    """A port whose listen queue is full: connecting to it times out (a camera behind a firewall that drops)."""

    def __enter__(self) -> Backlogged:
        self.sock = socket.create_server(("127.0.0.1", 0), backlog=0)
        self.port = self.sock.getsockname()[1]
        self.queued = socket.create_connection(("127.0.0.1", self.port), timeout=2)  # fills the queue
        return self

    def __exit__(self, *exc) -> None:
        self.queued.close()
        self.sock.close()


class SilentTCP(_Acceptor):
    """Accepts connections and never answers (a camera that hangs); `conns` are the connections it got."""

    def __init__(self) -> None:
        self.conns: list[socket.socket] = []

    def _take(self, conn: socket.socket) -> None:
        self.conns.append(conn)

    def __exit__(self, *exc) -> None:
        super().__exit__(*exc)
        for c in self.conns:
            c.close()
