import json

import numpy as np
import pytest

from training.labels import parse_ucsd_m, ranges_to_labels, read_labels_json, read_mask_mats
from training.sequences import DataError


def test_ucsd_m_file_is_parsed_to_1_based_inclusive_ranges(tmp_path):
    m = tmp_path / "UCSDped2.m"
    m.write_text("TestVideoFile = {};\nTestVideoFile{end+1}.gt_frame = [61:180];\n"
                 "TestVideoFile{end+1}.gt_frame = [1:5, 10:12];\n")
    assert parse_ucsd_m(m) == [[(61, 180)], [(1, 5), (10, 12)]]
    labels = ranges_to_labels([(1, 2), (5, 5)], 6)
    assert labels.tolist() == [1, 1, 0, 0, 1, 0]


def test_the_real_ped2_ground_truth_format(tmp_path):
    m = tmp_path / "UCSDped2.m"
    m.write_text("TestVideoFile = {};\n" + "".join(f"TestVideoFile{{end+1}}.gt_frame = [{a}:{b}];\n"
                                                   for a, b in [(61, 180), (95, 180), (1, 146)]))
    gt = parse_ucsd_m(m)
    assert [ranges_to_labels(r, 180).sum() for r in gt] == [120, 86, 146]


def test_bad_m_file(tmp_path):
    m = tmp_path / "x.m"
    m.write_text("nothing here")
    with pytest.raises(DataError, match="gt_frame"):
        parse_ucsd_m(m)


def test_labels_json_both_shapes(tmp_path):
    a = tmp_path / "a.json"
    a.write_text(json.dumps({"labels": {"01": [0, 1, 1]}}))
    b = tmp_path / "b.json"
    b.write_text(json.dumps({"cam.mp4": [1, 0]}))
    assert read_labels_json(a)["01"].tolist() == [0, 1, 1]
    assert read_labels_json(b)["cam.mp4"].dtype == np.uint8


@pytest.mark.parametrize("content", ["not json", "[1, 2]", '{"01": [0, 2]}', '{"01": [[0]]}'])
def test_bad_labels_json(tmp_path, content):
    p = tmp_path / "labels.json"
    p.write_text(content)
    with pytest.raises(DataError, match="labels"):
        read_labels_json(p)


def test_unreadable_mask_file_is_named(tmp_path):
    (tmp_path / "3_label.mat").write_bytes(b"not a MATLAB file")
    with pytest.raises(DataError, match=r"3_label\.mat: cannot read pixel masks"):
        read_mask_mats(tmp_path)
    (tmp_path / "3_label.mat").unlink()
    with pytest.raises(DataError, match=r"no <n>_label\.mat"):
        read_mask_mats(tmp_path)
