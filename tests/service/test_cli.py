"""`ocrgan score` and `ocrgan serve` from the shell; a bad checkpoint stops the service with its reason, and a
user's mistake is answered in one line before the model loads."""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import socket
import subprocess
import sys
import wave
from pathlib import Path

import numpy as np
import pytest
import torch

from model import load_checkpoint, preprocess, score_clip
from ocrgan_cli import build_parser, main
from service.api.app import create_app
from testkit.servers import LiveApp
from tests.command import refusal
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


# --- a user's mistake: one line on stderr, exit status 2, no traceback, before the model loads ----------------

def test_score_answers_a_missing_file_or_a_non_video_at_once(tmp_path, checkpoint):
    missing = tmp_path / "none.mp4"
    assert refusal(["score", str(missing)], tmp_path) == f"ocrgan score: video not found: {missing}"
    assert refusal(["score", str(tmp_path)], tmp_path) == f"ocrgan score: video {tmp_path} is a folder, not a file"
    notes = tmp_path / "notes.mp4"
    notes.write_text("not a video")
    line = refusal(["score", str(notes), "--checkpoint", str(checkpoint)], tmp_path)
    assert line.startswith(f"ocrgan score: {notes}: not a video file FFmpeg can read ("), line
    sound = tmp_path / "sound.wav"
    with wave.open(str(sound), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(b"\0\0" * 8000)  # a second of silence: audio only
    line = refusal(["score", str(sound), "--checkpoint", str(checkpoint)], tmp_path)
    assert line == f"ocrgan score: {sound}: no video stream in the wav file"


@pytest.mark.parametrize("command", ["serve", "score"])
def test_a_missing_checkpoint_is_answered_before_loading(command, tmp_path, mp4_clip):
    nowhere = tmp_path / "nowhere.safetensors"
    args = [command, *([str(mp4_clip)] if command == "score" else []), "--checkpoint", str(nowhere)]
    assert refusal(args, tmp_path) == (f"ocrgan {command}: checkpoint not found: {nowhere} "
                                       "(set --checkpoint or OCRGAN_CHECKPOINT)")


@pytest.mark.parametrize("command", ["serve", "demo"])
def test_a_busy_port_is_answered_before_loading(command, tmp_path, checkpoint):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        line = refusal([command, "--port", str(port), "--checkpoint", str(checkpoint)], tmp_path)
    assert line == (f"ocrgan {command}: 127.0.0.1:{port} is already in use (another server?); "
                    "choose a free port with --port or OCRGAN_PORT")
    assert not (tmp_path / "state").exists()  # nothing was started or written


def test_every_option_shows_its_default_and_every_command_says_what_it_does(monkeypatch):
    monkeypatch.setenv("COLUMNS", "120")
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    assert {"serve", "score", "demo", "train", "eval", "calibrate", "smoke"} <= set(sub.choices)
    for listed in sub._choices_actions:  # the lines of `ocrgan --help`
        assert listed.help and "\n" not in listed.help and len(listed.help) <= 80, listed.dest
    for name, command in sub.choices.items():
        assert command.description, name
        options = command.format_help().split("\noptions:\n")[1]
        entries = [" ".join(e.split()) for e in re.split(r"\n(?=  -)", "\n" + options) if e.strip()]
        entries = [e for e in entries if not e.startswith("-h, --help")]
        assert len(entries) == sum(1 for a in command._actions if a.option_strings) - 1, name
        for entry in entries:
            assert "(default: " in entry or entry.endswith("(required)"), f"ocrgan {name}: {entry}"
            assert "(default: None)" not in entry, f"ocrgan {name}: {entry}"

