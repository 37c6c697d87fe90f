"""Train a tiny model on synthetic normal motion, then evaluate it on clips with a fast object."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from tests.training.conftest import TINY
from training.state import load_state

pytestmark = pytest.mark.slow


def ocrgan(*args, **kw):
    return subprocess.run([sys.executable, "-m", "ocrgan_cli", *args], capture_output=True, text=True, **kw)


def test_train_then_eval_scores_the_anomaly_above_normal_frames(frame_dataset, tmp_path):
    run = tmp_path / "run"
    sets = [x for s in [*TINY, "epochs=8"] for x in ("--set", s)]
    r = ocrgan("train", "--data", str(frame_dataset), "--out", str(run), *sets)
    assert r.returncode == 0, r.stderr[-2000:]
    ckpt = run / "model.safetensors"
    assert r.stdout.strip().endswith(str(ckpt))
    out = tmp_path / "eval"
    r = ocrgan("eval", "--checkpoint", str(ckpt), "--data", str(frame_dataset), "--out", str(out), "--workers", "0")
    assert r.returncode == 0, r.stderr[-2000:]
    m = json.loads((out / "metrics.json").read_text())
    assert m["frames"] == 96 and m["clips"] == 2 and m["anomalous_frames"] == 48
    for protocol in ("online", "offline"):
        assert m[protocol]["micro_auc"] > 0.8, m[protocol]
        assert 0 <= m[protocol]["macro_auc"] <= 1
    assert set(m["baselines"]) >= {"flow_speed", "flow_speed_steady", "frame_difference", "mean_frame"}
    assert "first_frames" in m["protocol"]
    assert (out / "roc.png").stat().st_size > 1000 and len(list((out / "timelines").glob("*.png"))) == 2


def test_sigkill_then_resume(frame_dataset, tmp_path):
    run = tmp_path / "run"
    sets = [x for s in [*TINY, "epochs=30", "checkpoint_every=2"] for x in ("--set", s)]
    cmd = [sys.executable, "-m", "ocrgan_cli", "train", "--data", str(frame_dataset), "--out", str(run), *sets]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    state = run / "last.state"
    deadline = time.time() + 120
    while time.time() < deadline and not (state.exists() and load_state(state)["progress"]["step"] >= 6):
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    killed_at = load_state(state)["progress"]["step"]  # the file is whole: never half-written
    assert killed_at >= 6
    r = subprocess.run([*cmd, "--resume", "--set", "epochs=3"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "resumed at epoch" in r.stderr
    assert load_state(state)["progress"]["step"] >= killed_at
    assert (run / "model.safetensors").exists()


def test_bad_data_gives_a_clear_error(tmp_path):
    r = ocrgan("train", "--data", str(tmp_path / "nope"), "--out", str(tmp_path / "run"))
    assert r.returncode == 2 and "no such file or folder" in r.stderr
    r = ocrgan("eval", "--checkpoint", str(tmp_path / "x.safetensors"), "--data", str(tmp_path), "--out",
               str(tmp_path / "e"))
    assert r.returncode == 2 and "checkpoint not found" in r.stderr


def test_two_process_distributed_training(frame_dataset, tmp_path):
    run = tmp_path / "run"
    sets = [x for s in [*TINY, "epochs=2"] for x in ("--set", s)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                        "-m", "ocrgan_cli", "train", "--data", str(frame_dataset), "--out", str(run), *sets],
                       capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    from model import load_checkpoint

    _, info = load_checkpoint(run / "model.safetensors")
    assert info.training["world_size"] == 2
    state = load_state(run / "last.state")
    one_rank_batches = state["progress"]["step"]
    assert one_rank_batches == 2 * 5  # 36 windows / (4 per batch * 2 ranks) -> 5 steps per epoch
