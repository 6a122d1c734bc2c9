"""The iteration-based training loop, readable top to bottom.

config -> environment -> model -> optimizer -> resume -> data -> loop (step, log, validate, save).
AMP, EMA, clipping and the progressive schedule are switches the loop calls, not branches in it.
"""
import datetime
import math
import os
import signal
import sys
import time

import numpy as np
import paddle
import paddle.distributed as dist

from ppir.config import dump_config
from ppir.data import build_train_loader
from ppir.data.sampler import derive_seed
from ppir.engine.amp import all_finite, build_amp
from ppir.engine.checkpoint import (EMA, CheckpointManager, check_state_dict, load_checkpoint,
                                    load_pretrained, optimizer_file, portable_optimizer_state,
                                    restore_optimizer_state, weights_file)
from ppir.engine.distributed import average_logs, broadcast_buffers_, broadcast_states_, ranks_agree
from ppir.engine.ema import ModelEMA
from ppir.engine.evaluator import Evaluator, format_scores
from ppir.engine.lr_scheduler import build_optimizers
from ppir.engine.run_dir import claim_output_dir
from ppir.engine.step import TrainStep
from ppir.errors import CheckpointError, ConfigError, Interrupted, PpirError
from ppir.models import build_model
from ppir.utils.device import setup_device
from ppir.utils.faults import fault_point
from ppir.utils.paths import is_inside
from ppir.utils.logger import get_logger


class TrainingStopped(PpirError):
    """Training cannot go on (e.g. too many consecutive non-finite steps)."""


def setup_distributed():
    """(rank, world_size); initialises the process group when launched with several processes."""
    world_size = dist.get_world_size()
    if world_size > 1:
        dist.init_parallel_env()
    return dist.get_rank(), world_size


def seed_everything(seed):
    paddle.seed(seed)
    np.random.seed(seed % (1 << 32))


class VisualDLWriter:
    """Scalars to VisualDL when enabled; a do-nothing object otherwise."""

    def __init__(self, logdir=None):
        self.writer = None
        if logdir:
            from visualdl import LogWriter
            self.writer = LogWriter(logdir=logdir)

    def scalars(self, values, step, prefix):
        if self.writer:
            for k, v in values.items():
                self.writer.add_scalar(f"{prefix}/{k}", step=step, value=v)

    def close(self):
        if self.writer:
            self.writer.close()


def _format_lrs(lrs):
    return "  ".join(f"{k} {v:.4e}" for k, v in lrs.items())


def _format_best(value):
    return "none yet" if value is None else f"{value:.4f}"


def _format_eta(seconds):
    return str(datetime.timedelta(seconds=int(seconds)))


def check_ranks_agree(networks, world_size, logger):
    same = ranks_agree(networks, world_size)
    logger.info(f"weights identical on all {world_size} ranks: {same}")
    if not same:
        raise TrainingStopped("the ranks' weights diverged; data-parallel gradient sync is broken")


# Config keys that may change between a run and its resume without breaking exact resume: how
# long to train, how often to log/save/validate, where and on what device, and evaluation.
RESUME_FREE_KEYS = {
    "Global": {"iters", "log_interval", "eval_interval", "save_interval", "keep_checkpoint_max",
               "use_visualdl", "save_val_images", "output_dir", "pretrained_model", "device",
               "max_nonfinite_steps"},
    "Train": {"num_workers"},
}
RESUME_FREE_SECTIONS = {"Eval", "Export"}


def config_changes(saved, current):
    """`section.key: old -> new` for every difference that would break an exact resume."""
    changes = []
    for section in sorted(set(saved) | set(current)):
        if section.startswith("_") or section in RESUME_FREE_SECTIONS:
            continue
        old, new = saved.get(section), current.get(section)
        if isinstance(old, dict) and isinstance(new, dict):
            free = RESUME_FREE_KEYS.get(section, set())
            for key in sorted(set(old) | set(new)):
                if key not in free and old.get(key) != new.get(key):
                    changes.append(f"{section}.{key}: {old.get(key)!r} -> {new.get(key)!r}")
        elif old != new:
            changes.append(f"{section}: {old!r} -> {new!r}")
    return changes


# What a run writes inside Global.output_dir besides its checkpoints (guarded by run_dir).
RUN_FILES = ("train.log", "config.yml", "cmd.txt", "vdl", "val_images", ".lock")


def check_output_dir(cfg, config_file=None, archive_existing=False):
    """Refuse an output directory whose files would land on or inside anything the config reads
    (every dataset path of Train and Eval, palettes, the weights, the config file), or whose
    validation images would land in a dataset that lies inside it."""
    from ppir.data.reads import config_reads
    from ppir.utils.paths import refuse_overlap

    out = cfg["Global"]["output_dir"]
    reads = config_reads(cfg, config_file)
    refuse_overlap([(out, "Global.output_dir")] + [(os.path.join(out, n), "Global.output_dir") for n in RUN_FILES],
                   reads, [(out, "--archive_existing")] if archive_existing else ())
    for path, key in reads:
        for sub in ("val_images", "vdl"):
            if path and is_inside(path, os.path.join(out, sub)):
                raise ConfigError(f"{key} {path} lies inside {os.path.join(out, sub)}, where this run writes; "
                                  f"move the data or set another Global.output_dir")


def check_training_config(cfg):
    for section in ("Optimizer", "LRScheduler"):
        if cfg.get(section) is None:
            raise ConfigError(f"{cfg.get('_config_path', 'config')}: no {section} section; training needs one")
    if not cfg["Train"].get("dataset"):
        raise ConfigError(f"{cfg.get('_config_path', 'config')}: Train.dataset is not set")


class StopRequest:
    """SIGINT/SIGTERM handling for the loop: the first signal asks the run to stop after the
    current iteration (which is then saved); a second one stops at once."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self):
        self.signum = None
        self._previous = {}

    def __enter__(self):
        for signum in self.SIGNALS:
            self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc):
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)

    def _handle(self, signum, frame):
        if self.signum is not None:
            raise KeyboardInterrupt
        self.signum = signum

    def agreed(self, world_size):
        """Whether to stop now; under distributed training every rank stops at the same iteration
        (a rank that stopped alone would leave the others waiting in the gradient all-reduce)."""
        wanted = self.signum is not None
        if world_size > 1:
            flag = paddle.to_tensor([1 if wanted else 0], dtype="int64")
            dist.all_reduce(flag, op=dist.ReduceOp.MAX)
            wanted = bool(flag.item())
            if wanted and self.signum is None:
                self.signum = signal.SIGTERM
        return wanted


class Trainer:
    def __init__(self, cfg, resume=None, auto_resume=False, argv=None, archive_existing=False,
                 allow_config_change=False):
        self.cfg = cfg
        g = cfg["Global"]
        check_training_config(cfg)
        check_output_dir(cfg, cfg.get("_config_path"), archive_existing)
        self.device = setup_device(g["device"])
        self.rank, self.world_size = setup_distributed()
        # Model and optimizers first: a typo in their config is reported before the output dir,
        # its lock and its log exist.
        seed_everything(g["seed"])
        self.model = build_model(cfg)
        self.optimizers, self.schedulers = build_optimizers(cfg, self.model)
        self.output_dir = g["output_dir"]
        self.ckpt = CheckpointManager(self.output_dir, g["keep_checkpoint_max"])
        # Continuing the run that lives in output_dir (not merely starting from a checkpoint elsewhere).
        resuming = auto_resume or bool(resume and os.path.realpath(os.path.dirname(os.path.normpath(resume)))
                                       == os.path.realpath(self.output_dir))
        self.lock, archived = (claim_output_dir(self.output_dir, resuming, archive_existing)
                               if self.rank == 0 else (None, None))
        self.logger = get_logger(os.path.join(self.output_dir, "train.log"), self.rank)
        if archived:
            self.logger.info(f"moved the earlier run in {self.output_dir} to {archived}")

        trained = self.model.trainable()
        self.amp = build_amp(cfg, [self.model.networks[n] for n in trained],
                             [self.optimizers[n] for n in trained])
        self.ema = ModelEMA(self.model.net, cfg["EMA"]["decay"]) if cfg["EMA"]["enable"] else None
        self.start_iter, self.best = 0, {"metric": None, "iter": None}
        if g["pretrained_model"]:
            loaded = load_pretrained(self.model, g["pretrained_model"])
            self.logger.info(f"loaded pretrained weights of {', '.join(loaded)} from {g['pretrained_model']}")
        if auto_resume and not resume:
            resume = self.ckpt.latest()
            if self.ckpt.fallback_note:
                self.logger.warning(self.ckpt.fallback_note)
        if resume:
            self._resume(resume, allow_config_change)
        elif auto_resume:
            self.logger.info("auto_resume: no complete checkpoint yet, starting from iteration 0")
        if self.rank == 0:
            dump_config(cfg, os.path.join(self.output_dir, "config.yml"))
            with open(os.path.join(self.output_dir, "cmd.txt"), "a") as f:
                f.write(" ".join(argv or sys.argv) + "\n")
        if self.world_size > 1:
            broadcast_states_(self.model.networks.values())
        self.evaluator = Evaluator(cfg, self.model) if (g["eval_interval"] and self.rank == 0) else None
        self.vdl = VisualDLWriter(os.path.join(self.output_dir, "vdl")
                                  if g["use_visualdl"] and self.rank == 0 else None)

    def _resume(self, path, allow_config_change=False):
        ckpt = load_checkpoint(path, list(self.model.networks), self.model.primary)
        state = ckpt["state"]
        start = int(state["iter"])
        if start > self.cfg["Global"]["iters"]:
            raise ConfigError(f"Global.iters={self.cfg['Global']['iters']} is below the iteration of the "
                              f"checkpoint to resume, {start} ({path})")
        changes = []
        if "config" in state:
            changes = config_changes(state["config"], {k: v for k, v in self.cfg.items() if not k.startswith("_")})
        saved_world = state.get("world_size")
        if saved_world is not None and int(saved_world) != self.world_size:
            changes.append(f"world size (processes): {saved_world} -> {self.world_size}")
        if changes and not allow_config_change:
            raise ConfigError(f"the config differs from the one {path} was trained with, so the resume would "
                              f"not be exact: {'; '.join(changes)}. Pass --allow_config_change to resume "
                              f"anyway, or train into another Global.output_dir")
        for change in changes:
            self.logger.warning(f"resuming with a changed config: {change}")
        for name, net in self.model.networks.items():
            check_state_dict(net, ckpt["weights"][name], os.path.join(path, weights_file(name, self.model.primary)))
            net.set_state_dict(ckpt["weights"][name])
        for name, optimizer in self.optimizers.items():
            if ckpt["optimizers"][name] is None:
                raise CheckpointError(f"{path} has no {optimizer_file(name, self.model.primary)}; "
                                      f"use Global.pretrained_model to fine-tune from it")
            optimizer.set_state_dict(restore_optimizer_state(ckpt["optimizers"][name], self.model.networks[name]))
        self.amp.set_state_dict(state.get("amp"))
        if self.ema is not None and ckpt["ema"] is not None:
            self.ema.set_state_dict(ckpt["ema"])
        self.start_iter = start
        self.best = state.get("best", self.best)
        self.logger.info(f"resumed from {os.path.realpath(path)} at iteration {self.start_iter}, "
                         f"{_format_lrs(self._lrs())}")

    def _lrs(self):
        """The current learning rate(s): `lr` for one trained network, `lr_<name>` for several."""
        if len(self.optimizers) == 1:
            return {"lr": next(iter(self.optimizers.values())).get_lr()}
        return {f"lr_{name}": opt.get_lr() for name, opt in self.optimizers.items()}

    def save(self, iteration):
        if self.rank != 0:
            return
        params = [p for net in self.model.networks.values() for p in net.parameters()]
        if not all_finite(params):
            raise TrainingStopped(f"weights are not finite at iteration {iteration}; not saving. "
                                  f"{self._last_good_note()}")
        primary = self.model.primary
        files = {}
        for name, net in self.model.networks.items():
            files[weights_file(name, primary)] = net.state_dict()
            if name in self.optimizers:
                files[optimizer_file(name, primary)] = portable_optimizer_state(
                    self.optimizers[name].state_dict(), net)
        if self.ema is not None:
            files[EMA] = self.ema.state_dict()
        state = {"best": self.best, "amp": self.amp.state_dict(), "world_size": self.world_size,
                 "config": {k: v for k, v in self.cfg.items() if not k.startswith("_")}}
        path = self.ckpt.save(iteration, files, state)
        self.logger.info(f"saved checkpoint {path}")

    def _last_good_note(self):
        good = self.ckpt.last_good()
        if good is None:
            return "no checkpoint with finite weights and scores yet"
        return f"last checkpoint with finite weights and scores: {good}"

    def validate(self, iteration):
        """Evaluate; returns True when the first metric improved (that checkpoint becomes best_model)."""
        save_dir = (os.path.join(self.output_dir, "val_images", f"iter_{iteration}")
                    if self.cfg["Global"]["save_val_images"] else None)
        if self.ema is not None:
            with self.ema.applied(self.model.net):
                scores = self.evaluator.run(save_dir)
        else:
            scores = self.evaluator.run(save_dir)
        runtime = scores.pop("runtime")
        key, value = next(iter(scores.items()))
        sign = 1.0 if getattr(self.evaluator.metrics[0], "higher_is_better", True) else -1.0
        # NaN compares false with everything: as best it could never be replaced. (+inf is a
        # real score: a PSNR of identical images.)
        nan = [k for k, v in scores.items() if isinstance(v, float) and math.isnan(v)]
        improved = not math.isnan(value) and (self.best["metric"] is None
                                              or sign * (value - self.best["metric"]) > 0)
        if improved:
            self.best = {"metric": value, "iter": iteration, "name": key}
        if nan:
            self.ckpt.update_state(iteration, scores_finite=False)
            self.logger.warning(f"[eval] iter {iteration}: {', '.join(nan)} is NaN; iter_{iteration} "
                                f"cannot become best_model (last checkpoint with finite weights and "
                                f"scores: {self.ckpt.last_good()})")
        self.logger.info(f"[eval] iter {iteration}: {format_scores(scores)} "
                         f"(inputs: {format_scores(self.evaluator.input_scores())}), "
                         f"{runtime:.3f} s/image, best {key} {_format_best(self.best['metric'])} "
                         f"@ iter {self.best['iter']}")
        self.vdl.scalars(scores, iteration, "eval")
        return improved

    def train(self):
        try:
            return self._train()
        finally:
            if self.lock is not None:  # the run is over: the output dir is free again
                self.lock.release()

    def _train(self):
        g = self.cfg["Global"]
        total = g["iters"]
        loader = build_train_loader(self.cfg, self.start_iter, self.rank, self.world_size)
        self.logger.info(f"training {type(self.model.net).__name__} for iterations "
                         f"{self.start_iter + 1}..{total} on {self.device} x{self.world_size}, "
                         f"output in {self.output_dir}")
        self.model.set_train(True)
        nonfinite, iteration = 0, self.start_iter
        reader_cost = batch_cost = 0.0
        samples = window = 0
        started = tic = time.perf_counter()
        step = TrainStep(self.model.networks, self.optimizers, self.amp, self.world_size,
                        schedulers=self.schedulers)
        with StopRequest() as stop:
            for iteration, batch in enumerate(loader, start=self.start_iter + 1):
                batch = {k: paddle.to_tensor(v) for k, v in batch.items()}
                reader_cost += time.perf_counter() - tic
                fault_point(f"step:{iteration}:rank{self.rank}")
                # Dropout and any other layer randomness: a pure function of (seed, iteration, rank).
                paddle.seed(derive_seed(g["seed"], iteration, self.rank, 3) % (1 << 31))
                step.iteration = iteration
                logged = self.model.train_step(batch, step)
                if self.world_size > 1:
                    broadcast_buffers_(self.model.networks.values())
                self.amp.update()
                if logged is None:
                    nonfinite += 1
                    self.logger.warning(f"iteration {iteration}: non-finite loss or gradient, step skipped "
                                        f"({nonfinite} in a row, limit {g['max_nonfinite_steps']})")
                    if nonfinite >= g["max_nonfinite_steps"]:
                        raise TrainingStopped(f"{nonfinite} consecutive non-finite steps at iteration "
                                              f"{iteration}; {self._last_good_note()}")
                else:
                    nonfinite = 0
                    if self.ema is not None:
                        self.ema.update(self.model.net)
                lrs = self._lrs()
                for scheduler in self.schedulers.values():
                    if isinstance(scheduler, paddle.optimizer.lr.LRScheduler):
                        scheduler.step()
                batch_cost += time.perf_counter() - tic
                samples += int(batch["index"].shape[0])
                window += 1
                if logged is not None and (iteration % g["log_interval"] == 0 or iteration == total):
                    self._log(iteration, total, lrs, average_logs(logged, self.world_size),
                              reader_cost / window, batch_cost / window, samples / batch_cost, started)
                    reader_cost = batch_cost = 0.0
                    samples = window = 0
                validate = bool(self.evaluator and (iteration % g["eval_interval"] == 0 or iteration == total))
                stopping = stop.agreed(self.world_size)
                # Save before validating: a validation that fails must not cost the iteration's checkpoint.
                if validate or stopping or iteration % g["save_interval"] == 0 or iteration == total:
                    self.save(iteration)
                if validate:
                    self._validate_or_stop(iteration)
                if stopping:
                    name = signal.Signals(stop.signum).name
                    raise Interrupted(f"{name} received: saved iteration {iteration} as {self.ckpt.latest()}; "
                                      f"continue with --auto_resume", stop.signum)
                tic = time.perf_counter()
        if self.world_size > 1:
            check_ranks_agree(self.model.networks.values(), self.world_size, self.logger)
        self.vdl.close()
        self.logger.info(f"done: iteration {iteration}, best {self.best.get('name', 'metric')} "
                         f"{self.best['metric']} @ iter {self.best['iter']}")
        return self.best

    def _validate_or_stop(self, iteration):
        """Validate the saved iteration; it becomes best_model when the first metric improved. A
        validation that cannot run (e.g. an unreadable validation image) stops the run, naming the
        checkpoint that was just saved."""
        try:
            improved = self.validate(iteration)
        except PpirError as exc:
            raise TrainingStopped(f"validation at iteration {iteration} failed: {exc}. The checkpoint of "
                                  f"iteration {iteration} is saved ({self.ckpt.latest()}); fix the data and "
                                  f"continue with --auto_resume") from None
        if self.rank == 0:
            self.ckpt.update_state(iteration, best=self.best)
        if improved:
            self.ckpt.mark_best(iteration)
            self.logger.info(f"best_model -> iter_{iteration}")

    def _log(self, iteration, total, lrs, logged, reader_cost, batch_cost, ips, started):
        done = iteration - self.start_iter
        eta = (time.perf_counter() - started) / max(done, 1) * (total - iteration)
        losses = "  ".join(f"{k} {v:.5f}" for k, v in logged.items())
        self.logger.info(f"[train] iter {iteration}/{total}  {_format_lrs(lrs)}  {losses}  "
                         f"reader_cost {reader_cost:.4f} s  batch_cost {batch_cost:.4f} s  "
                         f"ips: {ips:.2f} images/s  eta {_format_eta(eta)}")
        self.vdl.scalars(dict(logged, **lrs), iteration, "train")
