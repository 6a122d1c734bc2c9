"""The restoration task wrapper: official training-step alignment, padding, export module."""
import os

import numpy as np
import paddle
import pytest
from reprod_log import ReprodDiffHelper, ReprodLogger

from ppir.engine.amp import NoAmp
from ppir.engine.lr_scheduler import build_lr_scheduler, build_optimizer
from ppir.engine.step import TrainStep
from ppir.models import build_model
from ppir.models.convert import convert_checkpoint

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures")


def tiny_mirnet(tmp_path):
    model = build_model({"Model": {"network": {"name": "MIRNetV2", "n_feat": 8, "chan_factor": 1.0},
                                   "losses": [{"name": "L1Loss"}]}})
    dst = str(tmp_path / "tiny.pdparams")
    convert_checkpoint("MIRNetV2", os.path.join(FIXTURES, "mirnetv2_tiny.pth"), dst,
                       network_args={"n_feat": 8, "chan_factor": 1.0})
    model.net.set_state_dict(paddle.load(dst))
    return model


def test_training_steps_match_the_official_training_step(tmp_path):
    """5 steps of L1 + Adam + clip 0.01 + cyclic cosine LR from the official weights and batches
    give the official losses and learning rates (reprod_log, mean diff <= 1e-5)."""
    ref = np.load(os.path.join(FIXTURES, "mirnetv2_train_steps.npz"))
    model = tiny_mirnet(tmp_path)
    lr = build_lr_scheduler({"name": "CosineAnnealingRestartCyclicLR", "learning_rate": 2e-4,
                             "periods": [3, 7], "restart_weights": [1, 1], "eta_mins": [3e-4, 1e-6]})
    opt = build_optimizer({"name": "Adam", "beta1": 0.9, "beta2": 0.999, "grad_clip": 0.01},
                          model.net.parameters(), lr)
    rng = np.random.default_rng(0)
    ours, theirs = ReprodLogger(), ReprodLogger()
    model.net.train()
    for i in range(5):
        x = rng.random((2, 3, 32, 32), dtype=np.float32)
        y = rng.random((2, 3, 32, 32), dtype=np.float32)
        ours.add(f"lr_{i}", np.array(opt.get_lr()))
        logged = model.train_step({"input": paddle.to_tensor(x), "target": paddle.to_tensor(y)},
                                  TrainStep(model.networks, {"net": opt}, NoAmp()))
        ours.add(f"loss_{i}", np.array(logged["loss"]))
        theirs.add(f"loss_{i}", ref["losses"][i:i + 1].reshape(()))
        theirs.add(f"lr_{i}", ref["lrs"][i:i + 1].reshape(()))
        lr.step()
    helper = ReprodDiffHelper()
    ours.save(str(tmp_path / "paddle.npy"))
    theirs.save(str(tmp_path / "ref.npy"))
    helper.compare_info(helper.load_info(str(tmp_path / "paddle.npy")), helper.load_info(str(tmp_path / "ref.npy")))
    helper.report(diff_method="mean", diff_threshold=1e-5, path=str(tmp_path / "diff.txt"))
    assert "diff check passed" in (tmp_path / "diff.txt").read_text()
    np.testing.assert_allclose([ours.data[f"loss_{i}"] for i in range(5)], ref["losses"], rtol=0, atol=1e-5)


def test_predict_pads_any_size_and_crops_back(tmp_path):
    """The bare network refuses 30x22; predict reflect-pads to the multiple of 4 and crops back."""
    model = tiny_mirnet(tmp_path)
    model.net.eval()
    x = paddle.rand([1, 3, 22, 30])
    with pytest.raises(ValueError, match="multiple"):
        model.net(x)
    assert model.predict({"input": x}).shape == [1, 3, 22, 30]


def test_non_finite_step_leaves_weights_untouched(tmp_path):
    """A NaN input gives a NaN loss: train_step returns None and changes no parameter."""
    model = tiny_mirnet(tmp_path)
    opt = build_optimizer({"name": "Adam"}, model.net.parameters(), 1e-3)
    before = {k: v.numpy().copy() for k, v in model.net.state_dict().items()}
    x = paddle.full([1, 3, 16, 16], float("nan"))
    step = TrainStep(model.networks, {"net": opt}, NoAmp())
    assert model.train_step({"input": x, "target": paddle.zeros([1, 3, 16, 16])}, step) is None
    for k, v in model.net.state_dict().items():
        np.testing.assert_array_equal(before[k], v.numpy())


def test_io_spec_describes_the_network(tmp_path):
    spec = tiny_mirnet(tmp_path).io_spec()
    assert spec["pad_multiple"] == 4 and spec["color_order"] == "RGB"
    assert [(i["channels"], i["value_range"], i["role"]) for i in spec["inputs"]] == [(3, [0.0, 1.0], "image")]
