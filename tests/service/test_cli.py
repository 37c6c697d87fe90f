"""`ocrgan score` and `ocrgan serve` from the shell; a bad checkpoint stops the service with its reason."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from model import load_checkpoint, preprocess, score_clip
from ocrgan_cli import main
from service.api.app import create_app
from tests.service.servers import LiveApp
from training.decode import iter_video

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def truncated(tmp_path, checkpoint) -> Path:
    p = tmp_path / "cut.safetensors"
    data = checkpoint.read_bytes()
    p.write_bytes(data[: len(data) // 2])
    return p


def test_score_json_matches_score_clip(mp4_clip, checkpoint, capsys, monkeypatch):
    monkeypatch.chdir(mp4_clip.parent)  # no stray .env
    assert main(["score", str(mp4_clip), "--checkpoint", str(checkpoint), "--json", "--device", "cpu"]) == 0
    out = json.loads(capsys.readouterr().out)
    model, _ = load_checkpoint(checkpoint)
    ref = score_clip(model, preprocess(np.stack(list(iter_video(mp4_clip, grey=True))), model.cfg))
    assert out["num_frames"] == 30
    assert torch.allclose(torch.tensor([f["score"] for f in out["frames"]]), ref.score, atol=1e-4)


def test_score_summary_and_bad_file(mp4_clip, checkpoint, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["score", str(mp4_clip), "--checkpoint", str(checkpoint)]) == 0
    text = capsys.readouterr().out
    assert "30 frames, 96x64" in text and "anomalous frames:" in text
    assert "scale: the checkpoint's statistics" in text
    bad = tmp_path / "x.mp4"
    bad.write_text("nope")
    assert main(["score", str(bad), "--checkpoint", str(checkpoint)]) == 2
    assert "not a video file" in capsys.readouterr().err


def test_score_calibrate_seconds_is_post_score_calibrate_seconds(mp4_clip, checkpoint, capsys, monkeypatch, live):
    """`ocrgan score --calibrate-seconds` answers what POST /score?calibrate_seconds= answers (one code path)."""
    monkeypatch.chdir(mp4_clip.parent)
    argv = ["score", str(mp4_clip), "--checkpoint", str(checkpoint), "--device", "cpu", "--calibrate-seconds", "0.4"]
    assert main([*argv, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["calibration"]["source"] == "clip" and out["calibration"]["frames"] == 10
    assert [f["calibrating"] for f in out["frames"]] == [i < 10 for i in range(30)]
    served = live().client.post("/score", params={"calibrate_seconds": 0.4}, content=mp4_clip.read_bytes()).json()
    scales = out["calibration"].pop("scales")
    assert scales == pytest.approx(served["calibration"].pop("scales"))
    assert out["calibration"] == pytest.approx(served["calibration"])
    for key in ("score", "normalised", "anomaly", "calibrating"):
        assert [f[key] for f in out["frames"]] == pytest.approx([f[key] for f in served["frames"]], abs=1e-5), key
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "calibrated on the first 0.4 s (10 frames, not flagged)" in text and "anomalous frames:" in text
    assert main([*argv[:-1], "5"]) == 2
    assert "cover all 30 frames" in capsys.readouterr().err
    assert main([*argv[:-1], "0"]) == 2
    assert "must be a positive number" in capsys.readouterr().err


def test_score_refuses_a_truncated_checkpoint(mp4_clip, truncated, caplog, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["score", str(mp4_clip), "--checkpoint", str(truncated)]) == 2


def test_app_refuses_to_start_on_a_truncated_checkpoint(make_settings, truncated, caplog):
    with caplog.at_level(logging.ERROR, logger="ocrgan.service"), pytest.raises(RuntimeError):
        LiveApp(create_app(make_settings(checkpoint=truncated)))
    assert any("truncated" in r.getMessage() and str(truncated) in r.getMessage() for r in caplog.records)


def test_app_refuses_to_start_on_a_missing_checkpoint(make_settings, tmp_path, caplog):
    with caplog.at_level(logging.ERROR, logger="ocrgan.service"), pytest.raises(RuntimeError):
        LiveApp(create_app(make_settings(checkpoint=tmp_path / "nowhere.safetensors")))
    assert any("checkpoint not found" in r.getMessage() for r in caplog.records)


@pytest.mark.slow
def test_serve_exits_with_the_reason(truncated, tmp_path):
    env = {**os.environ, "OCRGAN_CHECKPOINT": str(truncated), "OCRGAN_REGISTRY_PATH": str(tmp_path / "r.json"),
           "OCRGAN_PORT": "0"}
    proc = subprocess.run([sys.executable, "-m", "ocrgan_cli", "serve"], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=60,
                          )
    assert proc.returncode == 2
    assert "cannot start" in proc.stderr and "truncated" in proc.stderr


def test_invalid_setting_is_named(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OCRGAN_MAX_BATCH", "0")
    with pytest.raises(SystemExit) as e:
        main(["score", "x.mp4"])
    assert "max_batch" in str(e.value)
