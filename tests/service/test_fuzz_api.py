"""Property-based fuzzing of the whole HTTP API from its own OpenAPI schema (schemathesis): whatever
a client sends, valid or not, the answer is never a 5xx, and the service connects to nothing beyond
loopback, whatever camera URLs the schema's examples and the fuzzer register. The service runs as
`ocrgan serve` under strace, which records its every connect(). The default run is bounded
(FUZZ_EXAMPLES per operation); OCRGAN_FUZZ_EXAMPLES=500 pytest tests/service/test_fuzz_api.py fuzzes harder."""

from __future__ import annotations

import os

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from service.app import create_app
from service.settings import Settings
from tests.service.connect_trace import beyond_loopback, connects
from tests.service.servers import AppProcess, wait_for

pytestmark = pytest.mark.slow
FUZZ_EXAMPLES = int(os.environ.get("OCRGAN_FUZZ_EXAMPLES", "25"))


@pytest.fixture(scope="module")
def fuzzed_app(tmp_path_factory, checkpoint):
    tmp = tmp_path_factory.mktemp("fuzz")
    env = {"OCRGAN_CHECKPOINT": str(checkpoint), "OCRGAN_REGISTRY_PATH": str(tmp / "streams.json"),
           "OCRGAN_UPLOAD_DIR": str(tmp), "OCRGAN_DEVICE": "cpu", "OCRGAN_TORCH_THREADS": "1",
           "OCRGAN_UPLOAD_MAX_BYTES": "1000000", "OCRGAN_OPEN_TIMEOUT_SECONDS": "2", "OCRGAN_WATCHDOG_SECONDS": "2"}
    app = AppProcess(env, tmp / "service.log", trace_connects=tmp / "connects.log")
    app.trace = tmp / "connects.log"
    yield app
    app.stop()


# the schema the app serves at /openapi.json, built without starting it (routes do not depend on settings)
schema = schemathesis.openapi.from_dict(create_app(Settings(_env_file=None)).openapi())


@schema.parametrize()
@settings(max_examples=FUZZ_EXAMPLES, deadline=None, derandomize=True,
          suppress_health_check=list(HealthCheck))
def test_no_request_gets_a_server_error(case, fuzzed_app):
    case.call_and_validate(base_url=fuzzed_app.url, checks=[not_a_server_error])
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
