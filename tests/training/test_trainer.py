import csv
import math

import pytest
import torch

from model import load_checkpoint
from testkit.synthetic import make_frame_folder_dataset
from tests.training.conftest import TINY
from training.config import load_config
from training.sequences import Sequence
from training.state import load_state
from training.trainer import Trainer, TrainingDiverged, split_validation

pytestmark = pytest.mark.slow


def trainer(data, run, extra=(), resume=False):
    return Trainer(load_config(None, [*TINY, *extra]), data, run, resume=resume)


def test_validation_is_carved_from_whole_training_clips():
    seqs = [Sequence(str(i), length=10) for i in range(8)]
    train, val = split_validation(seqs, 0.25, seed=0)
    assert len(val) == 2 and len(train) == 6 and not {s.name for s in train} & {s.name for s in val}
    one = [Sequence("only", frames=[f"{i}.png" for i in range(40)], length=40)]
    head, tail = split_validation(one, 0.25, seed=0)
    assert head[0].length == 30 and tail[0].length == 10 and tail[0].frames[0] == "30.png"


def test_short_training_lowers_the_loss_and_writes_a_calibrated_checkpoint(frame_dataset, tmp_path):
    t = trainer(frame_dataset, tmp_path / "run", ["epochs=4"])
    first = t.train_step(*next(iter(torch.utils.data.DataLoader(t.dataset, batch_size=4))))
    out = t.run()
    rec = [row["rec"] for row in t.progress.history]
    assert rec[-1] < first["rec"] and rec[-1] < rec[0]
    model, info = load_checkpoint(out)
    assert info.half and info.training["val_sequences"]
    val_frames = sum(len(t.val_store.sequence(i)) for i in range(len(t.val_store.sequences)))
    assert info.training["calibration"]["frames"] > val_frames  # calibrated on the training clips too
    assert math.isfinite(float(model.threshold)) and float(model.score_std) > 0
    for name in ("config.yaml", "log.csv", "best.safetensors", "last.state"):
        assert (tmp_path / "run" / name).exists(), name
    assert "pseudo_auc" in (tmp_path / "run" / "log.csv").read_text()


def test_max_frames_trains_on_the_middle_of_each_clip(frame_dataset, tmp_path):
    t = trainer(frame_dataset, tmp_path / "run", ["max_frames=100"])  # 4 clips of 48 frames: 25 of each
    assert len(t.train_store) + len(t.val_store) == 100
    per_clip = {}
    for s in [*t.train_store.sequences, *t.val_store.sequences]:  # few clips: validation is the end of each
        per_clip[s.name.removesuffix("[val]")] = per_clip.get(s.name.removesuffix("[val]"), 0) + s.length
    assert per_clip == {"01": 25, "02": 25, "03": 25, "04": 25}


def test_selection_scores_the_model_as_it_will_be_published(frame_dataset, tmp_path):
    t = trainer(frame_dataset, tmp_path / "run", ["epochs=2", "val_every=2"])
    out = t.run()
    _, info = load_checkpoint(out)
    (row,) = t.progress.history
    assert info.training["best_epoch"] == row["epoch"]
    assert t.model.memory.abs().sum() > 0  # filled from the training footage before validating, as _finish fills it
    with (tmp_path / "run" / "score_weights.csv").open() as f:  # every weighting tried at the end
        table = [{k: float(v) for k, v in r.items()} for r in csv.DictReader(f)]
    assert row["pseudo_auc"] == pytest.approx(max(r["own_mean"] for r in table), abs=1e-6)  # the scene alone
    chosen = info.training["validation"]  # chosen on the scene and on its foreign view
    assert chosen["mean"] == pytest.approx(max(r["mean"] for r in table))
    assert chosen["mean"] == pytest.approx((chosen["own_mean"] + chosen["foreign_mean"]) / 2)


def test_resume_after_a_crash_gives_the_same_state(frame_dataset, tmp_path):
    extra = ["epochs=2", "checkpoint_every=3"]
    straight = trainer(frame_dataset, tmp_path / "a", extra)
    straight.run()
    crashing = trainer(frame_dataset, tmp_path / "b", extra)
    real_step = crashing.train_step

    def step_then_crash(*args):
        if crashing.progress.step == 7:
            raise KeyboardInterrupt  # dies between checkpoints: steps 7.. are lost
        return real_step(*args)

    crashing.train_step = step_then_crash
    with pytest.raises(KeyboardInterrupt):
        crashing.run()
    assert load_state(tmp_path / "b" / "last.state")["progress"]["step"] == 6
    resumed = trainer(frame_dataset, tmp_path / "b", extra, resume=True)
    assert resumed.progress.step == 6
    resumed.run()
    a = load_state(tmp_path / "a" / "last.state")
    b = load_state(tmp_path / "b" / "last.state")
    assert a["progress"]["step"] == b["progress"]["step"]
    for k, v in a["model"].items():
        assert torch.allclose(v.float(), b["model"][k].float(), atol=1e-6), k
    assert a["opt_g"]["state"][0]["exp_avg"].allclose(b["opt_g"]["state"][0]["exp_avg"], atol=1e-7)


def test_non_finite_loss_stops_with_a_clear_message(frame_dataset, tmp_path):
    t = trainer(frame_dataset, tmp_path / "run", ["epochs=1"])
    with torch.no_grad():
        next(t.model.generator.parameters()).fill_(float("nan"))
    with pytest.raises(TrainingDiverged, match=r"became nan.*last\.state"):
        t.run()


def test_non_finite_steps_can_be_skipped(frame_dataset, tmp_path):
    t = trainer(frame_dataset, tmp_path / "run", ["epochs=1", "nan_policy=skip", "max_skipped_steps=2"])
    with torch.no_grad():
        next(t.model.generator.parameters()).fill_(float("nan"))
    with pytest.raises(TrainingDiverged, match="consecutive non-finite"):
        t.run()
    assert t.progress.skipped_steps == 3


def test_a_collapsed_discriminator_is_reinitialised(frame_dataset, tmp_path):
    t = trainer(frame_dataset, tmp_path / "run", ["epochs=1", "d_collapse_loss=1000", "d_collapse_steps=2"])
    before = [p.clone() for p in t.model.discriminator.parameters()]
    clip, forged, mask = next(iter(torch.utils.data.DataLoader(t.dataset, batch_size=4)))
    for _ in range(2):
        t.train_step(clip, forged, mask)
    assert t.progress.d_reinits == 1
    after = list(t.model.discriminator.parameters())
    assert any(not torch.allclose(a, b) for a, b in zip(before, after, strict=True))


def test_time_budget_stops_cleanly(tmp_path):
    data = make_frame_folder_dataset(tmp_path / "d", n_train=3, n_test=1, length=40)
    t = trainer(data, tmp_path / "run", ["epochs=50", "max_minutes=0.001"])
    out = t.run()
    assert out is not None and out.exists() and t.progress.epoch < 50
