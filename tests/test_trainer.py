"""End-to-end training runs of a width-16 MIRNetV2: checkpoints, resume, evaluation, 2 processes."""
import os
import subprocess
import sys

import numpy as np
import paddle

from tests.conftest import ROOT, run_tool, tiny_overrides

DEMO_CFG = "configs/demo/mirnetv2_demo.yml"


def train(demo, out, *extra, iters=4, env=None):
    """Run tools/train.py on the tiny config; `extra` holds more overrides or flags."""
    res = run_tool("tools/train.py", "-c", DEMO_CFG, "-o", *tiny_overrides(demo, out, iters), *extra, env=env)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    return res


def weights(path):
    return paddle.load(os.path.join(str(path), "model.pdparams"))


def assert_same_weights(a, b):
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys()
    for k in wa:
        np.testing.assert_array_equal(wa[k].numpy(), wb[k].numpy(), err_msg=k)


def test_checkpoints_are_complete_and_latest_points_to_newest(tmp_path, demo_denoise):
    """iter_N dirs hold weights, optimizer and state; `latest` links the newest; old ones are pruned."""
    out = tmp_path / "run"
    train(demo_denoise, out, "Global.keep_checkpoint_max=1", iters=4)
    assert os.readlink(out / "latest") == "iter_4"
    assert sorted(p.name for p in out.iterdir() if p.name.startswith("iter_")) == ["iter_4"]
    for name in ("model.pdparams", "model.pdopt", "state.pdstates", "COMPLETE"):
        assert (out / "latest" / name).is_file()
    state = paddle.load(str(out / "latest" / "state.pdstates"))
    assert state["iter"] == 4
    assert "ips:" in (out / "train.log").read_text()


def test_auto_resume_equals_uninterrupted_run(tmp_path, demo_denoise):
    """Stopping at iteration 2 and resuming with --auto_resume ends bit-identical to a straight run."""
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    train(demo_denoise, straight, iters=4)
    train(demo_denoise, resumed, iters=2)
    res = train(demo_denoise, resumed, "--auto_resume", iters=4)
    assert "at iteration 2" in res.stdout
    assert "iter 3/4" in res.stdout and "iter 1/4" not in res.stdout
    assert_same_weights(straight / "latest", resumed / "latest")
    opt_a = paddle.load(str(straight / "latest" / "model.pdopt"))
    opt_b = paddle.load(str(resumed / "latest" / "model.pdopt"))
    assert opt_a["LR_Scheduler"] == opt_b["LR_Scheduler"]


def test_validation_marks_best_model_and_eval_tool_scores_it(tmp_path, demo_denoise):
    """With validation on, best_model links a checkpoint that tools/eval.py can score."""
    out = tmp_path / "run"
    res = train(demo_denoise, out, "Global.eval_interval=2", iters=2)
    assert "[eval] iter 2: psnr" in res.stdout
    assert (out / "best_model" / "model.pdparams").is_file()
    ev = run_tool("tools/eval.py", "-c", DEMO_CFG, "-o", "Model.network.n_feat=16",
                  f"Global.pretrained_model={out / 'best_model'}", f"Eval.dataset.root={demo_denoise}", "--runtime")
    assert ev.returncode == 0, ev.stderr[-2000:]
    assert "outputs: psnr:" in ev.stdout and "inputs:  psnr:" in ev.stdout and "runtime:" in ev.stdout


def test_two_process_launch_keeps_ranks_identical(tmp_path, demo_denoise):
    """paddle.distributed.launch with 2 CPU processes: rc 0 and both ranks end with the same weights."""
    out = tmp_path / "dist"
    cmd = [sys.executable, "-m", "paddle.distributed.launch", "--nproc_per_node", "2",
           "--log_dir", str(tmp_path / "log"), "tools/train.py", "-c", DEMO_CFG, "-o",
           *tiny_overrides(demo_denoise, out, 2)]
    res = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    logs = "".join((tmp_path / "log" / f).read_text() for f in os.listdir(tmp_path / "log")
                   if f.startswith("workerlog"))
    assert res.returncode == 0, logs[-3000:]
    assert "weights identical on all 2 ranks: True" in logs
    assert "x2" in logs  # the run knew it had two processes
    assert os.readlink(out / "latest") == "iter_2"


def test_ema_weights_are_saved_and_resumed(tmp_path, demo_denoise):
    """With EMA on, checkpoints carry ema.pdparams and a resumed run ends with the same EMA weights."""
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    train(demo_denoise, straight, "EMA.enable=True", "EMA.decay=0.9", iters=4)
    train(demo_denoise, resumed, "EMA.enable=True", "EMA.decay=0.9", iters=2)
    train(demo_denoise, resumed, "EMA.enable=True", "EMA.decay=0.9", "--auto_resume", iters=4)
    ema_a = paddle.load(str(straight / "latest" / "ema.pdparams"))
    ema_b = paddle.load(str(resumed / "latest" / "ema.pdparams"))
    model = weights(straight / "latest")
    assert ema_a.keys() == model.keys()
    assert any(not np.array_equal(ema_a[k].numpy(), model[k].numpy()) for k in model)
    for k in ema_a:
        np.testing.assert_array_equal(ema_a[k].numpy(), ema_b[k].numpy(), err_msg=k)


def test_amp_on_cpu_warns_and_trains_in_float32():
    """AMP is a no-op on Paddle's CPU build: ppir says so once and uses the float32 path."""
    import pytest

    from ppir.engine.amp import NoAmp, build_amp

    paddle.set_device("cpu")
    cfg = {"AMP": {"enable": True, "level": "O1", "dtype": "float16", "init_loss_scaling": 1024.0}}
    with pytest.warns(UserWarning, match="no effect"):
        amp = build_amp(cfg)
    assert type(amp) is NoAmp
