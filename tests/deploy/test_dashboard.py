"""The provisioned Grafana dashboard, checked without Grafana: structure, datasource, variables,
the panels the operations section promises, and every query through Prometheus's own parser."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.deploy.dashboards import load, panels, queries
from tests.deploy.tools import DASHBOARDS, DEPLOY, tool

DATASOURCE_UID = yaml.safe_load((DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yml")
                                .read_text())["datasources"][0]["uid"]
GRAFANA_BUILTINS = {"__rate_interval", "__interval", "__range", "__all"}
PANEL_TYPES = {"row", "timeseries", "state-timeline", "stat", "bargauge", "gauge", "table", "heatmap"}


def substitute(expr: str, stream: str = "gate") -> str:
    """A query as Grafana sends it: variables replaced by values."""
    return (expr.replace("$__rate_interval", "30s").replace("$__interval", "5s").replace("$__range", "1h")
            .replace("$stream", stream))


@pytest.fixture(params=DASHBOARDS, ids=[d.name for d in DASHBOARDS])
def dashboard(request: pytest.FixtureRequest) -> dict:
    return load(request.param)


def test_there_is_a_dashboard() -> None:
    assert [d.name for d in DASHBOARDS] == ["ocrgan.json"]


def test_panels_are_well_formed(dashboard: dict) -> None:
    ids = [p["id"] for p in panels(dashboard)]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for p in panels(dashboard):
        assert p["type"] in PANEL_TYPES, p["type"]
        g = p["gridPos"]
        assert g["x"] >= 0 and g["x"] + g["w"] <= 24 and g["h"] > 0, (p["title"], g)
        if p["type"] == "row":
            continue
        assert p["targets"], f"panel {p['title']!r} has no query"
        refs = [t["refId"] for t in p["targets"]]
        assert len(refs) == len(set(refs)), p["title"]
        assert all(t["expr"].strip() for t in p["targets"]), p["title"]


def test_every_query_uses_the_provisioned_datasource(dashboard: dict) -> None:
    for p in panels(dashboard):
        if p["type"] == "row":
            continue
        for obj in [p, *p["targets"]]:
            assert obj["datasource"] == {"type": "prometheus", "uid": DATASOURCE_UID}, p["title"]
    for v in dashboard["templating"]["list"]:
        assert v["datasource"]["uid"] == DATASOURCE_UID


def test_variables_used_are_defined(dashboard: dict) -> None:
    defined = {v["name"] for v in dashboard["templating"]["list"]} | GRAFANA_BUILTINS
    text = " ".join([e for _, e in queries(dashboard)] + [p["title"] for p in panels(dashboard)])
    used = set(re.findall(r"\$\{?(\w+)", text)) | {p["repeat"] for p in panels(dashboard) if p.get("repeat")}
    assert used <= defined, used - defined


def _exprs(dashboard: dict) -> list[str]:
    return [e for _, e in queries(dashboard)]


def test_promised_panels_are_there(dashboard: dict) -> None:
    by_title = {p["title"]: [t["expr"] for t in p.get("targets", [])] for p in panels(dashboard)}
    score_panel = next(exprs for title, exprs in by_title.items() if "ocrgan_anomaly_score" in " ".join(exprs))
    assert any("ocrgan_anomaly_threshold" in e for e in score_panel), "the score panel must show the threshold"
    repeated = [p for p in panels(dashboard) if p.get("repeat") == "stream"]
    assert repeated and "ocrgan_anomaly_score" in repeated[0]["targets"][0]["expr"], "one score panel per camera"
    exprs = " ".join(_exprs(dashboard))
    for counter in ("decoded", "scored", "dropped"):
        assert re.search(rf"rate\(ocrgan_frames_{counter}_total", exprs), counter
    for hist in ("ocrgan_end_to_end_latency_seconds", "ocrgan_inference_seconds"):
        for q in ("0.5", "0.99"):
            assert re.search(rf"histogram_quantile\({q}, sum by \(le\) \(rate\({hist}_bucket", exprs), (hist, q)
    for name in ("ocrgan_batch_size", "ocrgan_stream_up", "ocrgan_stream_reconnects_total",
                 "ocrgan_anomaly_events_total", "ocrgan_anomaly_active"):
        assert name in exprs, name


def test_every_query_parses_as_promql(dashboard: dict, tmp_path: Path) -> None:
    """Each query, as Grafana would send it, goes through promtool as a recording rule."""
    rules = [{"record": f"dashboard:query_{i}", "expr": substitute(e)} for i, e in enumerate(_exprs(dashboard))]
    path = tmp_path / "queries.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    out = subprocess.run([tool("promtool"), "check", "rules", str(path)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"SUCCESS: {len(rules)} rules found" in out.stdout
