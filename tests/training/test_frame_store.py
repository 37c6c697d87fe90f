import logging

import numpy as np
import pytest
import torch

from testkit.synthetic import make_video_dataset, moving_shapes
from tests.model.helpers import tiny_cfg
from training.discover import find_sequences
from training.frame_store import FrameStore, available_memory, frame_bytes, within_budget
from training.sequences import Sequence


def _kept_bytes(store: FrameStore) -> int:
    parts = [store.raw] + ([store.plain] if store.plain is not store.raw else [])
    parts += [store.flow.numpy(), store.big] if store.flow is not None else []
    return sum(p.nbytes for p in parts)


@pytest.mark.parametrize("kw", [dict(motion=True, flow_scale=2), dict(motion=True, flow_scale=2, drops=True),
                                dict(motion=False), dict(motion=True, flow_scale=2, nc=3)])
def test_frame_bytes_is_what_a_store_keeps(kw):
    cfg = tiny_cfg(isize=(32, 48), **kw)
    frames, _ = moving_shapes(12, 64, 96, seed=0)
    if cfg.nc == 3:
        frames = np.repeat(frames[..., None], 3, axis=-1)
    store = FrameStore.from_frames(cfg, [frames])
    assert _kept_bytes(store) == 12 * frame_bytes(cfg)


def test_within_budget_leaves_footage_alone_when_it_fits():
    seqs = [Sequence("a", length=100), Sequence("b", length=300)]
    assert within_budget(seqs, tiny_cfg(), available=2**34) is seqs


def test_within_budget_keeps_the_middle_of_each_sequence_by_memory_and_by_max_frames(caplog):
    cfg = tiny_cfg(isize=(32, 48), motion=True, flow_scale=2)
    folder = [f"{i}.png" for i in range(400)]
    seqs = [Sequence("frames", frames=folder, length=400), Sequence("video", video="v.mp4", length=200, offset=50),
            Sequence("short", frames=folder[:10], length=10)]
    room = 300 * 2 * frame_bytes(cfg) * 2  # 300 frames' worth at the peak, of which half may be used
    with caplog.at_level(logging.WARNING):
        out = within_budget(seqs, cfg, available=room)
    assert [s.length for s in out] == [196, 98, 10]  # an even share, 300 * len / 610, never under two windows' frames
    assert out[0].frames == folder[102:298]
    assert out[1].offset == 50 + 51 and out[1].video == "v.mp4"
    assert out[2] is seqs[2]
    assert "more than 0.0 GiB of memory available" in caplog.text and "using 304" in caplog.text
    capped = within_budget(seqs, cfg, max_frames=61, available=2**34)
    assert [s.length for s in capped] == [40, 20, 10]
    assert "more than max_frames=61 allows: using 70" in caplog.messages[-1]


def test_a_video_cut_by_the_budget_decodes_its_middle_frames(tmp_path):
    cfg = tiny_cfg(isize=(32, 48), motion=True, flow_scale=2)
    seqs = find_sequences(make_video_dataset(tmp_path, n_train=2, length=40), "train")
    full = FrameStore(seqs, cfg, workers=0)
    cut = within_budget(seqs, cfg, max_frames=40)
    store = FrameStore(cut, cfg, workers=0)
    assert [s.length for s in store.sequences] == [20, 20]
    for i in range(2):
        np.testing.assert_array_equal(store.raw[store.offsets[i]:store.offsets[i + 1]],
                                      full.raw[full.offsets[i] + 10:full.offsets[i] + 30])


def test_available_memory_reads_this_machine():
    assert 0 < available_memory() < 2**50


def test_the_foreign_view_is_the_footage_inverted_and_mirrored_as_a_camera_would_give_it():
    """FrameStore.foreign: what a store of the inverted, mirrored frames holds, flow estimated on them; the store
    itself is left alone."""
    cfg = tiny_cfg(isize=(32, 48), motion=True, flow_scale=2)
    clips = [moving_shapes(30, *cfg.flow_hw, seed=s)[0] for s in range(2)]
    store = FrameStore.from_frames(cfg, clips, ["a", "b"])
    raw, flow = store.raw.copy(), store.flow.clone()
    view = store.foreign()
    direct = FrameStore.from_frames(cfg, [255 - c[:, :, ::-1] for c in clips])
    for part in ("raw", "big", "plain"):
        np.testing.assert_array_equal(getattr(view, part), getattr(direct, part))
    assert torch.equal(view.flow, direct.flow)
    assert [s.name for s in view.sequences] == ["a", "b"] and list(view.offsets) == list(store.offsets)
    mirrored = np.corrcoef(view.flow[:, 0].float().flatten(), flow[:, 0].flip(-1).float().flatten())[0, 1]
    assert mirrored < -0.5, mirrored  # what moved right moves left (as optical flow finds it)
    np.testing.assert_array_equal(store.raw, raw)
    assert torch.equal(store.flow, flow)
    cut = store.foreign(max_frames=20)  # long footage: the middle of each clip, never under two windows' frames
    assert [s.length for s in cut.sequences] == [2 * cfg.num_frames] * 2
    np.testing.assert_array_equal(cut.big[:16], view.big[7:23])
    plain = tiny_cfg(isize=(32, 48))  # without the motion band, the working-size frames
    still = FrameStore.from_frames(plain, clips)
    np.testing.assert_array_equal(still.foreign().raw, 255 - still.raw[:, :, ::-1])
