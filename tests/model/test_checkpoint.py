import json
import struct

import pytest
import torch
from safetensors.torch import save_file

from model import CheckpointError, OCRGANVideo, load_checkpoint, read_header, save_checkpoint
from model.checkpoint import FORMAT_VERSION
from tests.model.helpers import rand_clip, tiny_cfg


@pytest.fixture
def saved(tmp_path):
    model = OCRGANVideo(tiny_cfg()).eval()
    model.set_score_statistics(0.5, 0.25, 2.5)
    path = tmp_path / "m.safetensors"
    save_checkpoint(model, path, training={"epochs": 3})
    return model, path


def _rewrite_header(path, mutate):
    raw = path.read_bytes()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    meta = json.loads(header["__metadata__"]["ocrgan"])
    mutate(meta)
    header["__metadata__"]["ocrgan"] = json.dumps(meta)
    blob = json.dumps(header).encode()
    blob += b" " * (-len(blob) % 8)
    path.write_bytes(struct.pack("<Q", len(blob)) + blob + raw[8 + n:])


def test_round_trip_gives_identical_scores(saved):
    model, path = saved
    loaded, info = load_checkpoint(path)
    clip = rand_clip(model.cfg)
    assert not loaded.training
    assert torch.equal(model.score(clip), loaded.score(clip))
    assert info.config == model.cfg and info.training == {"epochs": 3}
    assert info.score["threshold"] == 2.5 and float(loaded.score_std) == 0.25
    assert info.input_spec["channels"] == 1 and info.format_version == FORMAT_VERSION


def test_half_precision_checkpoint_is_smaller_and_close(tmp_path, saved):
    model, full = saved
    half = tmp_path / "h.safetensors"
    save_checkpoint(model, half, half=True)
    assert half.stat().st_size < 0.6 * full.stat().st_size
    loaded, _ = load_checkpoint(half)
    clip = rand_clip(model.cfg)
    assert torch.allclose(model.score(clip), loaded.score(clip), rtol=0.05, atol=1e-3)
    assert float(loaded.score_mean) == 0.5  # scalars stay exact


def test_missing_file(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "nope.safetensors")


@pytest.mark.parametrize("keep", [0, 5, 100, -50])
def test_truncated_file(saved, keep):
    _, path = saved
    raw = path.read_bytes()
    path.write_bytes(raw[:keep])
    with pytest.raises(CheckpointError, match=r"truncated|corrupted"):
        load_checkpoint(path)


def test_not_a_checkpoint(tmp_path):
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"\x00" * 64 + b"hello")
    with pytest.raises(CheckpointError):
        load_checkpoint(junk)
    other = tmp_path / "other.safetensors"
    save_file({"w": torch.zeros(2)}, str(other))
    with pytest.raises(CheckpointError, match="not an ocrgan-video checkpoint"):
        load_checkpoint(other)


def test_pickles_are_never_loaded(tmp_path):
    path = tmp_path / "model.pt"
    torch.save({"cfg": {"isize": 32}}, path)
    with pytest.raises(CheckpointError):
        load_checkpoint(path)


def test_wrong_format_version(saved):
    _, path = saved
    _rewrite_header(path, lambda m: m.update(format_version=99))
    with pytest.raises(CheckpointError, match="format version 99"):
        read_header(path)


def test_config_and_weights_mismatch(saved):
    _, path = saved

    def widen(meta):
        meta["config"]["ngf"] = 16

    _rewrite_header(path, widen)
    with pytest.raises(CheckpointError, match="config and weights disagree"):
        load_checkpoint(path)


def test_invalid_config(saved):
    _, path = saved
    _rewrite_header(path, lambda m: m["config"].update(temporal="lstm"))
    with pytest.raises(CheckpointError, match="invalid model config"):
        load_checkpoint(path)


def test_tampered_weights(saved):
    _, path = saved
    raw = bytearray(path.read_bytes())
    raw[-3] ^= 0xFF  # flip bits inside the last tensor
    path.write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match="SHA-256"):
        load_checkpoint(path)


@pytest.mark.parametrize("edit", [
    lambda m: m["config"].update(stride=2),
    lambda m: m["score"].update(threshold=99.0),
    lambda m: m.update(half=not m["half"]),
])
def test_header_edits_that_keep_the_shapes_are_refused(saved, edit):
    _, path = saved
    _rewrite_header(path, edit)
    with pytest.raises(CheckpointError, match="header do not match the recorded SHA-256"):
        load_checkpoint(path)


def test_save_is_atomic(tmp_path, saved, monkeypatch):
    model, path = saved
    before = path.read_bytes()

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr("model.checkpoint.save_file", boom)
    with pytest.raises(OSError):
        save_checkpoint(model, path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["m.safetensors"]
