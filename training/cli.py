"""`ocrgan train`, `ocrgan eval`, `ocrgan calibrate` (argument parsing only; work is imported lazily)."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path


def _logging(run_dir: Path | None = None) -> None:
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if run_dir is not None:
        run_dir.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(run_dir / "train.log"))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        handlers=handlers, force=True)


def _train(args: argparse.Namespace) -> int:
    from training.config import load_config
    from training.sequences import DataError
    from training.trainer import Trainer, TrainingDiverged

    _logging(Path(args.out))
    try:
        cfg = load_config(args.config, args.set)
        out = Trainer(cfg, args.data, args.out, resume=args.resume).run()
    except (DataError, TrainingDiverged, ValueError) as e:
        logging.getLogger("ocrgan").error("%s", e)
        return 2
    if out is not None:
        print(out)
    return 0


def _eval(args: argparse.Namespace) -> int:
    from model import CheckpointError
    from training.evaluate import evaluate
    from training.sequences import DataError

    _logging()
    try:
        m = evaluate(args.checkpoint, args.data, args.out, device=args.device, stride=args.stride,
                     sigma=args.sigma, workers=args.workers, pixel=not args.no_pixel)
    except (CheckpointError, DataError) as e:
        logging.getLogger("ocrgan").error("%s", e)
        return 2
    summary = {k: {m_: m[k][m_] for m_ in ("micro_auc", "macro_auc")} for k in ("online", "offline")}
    summary["baselines"] = {k: {p: v[p]["micro_auc"] for p in ("online", "offline")} for k, v in m["baselines"].items()}
    print(json.dumps(summary, indent=2))
    return 0


def _calibrate(args: argparse.Namespace) -> int:
    from model import CheckpointError, load_checkpoint, save_checkpoint
    from training.calibrate import calibrate, fit_memory
    from training.discover import find_sequences
    from training.frame_store import FrameStore
    from training.sequences import DataError

    _logging()
    try:
        model, info = load_checkpoint(args.checkpoint, args.device)
        store = FrameStore(find_sequences(args.data, "train"), info.config, args.workers, desc="decoding")
        if store.flow is not None:  # which way things move where on this scene
            model.set_direction_prior(store.flow)
        fit_memory(model, (store.sequence(i) for i in range(len(store.sequences))))  # its normal patterns
        stats = calibrate(model, (store.sequence(i) for i in range(len(store.sequences))), args.quantile)
    except (CheckpointError, DataError, ValueError) as e:
        logging.getLogger("ocrgan").error("%s", e)
        return 2
    training = {**info.training, "recalibration": {"data": str(args.data), **stats}}
    out = args.out or args.checkpoint
    save_checkpoint(model, out, training=training, half=info.half)
    print(json.dumps({"checkpoint": str(out), **stats}, indent=2))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    t = sub.add_parser("train", help="train on normal footage")
    t.add_argument("--data", required=True, help="dataset root (frame folders, UCSD layout, or video files)")
    t.add_argument("--out", required=True, help="run directory")
    t.add_argument("--config", help="YAML or TOML training config")
    t.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. --set model.ngf=16 --set epochs=5")
    t.add_argument("--resume", action="store_true", help="continue from RUN_DIR/last.state")
    t.set_defaults(func=_train)

    e = sub.add_parser("eval", help="frame-level AUC (online and offline) with baselines and plots")
    e.add_argument("--checkpoint", required=True)
    e.add_argument("--data", required=True, help="dataset root with a test split and labels")
    e.add_argument("--out", required=True, help="output folder for metrics.json and pictures")
    e.add_argument("--device", default="cpu")
    e.add_argument("--stride", type=int, help="override the checkpoint's scoring stride")
    e.add_argument("--sigma", type=float, default=3.0, help="Gaussian sigma of the offline_gaussian protocol")
    e.add_argument("--workers", type=int, default=2)
    e.add_argument("--no-pixel", action="store_true", help="skip pixel-level AUC")
    e.set_defaults(func=_eval)

    c = sub.add_parser("calibrate", help="adapt a checkpoint to a scene from its normal footage: which way things move "
                       "where, its memory of normal patches, the units of the cues, score statistics and threshold")
    c.add_argument("--checkpoint", required=True)
    c.add_argument("--data", required=True, help="normal footage: frame folders or video files")
    c.add_argument("--out", help="write here instead of overwriting the checkpoint")
    c.add_argument("--quantile", type=float, default=0.995)
    c.add_argument("--device", default="cpu")
    c.add_argument("--workers", type=int, default=2)
    c.set_defaults(func=_calibrate)
