"""Every metric the dashboard and the alert rules read is exported by the running service."""

from __future__ import annotations

import pytest

from tests.deploy.conftest import CAMERA
from tests.deploy.dashboards import load, queries
from tests.deploy.exposition import samples, series_names
from tests.deploy.promql import metric_names
from tests.deploy.rules import rules
from tests.deploy.running_service import Service
from tests.deploy.tools import ALERTS, DASHBOARDS

# Series that Prometheus itself attaches to every scrape target, not the service.
PROMETHEUS_SERIES = {"up"}

pytestmark = pytest.mark.slow


def queried() -> dict[str, set[str]]:
    """metric name -> where it is queried."""
    found: dict[str, set[str]] = {}
    for path in DASHBOARDS:
        for where, expr in queries(load(path)):
            for name in metric_names(expr):
                found.setdefault(name, set()).add(f"{path.name}: {where}")
    for rule in rules(ALERTS):
        for name in metric_names(rule["expr"]):
            found.setdefault(name, set()).add(f"alerts.yml: {rule.get('alert') or rule.get('record')}")
    return found


@pytest.fixture(scope="module")
def exposition(service: Service) -> str:
    status, body = service.get("/metrics")
    assert status == 200
    return body.decode()


def test_the_queries_read_service_metrics() -> None:
    names = set(queried())
    assert len(names) >= 12 and all(n.startswith("ocrgan_") or n in PROMETHEUS_SERIES for n in names), names


def test_every_queried_metric_is_exported(exposition: str) -> None:
    exported = series_names(exposition) | PROMETHEUS_SERIES
    missing = {name: sorted(where) for name, where in queried().items() if name not in exported}
    assert not missing, f"queried but not exported by /metrics: {missing}"


def test_a_scored_camera_has_live_series(exposition: str) -> None:
    """Every per-camera series carries the camera's id as `stream` from the start, counters of
    events that have not happened yet included (at zero), so rate() and increase() count the first one."""
    for name in ("ocrgan_stream_up", "ocrgan_frames_decoded_total", "ocrgan_frames_scored_total",
                 "ocrgan_frames_dropped_total", "ocrgan_stream_reconnects_total", "ocrgan_anomaly_events_total",
                 "ocrgan_anomaly_score", "ocrgan_anomaly_active", "ocrgan_stream_recalibrations_total"):
        assert any(f'stream="{CAMERA}"' in line for line in samples(exposition, name)), name
    assert samples(exposition, "ocrgan_anomaly_threshold")
    count = samples(exposition, "ocrgan_inference_seconds_count")
    assert count and float(count[0].split()[-1]) > 0
