"""The scorer's batch when the settings leave it open: a rule by device and the model's cost per window."""

from __future__ import annotations

import subprocess
import sys

import torch

from model import OCRGANConfig, OCRGANVideo
from service.inference.batch_size import CPU_SMALL_BATCH, GPU_BATCH, SMALL_WINDOW_GFLOP, batch_rule, window_gflop
from service.inference.host import ModelHost
from service.settings import DEFAULT_CHECKPOINT, Settings


def tiny() -> OCRGANVideo:
    return OCRGANVideo(OCRGANConfig(isize=(32, 48), nc=1, ngf=8, ndf=8, nz=16, stride=4)).eval()


def test_the_rule():
    cpu, gpu = torch.device("cpu"), torch.device("meta")  # any device but the CPU batches like a GPU
    assert batch_rule(gpu, 100.0) == GPU_BATCH
    assert batch_rule(cpu, SMALL_WINDOW_GFLOP) == CPU_SMALL_BATCH
    assert batch_rule(cpu, SMALL_WINDOW_GFLOP * 1.01) == 1


def test_a_window_costs_more_the_more_frames_it_publishes():
    model = tiny()
    one, four = window_gflop(model, 1), window_gflop(model, 4)
    assert 0 < one < four < SMALL_WINDOW_GFLOP  # the test model batches on a CPU


def test_the_shipped_model_scores_one_window_at_a_time_on_a_cpu():
    from model import load_checkpoint

    model, info = load_checkpoint(DEFAULT_CHECKPOINT)
    host = ModelHost(model, info, torch.device("cpu"), model.cfg.stride)
    assert host.best_batch() == 1


def test_settings_win_and_the_rule_is_applied_once(checkpoint):
    from model import load_checkpoint

    model, info = load_checkpoint(checkpoint)
    host = ModelHost(model, info, torch.device("cpu"), model.cfg.stride)
    assert host.batch_sizes(Settings(_env_file=None, max_batch=3)) == (3, 3)
    assert host.batch_sizes(Settings(_env_file=None, max_batch=3, clip_batch=5)) == (3, 5)
    first = host.best_batch()
    assert first == batch_rule(torch.device("cpu"), window_gflop(model, host.stride))
    assert host.batch_sizes(Settings(_env_file=None)) == (first, first)
    gpu = ModelHost(model, info, torch.device("meta"), model.cfg.stride)
    assert gpu.best_batch() == GPU_BATCH


def test_the_count_is_the_convolutions_and_linear_layers_and_imports_nothing():
    from torch.utils.flop_counter import FlopCounterMode

    model = tiny()
    t = model.cfg.num_frames
    with FlopCounterMode(display=False) as counter, torch.inference_mode():
        model.score(torch.zeros(1, t, model.cfg.in_channels, *model.cfg.hw), slice(t - 4, t))
    everything = counter.get_total_flops() / 1e9
    assert 0.85 * everything < window_gflop(model, 4) <= everything  # the tiny model is nearly all convolutions
    # torch's counter brings sympy and some 800 modules into the process on first use; the service's count does not
    probe = ("import sys; from model import OCRGANConfig, OCRGANVideo; "
             "from service.inference.batch_size import window_gflop; "
             "m = OCRGANVideo(OCRGANConfig(isize=(32, 48), nc=1, ngf=8, ndf=8, nz=16, stride=4)).eval(); "
             "window_gflop(m, 4); print('sympy' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=120)
    assert out.stdout.strip() == "False"
