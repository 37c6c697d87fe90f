"""Frame labels: a JSON file keyed by clip name, or the UCSD dataset's own `UCSDped*.m` file."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from training.sequences import DataError


def read_labels_json(path: Path) -> dict[str, np.ndarray]:
    """{"labels": {clip: [0/1, ...]}} or {clip: [0/1, ...]} -> {clip: (N,) uint8}."""
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise DataError(f"{path}: cannot read labels JSON: {e}") from e
    table = data.get("labels", data) if isinstance(data, dict) else None
    if not isinstance(table, dict):
        raise DataError(f"{path}: expected an object mapping clip names to 0/1 lists")
    out = {}
    for name, values in table.items():
        arr = np.asarray(values)
        if arr.ndim != 1 or not np.isin(arr, (0, 1)).all():
            raise DataError(f"{path}: labels of {name!r} must be a flat list of 0/1")
        out[str(name)] = arr.astype(np.uint8)
    return out


_GT = re.compile(r"gt_frame\s*=\s*\[([^\]]*)\]")


def parse_ucsd_m(path: Path) -> list[list[tuple[int, int]]]:
    """UCSDped*.m -> per test clip, the 1-based inclusive anomalous frame ranges."""
    try:
        text = path.read_text()
    except OSError as e:
        raise DataError(f"{path}: cannot read ground truth: {e}") from e
    clips = []
    for m in _GT.finditer(text):
        ranges = []
        for part in re.split(r"[,\s]+", m.group(1).strip()):
            if not part:
                continue
            bounds = part.split(":")
            try:
                lo, hi = int(bounds[0]), int(bounds[-1])
            except ValueError as e:
                raise DataError(f"{path}: cannot parse frame range {part!r}") from e
            ranges.append((lo, hi))
        clips.append(ranges)
    if not clips:
        raise DataError(f"{path}: no 'gt_frame = [a:b]' entries found")
    return clips


def ranges_to_labels(ranges: list[tuple[int, int]], length: int) -> np.ndarray:
    labels = np.zeros(length, np.uint8)
    for lo, hi in ranges:
        labels[max(lo - 1, 0): min(hi, length)] = 1
    return labels
