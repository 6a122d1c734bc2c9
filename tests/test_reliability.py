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
