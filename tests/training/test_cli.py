"""`ocrgan train`, `eval` and `calibrate` answer a user's mistake (a missing checkpoint or config, a data folder
that is missing or of no known layout) in one line before torch loads, and create no output folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from model import OCRGANConfig, OCRGANVideo, save_checkpoint
from tests.command import refusal

LAYOUT = "unrecognised dataset layout; expected training/frames/<clip>/..."


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("ckpt") / "tiny.safetensors"
    save_checkpoint(OCRGANVideo(OCRGANConfig(isize=(32, 48), nc=1, ngf=8, ndf=8, nz=16, num_frames=8)), path)
    return path


@pytest.fixture
def unknown_layout(tmp_path) -> Path:
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "readme.txt").write_text("no frames, no videos")
    return folder


def test_eval_refuses_a_missing_checkpoint_and_creates_no_output(tmp_path, frame_dataset):
    nowhere, out = tmp_path / "nowhere.safetensors", tmp_path / "eval"
    line = refusal(["eval", "--checkpoint", str(nowhere), "--data", str(frame_dataset), "--out", str(out)], tmp_path)
    assert line == f"ocrgan eval: checkpoint not found: {nowhere}"
    assert not out.exists()


def test_eval_refuses_missing_or_unknown_data_and_creates_no_output(tmp_path, checkpoint, unknown_layout):
    out, missing = tmp_path / "eval", tmp_path / "no-such-data"
    base = ["eval", "--checkpoint", str(checkpoint), "--out", str(out)]
    assert refusal([*base, "--data", str(missing)], tmp_path) == f"ocrgan eval: {missing}: no such file or folder"
    line = refusal([*base, "--data", str(unknown_layout)], tmp_path)
    assert line.startswith(f"ocrgan eval: {unknown_layout}: {LAYOUT}"), line
    assert not out.exists()


def test_train_refuses_missing_or_unknown_data_or_config_and_creates_no_run(tmp_path, frame_dataset, unknown_layout):
    run, missing = tmp_path / "run", tmp_path / "no-such-data"
    assert refusal(["train", "--data", str(missing), "--out", str(run)], tmp_path) == (
        f"ocrgan train: {missing}: no such file or folder")
    line = refusal(["train", "--data", str(unknown_layout), "--out", str(run)], tmp_path)
    assert line.startswith(f"ocrgan train: {unknown_layout}: {LAYOUT}"), line
    config = tmp_path / "none.yaml"
    line = refusal(["train", "--data", str(frame_dataset), "--out", str(run), "--config", str(config)], tmp_path)
    assert line == f"ocrgan train: config not found: {config}"
    line = refusal(["train", "--data", str(frame_dataset), "--out", str(run), "--set", "epochs=many"], tmp_path,
                   torch_free=False)
    assert line.startswith("ocrgan train: invalid config: epochs: Input should be a valid integer"), line
    assert not run.exists()


def test_calibrate_refuses_a_missing_checkpoint_or_unknown_data(tmp_path, checkpoint, frame_dataset, unknown_layout):
    nowhere = tmp_path / "nowhere.safetensors"
    line = refusal(["calibrate", "--checkpoint", str(nowhere), "--data", str(frame_dataset)], tmp_path)
    assert line == f"ocrgan calibrate: checkpoint not found: {nowhere}"
    line = refusal(["calibrate", "--checkpoint", str(checkpoint), "--data", str(unknown_layout)], tmp_path)
    assert line.startswith(f"ocrgan calibrate: {unknown_layout}: {LAYOUT}"), line
    line = refusal(["calibrate", "--checkpoint", str(checkpoint), "--data", str(frame_dataset),
                    "--out", str(tmp_path)], tmp_path)
    assert line == f"ocrgan calibrate: --out {tmp_path} is a folder, not a file"
