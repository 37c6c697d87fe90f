"""A checkpoint that is truncated, edited, of another kind or not one at all: the service refuses to
start and says why (in-process, and `ocrgan serve` exiting with status 2)."""

from __future__ import annotations

import json
import logging
import os
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from safetensors.torch import load_file, save_file

from service.api.app import create_app
from testkit.servers import LiveApp


def flip_weights(src: Path, dst: Path) -> None:
    data = bytearray(src.read_bytes())
    data[-64] ^= 0xFF  # a byte of the last tensor
    dst.write_bytes(bytes(data))


def edit_header(src: Path, dst: Path, **changes) -> None:
    """Rewrite the JSON header in place, weights untouched."""
    data = src.read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8: 8 + n])
    meta = json.loads(header["__metadata__"]["ocrgan"])
    meta.update(changes)
    header["__metadata__"]["ocrgan"] = json.dumps(meta)
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    dst.write_bytes(struct.pack("<Q", len(raw)) + raw + data[8 + n:])


def foreign(src: Path, dst: Path) -> None:
    save_file(load_file(str(src)), str(dst))  # the same tensors, no ocrgan header


CASES = {
    "truncated": (lambda s, d: d.write_bytes(s.read_bytes()[: len(s.read_bytes()) // 2]), "truncated"),
    "weights edited": (flip_weights, "do not match the recorded SHA-256"),
    "newer format": (lambda s, d: edit_header(s, d, format_version=99), "format version 99"),
    "config edited": (lambda s, d: edit_header(s, d, config={"ngf": 3}), "config and weights disagree"),
    "another safetensors file": (foreign, "not an ocrgan-video checkpoint"),
    "random bytes": (lambda s, d: d.write_bytes(os.urandom(4096)), "not a safetensors file"),
    "empty": (lambda s, d: d.write_bytes(b""), "truncated or not a safetensors file"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_app_refuses_to_start_and_says_why(case, checkpoint, make_settings, tmp_path, caplog):
    bad = tmp_path / "model.safetensors"
    tamper, words = CASES[case]
    tamper(checkpoint, bad)
    with caplog.at_level(logging.ERROR, logger="ocrgan.service"), pytest.raises(RuntimeError):
        LiveApp(create_app(make_settings(checkpoint=bad)))
    messages = [r.getMessage() for r in caplog.records if r.name == "ocrgan.service"]
    assert any(words in m and str(bad) in m for m in messages), messages


@pytest.mark.slow
def test_serve_exits_on_an_edited_checkpoint(checkpoint, tmp_path):
    bad = tmp_path / "model.safetensors"
    flip_weights(checkpoint, bad)
    env = {**os.environ, "OCRGAN_CHECKPOINT": str(bad), "OCRGAN_PORT": "0",
           "OCRGAN_REGISTRY_PATH": str(tmp_path / "r.json")}
    proc = subprocess.run([sys.executable, "-m", "ocrgan_cli", "serve"], env=env, cwd=tmp_path, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 2
    assert "cannot start" in proc.stderr and "do not match the recorded SHA-256" in proc.stderr


def test_a_config_edit_that_keeps_the_shapes_is_refused(checkpoint, make_settings, tmp_path, caplog):
    """Stride, smoothing or the threshold change what is published without changing a tensor's shape."""
    bad = tmp_path / "model.safetensors"
    (n,) = struct.unpack("<Q", checkpoint.read_bytes()[:8])
    config = json.loads(json.loads(checkpoint.read_bytes()[8: 8 + n])["__metadata__"]["ocrgan"])["config"]
    edit_header(checkpoint, bad, config={**config, "stride": 2, "score_smoothing": 0.5})
    with caplog.at_level(logging.ERROR, logger="ocrgan.service"), pytest.raises(RuntimeError):
        LiveApp(create_app(make_settings(checkpoint=bad)))
    assert any("header do not match the recorded SHA-256" in r.getMessage() for r in caplog.records)
