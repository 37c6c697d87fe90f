import numpy as np
import pytest
import torch

from model import OCRGANVideo, iter_clip_scores, score_clip
from model.scales import cue_values, extreme
from tests.model.helpers import tiny_cfg
from training import calibrate as calibrate_module
from training.calibrate import calibrate, fit_memory, fit_units, fold_banks, fold_pieces


def test_calibration_normalises_normal_footage():
    model = OCRGANVideo(tiny_cfg(score_smoothing=0.3)).eval()
    seqs = [torch.rand(30, 1, 32, 32) * 2 - 1 for _ in range(3)]
    stats = calibrate(model, seqs, quantile=0.9)
    assert stats["frames"] == 90 and stats["rec_scale"] > 0 and stats["feat_scale"] > 0
    norm = np.concatenate([score_clip(model, s).normalised.numpy() for s in seqs])
    assert norm.mean() == pytest.approx(0, abs=1e-4) and norm.std() == pytest.approx(1, abs=1e-3)
    assert stats["threshold"] == pytest.approx(np.quantile(norm, 0.9), abs=1e-4)
    assert (norm > float(model.threshold)).mean() == pytest.approx(0.1, abs=0.02)


def test_calibration_needs_frames():
    with pytest.raises(ValueError, match="at least one frame"):
        calibrate(OCRGANVideo(tiny_cfg()), [])


def test_units_take_more_normal_footage_into_account_but_never_fall_below_the_held_out_clips():
    model = OCRGANVideo(tiny_cfg()).eval()
    g = torch.Generator().manual_seed(0)
    calm = [torch.rand(30, 1, 32, 32, generator=g) * 0.2 for _ in range(2)]  # little to reconstruct
    busy = [torch.rand(30, 1, 32, 32, generator=g) * 2 - 1 for _ in range(2)]
    alone = dict(fit_units(model, calm))
    with_busy = dict(fit_units(model, calm, busy))

    def extremes(seqs):
        return {k: extreme(v) for k, v in cue_values([p for s in seqs for p in iter_clip_scores(model, s)]).items()
                if v is not None}

    assert with_busy["app"] > alone["app"]  # the busier footage strays further
    assert with_busy["app"] == pytest.approx(extremes(calm + busy)["app"], rel=1e-4)
    units = fit_units(model, busy, calm)
    assert {k: units[k] for k in ("app", "feat")} == pytest.approx(extremes(busy))  # calmer footage never lowers one


def test_the_memory_is_filled_from_every_frames_patches_or_a_share_of_long_footage(monkeypatch):
    cfg = tiny_cfg(memory_size=32, score_patch=4)
    model = OCRGANVideo(cfg).eval()
    seqs = [torch.rand(20, 1, 32, 32) * 2 - 1 for _ in range(2)]
    feats = fit_memory(model, seqs)
    assert [len(f) for f in feats] == [20 * 8 * 8] * 2  # each sequence's 20 frames of 8x8 patches
    assert model.memory.abs().sum(1).gt(0).all()
    monkeypatch.setattr(calibrate_module, "MAX_PATCHES", 640)
    assert 400 < sum(len(f) for f in fit_memory(model, seqs)) < 900  # about a quarter of the patches
    assert fit_memory(OCRGANVideo(tiny_cfg()), seqs) == []  # no memory to fill


def _noise(n: int, g: torch.Generator) -> list[torch.Tensor]:
    return [torch.rand(24, 1, 32, 32, generator=g) * 2 - 1 for _ in range(n)]


def test_the_memory_unit_is_read_on_footage_the_memory_does_not_hold():
    model = OCRGANVideo(tiny_cfg(memory_size=1024, score_patch=4, w_score_mem=1.0)).eval()
    g = torch.Generator().manual_seed(0)
    seqs, fresh = _noise(4, g), _noise(2, g)
    banks = fold_banks(model, seqs, fit_memory(model, seqs))
    full = model.memory.clone()
    assert len(banks) == 4 and not any(torch.equal(b["memory"], full) for b in banks)
    in_memory = fit_units(model, [], seqs)["mem"]
    held_out = fit_units(model, [], seqs, banks=banks)["mem"]
    assert torch.equal(model.memory, full)  # the model's own memory is back
    new = cue_values([p for s in fresh for p in iter_clip_scores(model, s)])["mem"]
    assert held_out > in_memory
    # a new recording of the same kind of scene: the held-out unit flags few of its frames, the in-memory one most
    assert (new > held_out).float().mean() < 0.2 < (new > in_memory).float().mean()
    stats = calibrate(model, seqs, banks=banks)  # the same rule for the units and the score statistics
    assert stats["mem_scale"] == pytest.approx(held_out, rel=1e-5)


def _walkers(n: int, g: torch.Generator) -> list[torch.Tensor]:
    """Sequences of model input with the motion band: a bright walker moving right along a random row each frame."""
    out = []
    for _ in range(n):
        x = torch.zeros(24, 3, 32, 32)
        x[:, 0] = -1
        for t in range(24):
            r, c = int(torch.randint(0, 28, (), generator=g)), int(torch.randint(0, 28, (), generator=g))
            x[t, 0, r:r + 4, c:c + 4] = 1
            x[t, 1, r:r + 4, c:c + 4] = 1.5  # the motion band: right at 1.5 pixels a frame
        out.append(x)
    return out


def test_the_motion_memory_unit_is_read_on_footage_the_memory_does_not_hold():
    model = OCRGANVideo(tiny_cfg(motion=True, direction_memory=1024, score_patch=8, w_score_dir=1.0)).eval()
    g = torch.Generator().manual_seed(0)
    seqs = _walkers(4, g)
    model.set_direction_prior(torch.cat([s[:, 1:] for s in seqs]))
    banks = fold_banks(model, seqs, fit_memory(model, seqs))  # no learned memory: the motion memory alone
    full = model.direction_bank.clone()
    assert len(banks) == 4 and all(set(b) == {"direction_bank"} for b in banks)
    in_memory = fit_units(model, [], seqs)["dir"]
    held_out = fit_units(model, [], seqs, banks=banks)["dir"]
    assert torch.equal(model.direction_bank, full)  # the model's own memory is back
    assert held_out > in_memory
    assert [len(p) for p in fold_pieces(model, [torch.cat(seqs)])] == [24] * 4  # one recording is cut to hold out


def test_few_sequences_are_cut_into_pieces_so_the_memory_can_be_held_out_a_part_at_a_time():
    model = OCRGANVideo(tiny_cfg(memory_size=8))  # windows of 8 frames: pieces of at least 16
    one = torch.arange(100.0).reshape(100, 1, 1, 1)
    pieces = fold_pieces(model, [one])
    assert [len(p) for p in pieces] == [25] * 4 and torch.equal(torch.cat(pieces), one)
    assert [len(p) for p in fold_pieces(model, [one[:40], one[:40]])] == [20] * 4
    assert [len(p) for p in fold_pieces(model, [one[:20]])] == [20]  # too short to cut
    four = [one[:5]] * 4
    assert fold_pieces(model, four) == four
    assert fold_pieces(OCRGANVideo(tiny_cfg()), [one]) == [one]  # no memory: nothing to hold out
    assert fold_banks(model, [torch.rand(9, 1, 8, 8)], [torch.rand(9, 4)]) is None  # one sequence: nothing to hold out
