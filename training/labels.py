"""Frame labels: a JSON file keyed by clip name, the benchmarks' own ground truth as they are distributed (UCSD's
`UCSDped*.m`, ShanghaiTech's per-clip `test_frame_mask/<clip>.npy`, CUHK Avenue's per-video pixel masks
`testing_label_mask/<n>_label.mat`), and the rule that matches a clip to its labels."""

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


def read_label_arrays(folder: Path) -> dict[str, np.ndarray]:
    """A folder of `<clip>.npy` files, each one 0/1 per frame (ShanghaiTech's `test_frame_mask`) -> {clip: (N,)}."""
    out = {}
    for path in sorted(folder.glob("*.npy")):
        try:
            arr = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as e:
            raise DataError(f"{path}: cannot read frame labels: {e}") from e
        arr = np.squeeze(arr)
        if arr.ndim != 1 or not np.isin(arr, (0, 1)).all():
            raise DataError(f"{path}: expected one 0/1 per frame, got an array of shape {arr.shape}")
        out[path.stem] = arr.astype(np.uint8)
    if not out:
        raise DataError(f"{folder}: no <clip>.npy frame-label files")
    return out


def read_mask_mats(folder: Path) -> dict[str, np.ndarray]:
    """A folder of `<n>_label.mat` files, each holding `volLabel`, one pixel mask per frame of video n (CUHK Avenue's
    `testing_label_mask`) -> {n: (N,)}: a frame is anomalous where its mask marks any pixel."""
    from scipy.io import loadmat
    from scipy.io.matlab import MatReadError

    out = {}
    for path in sorted(folder.glob("*_label.mat")):
        try:
            masks = loadmat(path, squeeze_me=False).get("volLabel")
        except (OSError, ValueError, MatReadError, NotImplementedError) as e:  # NotImplementedError: MATLAB v7.3
            raise DataError(f"{path}: cannot read pixel masks: {e}") from e
        if masks is None or masks.dtype != object:
            raise DataError(f"{path}: no 'volLabel' cell array of per-frame masks")
        out[path.name.removesuffix("_label.mat")] = np.array(
            [int(np.asarray(m).any()) for m in masks.ravel()], np.uint8)
    if not out:
        raise DataError(f"{folder}: no <n>_label.mat mask files")
    return out


def find_labels(places: list[Path]) -> dict[str, np.ndarray] | None:
    """The first labels found among `places` (folders, in order): a `labels.json`, a `test_frame_mask/` of .npy
    files, or a `ground_truth_demo/testing_label_mask/` or `testing_label_mask/` of .mat masks (None: none)."""
    for place in places:
        if (place / "labels.json").is_file():
            return read_labels_json(place / "labels.json")
        if (place / "test_frame_mask").is_dir():
            return read_label_arrays(place / "test_frame_mask")
        for masks in (place / "ground_truth_demo" / "testing_label_mask", place / "testing_label_mask"):
            if masks.is_dir():
                return read_mask_mats(masks)
    return None


LABEL_FILES = "a labels.json (clip -> 0/1 per frame), test_frame_mask/<clip>.npy or testing_label_mask/<n>_label.mat"


def labels_for(labels: dict[str, np.ndarray], name: str) -> np.ndarray | None:
    """A clip's labels: keyed by its name, its name without the extension, or the same number ("01.avi" and "1")."""
    stem = Path(name).stem
    for key in (name, stem):
        if key in labels:
            return labels[key]
    if stem.isdigit():
        return next((v for k, v in labels.items() if k.isdigit() and int(k) == int(stem)), None)
    return None


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
