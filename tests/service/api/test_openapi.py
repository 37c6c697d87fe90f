"""The OpenAPI document is the API: each route declares the statuses and shapes it answers, the API key's
security scheme guards exactly the mutating routes, /metrics is text, OPTIONS names every method of a path,
and what the service really returns validates against the declared models (WebSocket messages included)."""

from __future__ import annotations

import json

import pytest
from pydantic import TypeAdapter
from websockets.sync.client import connect

from service.api.app import create_app
from service.api.schemas import (
    ErrorResponse,
    ScoreResult,
    ServedModel,
    StreamList,
    StreamScores,
    StreamView,
    ValidationErrorResponse,
    WebSocketMessage,
)
from service.settings import Settings
from testkit.servers import NOWHERE, wait_for


@pytest.fixture(scope="module")
def doc():
    return create_app(Settings(_env_file=None)).openapi()


def responses(doc, method, path):
    return doc["paths"][path][method]["responses"]


def schema_name(response, media="application/json"):
    return response["content"][media]["schema"]["$ref"].rsplit("/", 1)[-1]


def test_every_route_declares_its_answers(doc):
    declared = {(m.upper(), p): set(map(int, r["responses"]))
                for p, ops in doc["paths"].items() for m, r in ops.items()}
    assert declared == {
        ("POST", "/score"): {200, 400, 401, 403, 404, 408, 409, 413, 415, 422, 429, 503},
        ("GET", "/streams"): {200, 503},
        ("POST", "/streams"): {201, 400, 401, 403, 409, 422, 503},
        ("GET", "/streams/{stream_id}"): {200, 404, 422},
        ("DELETE", "/streams/{stream_id}"): {204, 401, 403, 404, 422, 503},
        ("GET", "/streams/{stream_id}/scores"): {200, 404, 422},
        ("GET", "/streams/{stream_id}/snapshot.jpg"): {200, 404, 422},
        ("GET", "/healthz"): {200},
        ("GET", "/readyz"): {200, 503},
        ("GET", "/metrics"): {200},
        ("GET", "/model"): {200},
        ("GET", "/schemas/messages.json"): {200},
    }
    for (method, path), statuses in declared.items():
        for status in statuses - {200, 201, 204}:
            r = responses(doc, method.lower(), path)[str(status)]
            if path == "/readyz":
                assert schema_name(r) == "Readiness"
            else:
                want = "ValidationErrorResponse" if status == 422 else "ErrorResponse"
                assert schema_name(r) == want, (method, path, status)


def test_success_models(doc):
    assert schema_name(responses(doc, "post", "/score")["200"]) == "ScoreResult"
    assert schema_name(responses(doc, "get", "/streams")["200"]) == "StreamList"
    assert schema_name(responses(doc, "post", "/streams")["201"]) == "StreamView"
    assert schema_name(responses(doc, "get", "/streams/{stream_id}")["200"]) == "StreamView"
    assert schema_name(responses(doc, "get", "/streams/{stream_id}/scores")["200"]) == "StreamScores"
    assert schema_name(responses(doc, "get", "/model")["200"]) == "ServedModel"
    assert set(responses(doc, "get", "/metrics")["200"]["content"]) == {"text/plain"}
    assert set(responses(doc, "get", "/streams/{stream_id}/snapshot.jpg")["200"]["content"]) == {"image/jpeg"}
    assert "content" not in responses(doc, "delete", "/streams/{stream_id}")["204"]
    detail = doc["components"]["schemas"]["ValidationErrorResponse"]["properties"]["detail"]
    assert {"type": "string"} in detail["anyOf"] and any(s.get("type") == "array" for s in detail["anyOf"])


def test_the_api_key_is_declared_on_exactly_the_mutating_routes(doc):
    assert doc["components"]["securitySchemes"]["ApiKey"] | {"description": ""} == {
        "type": "apiKey", "in": "header", "name": "X-API-Key", "description": ""}
    secured = {(m.upper(), p) for p, ops in doc["paths"].items() for m, op in ops.items() if op.get("security")}
    assert secured == {("POST", "/score"), ("POST", "/streams"), ("DELETE", "/streams/{stream_id}")}
    for method, path in secured:
        assert doc["paths"][path][method.lower()]["security"] == [{"ApiKey": []}]


def test_websocket_messages_are_in_the_components(doc):
    schemas = doc["components"]["schemas"]
    ws = schemas["WebSocketMessage"]
    assert ws["discriminator"]["propertyName"] == "type"
    assert set(ws["discriminator"]["mapping"]) == {"hello", "score", "event", "status"}
    for name in ("HelloMessage", "ScoreMessage", "EventMessage", "StatusMessage", "StreamView"):
        assert name in schemas, name
    assert "/ws/streams" in doc["info"]["description"]


def test_options_and_unknown_methods_name_every_method_of_the_path(live):
    app = live()
    for path, allow in (("/streams", "GET, POST"), ("/streams/cam", "DELETE, GET"), ("/score", "POST"),
                        ("/metrics", "GET")):
        for method in ("OPTIONS", "PUT", "PATCH"):
            r = app.client.request(method, path)
            assert r.status_code == 405, (method, path)
            assert r.headers["allow"] == allow, (method, path)
            assert ErrorResponse.model_validate(r.json())


def test_errors_have_the_declared_shapes(live):
    app = live()
    r = app.client.get("/streams/nope")
    assert r.status_code == 404 and ErrorResponse.model_validate(r.json())
    r = app.client.post("/streams", json={"id": "x"})
    assert r.status_code == 422 and isinstance(ValidationErrorResponse.model_validate(r.json()).detail, list)
    r = app.client.post("/streams", json={"id": "x", "url": "ftp://127.0.0.1/x"})
    assert r.status_code == 422 and isinstance(ValidationErrorResponse.model_validate(r.json()).detail, str)
    r = app.client.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")


def test_clip_scores_validate_against_the_document(live, mp4_clip):
    app = live()
    for query in ("", "?heatmaps=true", "?calibrate_seconds=0.5"):
        r = app.client.post(f"/score{query}", content=mp4_clip.read_bytes())
        assert r.status_code == 200, r.text
        result = ScoreResult.model_validate(r.json())
        assert result.num_frames == len(result.frames) > 0
    assert result.calibration.source == "clip"
    ServedModel.model_validate(app.client.get("/model").json())


@pytest.mark.slow
def test_stream_views_scores_and_websocket_messages_validate_against_the_document(live, rtsp):
    server = rtsp()
    app = live()
    r = app.client.post("/streams", json={"id": "cam", "url": f"rtsp://127.0.0.1:{server.port}/cam"})
    assert r.status_code == 201 and StreamView.model_validate(r.json()).id == "cam"
    assert app.client.post("/streams", json={"id": "gone", "url": NOWHERE}).status_code == 201
    with connect(f"{app.ws_url}/ws/streams") as ws:
        messages = TypeAdapter(WebSocketMessage)
        assert messages.validate_python(json.loads(ws.recv(timeout=10))).type == "hello"
        kinds = set()
        while "score" not in kinds:
            kinds.add(messages.validate_python(json.loads(ws.recv(timeout=30))).type)
    wait_for(lambda: app.client.get("/streams/cam").json().get("frames_scored", 0) > 4, 20)
    views = StreamList.model_validate(app.client.get("/streams").json()).streams
    assert {v.id for v in views} == {"cam", "gone"}
    assert StreamView.model_validate(app.client.get("/streams/cam").json()).normalisation is not None
    for events in ("false", "true"):
        scores = StreamScores.model_validate(app.client.get(f"/streams/cam/scores?events={events}").json())
        assert scores.items
    assert {m.type for m in scores.items} >= {"score", "status"}
