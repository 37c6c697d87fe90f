"""Clip decoding: containers and codecs PyAV reads, and each kind of unusable file, named precisely."""

from __future__ import annotations

import subprocess

import numpy as np
import pytest
import torch

from model import load_checkpoint, preprocess, score_clip
from service.clips import Clip, ClipLimits, heatmap_grid, inline_runner, model_inputs, score_file
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


def test_a_declared_frame_count_over_the_limit_is_refused_before_decoding(tmp_path):
    limits = ClipLimits(max_frames=100, max_pixels=10**7, max_side=4096)
    with pytest.raises(ServiceError) as e:
        Clip(bad_media.black_h264(tmp_path / "long.mp4", "64x48", 300), True, limits)
    assert e.value.status == 413 and "more than 100 frames" in e.value.message and "declares 300" in e.value.message
    with pytest.raises(ServiceError) as e:  # Matroska declares no count: refused once frame 101 decodes
        decode(bad_media.black_h264(tmp_path / "long.mkv", "64x48", 300), limits=limits)
    assert e.value.status == 413 and "more than 100 frames" in e.value.message


def test_a_decompression_bomb_is_refused_within_its_pixel_budget(tmp_path, mp4_clip):
    bomb = bad_media.black_h264(tmp_path / "bomb.mp4", "4096x2304", 100)  # ~30 kB for 944 M decoded pixels
    decoded = 0
    with Clip(bomb, True, LIMITS) as clip, pytest.raises(ServiceError) as e:
        for _ in clip.frames():
            decoded += 1
    assert e.value.status == 413 and "decompression bomb" in e.value.message
    assert decoded * 4096 * 2304 <= LIMITS.pixel_budget(bomb.stat().st_size)
    meta, frames = decode(mp4_clip)  # real footage expands far less than the limit
    assert len(frames) * meta.width * meta.height / mp4_clip.stat().st_size < LIMITS.max_expansion / 10


@pytest.mark.parametrize("suffix", ["mp4", "mkv"])
@pytest.mark.parametrize("keep", [0.5, 0.9])
def test_a_file_cut_short_is_refused(tmp_path, suffix, keep):
    good = tmp_path / f"good.{suffix}"
    subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc=size=96x64:rate=25", "-frames:v", "100",
                    "-c:v", "libx264", "-movflags", "+faststart", str(good)], check=True)
    with pytest.raises(ServiceError) as e:
        decode(bad_media.truncated(tmp_path / f"cut.{suffix}", good, keep))
    assert e.value.status == 422
    assert "cut short" in e.value.message or "cannot be decoded after" in e.value.message, e.value.message
    assert len(decode(good)[1]) == 100


def test_one_frame_is_a_clip(tmp_path, clip_frames, make_settings):
    """A single frame is scored (its window repeats it, as the first frame of every clip)."""
    host = ModelHost.load(make_settings())
    out = score_file(write_video(tmp_path / "one.mp4", clip_frames[:1]), host, LIMITS, host.stride, False, (4, 4),
                     inline_runner(host, 8))
    assert out["num_frames"] == 1 and out["frames"][0]["index"] == 0


def test_heatmaps_are_pooled_window_by_window(mp4_clip, make_settings):
    """Only the coarse grids of a clip are kept while it is scored, and they equal pooling the full maps."""
    host = ModelHost.load(make_settings())
    inline = inline_runner(host, 8)
    kept = []

    def run(frames, stride, heatmaps, reduce):
        parts = inline(frames, stride, heatmaps, reduce)
        kept.extend(parts)
        return parts

    out = score_file(mp4_clip, host, LIMITS, host.stride, True, (4, 6), run)
    assert kept and all(tuple(p.heatmaps.shape[1:]) == (4, 6) for p in kept)
    with Clip(mp4_clip, True, LIMITS) as clip:
        full = inline(model_inputs(clip.frames(), host.model.cfg), host.stride, True, None)
    assert [f["heatmap"] for f in out["frames"]] == heatmap_grid(torch.cat([p.heatmaps for p in full]), (4, 6))
