"""Model speed on this machine: parameters, GFLOPs per frame, scoring frames/s (batches of 1 and 8
windows), train-step time, and achieved FLOP/s as a fraction of a large matmul measured in the same run; for a
model with the motion band, the cost per frame of preprocessing (resize and DIS optical flow, on a 240x360
frame; `preprocess_still_ms` on a still scene under sensor noise, where a gated model's flow is not computed)
and the whole per-frame cost, preprocessing and model together.

    python benchmarks/model_speed.py [--threads 1 2] [--configs seed,default] [--checkpoint PATH]
    python benchmarks/model_speed.py --device cuda [--amp] --configs "" --checkpoint PATH --no-train

On a GPU (`--device cuda`) the model, its inputs and the matmul (float16 with `--amp`, as the service runs
under autocast) are on the device, every timing waits for the device, and the streaming rows add 16 cameras per
pass; the preprocessing row stays on the CPU, and the training step is left out.

A "published frame" is one frame given its score: a window of T frames publishes `stride` of them. The
streaming rows score each frame on arrival from cached per-frame features (model.streaming), for one camera and
for four cameras batched in one pass; `stream_cost_vs_windows_b1` is its cost per frame over the window path's.
Where onnxruntime is installed (the `onnx` extra), the `onnx_*` columns time the same window at batch 1 exported
to ONNX and run by ONNX Runtime on the CPU, in alternation with eager torch (service/inference/onnx_runtime.py),
and `onnx_stream_*` one camera's frames scored one by one by the exported frame graph against torch's
(`onnx_stream_cost_vs_windows_b1`: its cost per frame over the window graph's, both in this run).
"""

from __future__ import annotations

import argparse
import copy
import json
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from model import OCRGANConfig, OCRGANVideo, SequencePreprocessor, load_checkpoint
from model import losses as L
from model.streaming import FrameStream, score_frames
from service.inference import onnx_runtime

CONFIGS = {
    "seed": dict(),  # the seed document's defaults: 64x64 RGB, ngf=ndf=64, full temporal
    "seed-ngf32": dict(ngf=32, ndf=32),
    "seed-ngf16": dict(ngf=16, ndf=16),
    "seed-none": dict(temporal="none"),
    "ped2-128x192-ngf16": dict(isize=(128, 192), nc=1, ngf=16, ndf=16),
    "ped2-128x192-ngf16-basic": dict(isize=(128, 192), nc=1, ngf=16, ndf=16, temporal="basic"),
    # configs/ped2.yaml: 64x96 luma with the motion band (flow at 128x192), appearance through the bottleneck
    "ped2-motion": dict(isize=(64, 96), nc=1, motion=True, flow_scale=2, ngf=16, ndf=16, objective="mixed",
                        residual=False, skip_cut=1, score_patch=8),
}
CAMERA_FRAME = (240, 360)  # the frame preprocessing is timed on (UCSD Ped2's size)


DEVICE = torch.device("cpu")  # where the model runs (--device)
AMP = False  # float16 autocast on a GPU (--amp)


def sync() -> None:
    """Wait for the device's queued work (a GPU runs asynchronously)."""
    if DEVICE.type == "cuda":
        torch.cuda.synchronize(DEVICE)


def autocast():
    return torch.autocast(DEVICE.type, dtype=torch.float16) if AMP and DEVICE.type == "cuda" else nullcontext()


def timeit(fn, min_time: float = 2.0, min_runs: int = 3) -> float:
    """Median-free simple timer: warm up once, then run until min_time; seconds per call, the device's queued
    work included."""
    fn()
    sync()
    n, t0 = 0, time.perf_counter()
    while n < min_runs or time.perf_counter() - t0 < min_time:
        fn()
        n += 1
    sync()
    return (time.perf_counter() - t0) / n


def matmul_flops(n: int = 2048) -> float:
    dtype = torch.float16 if AMP and DEVICE.type == "cuda" else torch.float32
    a, b = torch.randn(n, n, device=DEVICE, dtype=dtype), torch.randn(n, n, device=DEVICE, dtype=dtype)
    return 2 * n**3 / timeit(lambda: a @ b, 1.0)


def flops_per_window(model: OCRGANVideo, clip: torch.Tensor, positions: slice) -> float:
    with FlopCounterMode(display=False) as fc, torch.inference_mode():
        model.score(clip, positions)
    return fc.get_total_flops()


def train_step_seconds(model: OCRGANVideo, batch: int) -> float:
    cfg = model.cfg
    g_opt = torch.optim.Adam(model.generator.parameters(), 2e-4)
    d_opt = torch.optim.Adam(model.discriminator.parameters(), 2e-4)
    clip = torch.rand(batch, cfg.num_frames, cfg.in_channels, *cfg.hw) * 2 - 1
    real = clip[:, :, :cfg.nc]

    def step():
        model.train()
        gen = model(clip)
        logits, _, _ = model.discriminator(torch.cat([real, gen.fake.detach(), real]))
        r, f, a = logits.split(batch)
        d_opt.zero_grad()
        L.adversarial_d(r, f, a).backward()
        d_opt.step()
        logits, _, att = model.discriminator(torch.cat([gen.fake, real]))
        loss = cfg.w_con * L.reconstruction(gen.fake, real) + L.adversarial_g(logits[:batch])
        if gen.fake_flow is not None:
            loss = loss + cfg.w_flow * L.reconstruction(gen.fake_flow, gen.target_flow)
        loss = loss + L.feature_matching(att[batch:].detach(), att[:batch])
        g_opt.zero_grad()
        loss.backward()
        g_opt.step()

    return timeit(step, 3.0, 2)


def bench(name: str, model: OCRGANVideo, threads: int, train: bool) -> dict:
    torch.set_num_threads(threads)
    cv2.setNumThreads(threads)
    cfg = model.cfg
    model.eval().to(DEVICE)
    t, s = cfg.num_frames, cfg.stride
    pos = slice(t - s, t)
    row = {"config": name, "threads": threads, "size": "x".join(map(str, cfg.hw)), "nc": cfg.nc, "ngf": cfg.ngf,
           "temporal": cfg.temporal, "stride": s,
           "params_M": round(sum(p.numel() for p in model.parameters()) / 1e6, 2)}
    peak = matmul_flops()
    row["matmul_GFLOPs"] = round(peak / 1e9, 1)
    for b in (1, 8):
        clip = torch.rand(b, t, cfg.in_channels, *cfg.hw, device=DEVICE) * 2 - 1
        with torch.inference_mode(), autocast():
            sec = timeit(lambda clip=clip: model.score(clip, pos))
        flops = flops_per_window(model, clip, pos)
        row[f"fps_b{b}"] = round(b * s / sec, 1)  # published frames per second
        row[f"GFLOP_per_frame_b{b}"] = round(flops / (b * s) / 1e9, 3)
        row[f"achieved_vs_matmul_b{b}"] = round(flops / sec / peak, 3)
    if cfg.causal:  # frame by frame from cached per-frame features (model.streaming), against the windows above
        for cams in (1, 4, 16) if DEVICE.type == "cuda" else (1, 4):
            with autocast():
                sec, flops = streaming_seconds(model, cams)
            row[f"stream_fps_{cams}cam"] = round(cams / sec, 1)
            row[f"stream_GFLOP_per_frame_{cams}cam"] = round(flops / cams / 1e9, 3)
            row[f"stream_achieved_vs_matmul_{cams}cam"] = round(flops / sec / peak, 3)
        row["stream_cost_vs_windows_b1"] = round(row["fps_b1"] / row["stream_fps_1cam"], 2)
    cl = copy.deepcopy(model).to(memory_format=torch.channels_last)  # oneDNN's preferred layout on CPUs
    with torch.inference_mode(), autocast():
        sec = timeit(lambda: cl.score(clip, pos))  # the batch of 8
    row["channels_last_speedup_b8"] = round(b * s / sec / row["fps_b8"], 2)
    if DEVICE.type == "cpu" and onnx_runtime.available():
        row.update(onnx_row(model, threads, peak))
    row["preprocess_ms"] = round(1000 * preprocess_seconds(cfg), 2)
    if cfg.motion:
        row["preprocess_still_ms"] = round(1000 * preprocess_seconds(cfg, still=True), 2)
    row["whole_fps_b1"] = round(1 / (1 / row["fps_b1"] + row["preprocess_ms"] / 1000), 1)
    if train and DEVICE.type == "cpu":
        row["train_step_s_b4"] = round(train_step_seconds(OCRGANVideo(cfg), 4), 2)
    return row


def onnx_row(model: OCRGANVideo, threads: int, peak: float, rounds: int = 3) -> dict:
    """The window path at batch 1 in ONNX Runtime (service/inference/onnx_runtime.py) against eager torch on the
    same window, timed in alternation (best of `rounds` each): published frames/s, the ratio, the graph's share of
    the row's matmul FLOP/s `peak` (counted as torch's arithmetic for the window; the graph's dilated attention reads
    every frame's keys) and the largest relative difference of the raw scores. For a causal model the same for the
    frame path: one camera's frames scored one by one with full caches, by the frame graph and by torch's
    score_frames."""
    cfg = model.cfg
    t, s = cfg.num_frames, cfg.stride
    pos = slice(t - s, t)
    clip = torch.rand(1, t, cfg.in_channels, *cfg.hw) * 2 - 1
    with tempfile.TemporaryDirectory() as tmp:
        scorer = onnx_runtime.OnnxWindowScorer(onnx_runtime.export_window_scorer(model, Path(tmp) / "w.onnx"),
                                               threads)
        frames = (onnx_runtime.OnnxFrameScorer(onnx_runtime.export_frame_scorer(model, Path(tmp) / "f.onnx"), model,
                                               threads) if cfg.causal else None)
    eager, graph = [], []
    with torch.inference_mode():
        for _ in range(rounds):
            eager.append(timeit(lambda: model.score(clip, pos), 1.0))
            graph.append(timeit(lambda: scorer.score(clip), 1.0))
        ref = model.score(clip, pos)
    flops = flops_per_window(model, clip, pos)
    raw = scorer.score(clip)["raw"]
    row = {"onnx_fps_b1": round(s / min(graph), 1), "onnx_vs_torch_b1": round(min(eager) / min(graph), 2),
           "onnx_achieved_vs_matmul_b1": round(flops / min(graph) / peak, 3),
           "onnx_max_rel_diff": float(((raw - ref).abs() / ref.abs().clamp_min(1e-6)).max())}
    if frames is not None:
        x = torch.rand(t + 1, cfg.in_channels, *cfg.hw) * 2 - 1
        ours, theirs = FrameStream(model), FrameStream(model)
        with torch.inference_mode():
            for f in x:  # full caches, and the same frames behind both
                score_frames(model, [(ours, f[None])])
                score_frames(model, [(theirs, f[None])])
            eager, graph = [], []
            for _ in range(rounds):
                eager.append(timeit(lambda: score_frames(model, [(theirs, x[:1])]), 1.0))
                graph.append(timeit(lambda: frames.score(ours, x[:1]), 1.0))
        row.update({"onnx_stream_fps_1cam": round(1 / min(graph), 1),
                    "onnx_stream_vs_torch": round(min(eager) / min(graph), 2),
                    "onnx_stream_cost_vs_windows_b1": round(row["onnx_fps_b1"] * min(graph), 2)})
    return row


def streaming_seconds(model: OCRGANVideo, cameras: int) -> tuple[float, float]:
    """Seconds and FLOPs of one pass that scores one new frame of each of `cameras` sequences, once their caches
    are full."""
    cfg = model.cfg
    states = [FrameStream(model) for _ in range(cameras)]
    frames = torch.rand(cfg.num_frames + 1, cameras, cfg.in_channels, *cfg.hw) * 2 - 1
    step = iter(range(10**9))

    def one() -> None:
        f = frames[next(step) % len(frames)]
        score_frames(model, [(s, f[i:i + 1]) for i, s in enumerate(states)])

    for _ in range(cfg.num_frames):
        one()
    with FlopCounterMode(display=False) as fc:
        one()
    return timeit(one), fc.get_total_flops()


def preprocess_seconds(cfg: OCRGANConfig, still: bool = False) -> float:
    """Seconds to turn one grey camera frame into model input: resize and, with the motion band, the flow. Frames
    that change everywhere, or with `still` one scene under 2 grey levels of sensor noise (a camera watching an
    empty scene)."""
    rng = np.random.default_rng(0)
    scene = cv2.GaussianBlur(rng.integers(0, 256, CAMERA_FRAME, dtype=np.uint8), (5, 5), 0)
    frames = ([np.clip(scene + rng.normal(0, 2, CAMERA_FRAME), 0, 255).astype(np.uint8) for _ in range(2)] if still
              else [scene, cv2.GaussianBlur(rng.integers(0, 256, CAMERA_FRAME, dtype=np.uint8), (5, 5), 0)])
    prep = SequencePreprocessor(cfg)
    k = iter(range(10**9))
    return timeit(lambda: prep(frames[next(k) % 2]), 1.0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--configs", default="seed,seed-ngf16,ped2-motion")
    ap.add_argument("--checkpoint", help="also benchmark this checkpoint's config")
    ap.add_argument("--no-train", action="store_true")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default: cpu)")
    ap.add_argument("--amp", action="store_true", help="float16 autocast on a GPU, as the service runs it")
    args = ap.parse_args()
    global DEVICE, AMP
    DEVICE, AMP = torch.device(args.device), args.amp
    if DEVICE.type == "cuda" and not torch.cuda.is_available():
        ap.error("--device cuda: no CUDA device here")
    models = {n: OCRGANVideo(OCRGANConfig(**CONFIGS[n])) for n in args.configs.split(",") if n}
    if args.checkpoint:
        models["checkpoint"] = load_checkpoint(args.checkpoint)[0]
    rows = [bench(n, m, th, not args.no_train and th == max(args.threads)) for n, m in models.items()
            for th in args.threads]
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    cols = ["config", "threads", "size", "ngf", "stride", "params_M", "GFLOP_per_frame_b8", "fps_b1", "fps_b8",
            "achieved_vs_matmul_b8", "channels_last_speedup_b8",
            "onnx_fps_b1", "onnx_vs_torch_b1", "onnx_stream_fps_1cam", "onnx_stream_cost_vs_windows_b1",
            "preprocess_ms", "preprocess_still_ms", "whole_fps_b1", "matmul_GFLOPs",
            "train_step_s_b4"]
    print("| " + " | ".join(cols) + " |")
    print("|" + "---|" * len(cols))
    for r in rows:
        print("| " + " | ".join(str(r.get(c, "")) for c in cols) + " |")


if __name__ == "__main__":
    main()
