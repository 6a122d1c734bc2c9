"""Never lose a run: kills at chosen points, exact resume, non-finite steps, a dying worker."""
import os
import signal
import subprocess
import sys

import paddle
import pytest

from ppir.engine.checkpoint import is_complete
from tests.conftest import ROOT, run_tool, tiny_overrides
from tests.test_trainer import DEMO_CFG, assert_same_weights, train


@pytest.fixture(scope="module")
def straight_run(tmp_path_factory, demo_denoise):
    out = tmp_path_factory.mktemp("straight") / "run"
    train(demo_denoise, out, iters=6)
    return out


@pytest.mark.parametrize("fault, resumes_at", [
    ("step:3:rank0", 2),          # mid-run, between checkpoints
    ("save:4:weights", 2),        # mid-save: weights written, the rest not
    ("save:4:renaming", 2),       # every file written, not yet renamed into place
    ("save:4:linking", 2),        # iter_4 complete, `latest` not yet moved
])
def test_kill_then_auto_resume_equals_uninterrupted_run(tmp_path, demo_denoise, straight_run, fault, resumes_at):
    """SIGKILL at `fault` leaves `latest` complete; --auto_resume ends bit-identical to a straight run."""
    out = tmp_path / "run"
    res = run_tool("tools/train.py", "-c", DEMO_CFG, "-o", *tiny_overrides(demo_denoise, out, 6),
                   env={"PPIR_FAULT": fault})
    assert res.returncode == -signal.SIGKILL, res.stderr[-2000:]
    assert is_complete(out / "latest") and os.readlink(out / "latest") == f"iter_{resumes_at}"
    res = train(demo_denoise, out, "--auto_resume", iters=6)
    assert f"at iteration {resumes_at}" in res.stdout
    assert not [d for d in os.listdir(out) if d.startswith((".tmp-", ".old-"))], "leftovers not cleaned"
    assert_same_weights(straight_run / "latest", out / "latest")


def test_non_finite_steps_are_skipped_then_the_run_stops(tmp_path, demo_denoise, monkeypatch):
    """A NaN step is skipped with a warning; N in a row stop the run; nothing non-finite is saved."""
    import numpy as np

    from ppir.config import load_config
    from ppir.engine.trainer import Trainer, TrainingStopped

    cfg = load_config(os.path.join(ROOT, DEMO_CFG),
                      tiny_overrides(demo_denoise, tmp_path / "run", 6) + ["Global.max_nonfinite_steps=3"])
    trainer = Trainer(cfg)
    real_step = trainer.model.train_step
    calls = []

    def poisoned_step(batch, step):
        calls.append(1)
        if len(calls) >= 2:  # from iteration 2 on, every input is NaN
            batch = dict(batch, input=batch["input"] * float("nan"))
        return real_step(batch, step)

    monkeypatch.setattr(trainer.model, "train_step", poisoned_step)
    before = {k: v.numpy().copy() for k, v in trainer.model.net.state_dict().items()}
    with pytest.raises(TrainingStopped, match="3 consecutive non-finite steps at iteration 4"):
        trainer.train()
    after = trainer.model.net.state_dict()
    assert all(np.isfinite(v.numpy()).all() for v in after.values())
    assert any(not np.array_equal(before[k], after[k].numpy()) for k in before)  # step 1 did update
    # Iteration 2 was skipped, so the iter_2 checkpoint holds iteration 1's (finite) weights.
    assert os.readlink(tmp_path / "run" / "latest") == "iter_2"
    saved = paddle.load(str(tmp_path / "run" / "latest" / "model.pdparams"))
    assert all(np.isfinite(v.numpy()).all() for v in saved.values())


def test_dying_worker_fails_the_launch_and_auto_resume_recovers(tmp_path, demo_denoise):
    """One of 2 ranks is killed: the launcher exits non-zero; relaunching with --auto_resume finishes
    with the weights of an uninterrupted 2-process run."""
    out = tmp_path / "dist"

    def launch(*extra, env=None, target=out):
        cmd = [sys.executable, "-m", "paddle.distributed.launch", "--nproc_per_node", "2",
               "--log_dir", str(tmp_path / "log"), "tools/train.py", "-c", DEMO_CFG, "-o",
               *tiny_overrides(demo_denoise, target, 4), *extra]
        return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300,
                              env=dict(os.environ, **(env or {})))

    res = launch(env={"PPIR_FAULT": "step:3:rank1"})
    assert res.returncode != 0
    assert os.readlink(out / "latest") == "iter_2"
    res = launch("--auto_resume")
    log = (tmp_path / "log" / "workerlog.0").read_text()
    assert res.returncode == 0, log[-3000:]
    assert "at iteration 2" in log and "weights identical on all 2 ranks: True" in log
    assert os.readlink(out / "latest") == "iter_4"
    assert launch(target=tmp_path / "straight").returncode == 0
    assert_same_weights(tmp_path / "straight" / "latest", out / "latest")


# ---- non-finite values: caught by TrainStep for every task model, never raised -------------------

def _nan_batch(rng, size):
    """A finite synthetic training batch of each task model's keys (2 samples)."""
    import numpy as np

    image = rng.random((2, 3, size, size)).astype("float32")
    mask = np.zeros((2, 1, size, size), "float32")
    mask[:, :, size // 4:size // 2, size // 4:size // 2] = 1
    batch = {"input": image, "target": image, "mask": mask, "prior": image,
             "edge": rng.random((2, 2, size, size)).astype("float32"),
             "tokens": rng.integers(0, 8, (2, 16)), "token_mask": (rng.random((2, 16)) < 0.5).astype("float32")}
    return {k: paddle.to_tensor(v) for k, v in batch.items()}


@pytest.mark.parametrize("config, size, overrides", [
    ("configs/demo/mirnetv2_demo.yml", 32, ["Model.network.n_feat=16"]),
    ("configs/demo/misf_demo.yml", 32, ["Model.networks.generator.residual_blocks=1"]),
    ("configs/demo/ctsdg_demo.yml", 128, []),  # the smallest size CTSDG's generator takes
    ("configs/demo/ict_demo.yml", 32, ["Model.palette={tmp}/palette.npy", "Model.prior_size=4",
                                       "Model.networks.transformer.vocab_size=8",
                                       "Model.networks.transformer.block_size=16",
                                       "Model.networks.transformer.n_layer=1",
                                       "Model.networks.generator.residual_blocks=1"]),
])
def test_every_task_model_skips_a_non_finite_step_without_raising(tmp_path, config, size, overrides):
    """NaN weights make every loss NaN (GAN BCE included, which Paddle's kernel refuses with a
    ValueError): the step must come back as None (skipped) and no optimizer may move a weight."""
    import numpy as np

    from ppir.config import load_config
    from ppir.engine.amp import NoAmp
    from ppir.engine.lr_scheduler import build_optimizers
    from ppir.engine.step import TrainStep
    from ppir.models import build_model

    np.save(tmp_path / "palette.npy", np.linspace(-1, 1, 24, dtype="float32").reshape(8, 3))
    cfg = load_config(os.path.join(ROOT, config), [o.format(tmp=tmp_path) for o in overrides])
    paddle.seed(0)
    model = build_model(cfg)
    optimizers, schedulers = build_optimizers(cfg, model)
    for name in model.trainable():  # poison the first weight of every trained network
        first = next(p for p in model.networks[name].parameters() if not p.stop_gradient)
        first.set_value(paddle.full_like(first, float("nan")))
    before = {(n, k): v.numpy().copy() for n, net in model.networks.items() for k, v in net.state_dict().items()}
    model.set_train(True)
    step = TrainStep(model.networks, optimizers, NoAmp(), schedulers=schedulers)
    assert model.train_step(_nan_batch(np.random.default_rng(0), size), step) is None
    for (n, k), v in before.items():
        if "weight_u" in k or "weight_v" in k or "_mean" in k or "_variance" in k:
            continue  # power-iteration and BatchNorm buffers move in any training forward
        np.testing.assert_array_equal(model.networks[n].state_dict()[k].numpy(), v, err_msg=f"{n}.{k} stepped")


def test_nan_score_never_becomes_best_and_the_stop_names_the_last_good_checkpoint(tmp_path, demo_denoise,
                                                                                   monkeypatch):
    """A NaN evaluation is not best (the comparison `x - nan > 0` is always false, so a NaN best
    could never be replaced), its checkpoint is marked, and a later stop names the newest
    checkpoint whose weights and scores are finite, not merely the latest one."""
    from ppir.config import load_config
    from ppir.engine.trainer import Trainer, TrainingStopped

    cfg = load_config(os.path.join(ROOT, DEMO_CFG), tiny_overrides(demo_denoise, tmp_path / "run", 8)
                      + ["Global.eval_interval=2", "Global.max_nonfinite_steps=1"])
    trainer = Trainer(cfg)
    scores = iter([float("nan"), 20.0, float("nan")])
    monkeypatch.setattr(trainer.evaluator, "run", lambda save_dir=None: {"psnr": next(scores), "runtime": 0.0})
    monkeypatch.setattr(trainer.evaluator, "input_scores", lambda: {"psnr": 10.0})
    real_step, calls = trainer.model.train_step, []

    def poisoned_step(batch, step):
        calls.append(1)
        if len(calls) == 7:
            batch = dict(batch, input=batch["input"] * float("nan"))
        return real_step(batch, step)

    monkeypatch.setattr(trainer.model, "train_step", poisoned_step)
    with pytest.raises(TrainingStopped, match=r"at iteration 7; last checkpoint with finite weights and scores: "
                                              r".*run/iter_4$"):
        trainer.train()
    assert trainer.best["metric"] == 20.0 and trainer.best["iter"] == 4
    assert os.readlink(tmp_path / "run" / "best_model") == "iter_4"
    log = (tmp_path / "run" / "train.log").read_text()
    assert "psnr is NaN; iter_6 cannot become best_model" in log and "best psnr nan" not in log
