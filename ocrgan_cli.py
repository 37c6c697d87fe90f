"""`ocrgan`: one command, subcommands from the training and service packages (imported lazily, so
an image without the training extras still serves), and what every subcommand shares: help that shows each
option's default, and a user's mistake answered in one line before anything heavy loads."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from pathlib import Path

# subcommand -> module providing register(subparsers); each module adds its own subcommands
PROVIDERS = ("training.cli", "service.cli", "service.demo")


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Each option's help ends with its default, or says it is required; help that names its default keeps it."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if not action.option_strings or action.default is argparse.SUPPRESS or "(default" in text:
            return text
        return f"{text} (required)" if action.required else f"{text} (default: %(default)s)"


def refuse(command: str, message: str) -> int:
    """Answer a user's mistake in one line on stderr; 2 is argparse's exit status for a usage error."""
    print(f"ocrgan {command}: {message}", file=sys.stderr)
    return 2


def file_problem(path: str | Path, what: str) -> str | None:
    """Why `path` cannot be read as the `what` a command was given, or None."""
    p = Path(path)
    if not p.exists():
        return f"{what} not found: {p}"
    if p.is_dir():
        return f"{what} {p} is a folder, not a file"
    if not os.access(p, os.R_OK):
        return f"{what} {p} is not readable (permission denied)"
    return None


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
    about = "build the default model and score a synthetic clip"
    smoke = sub.add_parser("smoke", help=about, description=about)
    smoke.add_argument("--frames", type=int, default=48, help="frames of the synthetic clip")
    smoke.set_defaults(func=_smoke)
    for name in PROVIDERS:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as e:  # a slim install without that part's extras
            if e.name and e.name.split(".")[0] in ("training", "service"):
                continue
            raise
        module.register(sub)
    for command in sub.choices.values():
        command.formatter_class = HelpFormatter
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
