"""The snapshot: the heatmap is drawn relative to a scale, clear up to half of it, full colour from twice it."""

from __future__ import annotations

import cv2
import numpy as np

from service.cameras.snapshot import render_snapshot


def decoded(jpeg: bytes) -> np.ndarray:
    return cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR).astype(int)


def test_the_heatmap_is_shown_relative_to_its_scale():
    image = np.full((64, 96), 128, np.uint8)
    plain = decoded(render_snapshot(image, None, 1.0))
    heat = np.zeros((32, 48), np.float32)
    heat[8:24, 12:36] = 0.04  # a hot patch, twice a scale of 0.02
    hot = decoded(render_snapshot(image, heat, 0.02))
    assert np.abs(hot[24:40, 30:66] - plain[24:40, 30:66]).mean() > 40  # coloured over the patch
    assert np.abs(hot[:8, :16] - plain[:8, :16]).mean() < 3  # and clear elsewhere
    # the same map against a scale 50x larger (a checkpoint's, fitted on other footage) stays under half of it
    assert np.abs(decoded(render_snapshot(image, heat, 1.0)) - plain).mean() < 1
    at_half = np.full((32, 48), 0.01, np.float32)  # half the scale: the scene's normal level stays clear
    assert np.abs(decoded(render_snapshot(image, at_half, 0.02)) - plain).mean() < 1
