"""CTSDG through the real trainer: exact resume of the GAN after a kill -9, the fine-tuning
BatchNorm freeze across training steps and evaluations, and 2-process data parallelism
(tools/train.py, configs/demo/ctsdg_demo.yml at 128x128, batch 1, a few iterations)."""
import os
import signal
import subprocess
import sys

import numpy as np
import paddle

from ppir.engine.checkpoint import is_complete
from tests.conftest import ROOT, run_tool

DEMO_CFG = "configs/demo/ctsdg_demo.yml"


def ctsdg_overrides(out, iters, save_interval=2):
    return [f"Global.output_dir={out}", f"Global.iters={iters}", "Global.log_interval=1",
            "Global.eval_interval=0", f"Global.save_interval={save_interval}", "Global.use_visualdl=False",
            "Train.batch_size=1"]


def train(out, *extra, iters=3, env=None, save_interval=2):
    res = run_tool("tools/train.py", "-c", DEMO_CFG, "-o", *ctsdg_overrides(out, iters, save_interval),
                   *extra, env=env, timeout=900)
    return res


def _flat(obj, prefix=""):
    """{dotted key: numpy array} of a loaded state (nested dicts of tensors and numbers)."""
    if isinstance(obj, dict):
        out = {}
        for k, v in obj.items():
            out.update(_flat(v, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: np.asarray(obj.numpy() if hasattr(obj, "numpy") else obj)}


def checkpoint_state(path):
    files = sorted(n for n in os.listdir(path) if n.endswith((".pdparams", ".pdopt")))
    return {f"{name}:{k}": v for name in files for k, v in _flat(paddle.load(os.path.join(path, name))).items()}


def test_kill_then_auto_resume_equals_uninterrupted_gan_run(tmp_path):
    """SIGKILL at the start of iteration 3; --auto_resume from iter_2 ends with both networks,
    both optimizers, the spectral-norm vectors and every BatchNorm statistic bit-identical to
    an uninterrupted run."""
    straight, out = tmp_path / "straight", tmp_path / "run"
    res = train(straight)
    assert res.returncode == 0, res.stderr[-3000:]
    res = train(out, env={"PPIR_FAULT": "step:3:rank0"})
    assert res.returncode == -signal.SIGKILL, res.stderr[-3000:]
    assert is_complete(out / "latest") and os.readlink(out / "latest") == "iter_2"
    res = train(out, "--auto_resume")
    assert res.returncode == 0, res.stderr[-3000:]
    assert "at iteration 2" in res.stdout + res.stderr
    want, got = checkpoint_state(straight / "latest"), checkpoint_state(out / "latest")
    assert want.keys() == got.keys()
    names = " ".join(want)
    for part in ("model.pdparams", "discriminator.pdparams", "model.pdopt", "discriminator.pdopt",
                 "weight_u", "weight_v", "_mean", "_variance"):
        assert part in names, part
    for key in want:
        np.testing.assert_array_equal(got[key], want[key], err_msg=key)
    earlier = checkpoint_state(out / "iter_2")
    assert not np.array_equal(earlier["discriminator.pdparams:texture_branch.conv2.0.weight_u"],
                              got["discriminator.pdparams:texture_branch.conv2.0.weight_u"])


def test_freeze_bn_holds_over_training_steps_and_evaluations(tmp_path):
    """`Model.freeze_bn: true` through tools/train.py with an evaluation after every iteration:
    the generator's BatchNorm running statistics are the same after iterations 1 and 2 while its
    BatchNorm affine weights train; the discriminator's BatchNorms (not frozen) keep updating."""
    pairs = tmp_path / "pairs.txt"
    from ppir.data.demo import INPAINT_PAIRS, ensure_demo

    lines = open(os.path.join(ensure_demo("inpaint"), INPAINT_PAIRS)).read().splitlines()
    pairs.write_text("\n".join([lines[0], next(l for l in lines[1:] if l.strip())]) + "\n")
    out = tmp_path / "ft"
    res = train(out, "Model.freeze_bn=True", "Global.eval_interval=1", f"Eval.dataset.pairs={pairs}",
                iters=2, save_interval=1)
    assert res.returncode == 0, res.stderr[-3000:]
    assert (res.stdout + res.stderr).count("[eval] iter") == 2
    one, two = (paddle.load(str(out / f"iter_{i}" / "model.pdparams")) for i in (1, 2))
    stats = [k for k in one if k.endswith(("._mean", "._variance"))]
    assert len(stats) == 2 * 30
    for k in stats:
        np.testing.assert_array_equal(one[k].numpy(), two[k].numpy(), err_msg=k)
    assert not np.array_equal(one["ec_texture_2.bn.weight"].numpy(), two["ec_texture_2.bn.weight"].numpy())
    d1, d2 = (paddle.load(str(out / f"iter_{i}" / "discriminator.pdparams")) for i in (1, 2))
    key = "edge_detector.projection.1._mean"
    assert not np.array_equal(d1[key].numpy(), d2[key].numpy())


def test_two_process_gan_keeps_ranks_identical_and_frozen_statistics_constant(tmp_path):
    """paddle.distributed.launch with 2 CPU processes, BatchNorm freeze on, 2 iterations: rc 0 and
    the trainer's end-of-run collective check finds every parameter and buffer of generator and
    discriminator equal on both ranks, although each rank's discriminator BatchNorms saw other
    images (its running statistics follow rank 0's); the generator's frozen running statistics
    are still their initial values (mean 0, variance 1) after iterations 1 and 2."""
    out = tmp_path / "dist"
    cmd = [sys.executable, "-m", "paddle.distributed.launch", "--nproc_per_node", "2",
           "--log_dir", str(tmp_path / "log"), "tools/train.py", "-c", DEMO_CFG, "-o",
           *ctsdg_overrides(out, 2, save_interval=1), "Model.freeze_bn=True"]
    res = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=900)
    log = (tmp_path / "log" / "workerlog.0").read_text()
    assert res.returncode == 0, log[-3000:]
    assert "on cpu x2" in log and "weights identical on all 2 ranks: True" in log
    states = [checkpoint_state(out / f"iter_{i}") for i in (1, 2)]
    names = " ".join(states[0])
    for part in ("discriminator.pdparams", "weight_u", "weight_v"):
        assert part in names, part
    stats = [k for k in states[0] if k.startswith("model.pdparams:") and k.endswith(("._mean", "._variance"))]
    assert len(stats) == 2 * 30
    for state in states:
        for k in stats:
            np.testing.assert_array_equal(state[k], 0.0 if k.endswith("._mean") else 1.0, err_msg=k)
    key = "discriminator.pdparams:edge_detector.projection.1._mean"
    assert not np.array_equal(states[0][key], states[1][key])
