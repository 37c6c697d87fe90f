"""Temporal OCR-GAN for video anomaly detection, in plain PyTorch."""

from model.checkpoint import CheckpointError, CheckpointInfo, load_checkpoint, read_header, save_checkpoint
from model.config import OCRGANConfig
from model.ocrgan import OCRGANVideo
from model.preprocess import SequencePreprocessor, input_spec, preprocess, preprocess_sequence
from model.windows import (
    ClipScores,
    ScorePostprocessor,
    Window,
    WindowAssembler,
    WindowScores,
    anomalous_runs,
    iter_clip_scores,
    score_clip,
    score_windows,
)

__all__ = [
    "CheckpointError",
    "CheckpointInfo",
    "ClipScores",
    "OCRGANConfig",
    "OCRGANVideo",
    "ScorePostprocessor",
    "SequencePreprocessor",
    "Window",
    "WindowAssembler",
    "WindowScores",
    "anomalous_runs",
    "input_spec",
    "iter_clip_scores",
    "load_checkpoint",
    "preprocess",
    "preprocess_sequence",
    "read_header",
    "save_checkpoint",
    "score_clip",
    "score_windows",
]
