"""The scorer's batch when the settings leave it open: measured on the loaded model on a CPU."""

from __future__ import annotations

import pytest
import torch

from model import OCRGANConfig, OCRGANVideo
from service.inference.batch_size import CANDIDATES, GPU_BATCH, measure_batch
from service.inference.host import ModelHost
from service.settings import Settings


def tiny() -> OCRGANVideo:
    return OCRGANVideo(OCRGANConfig(isize=(32, 48), nc=1, ngf=8, ndf=8, nz=16, stride=4)).eval()


class Clock:
    """A timer where one forward pass of b windows takes cost(b) seconds (two timed passes per candidate)."""

    def __init__(self, cost) -> None:
        self.cost, self.now = cost, 0.0

    def __call__(self) -> float:
        return self.now

    def model(self, model: OCRGANVideo) -> OCRGANVideo:
        original = model.score

        def score(clip, positions=None):
            self.now += self.cost(clip.shape[0])
            return original(clip, positions)

        model.score = score
        return model


def test_the_fastest_candidate_is_chosen_and_the_search_stops_when_it_slows_down():
    # per window: 1.0 s at batch 1, 0.5 at 2, 0.6 at 4 (slower: stop), 0.1 at 8 (never tried)
    per_window = {1: 1.0, 2: 0.5, 4: 0.6, 8: 0.1}
    clock = Clock(lambda b: b * per_window[b])
    best, rates = measure_batch(clock.model(tiny()), stride=4, timer=clock)
    assert best == 2
    assert rates == pytest.approx({1: 1.0, 2: 2.0, 4: 1 / 0.6})


def test_batch_one_when_batching_only_slows_the_model():
    clock = Clock(lambda b: b * 1.5 if b > 1 else 1.0)
    best, rates = measure_batch(clock.model(tiny()), stride=4, timer=clock)
    assert best == 1 and rates == pytest.approx({1: 1.0, 2: 1 / 1.5})


def test_real_measurement_picks_a_candidate_and_leaves_the_model_unchanged():
    model = tiny()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    best, rates = measure_batch(model, stride=4)
    assert best in CANDIDATES and rates[best] == max(rates.values()) and all(r > 0 for r in rates.values())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_the_host_measures_once_on_a_cpu_and_settings_win(checkpoint):
    from model import load_checkpoint

    model, info = load_checkpoint(checkpoint)
    host = ModelHost(model, info, torch.device("cpu"), model.cfg.stride)
    assert host.batch_sizes(Settings(_env_file=None, max_batch=3)) == (3, 3)
    assert host.batch_sizes(Settings(_env_file=None, max_batch=3, clip_batch=5)) == (3, 5)
    first = host.best_batch()
    assert first in CANDIDATES and host.batch_sizes(Settings(_env_file=None)) == (first, first)
    assert host.best_batch() == first
    gpu = ModelHost(model, info, torch.device("meta"), model.cfg.stride)  # any device but the CPU
    assert gpu.best_batch() == GPU_BATCH
