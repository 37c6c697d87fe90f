"""Clip decoding: containers and codecs PyAV reads, and each kind of unusable file, named precisely."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from model import load_checkpoint, preprocess, score_clip
from service.clips import Clip, ClipLimits, heatmap_grid, inline_runner, score_file
from service.errors import ServiceError
from service.model_host import ModelHost
from tests.service import bad_media
from tests.synthetic import write_video

LIMITS = ClipLimits(max_frames=1000, max_pixels=4096 * 2304, max_side=4096)
FORMATS = [  # (suffix, codec, pix_fmt)
    ("mp4", "libx264", "yuv420p"),
    ("avi", "mjpeg", "yuvj420p"),
    ("avi", "mpeg4", "yuv420p"),  # MPEG-4 part 2, what XVID/DivX files hold
    ("mkv", "libx264", "yuv420p"),
    ("mkv", "ffv1", "yuv420p"),
    ("webm", "libvpx", "yuv420p"),
    ("webm", "libvpx-vp9", "yuv420p"),
]


def decode(path, grey=True, limits=LIMITS):
    with Clip(path, grey, limits) as clip:
        frames = list(clip.frames())
        return clip.meta, frames


@pytest.mark.parametrize(("suffix", "codec", "pix_fmt"), FORMATS, ids=[f"{s}-{c}" for s, c, _ in FORMATS])
def test_decodes_common_containers(tmp_path, clip_frames, suffix, codec, pix_fmt):
    path = write_video(tmp_path / f"clip.{suffix}", clip_frames[:12], codec=codec, pix_fmt=pix_fmt)
    meta, frames = decode(path)
    assert len(frames) == 12
    assert frames[0].shape == (64, 96) and frames[0].dtype == np.uint8
    assert (meta.width, meta.height) == (96, 64)
    assert meta.fps == pytest.approx(25.0)
    assert meta.timestamps[:3] == pytest.approx([0.0, 0.04, 0.08], abs=1e-3)
    # lossy codecs: the picture survives
    assert np.abs(frames[5].astype(int) - clip_frames[5].astype(int)).mean() < 12


def test_colour_decode_for_rgb_models(mp4_clip):
    _, frames = decode(mp4_clip, grey=False)
    assert frames[0].shape == (64, 96, 3)


@pytest.mark.parametrize(("make", "status", "words"), [
    (lambda d: (d / "notes.txt").write_text("not a video") and d / "notes.txt", 415, "not a video file"),
    (lambda d: bad_media.audio_only(d / "sound.m4a"), 415, "only audio"),
    (lambda d: bad_media.still_image(d / "picture.png"), 415, "still image"),
    (lambda d: bad_media.zero_frames(d / "empty.mkv"), 422, "no frames"),
], ids=["text", "audio-only", "image", "zero-frames"])
def test_unusable_files_are_named(tmp_path, make, status, words):
    with pytest.raises(ServiceError) as e:
        decode(make(tmp_path))
    assert e.value.status == status
    assert words in e.value.message
    assert str(tmp_path) not in e.value.message  # no server paths in messages


def test_undecodable_frames(tmp_path, clip_frames):
    with pytest.raises(ServiceError) as e:
        decode(bad_media.garbage_frames(tmp_path / "bad.mkv", write_video(tmp_path / "good.mp4", clip_frames)))
    assert e.value.status == 422 and "cannot be decoded after 0 frames" in e.value.message


def test_truncated_file(tmp_path, mp4_clip):
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(mp4_clip.read_bytes()[:3000])
    with pytest.raises(ServiceError) as e:
        decode(cut)
    assert e.value.status in (415, 422)


def test_absurd_sizes(tmp_path):
    wide = write_video(tmp_path / "wide.avi", np.zeros((2, 16, 4112), np.uint8), codec="mjpeg", pix_fmt="yuvj420p")
    with pytest.raises(ServiceError) as e:
        decode(wide)
    assert e.value.status == 422 and "4112x16" in e.value.message and "4096" in e.value.message
    small = ClipLimits(max_frames=100, max_pixels=1000, max_side=4096)
    with pytest.raises(ServiceError) as e:
        decode(write_video(tmp_path / "c.mp4", np.zeros((2, 64, 96), np.uint8)), limits=small)
    assert e.value.status == 422 and "6144 pixels" in e.value.message


def test_frame_limit_stops_decoding(mp4_clip):
    with pytest.raises(ServiceError) as e:
        decode(mp4_clip, limits=ClipLimits(max_frames=10, max_pixels=10**7, max_side=4096))
    assert e.value.status == 413 and "more than 10 frames" in e.value.message


def test_score_file_matches_score_clip(mp4_clip, make_settings):
    """The shell path (inline runner) equals model.score_clip on the same decoded frames."""
    settings = make_settings()
    host = ModelHost.load(settings)
    out = score_file(mp4_clip, host, LIMITS, host.stride, False, (4, 4), inline_runner(host, 8))
    _, frames = decode(mp4_clip)
    model, _ = load_checkpoint(settings.checkpoint)
    ref = score_clip(model, preprocess(np.stack(frames), model.cfg), model.cfg.stride)
    got = torch.tensor([f["score"] for f in out["frames"]])
    assert out["num_frames"] == len(frames) == 30
    assert torch.allclose(got, ref.score, atol=1e-4)
    assert [f["anomaly"] for f in out["frames"]] == ref.anomaly.tolist()


def test_heatmap_grid_shape():
    maps = torch.rand(3, 32, 48)
    grid = heatmap_grid(maps, (4, 6))
    assert len(grid) == 3 and len(grid[0]) == 4 and len(grid[0][0]) == 6
    assert grid[0][0][0] == pytest.approx(float(maps[0, :8, :8].mean()), rel=1e-3)
