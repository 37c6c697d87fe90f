import json
import shutil

import pytest

from testkit.synthetic import make_frame_folder_dataset, make_ucsd_dataset, make_video_dataset
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
