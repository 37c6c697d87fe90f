"""Reading Prometheus rule files: every rule with its group."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml


def rules(path: Path) -> Iterator[dict[str, Any]]:
    for group in yaml.safe_load(path.read_text())["groups"]:
        yield from group["rules"]


def alert_names(path: Path) -> list[str]:
    return [r["alert"] for r in rules(path) if "alert" in r]
