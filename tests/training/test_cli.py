"""`ocrgan train`, `eval` and `calibrate` answer a user's mistake (a missing checkpoint or config, a data folder
that is missing or of no known layout) in one line before torch loads, and create no output folder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from model import OCRGANConfig, OCRGANVideo, save_checkpoint
from tests.command import refusal, run_ocrgan

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


def test_calibrate_refuses_cues_kept_out_without_selecting_weights_or_unknown_cues(tmp_path, checkpoint,
                                                                                  frame_dataset):
    base = ["calibrate", "--checkpoint", str(checkpoint), "--data", str(frame_dataset), "--out",
            str(tmp_path / "out.safetensors")]
    assert refusal([*base, "--without", "dir"], tmp_path) == (
        "ocrgan calibrate: --without chooses the cues --select-weights leaves out; add --select-weights")
    line = refusal([*base, "--select-weights", "--without", "colour"], tmp_path, torch_free=False)
    assert line.startswith("ocrgan calibrate: --without colour: the cues are app, motion, speed, dir"), line
    assert not (tmp_path / "out.safetensors").exists()


@pytest.mark.slow
def test_calibrate_chooses_the_weights_as_training_ends_and_keeps_the_cues_left_out_at_zero(tmp_path, frame_dataset):
    """`ocrgan calibrate --select-weights`: weights chosen on the footage's held-out part and its foreign view, the
    scene then calibrated on all of it; what was chosen is recorded with the checkpoint."""
    from model import load_checkpoint
    from model.scoring import CUES

    src = tmp_path / "motion.safetensors"
    save_checkpoint(OCRGANVideo(OCRGANConfig(isize=(32, 48), nc=1, ngf=8, ndf=8, nz=16, num_frames=8, stride=4,
                                             motion=True, memory_size=64)), src)
    out = tmp_path / "out.safetensors"
    proc, _ = run_ocrgan(["calibrate", "--checkpoint", str(src), "--data", str(frame_dataset), "--out", str(out),
                          "--select-weights", "--without", "dir", "--workers", "0"], tmp_path, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    model, info = load_checkpoint(out)
    record = info.training["recalibration"]
    weights = {k: getattr(model.cfg, f"w_score_{k}") for k in CUES}
    assert {f"w_score_{k}": v for k, v in weights.items()} == record["score_weights"]
    assert weights["dir"] == 0 and weights["app"] > 0 and (weights["motion"] or weights["speed"])
    assert record["validation"]["mean"] == pytest.approx(
        (record["validation"]["own_mean"] + record["validation"]["foreign_mean"]) / 2)
    assert record["frames"] == 4 * 48  # calibrated on all the footage, the held-out part too
    assert json.loads(proc.stdout)["checkpoint"] == str(out)
    table = (tmp_path / "out.score_weights.csv").read_text().splitlines()
    assert "foreign_mean" in table[0].split(",") and len(table) > 3
