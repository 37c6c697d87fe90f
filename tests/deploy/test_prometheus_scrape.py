"""A real Prometheus, configured from deploy/prometheus (scrape job and alert rules), scrapes the
running service on loopback; its HTTP API then answers for service metrics, evaluates every alert
rule without error, and runs every dashboard query."""

from __future__ import annotations

import json
import subprocess
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.conftest import CAMERA
from tests.deploy.dashboards import load, queries
from tests.deploy.exposition import samples
from tests.deploy.promql import metric_names
from tests.deploy.rules import alert_names
from tests.deploy.running_service import Service, http
from tests.deploy.test_dashboard import substitute
from tests.deploy.tools import ALERTS, DASHBOARDS, DEPLOY, free_port, tool, wait_for

pytestmark = pytest.mark.slow


@dataclass
class Prometheus:
    url: str

    def api(self, path: str, **params: str) -> Any:
        status, body = http("GET", f"{self.url}/api/v1/{path}?{urllib.parse.urlencode(params)}")
        assert status in (200, 400, 422), (status, body[:300])
        return json.loads(body)

    def query(self, expr: str) -> Any:
        return self.api("query", query=expr)


def config_for(target: str) -> dict:
    """deploy/prometheus/prometheus.yml with the Docker DNS discovery swapped for the loopback
    target and faster intervals; job name, metrics path and rule files stay as shipped."""
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    config["global"].update(scrape_interval="1s", evaluation_interval="1s")
    config["rule_files"] = [str((DEPLOY / "prometheus" / f).resolve()) for f in config["rule_files"]]
    job = next(j for j in config["scrape_configs"] if j["job_name"] == "ocrgan")
    del job["dns_sd_configs"]
    job["static_configs"] = [{"targets": [target]}]
    return config


@pytest.fixture(scope="module")
def prometheus(service: Service, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prometheus]:
    tmp = tmp_path_factory.mktemp("prometheus")
    (tmp / "prometheus.yml").write_text(yaml.safe_dump(config_for(f"127.0.0.1:{service.port}")))
    port = free_port()
    log = (tmp / "prometheus.log").open("wb")
    proc = subprocess.Popen([tool("prometheus"), f"--config.file={tmp / 'prometheus.yml'}",
                             f"--storage.tsdb.path={tmp / 'data'}", f"--web.listen-address=127.0.0.1:{port}"],
                            stdout=log, stderr=subprocess.STDOUT)
    prom = Prometheus(f"http://127.0.0.1:{port}")
    try:
        wait_for(lambda: http("GET", f"{prom.url}/-/ready")[0] == 200, 30, "Prometheus to be ready")
        yield prom
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()


def _has_data(prom: Prometheus, expr: str) -> bool:
    r = prom.query(expr)
    return r["status"] == "success" and bool(r["data"]["result"])


def test_the_service_target_is_up(prometheus: Prometheus) -> None:
    wait_for(lambda: _has_data(prometheus, 'up{job="ocrgan"} == 1'), 30, "the ocrgan target to be up")


def test_a_service_metric_returns_data(prometheus: Prometheus) -> None:
    expr = f'ocrgan_frames_scored_total{{job="ocrgan", stream="{CAMERA}"}}'
    wait_for(lambda: _has_data(prometheus, expr), 30, f"{expr} in Prometheus")
    value = float(prometheus.query(expr)["data"]["result"][0]["value"][1])
    assert value > 0


def test_every_alert_rule_is_loaded_and_evaluates(prometheus: Prometheus) -> None:
    def evaluated() -> list[dict] | None:
        groups = prometheus.api("rules")["data"]["groups"]
        found = [r for g in groups for r in g["rules"]]
        done = found and all(not r["lastEvaluation"].startswith("0001") for r in found)
        return found if done else None

    found = wait_for(evaluated, 30, "every rule to be evaluated once")
    assert sorted(r["name"] for r in found if r["type"] == "alerting") == sorted(alert_names(ALERTS))
    assert all(r["health"] == "ok" for r in found), [(r["name"], r.get("lastError")) for r in found]


@pytest.mark.parametrize("path", DASHBOARDS, ids=[d.name for d in DASHBOARDS])
def test_every_dashboard_query_runs(prometheus: Prometheus, service: Service, path: Path) -> None:
    """Queries run without error; those whose metrics have samples right now return data."""
    wait_for(lambda: _has_data(prometheus, f"rate(ocrgan_frames_decoded_total{{stream=\"{CAMERA}\"}}[30s])"),
             30, "two scrapes of the camera's counters")
    exposition = service.get("/metrics")[1].decode()
    empty = []
    for where, expr in queries(load(path)):
        sent = substitute(expr, CAMERA)
        r = prometheus.query(sent)
        assert r["status"] == "success", f"{where}: {sent}: {r.get('error')}"
        live = all(samples(exposition, n) for n in metric_names(expr))
        if live and not r["data"]["result"]:
            empty.append(f"{where}: {sent}")
    assert not empty, empty
