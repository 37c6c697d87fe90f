import numpy as np
import pytest
import torch

from model import preprocess_sequence
from model.preprocess import DropFilter, flow_frame
from testkit.synthetic import moving_shapes, write_frames, write_video
from tests.model.helpers import tiny_cfg
from training.decode import iter_frames, read_image
from training.frame_store import CHUNK, FrameStore
from training.sequences import DataError, Sequence, image_files


def test_images_decode_grey_or_rgb(tmp_path):
    frames, _ = moving_shapes(3)
    write_frames(tmp_path, frames)
    files = image_files(tmp_path)
    assert np.array_equal(read_image(files[0], grey=True), frames[0])
    rgb = read_image(files[0], grey=False)
    assert rgb.shape == (*frames.shape[1:], 3) and np.array_equal(rgb[..., 0], frames[0])


def test_natural_frame_order(tmp_path):
    for name in ["10.png", "2.png", "1.png"]:
        (tmp_path / name).write_bytes(b"")
    assert [p.name for p in image_files(tmp_path)] == ["1.png", "2.png", "10.png"]


def test_unreadable_frame_is_named(tmp_path):
    frames, _ = moving_shapes(3)
    write_frames(tmp_path, frames)
    (tmp_path / "001.png").write_bytes(b"garbage")
    seq = Sequence("c", image_files(tmp_path), length=3)
    with pytest.raises(DataError, match=r"001\.png"):
        list(iter_frames(seq, grey=True))


def test_frame_size_change_is_named(tmp_path):
    a, _ = moving_shapes(2, 32, 48)
    b, _ = moving_shapes(1, 40, 48)
    write_frames(tmp_path, np.concatenate([a]))
    write_frames(tmp_path / "x", b)
    (tmp_path / "x" / "000.png").rename(tmp_path / "002.png")
    seq = Sequence("c", image_files(tmp_path), length=3)
    with pytest.raises(DataError, match=r"002.png.*differs"):
        list(iter_frames(seq, grey=True))


def test_video_frames_and_offsets(tmp_path):
    frames, _ = moving_shapes(12)
    path = write_video(tmp_path / "v.mp4", frames)
    seq = Sequence("v", video=path, length=12)
    decoded = np.stack(list(iter_frames(seq, grey=True)))
    assert decoded.shape == frames.shape and np.abs(decoded.astype(int) - frames).mean() < 3
    part = Sequence("v", video=path, length=4, offset=5)
    assert np.array_equal(np.stack(list(iter_frames(part, grey=True))), decoded[5:9])


def test_corrupt_video_is_named(tmp_path):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x00" * 1000)
    with pytest.raises(DataError, match=r"bad\.mp4"):
        list(iter_frames(Sequence("b", video=bad, length=5), grey=True))


def test_frame_store_skips_bad_sequences_when_asked(tmp_path, caplog):
    good, _ = moving_shapes(10, 32, 48)
    write_frames(tmp_path / "good", good)
    write_frames(tmp_path / "bad", good[:3])
    (tmp_path / "bad" / "001.png").write_bytes(b"garbage")
    seqs = [Sequence("good", image_files(tmp_path / "good"), length=10),
            Sequence("bad", image_files(tmp_path / "bad"), length=3)]
    cfg = tiny_cfg(isize=(32, 48))
    with pytest.raises(DataError, match=r"001\.png"):
        FrameStore(seqs, cfg, workers=0)
    store = FrameStore(seqs, cfg, workers=0, skip_bad=True)
    assert [s.name for s in store.sequences] == ["good"] and "skipping sequence bad" in caplog.text
    w = store.window(0, 2, 8)  # frames -5..2: frame 0 repeated before the start
    assert w.shape == (8, 1, 32, 48) and all(torch.equal(w[k], w[0]) for k in range(6))


@pytest.mark.parametrize("steady", [False, True])
def test_a_stores_pieces_make_the_services_input_with_drops_taken_out(tmp_path, steady):
    """Image sequences are decoded in pieces of CHUNK frames (whole where the camera's motion is followed): with the
    frames before each piece that its flow and its drops need (rain, and snow, which reads two frames back), the
    store's model input is the service's (SequencePreprocessor), and the baselines still read the frames as
    decoded."""
    frames, _ = moving_shapes(CHUNK + 8, 64, 96, seed=3)
    rng = np.random.default_rng(0)
    wet = frames.astype(np.int16)
    for t in range(len(wet)):
        for y, x in zip(rng.integers(0, 56, 30), rng.integers(0, 96, 30), strict=True):
            wet[t, y:y + 8, x] += 60
        if CHUNK - 4 <= t < CHUNK + 4:  # a snow shower across the pieces' seam: 2x2 flakes falling 2 pixels a frame
            for k in range(60):
                y, x = (3 + 9 * (k // 10) + 2 * t) % 62, 3 + 9 * (k % 10)
                wet[t, y:y + 2, x:x + 2] += 100
    wet = np.clip(wet, 0, 255).astype(np.uint8)
    write_frames(tmp_path, wet)
    cfg = tiny_cfg(isize=(32, 48), motion=True, drops=True, steady=steady)
    drops = DropFilter()
    assert any(drops(flow_frame(f, cfg)) is not None and drops.snowing for f in wet)
    store = FrameStore([Sequence("c", image_files(tmp_path), length=len(wet))], cfg, workers=0)
    expected = preprocess_sequence(wet, cfg)
    got = store.sequence(0)
    assert torch.equal(got[:, :1], expected[:, :1])
    assert torch.allclose(got[:, 1:], expected[:, 1:], atol=2e-3)  # the store keeps flow in float16
    plain = preprocess_sequence(wet, cfg.replace(drops=False))
    assert np.array_equal(store.raw_sequence(0), ((plain[:, 0].numpy() + 1) * 127.5).round().astype(np.uint8))
    assert not torch.equal(got[:, :1], plain[:, :1])
