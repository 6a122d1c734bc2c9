"""The iteration-based training loop, readable top to bottom.

config -> environment -> model -> optimizer -> resume -> data -> loop (step, log, validate, save).
AMP, EMA, clipping and the progressive schedule are switches the loop calls, not branches in it.
"""
import datetime
import os
import sys
import time

import numpy as np
import paddle
import paddle.distributed as dist

from ppir.config import dump_config
from ppir.data import build_train_loader
from ppir.data.sampler import derive_seed
from ppir.engine.amp import build_amp
from ppir.engine.checkpoint import CheckpointManager, load_checkpoint, load_weights
from ppir.engine.ema import ModelEMA
from ppir.engine.evaluator import Evaluator, format_scores
from ppir.engine.lr_scheduler import build_lr_scheduler, build_optimizer
from ppir.errors import CheckpointError, PpirError
from ppir.models import build_model
from ppir.models.restoration_model import all_finite
from ppir.utils.faults import fault_point
from ppir.utils.logger import get_logger


class TrainingStopped(PpirError):
    """Training cannot go on (e.g. too many consecutive non-finite steps)."""


def setup_device(device):
    if device == "auto":
        device = "gpu" if paddle.is_compiled_with_cuda() and paddle.device.cuda.device_count() > 0 else "cpu"
    paddle.set_device(device)
    return device


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


def _format_eta(seconds):
    return str(datetime.timedelta(seconds=int(seconds)))


def params_digest(net):
    """Two float64 numbers per parameter: enough to tell whether two ranks hold the same weights."""
    values = []
    for p in net.parameters():
        a = p.numpy().astype(np.float64)
        values += [a.sum(), (a * a).sum()]
    return np.array(values)


def check_ranks_agree(net, world_size, logger):
    digest = paddle.to_tensor(params_digest(net))
    gathered = []
    dist.all_gather(gathered, digest)
    same = all(np.array_equal(g.numpy(), gathered[0].numpy()) for g in gathered)
    logger.info(f"weights identical on all {world_size} ranks: {same}")
    if not same:
        raise TrainingStopped("the ranks' weights diverged; data-parallel gradient sync is broken")


class Trainer:
    def __init__(self, cfg, resume=None, auto_resume=False, argv=None):
        self.cfg = cfg
        g = cfg["Global"]
        self.device = setup_device(g["device"])
        self.rank, self.world_size = setup_distributed()
        self.output_dir = g["output_dir"]
        os.makedirs(self.output_dir, exist_ok=True)
        self.logger = get_logger(os.path.join(self.output_dir, "train.log"), self.rank)
        if self.rank == 0:
            dump_config(cfg, os.path.join(self.output_dir, "config.yml"))
            with open(os.path.join(self.output_dir, "cmd.txt"), "a") as f:
                f.write(" ".join(argv or sys.argv) + "\n")

        seed_everything(g["seed"])
        self.model = build_model(cfg)
        self.lr = build_lr_scheduler(cfg["LRScheduler"])
        self.optimizer = build_optimizer(cfg["Optimizer"], self.model.net.parameters(), self.lr)
        self.amp = build_amp(cfg, self.model.net, self.optimizer)
        self.ema = ModelEMA(self.model.net, cfg["EMA"]["decay"]) if cfg["EMA"]["enable"] else None
        self.ckpt = CheckpointManager(self.output_dir, g["keep_checkpoint_max"])
        self.start_iter, self.best = 0, {"metric": None, "iter": None}
        if g["pretrained_model"]:
            load_weights(self.model.net, g["pretrained_model"])
            self.logger.info(f"loaded pretrained weights from {g['pretrained_model']}")
        resume = resume or (self.ckpt.latest() if auto_resume else None)
        if resume:
            self._resume(resume)
        elif auto_resume:
            self.logger.info("auto_resume: no complete checkpoint yet, starting from iteration 0")
        self.net = paddle.DataParallel(self.model.net) if self.world_size > 1 else self.model.net
        self.evaluator = Evaluator(cfg, self.model) if (g["eval_interval"] and self.rank == 0) else None
        self.vdl = VisualDLWriter(os.path.join(self.output_dir, "vdl")
                                  if g["use_visualdl"] and self.rank == 0 else None)

    def _resume(self, path):
        ckpt = load_checkpoint(path)
        load_weights(self.model.net, path)
        if ckpt["optimizer"] is None:
            raise CheckpointError(f"{path} has no optimizer state; use Global.pretrained_model to fine-tune from it")
        self.optimizer.set_state_dict(ckpt["optimizer"])
        state = ckpt["state"]
        self.amp.set_state_dict(state.get("amp"))
        if self.ema is not None and ckpt["ema"] is not None:
            self.ema.set_state_dict(ckpt["ema"])
        self.start_iter = int(state["iter"])
        self.best = state.get("best", self.best)
        self.logger.info(f"resumed from {os.path.realpath(path)} at iteration {self.start_iter}, "
                         f"lr {self.optimizer.get_lr():.4e}")

    def save(self, iteration, best=False):
        if self.rank != 0:
            return
        if not all_finite(list(self.model.net.parameters())):
            raise TrainingStopped(f"weights are not finite at iteration {iteration}; not saving. "
                                  f"Last good checkpoint: {self.ckpt.latest()}")
        state = {"best": self.best, "amp": self.amp.state_dict(), "world_size": self.world_size}
        path = self.ckpt.save(iteration, self.model.net.state_dict(), self.optimizer.state_dict(),
                              state, self.ema.state_dict() if self.ema else None)
        if best:
            self.ckpt.mark_best(iteration)
        self.logger.info(f"saved checkpoint {path}" + (" (best_model)" if best else ""))

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
        improved = self.best["metric"] is None or sign * (value - self.best["metric"]) > 0
        if improved:
            self.best = {"metric": value, "iter": iteration, "name": key}
        self.logger.info(f"[eval] iter {iteration}: {format_scores(scores)} "
                         f"(inputs: {format_scores(self.evaluator.input_scores())}), "
                         f"{runtime:.3f} s/image, best {key} {self.best['metric']:.4f} "
                         f"@ iter {self.best['iter']}")
        self.vdl.scalars(scores, iteration, "eval")
        return improved

    def train(self):
        g = self.cfg["Global"]
        total = g["iters"]
        loader = build_train_loader(self.cfg, self.start_iter, self.rank, self.world_size)
        self.logger.info(f"training {type(self.model.net).__name__} for iterations "
                         f"{self.start_iter + 1}..{total} on {self.device} x{self.world_size}, "
                         f"output in {self.output_dir}")
        self.model.net.train()
        nonfinite, iteration = 0, self.start_iter
        reader_cost = batch_cost = 0.0
        samples = window = 0
        started = tic = time.perf_counter()
        for iteration, batch in enumerate(loader, start=self.start_iter + 1):
            reader_cost += time.perf_counter() - tic
            fault_point(f"step:{iteration}:rank{self.rank}")
            # Dropout and any other layer randomness: a pure function of (seed, iteration, rank).
            paddle.seed(derive_seed(g["seed"], iteration, self.rank, 3) % (1 << 31))
            logged = self.model.train_step(batch, self.optimizer, self.amp, self.net)
            if logged is None:
                nonfinite += 1
                self.logger.warning(f"iteration {iteration}: non-finite loss or gradient, step skipped "
                                    f"({nonfinite} in a row, limit {g['max_nonfinite_steps']})")
                if nonfinite >= g["max_nonfinite_steps"]:
                    raise TrainingStopped(f"{nonfinite} consecutive non-finite steps at iteration "
                                          f"{iteration}; last good checkpoint: {self.ckpt.latest()}")
            else:
                nonfinite = 0
                if self.ema is not None:
                    self.ema.update(self.model.net)
            lr_now = self.optimizer.get_lr()
            if isinstance(self.lr, paddle.optimizer.lr.LRScheduler):
                self.lr.step()
            batch_cost += time.perf_counter() - tic
            samples += batch["input"].shape[0]
            window += 1
            if logged is not None and (iteration % g["log_interval"] == 0 or iteration == total):
                self._log(iteration, total, lr_now, logged, reader_cost / window, batch_cost / window,
                          samples / batch_cost, started)
                reader_cost = batch_cost = 0.0
                samples = window = 0
            best = bool(self.evaluator and (iteration % g["eval_interval"] == 0 or iteration == total)
                        and self.validate(iteration))
            if best or iteration % g["save_interval"] == 0 or iteration == total:
                self.save(iteration, best)
            tic = time.perf_counter()
        if self.world_size > 1:
            check_ranks_agree(self.model.net, self.world_size, self.logger)
        self.vdl.close()
        self.logger.info(f"done: iteration {iteration}, best {self.best.get('name', 'metric')} "
                         f"{self.best['metric']} @ iter {self.best['iter']}")
        return self.best

    def _log(self, iteration, total, lr, logged, reader_cost, batch_cost, ips, started):
        done = iteration - self.start_iter
        eta = (time.perf_counter() - started) / max(done, 1) * (total - iteration)
        losses = "  ".join(f"{k} {v:.5f}" for k, v in logged.items())
        self.logger.info(f"[train] iter {iteration}/{total}  lr {lr:.4e}  {losses}  "
                         f"reader_cost {reader_cost:.4f} s  batch_cost {batch_cost:.4f} s  "
                         f"ips: {ips:.2f} images/s  eta {_format_eta(eta)}")
        self.vdl.scalars(dict(logged, lr=lr), iteration, "train")
