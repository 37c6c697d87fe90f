"""Prometheus configuration and alert rules, checked and unit-tested by the real promtool."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import yaml

from tests.deploy.rules import alert_names
from tests.deploy.tools import ALERTS, DEPLOY, tool

PROM = DEPLOY / "prometheus"


def promtool(*args: str, cwd: Path = PROM) -> subprocess.CompletedProcess:
    return subprocess.run([tool("promtool"), *args], cwd=cwd, capture_output=True, text=True, timeout=120)


def test_config_is_valid() -> None:
    out = promtool("check", "config", "prometheus.yml")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "1 rule files found" in out.stdout + out.stderr


def test_rules_are_valid() -> None:
    out = promtool("check", "rules", "alerts.yml")
    assert out.returncode == 0, out.stdout + out.stderr


def test_rule_unit_tests_pass() -> None:
    out = promtool("test", "rules", "alerts_test.yml")
    assert out.returncode == 0, out.stdout + out.stderr


def test_every_alert_has_a_unit_test_that_sees_it_fire() -> None:
    tests = yaml.safe_load((PROM / "alerts_test.yml").read_text())["tests"]
    firing = {case["alertname"] for t in tests for case in t.get("alert_rule_test", []) if case.get("exp_alerts")}
    silent = {case["alertname"] for t in tests for case in t.get("alert_rule_test", []) if not case.get("exp_alerts")}
    names = set(alert_names(ALERTS))
    assert names == firing, f"alerts without a firing test: {names - firing}"
    assert names == silent, f"alerts without a case where they stay silent: {names - silent}"


def test_unit_tests_fail_when_an_alert_is_broken(tmp_path: Path) -> None:
    """promtool really compares: with one threshold changed the unit tests fail."""
    for name in ("alerts.yml", "alerts_test.yml"):
        shutil.copy(PROM / name, tmp_path / name)
    rules = (tmp_path / "alerts.yml").read_text()
    broken, n = re.subn(r"\) > 5\n", ") > 50\n", rules)
    assert n == 1
    (tmp_path / "alerts.yml").write_text(broken)
    out = promtool("test", "rules", "alerts_test.yml", cwd=tmp_path)
    assert out.returncode != 0 and "OcrganReconnectStorm" in out.stdout + out.stderr


def test_alerts_have_severity_and_summary() -> None:
    for group in yaml.safe_load(ALERTS.read_text())["groups"]:
        for rule in group["rules"]:
            assert rule["labels"]["severity"] in {"critical", "warning", "info"}, rule["alert"]
            assert rule["annotations"]["summary"] and rule["annotations"]["description"], rule["alert"]
