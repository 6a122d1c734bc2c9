"""Learning-rate schedules: Paddle's own by name, plus the ones the papers need.

The trainer calls `step()` once after every iteration, so iteration i (1-based) runs with the
value at `last_epoch = i - 1` — the same as BasicSR, which steps from iteration 2 on.
"""
import math

import paddle

from ppir.errors import ConfigError
from ppir.registry import SCHEDULERS, check_kwargs


@SCHEDULERS.register("CosineAnnealingRestartCyclicLR")
class CosineAnnealingRestartCyclicLR(paddle.optimizer.lr.LRScheduler):
    """Cosine cycles of lengths `periods`, cycle k going from learning_rate to eta_mins[k].

    Same formula as BasicSR (Restormer fork) used by MIRNetV2. With learning_rate 2e-4 and
    eta_mins [3e-4, 1e-6] the first cycle *rises* from 2e-4 to 3e-4: that is what the official
    code does, whatever its yml comment says.
    """

    def __init__(self, learning_rate, periods, restart_weights=(1,), eta_mins=(0,),
                 last_epoch=-1, verbose=False):
        if not len(periods) == len(restart_weights) == len(eta_mins):
            raise ConfigError("LRScheduler: periods, restart_weights and eta_mins need the same length")
        self.periods = list(periods)
        self.restart_weights = list(restart_weights)
        self.eta_mins = list(eta_mins)
        self.cumulative = [sum(self.periods[:i + 1]) for i in range(len(self.periods))]
        super().__init__(learning_rate, last_epoch, verbose)

    def get_lr(self):
        # The first cycle whose end is >= the iteration (BasicSR's get_position_from_periods).
        idx = next((i for i, end in enumerate(self.cumulative) if self.last_epoch <= end),
                   len(self.cumulative) - 1)
        start = 0 if idx == 0 else self.cumulative[idx - 1]
        eta_min = self.eta_mins[idx]
        progress = (self.last_epoch - start) / self.periods[idx]
        return eta_min + self.restart_weights[idx] * 0.5 * (self.base_lr - eta_min) * (
            1 + math.cos(math.pi * progress))


@SCHEDULERS.register("TokenWarmupCosineLR")
class TokenWarmupCosineLR(paddle.optimizer.lr.LRScheduler):
    """minGPT's token-driven schedule, as ICT trains its transformer (raywzy/ICT
    `Transformer/DDP_trainer.py`): linear warm-up over `warmup_tokens`, then cosine decay to
    `min_ratio` x learning_rate at `final_tokens`, floored there.

    The clock is a token counter, not the iteration: the task model adds the tokens of every batch
    with `count(n)` (the official `tokens += (x >= 0).sum()`, per process) and the trainer's
    `step()` then sets the rate from the total. As in the official loop, the first iteration runs
    at the full rate (the optimizer is built with it; the schedule only applies after a step). ICT
    sets warmup_tokens to one epoch of tokens and final_tokens to all epochs' (`main.py`: dataset
    images x block_size / world_size, and x train_epoch). The count is saved with the optimizer
    state, so a resume continues exactly.
    """

    def __init__(self, learning_rate, warmup_tokens, final_tokens, min_ratio=0.1, last_epoch=-1,
                 verbose=False):
        if not 0 <= warmup_tokens < final_tokens:
            raise ConfigError(f"LRScheduler (TokenWarmupCosineLR): need 0 <= warmup_tokens < "
                              f"final_tokens, got {warmup_tokens} and {final_tokens}")
        self.warmup_tokens, self.final_tokens = float(warmup_tokens), float(final_tokens)
        self.min_ratio = float(min_ratio)
        self.tokens = 0
        super().__init__(learning_rate, last_epoch, verbose)

    def state_keys(self):
        self.keys = ["last_epoch", "last_lr", "tokens"]

    def count(self, n):
        """Add the tokens of one training batch (on this process)."""
        self.tokens += int(n)

    def get_lr(self):
        if self.last_epoch <= 0:
            return self.base_lr
        if self.tokens < self.warmup_tokens:
            return self.base_lr * self.tokens / max(1.0, self.warmup_tokens)
        progress = (self.tokens - self.warmup_tokens) / max(1.0, self.final_tokens - self.warmup_tokens)
        return self.base_lr * max(self.min_ratio, 0.5 * (1.0 + math.cos(math.pi * progress)))


def build_lr_scheduler(cfg, where="LRScheduler"):
    """`LRScheduler: {name: ..., learning_rate: ..., ...}`; a bare float gives a constant rate.
    `where` is the config key path named in errors (e.g. LRScheduler.generator)."""
    if cfg is None:
        raise ConfigError(f"the {where} section is missing")
    if isinstance(cfg, (int, float)) and not isinstance(cfg, bool):
        return float(cfg)
    if not isinstance(cfg, dict):
        raise ConfigError(f"{where}: expected a learning rate or a mapping with a 'name', got {cfg!r}")
    if cfg.get("name") in SCHEDULERS:
        return SCHEDULERS.build(cfg, where=where)
    cls = getattr(paddle.optimizer.lr, str(cfg.get("name")), None)
    if not (isinstance(cls, type) and issubclass(cls, paddle.optimizer.lr.LRScheduler)):
        raise ConfigError(f"{where}: unknown name '{cfg.get('name')}' (ppir: "
                          f"{', '.join(SCHEDULERS.names())}; or any paddle.optimizer.lr class)")
    kwargs = {k: v for k, v in cfg.items() if k != "name"}
    check_kwargs(cls, kwargs, f"{where} ({cfg['name']})")
    return cls(**kwargs)


def build_optimizer(cfg, parameters, lr, where="Optimizer"):
    """`Optimizer: {name: Adam, grad_clip: 0.01, ...}`; grad_clip is a global-norm threshold.
    `where` is the config key path named in errors (e.g. Optimizer.generator)."""
    if not isinstance(cfg, dict):
        raise ConfigError(f"{where}: expected a mapping with a 'name', got {cfg!r}")
    cfg = dict(cfg)
    name = cfg.pop("name", None)
    cls = getattr(paddle.optimizer, str(name), None)
    if not (isinstance(cls, type) and issubclass(cls, paddle.optimizer.Optimizer)):
        raise ConfigError(f"{where}: unknown name '{name}' (any paddle.optimizer class, e.g. Adam)")
    if "learning_rate" in cfg:
        raise ConfigError(f"{where}.learning_rate is not used: the learning rate belongs to LRScheduler")
    clip = cfg.pop("grad_clip", None)
    check_kwargs(cls, cfg, f"{where} ({name})")
    grad_clip = paddle.nn.ClipGradByGlobalNorm(float(clip)) if clip else None
    return cls(learning_rate=lr, parameters=parameters, grad_clip=grad_clip, **cfg)


def build_optimizers(cfg, model):
    """One LR schedule and one optimizer per trained network of the task model, from the config's
    `Optimizer` and `LRScheduler` (one spec for all, or one per network name)."""
    names = model.trainable()
    opt_specs = _per_network("Optimizer", cfg["Optimizer"], names)
    lr_specs = _per_network("LRScheduler", cfg["LRScheduler"], names)
    schedulers, optimizers = {}, {}
    for name in names:
        where = f".{name}" if len(names) > 1 else ""
        schedulers[name] = build_lr_scheduler(lr_specs[name], f"LRScheduler{where}")
        optimizers[name] = build_optimizer(opt_specs[name], model.networks[name].parameters(), schedulers[name],
                                           f"Optimizer{where}")
    return optimizers, schedulers


def _per_network(section, value, names):
    """{network: spec}. A spec has a `name` (or, for LRScheduler, is a bare number) and applies to
    every trained network; a mapping without `name` holds one spec per network name. Both at once
    (a `_base_` file's shared spec under a config's per-network ones): the per-network entries
    take the shared keys as defaults, unless they name another class."""
    if not isinstance(value, dict):
        return {n: value for n in names}
    per_network = {k: v for k, v in value.items() if k in names}
    if "name" in value:
        shared = {k: v for k, v in value.items() if k not in names}
        if not per_network:
            return {n: value for n in names}
        return {n: _over(shared, per_network.get(n)) for n in names}
    missing, unknown = [n for n in names if n not in value], sorted(set(value) - set(names))
    if missing or unknown:
        raise ConfigError(f"{section}: expected a spec with a 'name', or one spec per trained network "
                          f"({', '.join(names)}); " + "; ".join(
                              part for part in (f"missing {', '.join(missing)}" if missing else "",
                                                f"unknown {', '.join(unknown)}" if unknown else "") if part))
    return {n: value[n] for n in names}


def _over(shared, own):
    if own is None:
        return shared
    if not isinstance(own, dict) or own.get("name", shared["name"]) != shared["name"]:
        return own
    return {**shared, **own}
