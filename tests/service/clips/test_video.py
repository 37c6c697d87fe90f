"""Clip decoding: containers and codecs PyAV reads, and each kind of unusable file, named precisely."""

from __future__ import annotations

import subprocess
import time
from fractions import Fraction

import av
import numpy as np
import pytest
import torch

from model import OCRGANConfig, OCRGANVideo, load_checkpoint, preprocess, score_clip
from service.clips.video import Clip, ClipLimits, Watch, heatmap_grid, inline_runner, model_inputs, score_file
from service.errors import CLIENT_GONE, ServiceError
from service.inference.host import ModelHost
from testkit.synthetic import write_video
from tests.service import bad_media

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


@pytest.mark.parametrize("size", ["1x1", "14x40", "40x8"])
def test_frames_too_small_to_score_are_refused(tmp_path, size):
    """The model scales every frame up or down to its working size: a side under the minimum holds nothing to score."""
    with pytest.raises(ServiceError) as e:
        decode(bad_media.tiny(tmp_path / "tiny.mp4", size))
    assert e.value.status == 422 and f"the video is {size};" in e.value.message
    assert "at least 16 pixels (OCRGAN_UPLOAD_MIN_SIDE)" in e.value.message
    meta, frames = decode(bad_media.tiny(tmp_path / "least.mp4", "16x16"))
    assert (meta.width, meta.height) == (16, 16) and len(frames) == 10


@pytest.mark.parametrize(("tag", "turned"), [(90, 90), (270, 270), (180, 180)])
def test_rotated_frames_are_turned_upright(tmp_path, mp4_clip, make_settings, tag, turned):
    """A display matrix (a phone held upright) turns the frames before they are scored, as players show them."""
    clip = bad_media.rotated(tmp_path / f"rot{tag}.mp4", mp4_clip, tag)
    meta, frames = decode(clip)
    assert meta.rotation == turned
    h, w = (96, 64) if turned % 180 else (64, 96)
    assert frames[0].shape == (h, w) and meta.upright_size() == (w, h)
    raw = subprocess.run(["ffmpeg", "-v", "error", "-i", str(clip), "-f", "rawvideo", "-pix_fmt", "gray", "-"],
                         capture_output=True, check=True).stdout
    shown = np.frombuffer(raw, np.uint8).reshape(-1, h, w)  # ffmpeg turns frames by their display matrix
    assert len(shown) == len(frames) == 30
    assert np.array_equal(np.stack(frames), shown)
    _, plain = decode(mp4_clip)
    assert np.array_equal(frames[20], np.rot90(plain[20], turned // 90))  # the unturned clip's frame, turned
    host = ModelHost.load(make_settings())
    out = score_file(clip, host, LIMITS, host.stride, False, (4, 4), inline_runner(host, 8))
    assert (out["width"], out["height"], out["rotation"]) == (w, h, turned) and out["num_frames"] == 30


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


def test_heatmap_grid_is_each_cells_largest_weighted_cue_in_the_clips_units():
    model = OCRGANVideo(OCRGANConfig(isize=16, nc=1, ngf=4, ndf=4, nz=4, num_frames=4, stride=2, motion=True,
                                     w_score_app=0.5))
    model.app_scale.fill_(2.0)
    assert model.heat_cues == ("app", "motion")
    maps = torch.rand(3, 2, 32, 48)
    grid = heatmap_grid(model, maps, None, (4, 6))  # the checkpoint's units: appearance x 0.25, flow error x 1
    assert len(grid) == 3 and len(grid[0]) == 4 and len(grid[0][0]) == 6
    cell = maps[0, :, :8, :8].mean(dim=(-2, -1))
    assert grid[0][0][0] == pytest.approx(max(0.25 * float(cell[0]), float(cell[1])), rel=1e-3)
    scene = {"app": 0.01, "speed": 1.0, "dir": 1.0, "feat": 1.0}  # a scene's units without the flow error's
    assert heatmap_grid(model, maps, scene, (4, 6))[0][0][0] == pytest.approx(50 * float(cell[0]), rel=1e-3)


def test_a_declared_frame_count_over_the_limit_is_refused_before_decoding(tmp_path):
    limits = ClipLimits(max_frames=100, max_pixels=10**7, max_side=4096)
    with pytest.raises(ServiceError) as e:
        Clip(bad_media.black_h264(tmp_path / "long.mp4", "64x48", 300), True, limits)
    assert e.value.status == 413 and "more than 100 frames" in e.value.message and "declares 300" in e.value.message
    with pytest.raises(ServiceError) as e:  # Matroska declares no count: refused once frame 101 decodes
        decode(bad_media.black_h264(tmp_path / "long.mkv", "64x48", 300), limits=limits)
    assert e.value.status == 413 and "more than 100 frames" in e.value.message


def counting(run, seen: list[int], after=None):
    """`run` with every frame it takes from the clip counted in `seen`; after(n) is called with the n-th."""
    def wrapped(frames, stride, heatmaps, reduce):
        def counted():
            for f in frames:
                seen.append(len(seen) + 1)
                if after is not None:
                    after(len(seen))
                yield f

        return run(counted(), stride, heatmaps, reduce)

    return wrapped


def refused(path, host, limits=LIMITS, watch=None, after=None) -> tuple[ServiceError, int]:
    """score_file's refusal of `path`, and how many frames reached preprocessing and the model before it."""
    seen: list[int] = []
    with pytest.raises(ServiceError) as e:
        score_file(path, host, limits, host.stride, False, (4, 4), counting(inline_runner(host, 8), seen, after),
                   watch=watch)
    return e.value, len(seen)


def test_a_decompression_bomb_is_refused_before_decoding(tmp_path, mp4_clip):
    """100 black 4096x2304 frames in ~30 kB: its packets alone show it expands beyond its pixel budget."""
    bomb = bad_media.black_h264(tmp_path / "bomb.mp4", "4096x2304", 100)
    assert LIMITS.pixel_budget(bomb.stat().st_size) < 50 * 4096 * 2304
    with pytest.raises(ServiceError) as e:
        Clip(bomb, True, LIMITS)  # opening it decodes nothing
    assert e.value.status == 413 and "decompression bomb" in e.value.message
    assert "50 frames of 4096x2304 (at least: its 100 video packets)" in e.value.message
    meta, frames = decode(mp4_clip)  # real footage expands far less than the limit
    assert len(frames) * meta.width * meta.height / mp4_clip.stat().st_size < LIMITS.max_expansion / 10


def test_a_bomb_its_packets_leave_in_doubt_is_counted_before_any_frame_is_scored(tmp_path, make_settings):
    """100 black frames of 4096x2304 in an MPEG-TS file allowed between 50 and 100 of them: as a packet per field
    cannot be ruled out, decoding alone finds the first frame over the budget, before any frame is scored."""
    bomb = bad_media.black_h264(tmp_path / "bomb.ts", "4096x2304", 100)
    budget, frame = LIMITS.pixel_budget(bomb.stat().st_size), 4096 * 2304
    assert 50 * frame <= budget < 100 * frame
    e, scored = refused(bomb, ModelHost.load(make_settings()))
    assert e.status == 413 and "decompression bomb" in e.message
    assert f"{budget // frame + 1} frames of 4096x2304 from a file" in e.message
    assert scored == 0


def test_a_frame_count_without_a_header_is_refused_before_any_frame_is_scored(tmp_path, make_settings):
    """MPEG-TS declares no frame count: a clip of one frame over the limit is counted by decoding alone (no frame
    scored), one of more than twice the limit by its packets; a clip at the limit is scored in full."""
    host = ModelHost.load(make_settings())
    limits = ClipLimits(max_frames=300, max_pixels=10**7, max_side=4096)
    over = bad_media.black_h264(tmp_path / "over.ts", "16x16", 301)
    with av.open(str(over)) as c:
        assert c.streams.video[0].frames == 0  # no count in the header
    e, scored = refused(over, host, limits)
    assert e.status == 413 and e.message == "the clip has more than 300 frames (the limit)" and scored == 0
    far = bad_media.black_h264(tmp_path / "far.ts", "16x16", 700)
    with pytest.raises(ServiceError) as e:
        Clip(far, True, limits)
    assert e.value.status == 413 and "its 700 video packets hold at least 350" in e.value.message
    at = bad_media.black_h264(tmp_path / "at.ts", "16x16", 300)
    out = score_file(at, host, limits, host.stride, False, (4, 4), inline_runner(host, 8))
    assert out["num_frames"] == 300


def test_a_clip_over_its_time_budget_is_stopped(tmp_path, make_settings):
    """The watch's wall-time budget is checked frame by frame: a clip whose scoring is slow is stopped with 413."""
    host = ModelHost.load(make_settings())
    clip = bad_media.black_h264(tmp_path / "slow.mp4", "64x48", 100)
    e, scored = refused(clip, host, watch=Watch(max_seconds=0.5), after=lambda _: time.sleep(0.05))
    assert e.status == 413 and "took longer than 0.5 s" in e.message
    assert 0 < scored < 100


def test_a_cancelled_clip_stops_at_the_next_frame(tmp_path, make_settings):
    """A watch cancelled (its client went away) stops the decoding before another frame is scored."""
    host = ModelHost.load(make_settings())
    watch = Watch()
    clip = bad_media.black_h264(tmp_path / "clip.mp4", "64x48", 100)
    e, scored = refused(clip, host, watch=watch, after=lambda n: n == 5 and watch.cancel())
    assert e.status == CLIENT_GONE and "went away" in e.message
    assert scored == 5


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


def test_junk_after_an_mpeg_ts_clip_is_refused(tmp_path):
    """50 good frames then random bytes: the demuxer skips what it cannot read, so the junk would pass unseen; the
    file is refused as one cut short is, before anything is decoded. A clip whose audio comes last is whole."""
    good = bad_media.busy_h264(tmp_path / "good.ts", "96x64", 50)
    for size in (200_000, 20_000):
        with pytest.raises(ServiceError) as e:
            Clip(bad_media.junk_after(tmp_path / "junk.ts", good, size), True, LIMITS)
        assert e.value.status == 422 and "mpegts file is damaged" in e.value.message
        assert f"of its {size + good.stat().st_size} bytes, after its 50 video packets" in e.value.message
    assert len(decode(good)[1]) == 50
    with_audio = tmp_path / "av.ts"
    subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc=size=96x64:rate=25", "-f", "lavfi", "-i",
                    "sine=frequency=440:sample_rate=48000", "-t", "2", "-c:v", "libx264", "-c:a", "aac",
                    str(with_audio)], check=True)
    assert len(decode(with_audio)[1]) == 50


def test_timestamps_run_from_the_first_frame(tmp_path, mp4_clip):
    """An MPEG-TS copy of a clip starts 1.4 s into its stream: its frames are timed from the first one, as the
    clip's are, and the offset is the clip's start_time."""
    ts = tmp_path / "clip.ts"
    subprocess.run(["ffmpeg", "-v", "error", "-i", str(mp4_clip), "-c", "copy", "-f", "mpegts", str(ts)], check=True)
    meta, _ = decode(ts)
    plain, _ = decode(mp4_clip)
    assert meta.start_time == pytest.approx(1.4, abs=0.1) and plain.start_time == 0.0
    assert meta.timestamps == pytest.approx(plain.timestamps, abs=1e-6)
    assert meta.timestamps[:3] == pytest.approx([0.0, 0.04, 0.08], abs=1e-6)


def test_a_frame_the_recording_lost_does_not_double_the_flow_of_the_next(tmp_path):
    """A recording that lost frame 6: its timestamps jump two periods there, and the texture moved twice as far. The
    flow of the frame after the gap is divided by the gap, so it reads as every other frame's."""
    rng = np.random.default_rng(0)
    texture = np.kron(rng.integers(0, 256, (40, 70), dtype=np.uint8), np.ones((4, 4), np.uint8))
    shown = [k for k in range(12) if k != 6]
    path = tmp_path / "lost.mkv"
    with av.open(str(path), "w") as c:
        s = c.add_stream("mjpeg", rate=10)
        s.width, s.height, s.pix_fmt = 96, 64, "yuvj420p"
        for k in shown:
            grey = texture[20:84, 20 + 2 * k:116 + 2 * k]  # 2 px left per period
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(np.repeat(grey[..., None], 3, 2)), format="rgb24")
            frame.pts, frame.time_base = k, Fraction(1, 10)
            for pkt in s.encode(frame):
                c.mux(pkt)
        for pkt in s.encode():
            c.mux(pkt)
    cfg = OCRGANConfig(isize=(32, 48), nc=1, motion=True)

    def dx(with_times: bool) -> np.ndarray:
        with Clip(path, True, LIMITS) as clip:
            x = torch.stack(list(model_inputs(clip.frames(), cfg, clip.meta.timestamps if with_times else None)))
            assert np.diff(clip.meta.timestamps) == pytest.approx([0.1] * 5 + [0.2] + [0.1] * 4, abs=1e-3)
        return x[1:, 1, 8:-8, 8:-8].flatten(1).median(dim=1).values.numpy()

    assert dx(False)[5] == pytest.approx(-2.0, abs=0.2)  # the frame after the gap moved 4 px at the flow's size
    assert dx(True) == pytest.approx([-1.0] * 10, abs=0.15)


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
    k = len(host.model.heat_cues)
    assert kept and all(tuple(p.maps.shape[1:]) == (k, 4, 6) for p in kept)
    with Clip(mp4_clip, True, LIMITS) as clip:
        full = inline(model_inputs(clip.frames(), host.model.cfg), host.stride, True, None)
    assert [f["heatmap"] for f in out["frames"]] == heatmap_grid(host.model, torch.cat([p.maps for p in full]), None,
                                                                 (4, 6))
