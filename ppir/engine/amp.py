"""Automatic mixed precision as a switch: the loop calls the same methods whether it is on or off.

`NoAmp` is full precision. `Amp` is `paddle.amp.auto_cast` plus ppir's own dynamic loss scaler,
written out because a GAN steps several optimizers per iteration: the loss scale must be
updated once per iteration (not once per optimizer), and an overflow met while unscaling any
optimizer's gradients must shrink it. The contract, for every iteration:

    amp.backward(loss)              # scaled backward (any number of times)
    ok = amp.unscale_and_check(p)   # per optimizer, before its step: unscale, all finite?
    ...                             # the caller steps that optimizer only when ok
    amp.update()                    # once, at the end of the iteration (the trainer calls it)

On CPU builds Paddle's autocast does nothing (and warns each call), so AMP requested on CPU is
reported once and turned off; the GPU path is unchanged.
"""
import contextlib
import warnings

import paddle


def all_finite(tensors):
    """True when every given tensor (None entries skipped) is finite: one reduction, one host sync."""
    flags = [paddle.isfinite(t).all() for t in tensors if t is not None]
    return bool(paddle.stack(flags).all().item()) if flags else True


def grads_finite(params):
    return all_finite([p.grad for p in params])


class NoAmp:
    """The do-nothing counterpart of `Amp`: full precision, unscaled loss."""

    enabled = False

    def autocast(self):
        return contextlib.nullcontext()

    def backward(self, loss):
        loss.backward()

    def unscale_and_check(self, params):
        return grads_finite(params)

    def update(self):
        pass

    def state_dict(self):
        return {}

    def set_state_dict(self, state):
        pass


class Amp(NoAmp):
    """auto_cast (O1 or O2, float16 or bfloat16) + dynamic loss scaling, one update per iteration.

    The scale halves after an iteration in which any gradient overflowed and doubles after
    `incr_every_n_steps` clean iterations in a row (Paddle's GradScaler defaults).
    """

    enabled = True

    def __init__(self, level="O1", dtype="float16", init_loss_scaling=1024.0, dynamic=True, incr_ratio=2.0,
                 decr_ratio=0.5, incr_every_n_steps=1000, min_loss_scaling=1.0):
        self.level = level
        self.dynamic = dynamic  # False: a fixed scale (overflowing steps are still skipped)
        self.dtype = dtype
        self.scale = float(init_loss_scaling)
        self.incr_ratio = incr_ratio
        self.decr_ratio = decr_ratio
        self.incr_every_n_steps = incr_every_n_steps
        self.min_loss_scaling = min_loss_scaling
        self.good_steps = 0
        self.found_inf = False

    def autocast(self):
        return paddle.amp.auto_cast(level=self.level, dtype=self.dtype)

    def backward(self, loss):
        (loss * self.scale).backward()

    @paddle.no_grad()
    def unscale_and_check(self, params):
        grads = [p.grad for p in params if p.grad is not None]
        for g in grads:
            g.scale_(1.0 / self.scale)
        finite = grads_finite(params)
        self.found_inf = self.found_inf or not finite
        return finite

    def update(self):
        if not self.dynamic:
            self.found_inf = False
            return
        if self.found_inf:
            self.scale = max(self.scale * self.decr_ratio, self.min_loss_scaling)
            self.good_steps = 0
        else:
            self.good_steps += 1
            if self.good_steps >= self.incr_every_n_steps:
                self.scale *= self.incr_ratio
                self.good_steps = 0
        self.found_inf = False

    def state_dict(self):
        return {"scale": self.scale, "good_steps": self.good_steps}

    def set_state_dict(self, state):
        if state and "scale" in state:
            self.scale = float(state["scale"])
            self.good_steps = int(state["good_steps"])


def amp_settings(cfg):
    """(enable, init_loss_scaling, dynamic): the AMP section, overridden by TIPC's Global.use_amp,
    Global.scale_loss and Global.use_dynamic_loss_scaling where those are set."""
    amp_cfg, g = cfg["AMP"], cfg.get("Global") or {}
    enable = amp_cfg["enable"] if g.get("use_amp") is None else bool(g["use_amp"])
    scale = amp_cfg["init_loss_scaling"] if g.get("scale_loss") is None else float(g["scale_loss"])
    dynamic = True if g.get("use_dynamic_loss_scaling") is None else bool(g["use_dynamic_loss_scaling"])
    return enable, scale, dynamic


def build_amp(cfg, models=(), optimizers=()):
    """`AMP` section -> Amp or NoAmp; O2 decorates every trained network and its optimizer."""
    amp_cfg = cfg["AMP"]
    enable, scale, dynamic = amp_settings(cfg)
    if not enable:
        return NoAmp()
    if not paddle.is_compiled_with_cuda() or paddle.get_device() == "cpu":
        warnings.warn("AMP.enable is set but this run is on CPU, where Paddle's AMP has no "
                      "effect; training in float32")
        return NoAmp()
    if amp_cfg["level"] == "O2" and models:
        paddle.amp.decorate(models=list(models), optimizers=list(optimizers), level="O2",
                            dtype=amp_cfg["dtype"])
    return Amp(amp_cfg["level"], amp_cfg["dtype"], scale, dynamic)
