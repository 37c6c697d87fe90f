import json
import shutil

import numpy as np
import pytest

from testkit.synthetic import (
    make_frame_folder_dataset,
    make_ucsd_dataset,
    make_video_dataset,
    moving_shapes,
    write_video,
)
from training.discover import detect_layout, find_sequences
from training.sequences import DataError


def test_frame_folders(frame_dataset):
    assert detect_layout(frame_dataset) == "frames"
    train = find_sequences(frame_dataset, "train")
    test = find_sequences(frame_dataset, "test")
    assert [s.name for s in train] == ["01", "02", "03", "04"] and all(s.labels is None for s in train)
    assert [s.length for s in test] == [48, 48] and all(s.labels.sum() == 24 for s in test)


def test_ucsd_layout_with_m_ground_truth(tmp_path):
    make_ucsd_dataset(tmp_path)
    assert detect_layout(tmp_path) == "ucsd"
    test = find_sequences(tmp_path, "test")
    assert [s.name for s in test] == ["Test001", "Test002"]  # the _gt mask folders are not clips
    assert test[0].labels.tolist().index(1) == 15 and test[1].labels.sum() == 14
    assert all(p.suffix == ".tif" for p in test[0].frames)
    assert len(find_sequences(tmp_path / "UCSDped2", "train")) == 2


def test_video_folder_with_labels_keyed_by_file_name(tmp_path):
    make_video_dataset(tmp_path)
    assert detect_layout(tmp_path) == "videos"
    train = find_sequences(tmp_path, "train")
    test = find_sequences(tmp_path, "test")
    assert [s.name for s in train] == ["cam0.mp4", "cam1.mp4"] and train[0].length == 40
    assert test[0].name == "test0.avi" and test[0].labels.sum() == 20
    single = find_sequences(tmp_path / "training" / "cam0.mp4", "train")
    assert len(single) == 1 and single[0].video.name == "cam0.mp4"


def test_mismatched_label_length_names_the_clip(tmp_path):
    root = make_frame_folder_dataset(tmp_path, n_train=1, n_test=1, length=20)
    (root / "labels.json").write_text(json.dumps({"labels": {"01": [0] * 19}}))
    with pytest.raises(DataError, match=r"01.*19 labels for 20 frames"):
        find_sequences(root, "test")


def test_missing_labels(tmp_path):
    root = make_frame_folder_dataset(tmp_path, n_train=1, n_test=1, length=20)
    (root / "labels.json").unlink()
    with pytest.raises(DataError, match=r"labels\.json"):
        find_sequences(root, "test")


def test_unknown_layout_and_missing_path(tmp_path):
    (tmp_path / "x").mkdir()
    with pytest.raises(DataError, match="unrecognised dataset layout"):
        find_sequences(tmp_path / "x", "train")
    with pytest.raises(DataError, match="no such file"):
        find_sequences(tmp_path / "nope", "train")


def test_empty_clip_folders_are_skipped_with_a_warning(tmp_path, caplog):
    root = make_frame_folder_dataset(tmp_path, n_train=2, n_test=1, length=20)
    clip = root / "training" / "frames" / "02"
    shutil.rmtree(clip)
    clip.mkdir()
    seqs = find_sequences(root, "train")
    assert [s.name for s in seqs] == ["01"] and "no image files" in caplog.text


def test_shanghaitech_layout_training_videos_test_frames_and_frame_masks(tmp_path):
    """ShanghaiTech as distributed: training/videos/*.avi, testing/frames/<clip>/, testing/test_frame_mask/*.npy."""
    make_frame_folder_dataset(tmp_path, n_train=0, n_test=2, length=20)
    (tmp_path / "labels.json").unlink()
    for i in range(2):
        frames, _ = moving_shapes(24, seed=i)
        write_video(tmp_path / "training" / "videos" / f"01_00{i + 1}.avi", frames, codec="mjpeg", pix_fmt="yuvj420p")
    masks = tmp_path / "testing" / "test_frame_mask"
    masks.mkdir()
    np.save(masks / "01.npy", np.r_[np.zeros(12), np.ones(8)].astype(np.int64))
    np.save(masks / "02.npy", np.ones(20, np.int64))
    assert detect_layout(tmp_path) == "frames"
    train = find_sequences(tmp_path, "train")
    assert [s.name for s in train] == ["01_001.avi", "01_002.avi"] and train[0].length == 24
    test = find_sequences(tmp_path, "test")
    assert [s.labels.sum() for s in test] == [8, 20] and test[0].labels.tolist().index(1) == 12
    np.save(masks / "02.npy", np.full(20, 2))
    with pytest.raises(DataError, match=r"02\.npy.*0/1 per frame"):
        find_sequences(tmp_path, "test")


def test_avenue_layout_videos_with_pixel_mask_ground_truth(tmp_path):
    """CUHK Avenue as distributed: training_videos/, testing_videos/ and one volLabel .mat of pixel masks per test
    video, numbered without the video's leading zero."""
    from scipy.io import savemat

    for i in range(2):
        frames, _ = moving_shapes(20, seed=i)
        write_video(tmp_path / "training_videos" / f"0{i + 1}.avi", frames, codec="mjpeg", pix_fmt="yuvj420p")
    frames, _ = moving_shapes(16, seed=9)
    write_video(tmp_path / "testing_videos" / "01.avi", frames, codec="mjpeg", pix_fmt="yuvj420p")
    vol = np.empty((1, 16), dtype=object)
    for t in range(16):
        mask = np.zeros((64, 96), np.uint8)
        mask[10:20, 30:40] = t >= 10
        vol[0, t] = mask
    gt = tmp_path / "ground_truth_demo" / "testing_label_mask"
    gt.mkdir(parents=True)
    savemat(gt / "1_label.mat", {"volLabel": vol})
    assert detect_layout(tmp_path) == "videos"
    assert [s.name for s in find_sequences(tmp_path, "train")] == ["01.avi", "02.avi"]
    (test,) = find_sequences(tmp_path, "test")
    assert test.labels.tolist() == [0] * 10 + [1] * 6
    (gt / "1_label.mat").rename(gt / "2_label.mat")
    with pytest.raises(DataError, match=r"01\.avi.*no labels"):
        find_sequences(tmp_path, "test")
