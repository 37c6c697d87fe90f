"""The API key guards every mutating route and the WebSockets; reads stay open."""

from __future__ import annotations

import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

KEY = "s3cret-key"


@pytest.fixture
def app(live):
    return live(api_key=KEY)


def mutations(mp4):
    return [
        ("POST", "/streams", {"json": {"id": "cam", "url": "rtsp://10.255.255.1/x"}}),
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


def test_reads_stay_open(app):
    for path in ("/", "/healthz", "/readyz", "/metrics", "/model", "/streams", "/static/app.js"):
        assert app.client.get(path).status_code == 200, path
    assert app.client.get("/model").json()["auth"] is True


@pytest.mark.parametrize("path", ["/ws/streams", "/ws/streams/cam"])
def test_websockets_need_the_key(app, path):
    app.client.post("/streams", json={"id": "cam", "url": "rtsp://10.255.255.1/x"}, headers={"X-API-Key": KEY})
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
