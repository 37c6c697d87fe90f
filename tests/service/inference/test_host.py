"""What runs the model by default (ONNX Runtime on a CPU where it is installed, torch on a GPU or when asked), and
which stride and path a camera gets: frame by frame on a GPU and in ONNX Runtime on a CPU, the checkpoint's windows
with torch on a CPU."""

from __future__ import annotations

import cv2
import pytest
import torch

from model import OCRGANConfig, OCRGANVideo
from service.inference import onnx_runtime
from service.inference.host import ModelHost, camera_stride, choose_runtime
from service.settings import Settings
from tests.service.conftest import TINY


@pytest.mark.skipif(not onnx_runtime.available(), reason="onnxruntime, onnx or onnxscript is not installed")
def test_a_cpu_runs_the_model_on_onnx_runtime_by_default():
    assert Settings.model_fields["runtime"].default == "auto"
    assert choose_runtime("auto", torch.device("cpu"))[0] == "onnx"
    assert choose_runtime("onnx", torch.device("cpu"))[0] == "onnx"
    assert choose_runtime("torch", torch.device("cpu"))[0] == "torch"
    assert choose_runtime("auto", torch.device("cuda"))[0] == "torch"
    assert choose_runtime("onnx", torch.device("cuda"))[0] == "torch"


def test_without_onnx_runtime_the_model_stays_on_torch(monkeypatch, caplog):
    """A service installed without the packages (not as the service extra has it) says why; asked for explicitly,
    it warns."""
    monkeypatch.setattr(onnx_runtime, "available", lambda: False)
    assert choose_runtime("auto", torch.device("cpu")) == ("torch", "onnxruntime, onnx or onnxscript is not "
                                                                    "installed")
    assert not caplog.records
    assert choose_runtime("onnx", torch.device("cpu"))[0] == "torch"
    assert "OCRGAN_RUNTIME=onnx but" in caplog.text


def test_cameras_are_scored_frame_by_frame_on_a_gpu_and_by_windows_on_a_cpu():
    model = OCRGANVideo(OCRGANConfig(**TINY))
    assert camera_stride(None, model, torch.device("cuda"))[0] == 1
    assert camera_stride(None, model, torch.device("cpu"))[0] == model.cfg.stride
    assert camera_stride(2, model, torch.device("cuda"))[0] == 2  # OCRGAN_STRIDE decides when set


@pytest.mark.skipif(not onnx_runtime.available(), reason="the onnx extra is not installed")
def test_cameras_are_scored_frame_by_frame_on_a_cpu_with_onnx_runtime():
    model = OCRGANVideo(OCRGANConfig(**TINY))
    assert camera_stride(None, model, torch.device("cpu"), "onnx")[0] == 1
    assert camera_stride(None, model, torch.device("cpu"), "torch")[0] == model.cfg.stride
    assert camera_stride(3, model, torch.device("cpu"), "onnx")[0] == 3


def test_a_model_that_sees_later_frames_keeps_its_windows_on_a_gpu():
    model = OCRGANVideo(OCRGANConfig(**TINY, objective="reconstruct"))
    assert camera_stride(None, model, torch.device("cuda"))[0] == model.cfg.stride
    assert camera_stride(None, model, torch.device("cpu"), "onnx")[0] == model.cfg.stride
    host = ModelHost(model, None, torch.device("cpu"), model.cfg.stride, 1)
    assert not host.frame_path(1)  # a camera asking for stride 1 slides windows one frame at a time


def test_stride_one_is_the_frame_path_for_a_causal_model(make_settings):
    host = ModelHost.load(make_settings())
    assert host.camera_stride == host.stride == 4  # a CPU: the checkpoint's, for cameras and clips
    assert host.frame_path(1) and not host.frame_path(2)
    assert ModelHost.load(make_settings(stride=1)).camera_stride == 1


def test_opencv_runs_in_the_calling_thread_unless_told_otherwise(make_settings):
    """Cameras preprocess in threads of their own; OpenCV's pool is one thread by default (OCRGAN_OPENCV_THREADS),
    and 0 leaves OpenCV's own choice alone."""
    before = cv2.getNumThreads()
    try:
        cv2.setNumThreads(2)
        ModelHost.load(make_settings())
        assert cv2.getNumThreads() == 1
        cv2.setNumThreads(2)
        ModelHost.load(make_settings(opencv_threads=0))
        assert cv2.getNumThreads() == 2
    finally:
        cv2.setNumThreads(before)
