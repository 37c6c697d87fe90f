"""`ocrgan`: one command, subcommands from the training and service packages (imported lazily, so
an image without the training extras still serves)."""

from __future__ import annotations

import argparse
import importlib
import sys

# subcommand -> module providing register(subparsers); each module adds its own subcommands
PROVIDERS = ("training.cli", "service.cli")


def _smoke(args: argparse.Namespace) -> int:
    """Build the default model, score a synthetic clip, print what came out."""
    import time

    import torch

    from model import OCRGANConfig, OCRGANVideo, preprocess, score_clip

    torch.manual_seed(0)
    cfg = OCRGANConfig()
    model = OCRGANVideo(cfg).eval()
    frames = (torch.rand(args.frames, 120, 160, 3) * 255).to(torch.uint8)
    t0 = time.perf_counter()
    scores = score_clip(model, preprocess(frames, cfg))
    dt = time.perf_counter() - t0
    print(f"model: temporal={cfg.temporal} objective={cfg.objective} size={cfg.hw} "
          f"params={sum(p.numel() for p in model.parameters()):,}")
    print(f"scored {len(scores.raw)} frames in {dt:.2f}s ({len(scores.raw) / dt:.1f} frames/s)")
    print("first scores:", [round(float(s), 5) for s in scores.raw[:5]])
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ocrgan", description="Video anomaly detection with a temporal OCR-GAN.")
    sub = parser.add_subparsers(dest="command", required=True)
    smoke = sub.add_parser("smoke", help="build the default model and score a synthetic clip")
    smoke.add_argument("--frames", type=int, default=48)
    smoke.set_defaults(func=_smoke)
    for name in PROVIDERS:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as e:  # a slim install without that part's extras
            if e.name and e.name.split(".")[0] in ("training", "service"):
                continue
            raise
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
