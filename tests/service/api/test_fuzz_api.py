"""Property-based fuzzing of the whole HTTP API from its own OpenAPI schema (schemathesis, every one of its
checks): whatever a client sends, valid or not, the answer is never a 5xx and is what the document declares
(status, content type, body schema, headers, Allow), requests the schema calls invalid are refused, valid ones
accepted, the API key is enforced where the document says so, and the service connects to nothing beyond
loopback, whatever camera URLs the schema's examples and the fuzzer register. The service runs as
`ocrgan serve` under strace, which records its every connect(). The default run is bounded
(FUZZ_EXAMPLES per operation); OCRGAN_FUZZ_EXAMPLES=500 pytest tests/service/test_fuzz_api.py fuzzes harder."""

from __future__ import annotations

import os

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.config import SchemathesisConfig

from service.api.app import create_app
from service.settings import Settings
from testkit.connect_trace import beyond_loopback, connects
from testkit.servers import AppProcess, wait_for

pytestmark = pytest.mark.slow
FUZZ_EXAMPLES = int(os.environ.get("OCRGAN_FUZZ_EXAMPLES", "25"))
API_KEY = "fuzz-key"
# Every built-in check, max_response_time included (no answer may take this long). Requests valid by the schema
# must be accepted (2xx, or 401/403/404/409/429 as schemathesis allows), except where the service refuses what
# no schema can describe, each answer declared in the document: a camera URL whose host the URL policy refuses
# or that does not resolve (422), and an upload that is not a video it can score, or asks for a stride this
# model cannot take, or for two calibrations at once (413, 415, 422).
CHECKS = {"enabled": True, "max_response_time": 30}
CONFIG = SchemathesisConfig.from_dict({
    "checks": CHECKS,
    "operations": [
        {"include-name": "POST /streams",
         "checks": {"positive_data_acceptance": {"expected-statuses": ["2xx", "401", "403", "409", "422"]}}},
        {"include-name": "POST /score",
         "checks": {"positive_data_acceptance": {
             "expected-statuses": ["2xx", "401", "403", "404", "409", "413", "415", "422", "429"]}}},
    ],
})


@pytest.fixture(scope="module")
def fuzzed_app(tmp_path_factory, checkpoint):
    tmp = tmp_path_factory.mktemp("fuzz")
    env = {"OCRGAN_CHECKPOINT": str(checkpoint), "OCRGAN_REGISTRY_PATH": str(tmp / "streams.json"),
           "OCRGAN_UPLOAD_DIR": str(tmp), "OCRGAN_DEVICE": "cpu", "OCRGAN_TORCH_THREADS": "1",
           "OCRGAN_UPLOAD_MAX_BYTES": "1000000", "OCRGAN_OPEN_TIMEOUT_SECONDS": "2", "OCRGAN_WATCHDOG_SECONDS": "2",
           "OCRGAN_API_KEY": API_KEY}
    app = AppProcess(env, tmp / "service.log", trace_connects=tmp / "connects.log")
    app.trace = tmp / "connects.log"
    app.client.headers["X-API-Key"] = API_KEY
    yield app
    app.stop()


# the schema the app serves at /openapi.json, built without starting it (routes do not depend on settings)
schema = schemathesis.openapi.from_dict(create_app(Settings(_env_file=None)).openapi(), config=CONFIG)


@schema.parametrize()
@settings(max_examples=FUZZ_EXAMPLES, deadline=None, derandomize=True,
          suppress_health_check=list(HealthCheck))
def test_no_request_gets_a_server_error(case, fuzzed_app):
    """The service runs with an API key; schemathesis sends it, and probes each guarded route without it and
    with a wrong one (ignored_auth)."""
    case.call_and_validate(base_url=fuzzed_app.url, headers={"X-API-Key": API_KEY})
    assert fuzzed_app.client.get("/healthz").status_code == 200


def test_the_fuzzed_service_connected_to_nothing_beyond_loopback(fuzzed_app, rtsp):
    """Runs after the fuzz cases, on the same service: a loopback camera shows that the trace sees the
    service's own connections; nothing else it did reached for another address."""
    server = rtsp()
    r = fuzzed_app.client.post("/streams", json={"id": "traced", "url": f"rtsp://127.0.0.1:{server.port}/cam"})
    assert r.status_code == 201, r.text
    wait_for(lambda: fuzzed_app.client.get("/streams/traced").json()["frames_decoded"] > 0, 30,
             what="the loopback camera's first frames")
    fuzzed_app.stop()  # the trace is complete once the service has exited
    assert ("127.0.0.1", server.port) in connects(fuzzed_app.trace)
    assert beyond_loopback(fuzzed_app.trace) == []
