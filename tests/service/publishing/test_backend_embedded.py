"""The embedded backend: registry file written atomically, bounded history."""

from __future__ import annotations

import json

from service.api.schemas import ScoreMessage
from service.publishing.backends.embedded import EmbeddedBackend


def test_registry_file(tmp_path):
    path = tmp_path / "state" / "streams.json"
    b = EmbeddedBackend(path, 5, "r1")
    assert b.load_specs() == {}
    assert b.add_spec({"id": "a", "url": "rtsp://10.0.0.1/x"})
    assert b.add_spec({"id": "b", "url": "rtsp://10.0.0.2/x"})
    assert not b.add_spec({"id": "b", "url": "rtsp://10.0.0.3/x"})
    b.delete_spec("a")
    assert json.loads(path.read_text())["streams"] == {"b": {"id": "b", "url": "rtsp://10.0.0.2/x"}}
    assert EmbeddedBackend(path, 5, "r2").load_specs() == {"b": {"id": "b", "url": "rtsp://10.0.0.2/x"}}
    assert [p.name for p in path.parent.iterdir()] == ["streams.json"]  # no temp files left
    assert b.claim("b") and b.heartbeat() == 1 and b.ping()


def test_unreadable_registry_starts_empty(tmp_path):
    path = tmp_path / "streams.json"
    path.write_text("{not json")
    assert EmbeddedBackend(path, 5, "r").load_specs() == {}


def test_history_is_bounded_and_filtered(tmp_path):
    b = EmbeddedBackend(tmp_path / "r.json", 5, "r")
    b.publish([ScoreMessage(type="score", stream_id="a", replica="r", frame_index=t, timestamp=float(t), score=0.0,
                            normalised=0.0, anomaly=False) for t in range(8)])
    assert [m.timestamp for m in b.history("a", None, 100)] == [3.0, 4.0, 5.0, 6.0, 7.0]
    assert [m.timestamp for m in b.history("a", 5.0, 100)] == [6.0, 7.0]
    assert [m.timestamp for m in b.history("a", None, 2)] == [6.0, 7.0]
    b.forget("a")
    assert b.history("a", None, 10) == []


def test_a_temp_file_left_by_a_killed_process_is_removed(tmp_path):
    path = tmp_path / "streams.json"
    EmbeddedBackend(path, 5, "r").add_spec({"id": "a", "url": "rtsp://10.0.0.1/x"})
    (tmp_path / ".streams.json.k1ll3d.tmp").write_text('{"version": 1, "str')
    assert EmbeddedBackend(path, 5, "r").load_specs() == {"a": {"id": "a", "url": "rtsp://10.0.0.1/x"}}
    assert [p.name for p in tmp_path.iterdir()] == ["streams.json"]
