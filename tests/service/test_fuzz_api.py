"""Property-based fuzzing of the whole HTTP API from its own OpenAPI schema (schemathesis): whatever
a client sends, valid or not, the answer is never a 5xx. The default run is bounded (FUZZ_EXAMPLES
per operation); OCRGAN_FUZZ_EXAMPLES=500 pytest tests/service/test_fuzz_api.py fuzzes harder."""

from __future__ import annotations

import os

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from service.app import create_app
from service.settings import Settings
from tests.service.servers import LiveApp

pytestmark = pytest.mark.slow
FUZZ_EXAMPLES = int(os.environ.get("OCRGAN_FUZZ_EXAMPLES", "25"))


@pytest.fixture(scope="module")
def fuzzed_app(tmp_path_factory, checkpoint):
    tmp = tmp_path_factory.mktemp("fuzz")
    app = LiveApp(create_app(Settings(_env_file=None, checkpoint=checkpoint, registry_path=tmp / "streams.json",
                                      upload_dir=tmp, device="cpu", torch_threads=1, upload_max_bytes=1_000_000,
                                      open_timeout_seconds=2, watchdog_seconds=2)))
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
