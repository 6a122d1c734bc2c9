"""The multi-network spine: per-network optimizers, TrainStep semantics, one loss-scale update per
iteration, checkpoints holding every network, and exact resume of a two-network model."""
import os

import numpy as np
import paddle
import pytest

from ppir.config import load_config
from ppir.engine.amp import Amp, NoAmp
from ppir.engine.lr_scheduler import build_optimizers
from ppir.engine.step import TrainStep
from ppir.errors import ConfigError
from ppir.models.base_model import TaskModel
from ppir.registry import MODELS
from tests.conftest import ROOT, tiny_overrides
from tests.test_trainer import DEMO_CFG


@MODELS.register("ToyGANModel")
class ToyGANModel(TaskModel):
    """Two MIRNetV2 stand-ins: a 'generator' trained with L1 plus an adversarial-style term through
    a 'discriminator' stepped second (the shape of every inpainting GAN in the suite)."""

    def __init__(self, networks, adv_weight=0.1):
        super().__init__(networks)
        self.adv_weight = adv_weight

    def train_step(self, batch, step):
        g, d = self.networks["generator"], self.networks["discriminator"]
        step.zero_grad()
        out = g(batch["input"])
        g_loss = paddle.nn.functional.l1_loss(out, batch["target"]) + self.adv_weight * d(out).abs().mean()
        step.backward(g_loss)
        if not step.step("generator"):
            return None
        step.zero_grad("discriminator")
        d_loss = (d(out.detach()) - d(batch["target"])).abs().mean()
        step.backward(d_loss)
        if not step.step("discriminator"):
            return None
        return {"g_loss": float(g_loss), "d_loss": float(d_loss)}

    @paddle.no_grad()
    def predict(self, inputs):
        return self.net(inputs["input"])

    def export_module(self):
        return self.net

    def io_spec(self):
        return {}


NET = {"name": "MIRNetV2", "n_feat": 16}
GAN_OVERRIDES = [
    "Model={'name': 'ToyGANModel', 'networks': {'generator': %r, 'discriminator': %r}}" % (NET, NET),
    "Optimizer={'generator': {'name': 'Adam'}, 'discriminator': {'name': 'Adam', 'beta1': 0.5}}",
    "LRScheduler={'generator': 1.0e-3, 'discriminator': 1.0e-4}",
]


def test_per_network_optimizers_and_schedules():
    """A mapping keyed by network names gives each network its own optimizer and LR; one spec
    applies to all; a missing or unknown network name is one ConfigError."""
    cfg = load_config(os.path.join(ROOT, DEMO_CFG), GAN_OVERRIDES)
    from ppir.models import build_model

    model = build_model(cfg)
    optimizers, schedulers = build_optimizers(cfg, model)
    assert list(optimizers) == ["generator", "discriminator"]
    assert optimizers["generator"].get_lr() == pytest.approx(1e-3)
    assert optimizers["discriminator"].get_lr() == pytest.approx(1e-4)
    assert optimizers["discriminator"]._beta1 == 0.5
    cfg["LRScheduler"] = {"generator": 1e-3}
    with pytest.raises(ConfigError, match="missing discriminator"):
        build_optimizers(cfg, model)
    cfg["LRScheduler"] = {"generator": 1e-3, "discriminator": 1e-4, "critic": 1e-4}
    with pytest.raises(ConfigError, match="unknown critic"):
        build_optimizers(cfg, model)


@pytest.mark.parametrize("generator, message", [
    ("{name: Adam, betta: 0.9}", r"^Optimizer.generator \(Adam\): unknown key\(s\) betta;"),
    ("{name: Adamm}", r"^Optimizer.generator: unknown name 'Adamm'"),
    ("{name: Adam, learning_rate: 0.1}", r"^Optimizer.generator.learning_rate is not used"),
])
def test_per_network_optimizer_typo_is_named_by_its_key_path(tmp_path, generator, message):
    """A per-network Optimizer under a _base_ file's shared one (MISF's configs) used to be read
    as the shared spec with two unknown keys, "unknown key(s) generator"; the real culprit is
    named by its key path, before the output dir exists."""
    from ppir.engine.trainer import Trainer

    cfg_file = tmp_path / "misf_typo.yml"
    cfg_file.write_text(f"_base_: {os.path.join(ROOT, 'configs', 'demo', 'misf_demo.yml')}\n"
                        f"Global: {{output_dir: {tmp_path / 'out'}}}\n"
                        f"Model: {{networks: {{generator: {{name: MISFGenerator, residual_blocks: 1}}}}}}\n"
                        f"Optimizer:\n  generator: {generator}\n")
    with pytest.raises(ConfigError, match=message):
        Trainer(load_config(str(cfg_file)))
    assert not (tmp_path / "out").exists()


def test_per_network_specs_take_a_base_files_shared_keys():
    """Shared keys (the _base_'s `name: Adam, beta1: 0.0`) are the per-network entries' defaults;
    a network without an entry uses the shared spec; an entry naming another class stands alone."""
    from ppir.engine.lr_scheduler import _per_network

    shared = {"name": "Adam", "beta1": 0.0, "beta2": 0.9}
    specs = _per_network("Optimizer", dict(shared, generator={"beta2": 0.99}), ["generator", "discriminator"])
    assert specs == {"generator": dict(shared, beta2=0.99), "discriminator": shared}
    specs = _per_network("Optimizer", dict(shared, discriminator={"name": "SGD"}), ["generator", "discriminator"])
    assert specs["discriminator"] == {"name": "SGD"}


def test_step_uses_only_the_named_network_and_keeps_other_gradients():
    """step('a') updates network a only and clears only a's gradients: a gradient that reached b
    from a's loss stays for b's own step (MISF's official order relies on it)."""
    paddle.seed(0)
    a, b = paddle.nn.Linear(2, 2), paddle.nn.Linear(2, 2)
    opts = {"a": paddle.optimizer.SGD(0.1, parameters=a.parameters()),
            "b": paddle.optimizer.SGD(0.1, parameters=b.parameters())}
    step = TrainStep({"a": a, "b": b}, opts, NoAmp())
    b_before = b.weight.numpy().copy()
    step.backward(b(a(paddle.ones([1, 2]))).sum())
    assert step.step("a")
    np.testing.assert_array_equal(b.weight.numpy(), b_before)
    assert a.weight.grad is None or not a.weight.grad.numpy().any()
    assert b.weight.grad is not None and b.weight.grad.numpy().any()


def test_overflow_skips_the_step_and_shrinks_the_scale_once_per_iteration():
    """Dynamic loss scaling with two optimizers: an overflow in either skips that step; the scale
    halves once at the iteration's end (not once per optimizer) and a clean iteration counts."""
    a, b = paddle.nn.Linear(2, 1), paddle.nn.Linear(2, 1)
    opts = {n: paddle.optimizer.SGD(0.1, parameters=m.parameters()) for n, m in (("a", a), ("b", b))}
    amp = Amp(init_loss_scaling=1024.0, incr_every_n_steps=2)
    step = TrainStep({"a": a, "b": b}, opts, amp)
    before = a.weight.numpy().copy()
    step.backward(a(paddle.ones([1, 2])).sum() * float("inf"))
    assert not step.step("a")
    np.testing.assert_array_equal(a.weight.numpy(), before)
    step.backward(b(paddle.ones([1, 2])).sum())
    assert step.step("b")  # b's gradient was fine: b steps
    amp.update()
    assert amp.scale == 512.0
    for _ in range(2):
        step.backward(a(paddle.ones([1, 2])).sum())
        assert step.step("a")
        amp.update()
    assert amp.scale == 1024.0 and amp.state_dict() == {"scale": 1024.0, "good_steps": 0}


def test_gradients_are_unscaled_before_the_optimizer_sees_them():
    """With a loss scale of 1024 the optimizer step equals the unscaled one."""
    results = []
    for amp in (NoAmp(), Amp(init_loss_scaling=1024.0)):
        paddle.seed(0)
        lin = paddle.nn.Linear(3, 1)
        opt = paddle.optimizer.SGD(0.5, parameters=lin.parameters())
        step = TrainStep({"net": lin}, {"net": opt}, amp)
        step.backward(lin(paddle.ones([2, 3])).sum())
        step.step("net")
        results.append(lin.weight.numpy())
    np.testing.assert_allclose(results[0], results[1], rtol=1e-6)


def test_two_network_checkpoints_resume_exactly(tmp_path, demo_denoise):
    """Every network and optimizer is in the checkpoint; a run stopped at iteration 2 and resumed
    ends bit-identical to a straight run, for both networks; Global.pretrained_model as a
    checkpoint dir loads both."""
    from ppir.engine.trainer import Trainer

    def run(out, iters, *extra, auto_resume=False):
        cfg = load_config(os.path.join(ROOT, DEMO_CFG), tiny_overrides(demo_denoise, out, iters) + GAN_OVERRIDES
                          + list(extra))
        Trainer(cfg, auto_resume=auto_resume).train()
        return (out / "train.log").read_text()

    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    log = run(straight, 4)
    assert "lr_generator 1.0000e-03  lr_discriminator 1.0000e-04" in log and "d_loss" in log
    assert sorted(os.listdir(straight / "latest")) == ["COMPLETE", "discriminator.pdopt", "discriminator.pdparams",
                                                       "model.pdopt", "model.pdparams", "state.pdstates"]
    run(resumed, 2)
    assert "at iteration 2" in run(resumed, 4, auto_resume=True)
    for name in ("model.pdparams", "discriminator.pdparams", "model.pdopt", "discriminator.pdopt"):
        a, b = paddle.load(str(straight / "latest" / name)), paddle.load(str(resumed / "latest" / name))
        assert a.keys() == b.keys()
        for k in a:
            if hasattr(a[k], "numpy"):
                np.testing.assert_array_equal(a[k].numpy(), b[k].numpy(), err_msg=f"{name}:{k}")
    log = run(tmp_path / "finetune", 1, f"Global.pretrained_model={straight / 'latest'}")
    assert "loaded pretrained weights of generator, discriminator" in log
