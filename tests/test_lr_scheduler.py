"""MIRNetV2's CosineAnnealingRestartCyclicLR and the optimizer builder."""
import math

import paddle
import pytest

from ppir.config import load_config
from ppir.engine.lr_scheduler import CosineAnnealingRestartCyclicLR, build_lr_scheduler, build_optimizer
from ppir.errors import ConfigError
from tests.test_config import SIDD


def lr_at(sched, last_epoch):
    sched.last_epoch = last_epoch
    return sched.get_lr()


def test_sidd_schedule_values_at_milestones():
    """Cycle 1 rises 2e-4 -> 3e-4 over 92k iterations (the official behaviour), cycle 2 falls to 1e-6."""
    sched = build_lr_scheduler(load_config(SIDD)["LRScheduler"])
    assert sched.last_epoch == 0
    assert lr_at(sched, 0) == pytest.approx(2e-4, rel=1e-12)        # iteration 1
    assert lr_at(sched, 46000) == pytest.approx(2.5e-4, rel=1e-12)  # half way up
    assert lr_at(sched, 92000) == pytest.approx(3e-4, rel=1e-12)    # end of cycle 1
    assert lr_at(sched, 92001) == pytest.approx(
        1e-6 + 0.5 * (2e-4 - 1e-6) * (1 + math.cos(math.pi / 208000)), rel=1e-12)  # restart
    assert lr_at(sched, 196000) == pytest.approx(1e-6 + 0.5 * (2e-4 - 1e-6), rel=1e-12)
    assert lr_at(sched, 300000) == pytest.approx(1e-6, rel=1e-9)


def test_step_advances_one_iteration():
    """The trainer steps once per iteration; iteration i uses the value at last_epoch = i - 1."""
    sched = CosineAnnealingRestartCyclicLR(1.0, periods=[10], eta_mins=[0.0])
    values = []
    for _ in range(11):
        values.append(sched())
        sched.step()
    assert values[0] == 1.0 and values[10] == pytest.approx(0.0, abs=1e-12)
    assert all(a > b for a, b in zip(values, values[1:]))


def test_mismatched_lengths_are_refused():
    with pytest.raises(ConfigError, match="same length"):
        CosineAnnealingRestartCyclicLR(1.0, periods=[10, 10], eta_mins=[0.0])


def test_paddle_schedulers_by_name_and_unknown_names():
    """Any paddle.optimizer.lr class works by name; an unknown name or argument is a ConfigError."""
    sched = build_lr_scheduler({"name": "MultiStepDecay", "learning_rate": 1e-4,
                                "milestones": [5], "gamma": 0.5})
    assert isinstance(sched, paddle.optimizer.lr.MultiStepDecay)
    with pytest.raises(ConfigError, match="CosineDecayy"):
        build_lr_scheduler({"name": "CosineDecayy", "learning_rate": 1e-4})
    with pytest.raises(ConfigError, match="gama"):
        build_lr_scheduler({"name": "MultiStepDecay", "learning_rate": 1e-4, "milestones": [5], "gama": 0.5})


def test_optimizer_gets_global_norm_clip():
    """Optimizer.grad_clip becomes ClipGradByGlobalNorm with that threshold (MIRNetV2: 0.01)."""
    layer = paddle.nn.Linear(2, 2)
    opt = build_optimizer({"name": "Adam", "beta1": 0.9, "grad_clip": 0.01}, layer.parameters(), 1e-3)
    assert isinstance(opt._grad_clip, paddle.nn.ClipGradByGlobalNorm)
    assert opt._grad_clip.clip_norm == pytest.approx(0.01)
    with pytest.raises(ConfigError, match="Adamm"):
        build_optimizer({"name": "Adamm"}, layer.parameters(), 1e-3)
