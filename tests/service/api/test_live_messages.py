"""The live messages (hello, score, event, status) as they really travel: over a WebSocket, in the history route,
on the Redis backend's channels and history, each one its model's exact JSON and within the schema served at
/schemas/messages.json; and cheap enough to build and serialise for every frame of every camera."""

from __future__ import annotations

import json
import time

import pytest
import redis as redis_lib
from websockets.sync.client import connect

from model import OCRGANConfig, OCRGANVideo, save_checkpoint
from service.api.schemas import WEBSOCKET_MESSAGE
from testkit.servers import wait_for
from tests.service.conftest import TINY

KINDS = {"hello", "score", "event", "status"}


@pytest.fixture(scope="module")
def alarmed(tmp_path_factory):
    """A checkpoint whose threshold every frame exceeds: a camera opens an anomaly event within its first frames."""
    path = tmp_path_factory.mktemp("alarmed") / "alarmed.safetensors"
    model = OCRGANVideo(OCRGANConfig(**TINY))
    model.set_score_statistics(mean=0.5, std=0.1, threshold=-1000.0)
    save_checkpoint(model, path)
    return path


def conforms(message: dict, schema: dict) -> str:
    """Check one received message against its model and the published schema; returns its type.

    The model must give back exactly the JSON received (no field unknown to it, none missing or retyped), and the
    message's object in the schema must list every field it carries and require none it lacks."""
    model = WEBSOCKET_MESSAGE.validate_python(message)
    assert model.model_dump(mode="json", exclude_unset=True) == message
    kind = message["type"]
    ref = schema["discriminator"]["mapping"][kind]
    part = schema["$defs"][ref.rsplit("/", 1)[-1]]
    assert set(part["required"]) <= set(message) <= set(part["properties"]), (kind, sorted(message))
    assert part["properties"]["type"]["const"] == kind
    return kind


def without_defaults(schema):
    """A schema without its "default" annotations (FastAPI leaves some out of the document's components)."""
    if isinstance(schema, dict):
        return {k: without_defaults(v) for k, v in schema.items() if k != "default"}
    if isinstance(schema, list):
        return [without_defaults(v) for v in schema]
    return schema


def collect(ws, schema, timeout=30.0) -> list[dict]:
    """Messages from a WebSocket until every kind has come, each checked as it arrives."""
    got, kinds = [], set()
    end = time.monotonic() + timeout
    while kinds != KINDS:
        assert time.monotonic() < end, f"only {sorted(kinds)} in {timeout}s"
        m = json.loads(ws.recv(timeout=max(0.1, end - time.monotonic())))
        kinds.add(conforms(m, schema))
        got.append(m)
    return got


def add_camera(app, mp4_clip, sid="cam"):
    r = app.client.post("/streams", json={"id": sid, "url": str(mp4_clip), "fps": 25, "calibrate": False})
    assert r.status_code == 201, r.text


def test_the_published_schema_is_the_openapi_documents(live):
    app = live()
    r = app.client.get("/schemas/messages.json")
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    schema = r.json()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert set(schema["discriminator"]["mapping"]) == KINDS
    components = without_defaults(app.client.get("/openapi.json").json()["components"]["schemas"])
    as_document = without_defaults(json.loads(json.dumps(schema).replace("#/$defs/", "#/components/schemas/")))
    assert components["WebSocketMessage"] == {k: v for k, v in as_document.items() if k not in ("$schema", "$defs")}
    for name, part in as_document["$defs"].items():  # the response models' parts are the same objects
        assert components[name] == part, name
    score = schema["$defs"]["ScoreMessage"]
    assert set(score["required"]) == {"type", "stream_id", "replica", "frame_index", "timestamp", "score",
                                      "normalised", "anomaly"}
    assert "dropped" in score["properties"] and "dropped" not in score["required"]


@pytest.mark.slow
def test_every_kind_of_message_over_a_websocket_is_its_model(live, make_settings, alarmed, mp4_clip):
    app = live(make_settings(checkpoint=alarmed, allow_file_sources=True))
    schema = app.client.get("/schemas/messages.json").json()
    add_camera(app, mp4_clip, "early")  # scored before the clients connect: the hello describes it
    with connect(f"{app.ws_url}/ws/streams") as every:
        add_camera(app, mp4_clip)
        got = collect(every, schema)
    hello = got[0]
    assert hello["type"] == "hello" and hello["replica"] == app.services.replica_id
    assert [s["id"] for s in hello["streams"]] == ["early"] and hello["streams"][0]["url"] == str(mp4_clip)
    event = next(m for m in got if m["type"] == "event")
    assert event["event"] == "start" and event["replica"] == app.services.replica_id
    assert not any("dropped" in m for m in got)  # only sent to a client that missed messages
    def history():
        return app.client.get("/streams/cam/scores", params={"events": "true"}).json()["items"]

    wait_for(lambda: {m["type"] for m in history()} == {"score", "event", "status"}, 20, what="cam's event")
    assert {conforms(m, schema) for m in history()} == {"score", "event", "status"}


@pytest.mark.slow
def test_messages_on_redis_are_the_models_too(live, make_settings, alarmed, mp4_clip, redis):
    """What other programs read from the Redis backend (its live channel and history) is the same JSON."""
    app = live(make_settings(checkpoint=alarmed, allow_file_sources=True, redis_url=redis.url, redis_prefix="t"))
    schema = app.client.get("/schemas/messages.json").json()
    outside = redis_lib.Redis.from_url(redis.url)
    sub = outside.pubsub(ignore_subscribe_messages=True)
    sub.psubscribe("t:live:*")
    try:
        time.sleep(0.2)  # subscribed before the camera starts
        add_camera(app, mp4_clip)
        live_kinds: set[str] = set()
        end = time.monotonic() + 30
        while live_kinds != {"score", "event", "status"}:
            assert time.monotonic() < end, f"only {sorted(live_kinds)} on t:live:cam"
            item = sub.get_message(timeout=0.5)
            if item is not None:
                assert item["channel"] == b"t:live:cam"
                live_kinds.add(conforms(json.loads(item["data"]), schema))
        wait_for(lambda: outside.xlen("t:history:cam") >= 10, 10, what="history")
        stored = [json.loads(fields[b"m"]) for _, fields in outside.xrange("t:history:cam")]
        assert {conforms(m, schema) for m in stored} == {"score", "event", "status"}
        items = app.client.get("/streams/cam/scores", params={"events": "true"}).json()["items"]
        assert items[: len(stored)] == stored  # the route answers what the history holds, unchanged
        assert {conforms(m, schema) for m in items} == {"score", "event", "status"}
    finally:
        sub.close()
        outside.close()
