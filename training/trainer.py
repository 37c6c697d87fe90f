"""`ocrgan train`: adversarial training on normal clips, validation-based selection, calibration."""

from __future__ import annotations

import copy
import csv
import json
import logging
import math
import platform
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel as DDP
from torch.utils.data import DataLoader
from tqdm import tqdm

from model import OCRGANConfig, OCRGANVideo, save_checkpoint
from model import losses as L
from training import distributed
from training.calibrate import calibrate_scene, fit_memory, fit_units, fold_banks, fold_pieces
from training.config import TrainConfig, dump_config
from training.discover import find_sequences
from training.frame_store import FrameStore, middle_share, within_budget
from training.selection import chosen_figures, select_weights, write_table
from training.sequences import DataError, Sequence
from training.state import load_state, rng_state, save_state, set_rng_state
from training.validation import (
    VALIDATION_VERSION,
    ValidationSet,
    build_validation_set,
    motion_prior,
    pseudo_anomaly_auc,
    validation_loss,
)
from training.window_dataset import WindowDataset, training_windows

log = logging.getLogger(__name__)


class TrainingDiverged(RuntimeError):
    """A loss became NaN or infinite."""


WHOLE_SEQUENCES_FROM = 8  # with fewer training sequences, validation is the end of each instead of whole ones
FEW_VALIDATION_FRAMES = 300  # fewer validation frames than this make selection and the threshold unreliable
SELECTION_MEMORY_FRAMES = 4000  # each validation during training fills the memory from at most this many training
# frames (an even share of every sequence); the last one, which writes the checkpoint, from all of them


def _tail(s: Sequence, n_val: int) -> tuple[Sequence, Sequence]:
    """A sequence's first length - n_val frames, and its last n_val as a validation sequence."""
    cut = s.length - n_val
    return s.part(0, cut), s.part(cut, n_val, f"{s.name}[val]")


def fit_scorer(model: OCRGANVideo, train_store: FrameStore, val_store: FrameStore,
               max_frames: int | None = None) -> list[torch.Tensor]:
    """Score `model` as it will be published: its memory filled from the training footage, and each cue's unit
    from the validation clips and the training clips scored out of memory (fold_banks). Selection during
    training scores this way too, so that the epoch chosen is the one whose published scores separate the
    synthetic anomalies best (an empty memory would put the norm of each patch's features in the memory cue's
    place). `max_frames`: the memory and the units from an even share of every training sequence, at most that
    many frames in all. Returns the validation sequences."""
    val_seqs = val_store.all_sequences()
    train = train_store.all_sequences()
    total = sum(len(s) for s in train)
    train = [s.narrow(0, *middle_share(len(s), total, max_frames, model.cfg.num_frames)) for s in train]
    train = fold_pieces(model, train)
    fit_units(model, val_seqs, train, banks=fold_banks(model, train, fit_memory(model, train)))
    return val_seqs


def foreign_validation(model: OCRGANVideo, train_store: FrameStore,
                       val_store: FrameStore) -> tuple[OCRGANVideo, ValidationSet]:
    """A copy of `model` (fitted by fit_scorer) as a camera of another scene has it: the footage seen as that camera
    might show it (FrameStore.foreign), each cue's unit read there, the memory and the direction prior left as
    they are (a camera's calibration sets only the units and the statistics: service/inference/calibration.py);
    with validation forgeries made from that view of the validation footage. Of long training footage, the units
    are read on an even share of every sequence, at most SELECTION_MEMORY_FRAMES frames."""
    log.info("the footage as a camera of another scene might show it: inverting and mirroring %d frames%s",
             min(len(train_store), SELECTION_MEMORY_FRAMES) + len(val_store),
             " and estimating their flow" if model.cfg.motion else "")
    train_view, val_view = train_store.foreign(SELECTION_MEMORY_FRAMES), val_store.foreign()
    camera = copy.deepcopy(model)
    fit_units(camera, val_view.all_sequences(), train_view.all_sequences())
    return camera, build_validation_set(val_view, model.cfg.num_frames, model.cfg.stride, motion_prior(train_view),
                                        progress=True)


def choose_weights(model: OCRGANVideo, train_store: FrameStore, val_store: FrameStore, val_set: ValidationSet,
                   foreign_view: bool = True, without: tuple[str, ...] = ()) -> tuple[dict[str, float], list[dict]]:
    """The score's weights for `model` (fitted by fit_scorer) chosen on `val_set` (made from `val_store`) and, with
    `foreign_view`, on the view of the footage a camera of another scene might give (select_weights); `without`:
    cues kept out. Returns the weights and the table of every weighting tried."""
    foreign = foreign_validation(model, train_store, val_store) if foreign_view else None
    return select_weights(model, val_set, model.scales(), foreign, without)


def split_validation(seqs: list[Sequence], fraction: float, seed: int,
                     min_frames: int = 2) -> tuple[list[Sequence], list[Sequence]]:
    """Validation carved from the normal training sequences: with WHOLE_SEQUENCES_FROM or more, whole
    sequences (`fraction` of them, at least one); with fewer, the last `fraction` of every sequence, so
    training sees every scene and hour and validation does too. A sequence too short to give up at least
    `min_frames` frames while keeping as many is left whole in training."""
    if len(seqs) < WHOLE_SEQUENCES_FROM:
        train, val = [], []
        for s in seqs:
            n_val = max(min_frames, round(s.length * fraction))
            if s.length - n_val < min_frames:
                train.append(s)
                continue
            head, tail = _tail(s, n_val)
            train.append(head)
            val.append(tail)
        if not val:
            raise DataError(f"{len(seqs)} sequence(s) of at most {max(s.length for s in seqs)} frames are too few "
                            "to hold out validation frames")
        return train, val
    g = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(seqs), generator=g).tolist()
    n_val = max(1, round(len(seqs) * fraction))
    val_idx = set(order[:n_val])
    return [s for i, s in enumerate(seqs) if i not in val_idx], [s for i, s in enumerate(seqs) if i in val_idx]


def reset_parameters(module: nn.Module) -> None:
    for m in module.modules():
        if m is not module and hasattr(m, "reset_parameters"):
            m.reset_parameters()


@dataclass
class Progress:
    epoch: int = 0
    step: int = 0  # optimiser steps done
    step_in_epoch: int = 0
    best: float = -math.inf  # selection score (higher is better)
    best_epoch: float = -1  # in epochs (fractional when a time budget ended one early)
    elapsed_s: float = 0.0
    d_low_steps: int = 0
    d_reinits: int = 0
    skipped_steps: int = 0
    consecutive_skips: int = 0
    validation_version: int = VALIDATION_VERSION
    history: list[dict] = field(default_factory=list)


class Trainer:
    def __init__(self, cfg: TrainConfig, data: str | Path, run_dir: str | Path, resume: bool = False) -> None:
        self.cfg = cfg
        self.mcfg: OCRGANConfig = cfg.model_cfg()
        self.run_dir = Path(run_dir)
        self.data = str(data)
        want_cuda = cfg.device == "cuda" or (cfg.device == "auto" and torch.cuda.is_available())
        if cfg.device == "cuda" and not torch.cuda.is_available():
            raise RuntimeError("device=cuda was asked for, but CUDA is not available")
        self.dist = distributed.init("cuda" if want_cuda else "cpu")
        self.device = torch.device(f"cuda:{self.dist.local_rank}" if want_cuda else "cpu")
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        self.amp = cfg.amp and self.device.type == "cuda"
        torch.manual_seed(cfg.seed)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        state_path = self.run_dir / "last.state"
        state = load_state(state_path) if resume and state_path.exists() else None
        if resume and state is None:
            log.warning("--resume: no %s yet, starting from scratch", state_path)

        seqs = within_budget(find_sequences(data, "train"), self.mcfg, cfg.max_frames)
        train_seqs, val_seqs = split_validation(seqs, cfg.val_fraction, cfg.seed, self.mcfg.num_frames)
        log.info("training on %d sequences, validating on %d (%s)", len(train_seqs), len(val_seqs),
                 ", ".join(s.name for s in val_seqs))
        self.train_store = FrameStore(train_seqs, self.mcfg, cfg.workers, cfg.skip_bad_sequences, "decoding train")
        self.val_store = FrameStore(val_seqs, self.mcfg, cfg.workers, cfg.skip_bad_sequences, "decoding val")
        if len(self.val_store) < FEW_VALIDATION_FRAMES:
            log.warning("validation holds only %d frames (fewer than %d): model selection and the threshold rest on "
                        "little data; give more normal footage, or raise val_fraction", len(self.val_store),
                        FEW_VALIDATION_FRAMES)
        ends = training_windows(self.train_store, cfg.train_stride)
        if not ends:
            raise DataError(f"{data}: no training windows (sequences too short)")
        self.dataset = WindowDataset(self.train_store, ends, self.mcfg.num_frames, cfg.seed)
        self.prior = motion_prior(self.train_store)
        log.info("normal motion in the training footage: median speed %.3g pixels/frame (moving above %.3g)",
                 self.prior.speed, self.prior.threshold)
        self.val_set = build_validation_set(self.val_store, self.mcfg.num_frames, self.mcfg.stride, self.prior,
                                            progress=True)

        self.model = OCRGANVideo(self.mcfg)
        self.model.generator.flow_bound.fill_(self.prior.speed)  # normal speed: what a prediction may explain
        if self.mcfg.motion:  # which way things move where: the direction cue's prior
            self.model.set_direction_prior(self.train_store.flow)
        self.model.to(self.device)
        if self.device.type == "cpu":
            self.model.to(memory_format=torch.channels_last)  # ~1.7x faster convolutions with oneDNN
        g, d = self.model.generator, self.model.discriminator
        self.g_train: nn.Module = g
        self.d_train: nn.Module = d
        if self.dist.enabled:
            ids = [self.device.index] if self.device.type == "cuda" else None
            # with skip_cut the decoder reads no skips of the finest levels, so parameters only they feed get no
            # gradient (an idle level's temporal module does not run; the memory's gets only the attention
            # regulariser's); DDP must be told
            self.g_train = DDP(g, device_ids=ids, static_graph=self.mcfg.skip_cut > 0)
            self.d_train = DDP(d, device_ids=ids)
        self.opt_g = torch.optim.Adam(g.parameters(), lr=cfg.lr_g, betas=cfg.betas)
        self.opt_d = torch.optim.Adam(d.parameters(), lr=cfg.lr_d, betas=cfg.betas)
        self.batches_per_epoch = math.ceil(len(self.dataset) / (cfg.batch_size * self.dist.world))
        total = cfg.epochs * self.batches_per_epoch
        self.sched_g = self._scheduler(self.opt_g, total)
        self.sched_d = self._scheduler(self.opt_d, total)
        self.scaler_g = torch.amp.GradScaler(self.device.type, enabled=self.amp)
        self.scaler_d = torch.amp.GradScaler(self.device.type, enabled=self.amp)
        self.progress = Progress()
        self._t0 = time.time()
        if state is not None:
            self._restore(state)
            log.info("resumed at epoch %d, step %d", self.progress.epoch, self.progress.step)
        if self.dist.main:
            dump_config(cfg, self.run_dir / "config.yaml")
        self.writer = None
        if cfg.tensorboard and self.dist.main:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(self.run_dir / "tensorboard"))

    def _scheduler(self, opt: torch.optim.Optimizer, total: int) -> torch.optim.lr_scheduler.LRScheduler:
        if self.cfg.lr_schedule == "cosine":
            floor = 0.05 * opt.defaults["lr"]
            return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(total, 1), eta_min=floor)
        return torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0)

    # --- state ---------------------------------------------------------------------------------
    def _state(self) -> dict:
        p = self.progress
        return {
            "model": self.model.state_dict(),
            "opt_g": self.opt_g.state_dict(), "opt_d": self.opt_d.state_dict(),
            "sched_g": self.sched_g.state_dict(), "sched_d": self.sched_d.state_dict(),
            "scaler_g": self.scaler_g.state_dict(), "scaler_d": self.scaler_d.state_dict(),
            "progress": {**{k: v for k, v in vars(p).items() if k != "history"}, "elapsed_s": self.elapsed()},
            "history": json.dumps(p.history),
            "rng": rng_state(),
            "config": json.dumps(self.cfg.model_dump(mode="json")),
        }

    def _restore(self, state: dict) -> None:
        saved_cfg = json.loads(state["config"])
        if saved_cfg != self.cfg.model_dump(mode="json"):
            log.warning("the configuration differs from the one the run started with; continuing with the new one")
        self.model.load_state_dict(state["model"])
        self.opt_g.load_state_dict(state["opt_g"])
        self.opt_d.load_state_dict(state["opt_d"])
        self.sched_g.load_state_dict(state["sched_g"])
        self.sched_d.load_state_dict(state["sched_d"])
        self.scaler_g.load_state_dict(state["scaler_g"])
        self.scaler_d.load_state_dict(state["scaler_d"])
        saved = {"validation_version": 1, **state["progress"]}
        self.progress = Progress(**saved, history=json.loads(state["history"]))
        if self.progress.validation_version != VALIDATION_VERSION:
            log.warning("validation changed since the last checkpoint (version %d -> %d): model selection restarts",
                        self.progress.validation_version, VALIDATION_VERSION)
            self.progress.best, self.progress.best_epoch = -math.inf, -1
            self.progress.validation_version = VALIDATION_VERSION
        set_rng_state(state["rng"])

    def elapsed(self) -> float:
        """Seconds of training so far, across resumed runs."""
        return self.progress.elapsed_s + time.time() - self._t0

    def save(self) -> None:
        if self.dist.main:
            save_state(self._state(), self.run_dir / "last.state")

    # --- one step ------------------------------------------------------------------------------
    def _autocast(self):
        return torch.autocast(self.device.type, dtype=torch.float16) if self.amp else nullcontext()

    def _finite(self, name: str, loss: torch.Tensor) -> bool:
        ok = distributed.all_true(bool(torch.isfinite(loss).item()), self.dist)
        if ok:
            return True
        p = self.progress
        if self.cfg.nan_policy == "stop":
            raise TrainingDiverged(
                f"step {p.step}: the {name} loss became {loss.item()}; the last good state is "
                f"{self.run_dir / 'last.state'} (lower the learning rate, or set nan_policy=skip)"
            )
        p.skipped_steps += 1
        p.consecutive_skips += 1
        log.warning("step %d: non-finite %s loss, step skipped (%d in a row)", p.step, name, p.consecutive_skips)
        if p.consecutive_skips > self.cfg.max_skipped_steps:
            raise TrainingDiverged(f"{p.consecutive_skips} consecutive non-finite steps; stopping")
        return False

    def train_step(self, clip: torch.Tensor, forged: torch.Tensor, mask: torch.Tensor) -> dict[str, float]:
        cfg, m, mc = self.cfg, self.model, self.mcfg
        m.train()
        clip, forged, mask = (x.to(self.device, non_blocking=True) for x in (clip, forged, mask))
        b, t = clip.shape[:2]
        # the published positions, or all (but frame 0 when causal: predicting it from itself teaches nothing)
        pos = slice(t - mc.stride, t) if cfg.train_positions == "published" else slice(1 if mc.causal else 0, t)
        with self._autocast():
            gen = m(clip, positions=pos, generator=self.g_train)
        nc = mc.nc  # the discriminator judges appearance; the flow is scored by its prediction error
        clip, forged, mask = clip[:, pos, :nc], forged[:, pos, :nc], mask[:, pos]
        out: dict[str, float] = {}
        if cfg.adversarial:
            with self._autocast():
                logits, _, _ = self.d_train(torch.cat([clip, gen.fake.detach(), forged]))
                real, fake, aug = logits.float().split(b)
                loss_d = L.adversarial_d(real, fake, aug, mask)
            if self._finite("discriminator", loss_d):
                self.opt_d.zero_grad(set_to_none=True)
                self.scaler_d.scale(loss_d).backward()
                self.scaler_d.step(self.opt_d)
                self.scaler_d.update()
                out["loss_d"] = loss_d.item()
                self._watch_discriminator(loss_d.item())
            else:
                self.opt_d.zero_grad(set_to_none=True)
        d = m.discriminator
        d.requires_grad_(False)
        try:
            with self._autocast():
                logits, _, att = d(torch.cat([gen.fake, clip]))
                fake_logits, _ = logits.float().split(b)
                att_fake, att_real = att.float().split(b)
                fake, real = gen.fake.float(), clip.float()
                terms = {
                    "rec": L.reconstruction(fake, real),
                    "tc": L.temporal_consistency(real, fake, att_real.detach(), att_fake),
                    "tm": L.temporal_motion(real, fake),
                    "reg": L.attention_regularisation(m.attention_maps()).to(self.device),
                }
                loss_g = (mc.w_con * terms["rec"] + mc.w_temporal_consistency * terms["tc"]
                          + mc.w_temporal_motion * terms["tm"] + mc.w_temporal_reg * terms["reg"])
                if gen.fake_flow is not None:
                    terms["flow"] = L.reconstruction(gen.fake_flow.float(), gen.target_flow.float())
                    loss_g = loss_g + mc.w_flow * terms["flow"]
                if cfg.adversarial:
                    terms["adv"] = L.adversarial_g(fake_logits)
                    terms["lat"] = L.feature_matching(att_real.detach(), att_fake)
                    loss_g = loss_g + mc.w_adv * terms["adv"] + mc.w_lat * terms["lat"]
        finally:
            d.requires_grad_(True)
        if self._finite("generator", loss_g):
            self.opt_g.zero_grad(set_to_none=True)
            self.scaler_g.scale(loss_g).backward()
            self.scaler_g.step(self.opt_g)
            self.scaler_g.update()
            self.progress.consecutive_skips = 0
            out["loss_g"] = loss_g.item()
            out.update({k: v.item() for k, v in terms.items()})
        else:
            self.opt_g.zero_grad(set_to_none=True)
        self.sched_g.step()
        self.sched_d.step()
        return out

    def _watch_discriminator(self, loss_d: float) -> None:
        """Re-initialise a discriminator that has won outright (its loss ~0 gives the generator nothing)."""
        p = self.progress
        p.d_low_steps = p.d_low_steps + 1 if loss_d < self.cfg.d_collapse_loss else 0
        if p.d_low_steps >= self.cfg.d_collapse_steps:
            log.warning("step %d: discriminator loss below %g for %d steps; re-initialising it",
                        p.step, self.cfg.d_collapse_loss, p.d_low_steps)
            reset_parameters(self.model.discriminator)
            self.opt_d.state.clear()
            p.d_low_steps = 0
            p.d_reinits += 1

    # --- loop ----------------------------------------------------------------------------------
    def _epoch_batches(self, epoch: int) -> list[list[int]]:
        g = torch.Generator().manual_seed(self.cfg.seed * 7919 + epoch)
        perm = torch.randperm(len(self.dataset), generator=g).tolist()
        mine = perm[self.dist.rank:: self.dist.world]
        bs = self.cfg.batch_size
        return [mine[a:a + bs] for a in range(0, len(mine), bs)][: self.batches_per_epoch]

    def _out_of_time(self) -> bool:
        if self.cfg.max_minutes is None:
            return False
        return not distributed.all_true(self.elapsed() < self.cfg.max_minutes * 60, self.dist)

    def _projected_steps(self, full: int, done_now: int) -> int:
        """Steps the run will have made when the time budget runs out, at this session's pace (at most `full`)."""
        spent = time.time() - self._t0
        if done_now < 1 or spent <= 0:
            return full
        left = self.cfg.max_minutes * 60 - self.elapsed()
        return int(min(full, max(self.progress.step + 1, self.progress.step + left * done_now / spent)))

    def run(self) -> Path | None:
        cfg, p = self.cfg, self.progress
        self._t0 = time.time()
        stop = False
        full = cfg.epochs * self.batches_per_epoch
        bar = tqdm(total=full, initial=p.step, unit="step", disable=not self.dist.main, dynamic_ncols=True,
                   desc="training")
        first_step = p.step
        while p.epoch < cfg.epochs and not stop:
            self.dataset.epoch = p.epoch
            batches = self._epoch_batches(p.epoch)[p.step_in_epoch:]
            loader = DataLoader(self.dataset, batch_sampler=batches, num_workers=cfg.workers,
                                pin_memory=self.device.type == "cuda")
            sums: dict[str, float] = {}
            count = 0
            for clip, forged, mask in loader:
                out = self.train_step(clip, forged, mask)
                for k, v in out.items():
                    sums[k] = sums.get(k, 0.0) + v
                count += 1
                p.step += 1
                p.step_in_epoch += 1
                if cfg.max_minutes is not None:  # the bar's total and ETA follow the time budget
                    bar.total = self._projected_steps(full, p.step - first_step)
                bar.update(1)
                bar.set_postfix({k: f"{v:.3g}" for k, v in out.items() if k in ("loss_g", "loss_d", "rec", "flow")},
                                epoch=p.epoch)
                if p.step % cfg.checkpoint_every == 0:
                    self.save()
                if self._out_of_time():
                    bar.total = p.step
                    bar.refresh()
                    log.info("time budget of %.1f minutes reached at step %d; validating and calibrating",
                             cfg.max_minutes, p.step)
                    stop = True
                    break
            means = {k: v / max(count, 1) for k, v in sums.items()}
            if not stop:
                p.epoch += 1
                p.step_in_epoch = 0
            if stop or p.epoch % cfg.val_every == 0 or p.epoch == cfg.epochs:
                self._validate(means)
            self.save()
        bar.close()
        p.elapsed_s = self.elapsed()
        result = self._finish() if self.dist.main else None
        distributed.barrier(self.dist)
        distributed.shutdown(self.dist)
        return result

    def _validate(self, means: dict[str, float]) -> None:
        p = self.progress
        epoch = p.epoch + round(p.step_in_epoch / self.batches_per_epoch, 3)  # a time budget can end mid-epoch
        row = {"epoch": epoch, "step": p.step, **{k: round(v, 6) for k, v in means.items()},
               "lr_g": self.sched_g.get_last_lr()[0], "seconds": round(self.elapsed(), 1)}
        if self.dist.main:
            row["val_loss"] = validation_loss(self.model, self.val_set)
            row.update(self._pseudo_aucs())
            score = row["pseudo_auc"] if self.cfg.select_by == "pseudo_auc" else -row["val_loss"]
            if score > p.best or p.best_epoch < 0:
                p.best, p.best_epoch = score, epoch
                save_checkpoint(self.model, self.run_dir / "best.safetensors",
                                training={"epoch": epoch, "step": p.step, "selection": self.cfg.select_by,
                                          "selection_score": score})
            row["best_epoch"] = p.best_epoch
            log.info("epoch %s: %s", epoch, {k: v for k, v in row.items() if k != "epoch"})
            self._log_row(row)
        distributed.barrier(self.dist)
        p.history = [r for r in p.history if r["step"] != p.step] + [row]

    def _pseudo_aucs(self) -> dict[str, float]:
        """How well the model, scoring as it will be published (_fit_scorer) with its best weighting of the
        score's parts, separates the normal validation frames from each kind of synthetic anomaly; pseudo_auc is
        the mean over kinds."""
        self._fit_scorer(self.model, SELECTION_MEMORY_FRAMES)
        if self.cfg.select_score_weights:
            weights, table = select_weights(self.model, self.val_set, self.model.scales())
            aucs = chosen_figures(table)
            extra = dict(weights)
        else:
            aucs, extra = pseudo_anomaly_auc(self.model, self.val_set, progress=True), {}
        return {"pseudo_auc": aucs.pop("mean"), **{f"pseudo_auc_{k}": round(v, 4) for k, v in aucs.items()}, **extra}

    def _fit_scorer(self, model: OCRGANVideo, max_frames: int | None = None) -> list[torch.Tensor]:
        return fit_scorer(model, self.train_store, self.val_store, max_frames)

    def _log_row(self, row: dict) -> None:
        """One row per validation, keyed by step: a validation repeated after a resume replaces its row."""
        path = self.run_dir / "log.csv"
        rows = []
        if path.exists():
            with path.open() as f:
                rows = [r for r in csv.DictReader(f) if r.get("step") != str(row["step"])]
        rows.append({k: str(v) for k, v in row.items()})
        keys = list(dict.fromkeys(k for r in rows for k in r))
        with path.open("w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=keys)
            w.writeheader()
            w.writerows(rows)
        if self.writer is not None:
            for k, v in row.items():
                if isinstance(v, int | float) and k not in ("epoch", "step"):
                    self.writer.add_scalar(k, v, row["step"])

    def _finish(self) -> Path:
        """Best weights with the score weights chosen on validation, then calibrated on all the normal footage
        (training and validation clips: calibrate_scene), written with their provenance."""
        best = self.run_dir / "best.safetensors"
        from model import load_checkpoint

        model, info = load_checkpoint(best, self.device)
        weights: dict[str, float] = {}
        val_seqs = self._fit_scorer(model)
        validation = pseudo_anomaly_auc(model, self.val_set)
        if self.cfg.select_score_weights:
            weights, table = choose_weights(model, self.train_store, self.val_store, self.val_set,
                                            self.cfg.foreign_view)
            model.cfg = model.cfg.replace(**weights)
            validation = chosen_figures(table)
            write_table(table, self.run_dir / "score_weights.csv")
        flow = torch.cat([self.train_store.flow, self.val_store.flow]) if self.mcfg.motion else None
        stats = calibrate_scene(model, self.train_store.all_sequences() + val_seqs, self.cfg.threshold_quantile, flow)
        p = self.progress
        training = {
            "data": self.data,
            "train_sequences": [s.name for s in self.train_store.sequences],
            "val_sequences": [s.name for s in self.val_store.sequences],
            "epochs": p.epoch, "steps": p.step, "wall_seconds": round(p.elapsed_s, 1),
            "best_epoch": info.training.get("epoch"), "selection": self.cfg.select_by,
            "selection_score": info.training.get("selection_score"), "score_weights": weights,
            "validation": validation,
            "flow_bound": float(model.generator.flow_bound), "calibration": stats,
            "device": str(self.device), "world_size": self.dist.world,
            "torch": torch.__version__, "python": platform.python_version(),
            "train_config": self.cfg.model_dump(mode="json"),
        }
        out = self.run_dir / "model.safetensors"
        save_checkpoint(model, out, training=training, half=self.cfg.half_checkpoint)
        log.info("wrote %s (best epoch %s, threshold %.3g)", out, info.training.get("epoch"), stats["threshold"])
        return out
