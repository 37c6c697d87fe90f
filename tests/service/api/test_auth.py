"""The API key guards every mutating route and the WebSockets; reads stay open."""

from __future__ import annotations

import re

import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from testkit.servers import NOWHERE

KEY = "s3cret-key"


@pytest.fixture
def app(live):
    return live(api_key=KEY)


def mutations(mp4):
    return [
        ("POST", "/streams", {"json": {"id": "cam", "url": NOWHERE}}),
        ("DELETE", "/streams/cam", {}),
        ("POST", "/score", {"content": mp4.read_bytes()}),
    ]


def test_mutating_routes_need_the_key(app, mp4_clip):
    for method, path, kw in mutations(mp4_clip):
        r = app.client.request(method, path, **kw)
        assert r.status_code == 401, (method, path)
        assert "X-API-Key" in r.json()["detail"]
        r = app.client.request(method, path, headers={"X-API-Key": "wrong"}, **kw)
        assert r.status_code == 403, (method, path)
    for method, path, kw in mutations(mp4_clip):
        r = app.client.request(method, path, headers={"X-API-Key": KEY}, **kw)
        assert r.status_code in (200, 201, 204), (method, path, r.text)


def test_the_key_is_checked_before_the_request_is_read(app):
    """A client without the key learns 401/403, not whether its body or parameters would have passed."""
    malformed = [
        ("POST", "/streams", {"content": b"\xff\xfe", "headers": {"Content-Type": "application/json"}}),
        ("POST", "/streams", {"content": b"{", "headers": {"Content-Type": "application/json"}}),
        ("POST", "/streams", {"json": {"id": "no spaces allowed", "url": "", "extra": 1}}),
        ("POST", "/score?stride=0&calibrate_seconds=-1&camera=%20", {"content": b"not a video"}),
        ("DELETE", "/streams/no%20spaces", {}),
    ]
    for method, path, kw in malformed:
        headers = kw.pop("headers", {})
        r = app.client.request(method, path, headers=headers, **kw)
        assert r.status_code == 401, (method, path, r.text)
        r = app.client.request(method, path, headers={**headers, "X-API-Key": "wrong"}, **kw)
        assert r.status_code == 403, (method, path, r.text)
        r = app.client.request(method, path, headers={**headers, "X-API-Key": KEY}, **kw)
        assert r.status_code in (400, 422), (method, path, r.text)


def test_reads_stay_open(app):
    for path in ("/", "/healthz", "/readyz", "/metrics", "/model", "/streams", "/static/app.js"):
        assert app.client.get(path).status_code == 200, path
    assert app.client.get("/model").json()["auth"] is True


@pytest.mark.parametrize("path", ["/ws/streams", "/ws/streams/cam"])
def test_websockets_need_the_key(app, path):
    app.client.post("/streams", json={"id": "cam", "url": NOWHERE}, headers={"X-API-Key": KEY})
    with pytest.raises(InvalidStatus) as e:
        connect(f"{app.ws_url}{path}")
    assert e.value.response.status_code == 401
    with pytest.raises(InvalidStatus) as e:
        connect(f"{app.ws_url}{path}?api_key=wrong")
    assert e.value.response.status_code == 403
    with connect(f"{app.ws_url}{path}?api_key={KEY}") as ws:
        assert '"hello"' in ws.recv(timeout=10)
    with connect(f"{app.ws_url}{path}", additional_headers={"X-API-Key": KEY}) as ws:
        assert '"hello"' in ws.recv(timeout=10)


def test_open_without_a_key(live, mp4_clip):
    app = live()
    assert app.client.post("/score", content=mp4_clip.read_bytes()).status_code == 200
    assert app.client.get("/model").json()["auth"] is False


def all_routes(routes, prefix=""):
    """(full path, route) of every route, inside included routers too (FastAPI >= 0.16x keeps them nested)."""
    for route in routes:
        inner = getattr(route, "original_router", None)
        if inner is not None:
            yield from all_routes(inner.routes, prefix + route.include_context.prefix)
        else:
            yield prefix + getattr(route, "path", ""), route


def guarded_routes(fastapi_app):
    """(kind, method, path) of every route that changes something, found in the app itself: a new
    mutating route or WebSocket cannot escape the test below."""
    from starlette.routing import Mount, WebSocketRoute

    out = []
    for full, route in all_routes(fastapi_app.routes):
        path = re.sub(r"\{[^}]+\}", "cam", full)
        if isinstance(route, WebSocketRoute):
            out.append(("ws", None, path))
        elif isinstance(route, Mount):
            assert route.name == "static", route  # static files: GET only
        else:
            out += [("http", m, path) for m in sorted(route.methods - {"GET", "HEAD", "OPTIONS"})]
    return out


def test_every_mutating_route_and_websocket_needs_the_key(app):
    routes = guarded_routes(app.app)
    assert {("http", "POST", "/streams"), ("http", "DELETE", "/streams/cam"), ("http", "POST", "/score"),
            ("ws", None, "/ws/streams"), ("ws", None, "/ws/streams/cam")} <= set(routes)
    for kind, method, path in routes:
        if kind == "http":  # no body at all: the key is checked before anything else
            assert app.client.request(method, path).status_code == 401, (method, path)
            assert app.client.request(method, path, headers={"X-API-Key": "wrong"}).status_code == 403, (method, path)
            continue
        for query, status in (("", 401), ("?api_key=wrong", 403)):
            with pytest.raises(InvalidStatus) as e:
                connect(f"{app.ws_url}{path}{query}")
            assert e.value.response.status_code == status, (path, query)
