"""`ocrgan train`, `ocrgan eval`, `ocrgan calibrate`: argument parsing and the checks that answer a user's
mistake at once (files, data layout) before torch loads; the work is imported lazily."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from ocrgan_cli import file_problem, refuse


def _logging(run_dir: Path | None = None) -> None:
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if run_dir is not None:
        run_dir.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(run_dir / "train.log"))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        handlers=handlers, force=True)


def data_problem(data: str, split: str) -> str | None:
    """Why `data` holds no usable `split` sequences (missing, an unknown layout, no clips, no labels), or None."""
    from training.discover import find_sequences
    from training.sequences import DataError

    try:
        find_sequences(data, split)
    except DataError as e:
        return str(e)
    return None


def out_problem(out: str | None, want_folder: bool) -> str | None:
    """Why `--out` cannot be written as a folder (or as a file), or None; nothing is created here."""
    if out is None or not Path(out).exists() or Path(out).is_dir() == want_folder:
        return None
    return f"--out {out} is {'a file, not a folder' if want_folder else 'a folder, not a file'}"


def _train(args: argparse.Namespace) -> int:
    problem = ((args.config and file_problem(args.config, "config")) or data_problem(args.data, "train")
               or out_problem(args.out, want_folder=True))
    if problem:
        return refuse("train", problem)
    from pydantic import ValidationError

    from training.config import load_config

    try:
        cfg = load_config(args.config, args.set)
    except ValidationError as e:
        return refuse("train", "invalid config: " + "; ".join(
            f"{'.'.join(map(str, err['loc']))}: {err['msg']}" for err in e.errors()))
    except ValueError as e:
        return refuse("train", str(e))
    from training.sequences import DataError
    from training.trainer import Trainer, TrainingDiverged

    _logging(Path(args.out))
    try:
        out = Trainer(cfg, args.data, args.out, resume=args.resume).run()
    except (DataError, TrainingDiverged, ValueError) as e:
        logging.getLogger("ocrgan").error("%s", e)
        return 2
    if out is not None:
        print(out)
    return 0


def _eval(args: argparse.Namespace) -> int:
    problem = (file_problem(args.checkpoint, "checkpoint") or data_problem(args.data, "test")
               or out_problem(args.out, want_folder=True))
    if problem:
        return refuse("eval", problem)
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
    lone = args.without and not args.select_weights
    problem = (file_problem(args.checkpoint, "checkpoint") or data_problem(args.data, "train")
               or out_problem(args.out, want_folder=False)
               or ("--without chooses the cues --select-weights leaves out; add --select-weights" if lone else None))
    if problem:
        return refuse("calibrate", problem)
    import torch

    from model import CheckpointError, load_checkpoint, save_checkpoint
    from model.scoring import CUES
    from training.calibrate import calibrate_scene
    from training.discover import find_sequences
    from training.frame_store import FrameStore, within_budget
    from training.sequences import DataError

    unknown = sorted(set(args.without) - set(CUES))
    if unknown:
        return refuse("calibrate", f"--without {', '.join(unknown)}: the cues are {', '.join(CUES)}")
    _logging()
    try:
        model, info = load_checkpoint(args.checkpoint, args.device)
        seqs = within_budget(find_sequences(args.data, "train"), info.config)
        recalibration: dict = {"data": str(args.data)}
        if args.select_weights:
            stores, weights, validation = _select_weights(model, seqs, args)
            recalibration.update(score_weights=weights, validation=validation)
            sequences = stores[0].all_sequences() + stores[1].all_sequences()
            flow = torch.cat([s.flow for s in stores]) if info.config.motion else None
        else:
            store = FrameStore(seqs, info.config, args.workers, desc="decoding")
            sequences, flow = store.all_sequences(), store.flow
        stats = calibrate_scene(model, sequences, args.quantile, flow)
    except (CheckpointError, DataError, ValueError) as e:
        logging.getLogger("ocrgan").error("%s", e)
        return 2
    training = {**info.training, "recalibration": {**recalibration, **stats}}
    out = args.out or args.checkpoint
    save_checkpoint(model, out, training=training, half=info.half)
    print(json.dumps({"checkpoint": str(out), **recalibration, **stats}, indent=2))
    return 0


def score_weights_path(checkpoint: Path) -> Path:
    """Where `ocrgan calibrate --select-weights` writes the table of every weighting tried: beside the checkpoint."""
    return checkpoint.with_name(f"{checkpoint.stem}.score_weights.csv")


def _select_weights(model, seqs: list, args: argparse.Namespace) -> tuple[tuple, dict[str, float], dict[str, float]]:
    """`ocrgan calibrate --select-weights`: the score's weights chosen as `ocrgan train` chooses them at its end, on
    the footage split as training splits it (TrainConfig's val_fraction and seed); the table of every weighting
    tried is written beside the checkpoint (score_weights_path). Returns the (training, validation) stores, the
    weights and the chosen row's validation figures."""
    from training.config import TrainConfig
    from training.frame_store import FrameStore
    from training.selection import chosen_figures, write_table
    from training.trainer import choose_weights, fit_scorer, split_validation
    from training.validation import build_validation_set, motion_prior

    cfg, defaults = model.cfg, TrainConfig()
    train_seqs, val_seqs = split_validation(seqs, defaults.val_fraction, defaults.seed, cfg.num_frames)
    train = FrameStore(train_seqs, cfg, args.workers, desc="decoding training footage")
    val = FrameStore(val_seqs, cfg, args.workers, desc="decoding validation footage")
    if cfg.motion:
        model.set_direction_prior(train.flow)
    fit_scorer(model, train, val)
    val_set = build_validation_set(val, cfg.num_frames, cfg.stride, motion_prior(train), progress=True)
    weights, table = choose_weights(model, train, val, val_set, defaults.foreign_view, tuple(args.without))
    model.cfg = cfg.replace(**weights)
    write_table(table, score_weights_path(Path(args.out or args.checkpoint)))
    return (train, val), weights, chosen_figures(table)


def register(sub: argparse._SubParsersAction) -> None:
    about = "train on normal footage"
    t = sub.add_parser("train", help=about, description=about)
    t.add_argument("--data", required=True, help="dataset root (frame folders, UCSD layout, or video files)")
    t.add_argument("--out", required=True, help="run directory, created once the checks pass")
    t.add_argument("--config", help="YAML or TOML training config (default: none, the built-in values)")
    t.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. --set model.ngf=16 --set epochs=5; repeatable (default: none)")
    t.add_argument("--resume", action="store_true", help="continue from the run directory's last.state")
    t.set_defaults(func=_train)

    about = "frame-level AUC (online and offline) with baselines and plots"
    e = sub.add_parser("eval", help=about, description=about)
    e.add_argument("--checkpoint", required=True, help="the safetensors checkpoint to evaluate")
    e.add_argument("--data", required=True, help="dataset root with a test split and labels")
    e.add_argument("--out", required=True, help="output folder for metrics.json and pictures, created once the "
                   "checks pass")
    e.add_argument("--device", default="cpu", help="torch device to score on, e.g. cpu, cuda, cuda:1")
    e.add_argument("--stride", type=int, help="frames between scored windows (default: the checkpoint's)")
    e.add_argument("--sigma", type=float, default=3.0, help="Gaussian sigma of the offline_gaussian protocol")
    e.add_argument("--workers", type=int, default=2, help="processes decoding the test clips")
    e.add_argument("--no-pixel", action="store_true", help="skip pixel-level AUC")
    e.set_defaults(func=_eval)

    about = "adapt a checkpoint to a scene from its normal footage"
    c = sub.add_parser("calibrate", help=about, description=f"{about}: which way things move where, its memory of "
                       "normal patches, the units of the cues, score statistics and threshold")
    c.add_argument("--checkpoint", required=True, help="the safetensors checkpoint to adapt")
    c.add_argument("--data", required=True, help="normal footage: frame folders or video files")
    c.add_argument("--out", help="write the adapted checkpoint here (default: overwrite --checkpoint)")
    c.add_argument("--quantile", type=float, default=0.995,
                   help="quantile of the normal frames' normalised scores that sets the threshold")
    c.add_argument("--device", default="cpu", help="torch device to run on, e.g. cpu, cuda, cuda:1")
    c.add_argument("--workers", type=int, default=2, help="processes decoding the footage")
    c.add_argument("--select-weights", action="store_true",
                   help="also choose how the score weighs its cues, as `ocrgan train` does at its end: on synthetic "
                        "anomalies in held-out footage, of the scene and of a view of it as a camera of another scene "
                        "might show it")
    c.add_argument("--without", action="append", default=[], metavar="CUE",
                   help="with --select-weights, keep this cue out of the score (e.g. dir for a checkpoint meant "
                        "for other cameras: its direction prior is this scene's, and cameras do not relearn it); "
                        "repeatable")
    c.set_defaults(func=_calibrate)
