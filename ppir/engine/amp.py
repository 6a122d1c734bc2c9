"""Automatic mixed precision as a switch: the loop calls the same methods whether it is on or off.

On CPU builds Paddle's autocast and GradScaler do nothing (and warn each call), so AMP requested
on CPU is reported once and turned off; the GPU path is unchanged.
"""
import contextlib
import warnings

import paddle


class NoAmp:
    """The do-nothing counterpart of `Amp`: full precision, unscaled loss."""

    enabled = False

    def autocast(self):
        return contextlib.nullcontext()

    def backward(self, loss):
        loss.backward()

    def step(self, optimizer):
        optimizer.step()

    def state_dict(self):
        return {}

    def set_state_dict(self, state):
        pass


class Amp(NoAmp):
    """paddle.amp autocast + dynamic loss scaling (O1 or O2, float16 or bfloat16)."""

    enabled = True

    def __init__(self, level="O1", dtype="float16", init_loss_scaling=1024.0, dynamic=True):
        self.level = level
        self.dtype = dtype
        self.scaler = paddle.amp.GradScaler(init_loss_scaling=init_loss_scaling,
                                            use_dynamic_loss_scaling=dynamic)

    def autocast(self):
        return paddle.amp.auto_cast(level=self.level, dtype=self.dtype)

    def backward(self, loss):
        self.scaler.scale(loss).backward()

    def step(self, optimizer):
        self.scaler.step(optimizer)
        self.scaler.update()

    def state_dict(self):
        return self.scaler.state_dict()

    def set_state_dict(self, state):
        if state:
            self.scaler.load_state_dict(state)


def amp_settings(cfg):
    """(enable, init_loss_scaling, dynamic): the AMP section, overridden by TIPC's Global.use_amp,
    Global.scale_loss and Global.use_dynamic_loss_scaling where those are set."""
    amp_cfg, g = cfg["AMP"], cfg["Global"]
    enable = amp_cfg["enable"] if g.get("use_amp") is None else bool(g["use_amp"])
    scale = amp_cfg["init_loss_scaling"] if g.get("scale_loss") is None else float(g["scale_loss"])
    dynamic = True if g.get("use_dynamic_loss_scaling") is None else bool(g["use_dynamic_loss_scaling"])
    return enable, scale, dynamic


def build_amp(cfg, model=None, optimizer=None):
    amp_cfg = cfg["AMP"]
    enable, scale, dynamic = amp_settings(cfg)
    if not enable:
        return NoAmp()
    if not paddle.is_compiled_with_cuda() or paddle.get_device() == "cpu":
        warnings.warn("AMP.enable is set but this run is on CPU, where Paddle's AMP has no "
                      "effect; training in float32")
        return NoAmp()
    if amp_cfg["level"] == "O2" and model is not None:
        paddle.amp.decorate(models=model, optimizers=optimizer, level="O2", dtype=amp_cfg["dtype"])
    return Amp(amp_cfg["level"], amp_cfg["dtype"], scale, dynamic)
