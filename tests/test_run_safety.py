"""Training never destroys an earlier run, never hangs on bad data, stops cleanly on SIGTERM, and
answers every bad setting with one line before anything starts."""
import os
import shutil
import signal
import subprocess
import sys
import time

import cv2
import numpy as np
import paddle
import pytest

from ppir.config import load_config
from ppir.engine.checkpoint import CheckpointManager, is_complete
from ppir.engine.run_dir import RunDirBusy, RunLock, claim_output_dir
from ppir.engine.trainer import config_changes
from ppir.errors import CheckpointError, ConfigError, PpirError
from tests.conftest import ROOT, run_tool, tiny_overrides
from tests.test_cli_errors import assert_one_line_error
from tests.test_reliability import straight_run  # noqa: F401  (module fixture: a 6-iteration run)
from tests.test_trainer import DEMO_CFG, assert_same_weights, train


def file_bytes(folder):
    """{relative path: bytes} of every file below `folder` (links followed), for before/after
    checks; the run lock (it only holds the PID of the last process that locked it) is left out."""
    out = {}
    for dirpath, _, names in os.walk(folder, followlinks=True):
        for name in names:
            if name == ".lock":
                continue
            path = os.path.join(dirpath, name)
            with open(path, "rb") as f:
                out[os.path.relpath(path, folder)] = f.read()
    return out


# ---- config values: one line, before anything starts ------------------------------------------

@pytest.mark.parametrize("override, fragment", [
    ("Global.iters=1e1", "Global.iters expected an integer, got 10.0 (write 10)"),
    ("Global.iters=0", "Global.iters must be >= 1, got 0"),
    ("Global.save_interval=0", "Global.save_interval must be >= 1"),
    ("Global.device=tpu", "Global.device must be one of auto, cpu, gpu"),
    ("Global.use_visualdl=maybe", "Global.use_visualdl expected true or false"),
    ("Train.num_workers=-1", "Train.num_workers must be >= 0"),
    ("Optimizer.learning_rate=0.5", "Optimizer.learning_rate is not used: the learning rate belongs to LRScheduler"),
    ("Train.batch_size=4", "Train.batch_size is not used while Train.progressive is set"),
    ("Train=None", "section Train must be a mapping"),
    ("EMA.decay=2", "EMA.decay must be <= 1"),
])
def test_bad_values_are_refused_naming_the_key(override, fragment):
    """A value of the wrong type or range (or one that would be silently ignored) is a ConfigError
    naming the key, raised while the config loads."""
    with pytest.raises(ConfigError, match=None) as info:
        load_config(os.path.join(ROOT, DEMO_CFG), [override])
    assert fragment in str(info.value)


def test_batch_size_without_progressive_is_fine_and_progressive_drops_its_defaults():
    """Train.batch_size stays usable without a progressive schedule; with one, the resolved config
    holds no batch_size/patch_size default that would be silently ignored."""
    cfg = load_config(os.path.join(ROOT, "configs/demo/mimounet_demo.yml"), ["Train.batch_size=3"])
    assert cfg["Train"]["batch_size"] == 3
    cfg = load_config(os.path.join(ROOT, DEMO_CFG))
    assert "batch_size" not in cfg["Train"] and "patch_size" not in cfg["Train"]


def test_empty_config_file_is_one_line(tmp_path):
    empty = tmp_path / "empty.yml"
    empty.write_text("")
    assert_one_line_error(run_tool("tools/train.py", "-c", str(empty)), "config file is empty", str(empty))


# ---- the output directory: one run at a time, and over time -------------------------------------

def test_second_run_into_a_locked_output_dir_is_refused(tmp_path, demo_denoise):
    """While a run holds the output dir, another training into it exits 2 naming the holder."""
    out = tmp_path / "run"
    lock = RunLock(str(out)).acquire()
    try:
        res = run_tool("tools/train.py", "-c", DEMO_CFG, "-o", *tiny_overrides(demo_denoise, out, 1))
        assert_one_line_error(res, "is in use by another training run", f"pid {os.getpid()}")
        assert not (out / "latest").exists()
    finally:
        lock.release()


def test_lock_is_released_when_its_holder_dies(tmp_path):
    """A run killed with SIGKILL leaves no lock behind: the kernel drops the flock with the process."""
    out = str(tmp_path / "run")
    child = subprocess.Popen([sys.executable, "-c", "import sys, time; from ppir.engine.run_dir import RunLock; "
                              "RunLock(sys.argv[1]).acquire(); print('held', flush=True); time.sleep(60)", out],
                             cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "held"
    with pytest.raises(RunDirBusy):
        RunLock(out).acquire()
    child.kill()
    child.wait()
    RunLock(out).acquire().release()


def test_rerun_into_an_existing_run_is_refused_and_archive_keeps_it(tmp_path, demo_denoise):
    """A new run over an earlier one changes none of its files; --archive_existing moves it aside
    intact and starts over."""
    out = tmp_path / "run"
    train(demo_denoise, out, iters=2)
    before = file_bytes(out)
    res = run_tool("tools/train.py", "-c", DEMO_CFG, "-o", *tiny_overrides(demo_denoise, out, 2))
    assert_one_line_error(res, "already holds a training run", "--auto_resume", "--archive_existing")
    assert file_bytes(out) == before
    res = train(demo_denoise, out, "--archive_existing", iters=2)
    archived = tmp_path / "run.archived-1"
    assert f"moved the earlier run in {out} to {archived}" in res.stdout
    assert file_bytes(archived) == before
    assert is_complete(out / "latest")
    assert (out / "train.log").read_text().count("training MIRNet_v2 for iterations") == 1  # a fresh log


def test_output_dir_inside_a_dataset_is_refused(demo_denoise):
    res = run_tool("tools/train.py", "-c", DEMO_CFG, "-o",
                   *tiny_overrides(demo_denoise, os.path.join(demo_denoise, "run"), 1))
    assert_one_line_error(res, "Global.output_dir", "lies inside the Train.dataset.root folder",
                          "refusing to write into data ppir reads")
    assert not os.path.exists(os.path.join(demo_denoise, "run"))


def _inpainting_cfg(tmp_path, **train_dataset):
    data = tmp_path / "data"
    for sub in ("images", "masks", "eval_masks", "palette_images"):
        (data / sub).mkdir(parents=True, exist_ok=True)
    (data / "pairs.txt").write_text("a.png m.png 0%-20%\n")
    dataset = {"name": "InpaintingDataset", "root": str(data / "images"), "mask_root": str(data / "masks")}
    return {"Global": {"output_dir": str(tmp_path / "out"), "pretrained_model": None},
            "Train": {"dataset": {"name": "ICTPriorDataset", "palette": {"images": str(data / "palette_images")},
                                  "dataset": dict(dataset, **train_dataset)}},
            "Eval": {"dataset": dict(dataset, mask_root=str(data / "eval_masks"), pairs=str(data / "pairs.txt"))}}


@pytest.mark.parametrize("where, key", [("masks", "Train.dataset.dataset.mask_root"),
                                        ("eval_masks", "Eval.dataset.mask_root"),
                                        ("palette_images", "Train.dataset.palette.images"),
                                        ("pairs.txt", "Eval.dataset.pairs")])
def test_output_dir_in_any_dataset_path_is_refused(tmp_path, where, key):
    """Every dataset path the config names guards the output dir, not only `root`: with
    save_val_images a run inside the mask folder would turn its validation PNGs into masks."""
    from ppir.engine.trainer import check_output_dir

    cfg = _inpainting_cfg(tmp_path)
    cfg["Global"]["output_dir"] = str(tmp_path / "data" / where / "run") if "." not in where else \
        str(tmp_path / "data" / where)
    with pytest.raises(PpirError, match=f"Global.output_dir .* the {key}"):
        check_output_dir(cfg)
    cfg["Global"]["output_dir"] = str(tmp_path / "out")
    check_output_dir(cfg)  # outside every dataset: fine


def test_dataset_under_the_runs_image_folder_is_refused(tmp_path):
    """A dataset inside <output_dir>/val_images would be overwritten by the next validation."""
    from ppir.engine.trainer import check_output_dir

    cfg = _inpainting_cfg(tmp_path, mask_root=str(tmp_path / "out" / "val_images" / "iter_10"))
    with pytest.raises(ConfigError, match=r"Train.dataset.dataset.mask_root .* lies inside .*val_images"):
        check_output_dir(cfg)


def test_unwritable_output_dir_is_one_line(tmp_path, demo_denoise):
    """An output dir that cannot be created (here: below a regular file) is named in one line."""
    blocker = tmp_path / "file"
    blocker.write_text("x")
    res = run_tool("tools/train.py", "-c", DEMO_CFG, "-o", *tiny_overrides(demo_denoise, blocker / "run", 1))
    assert_one_line_error(res, "cannot write to Global.output_dir", str(blocker / "run"))


def test_failed_checkpoint_write_leaves_no_temporary_dir(tmp_path, monkeypatch):
    """A full disk while saving: CheckpointError naming the folder, no .tmp-* left, latest unchanged."""
    import errno

    import ppir.engine.checkpoint as ckpt_mod

    manager = CheckpointManager(str(tmp_path), keep_max=3)
    manager.save(1, {"model.pdparams": {"w": paddle.ones([2])}}, {})

    def full_disk(obj, path):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(ckpt_mod, "_save", full_disk)
    with pytest.raises(CheckpointError, match="No space left on device; the previous checkpoints are intact"):
        manager.save(2, {"model.pdparams": {"w": paddle.ones([2])}}, {})
    assert not [d for d in os.listdir(tmp_path) if d.startswith(".tmp-")]
    assert os.readlink(tmp_path / "latest") == "iter_1"


# ---- resume: exact or refused -----------------------------------------------------------------

def test_changed_config_on_auto_resume_is_refused_unless_allowed(tmp_path, demo_denoise):
    """A learning-rate change on --auto_resume is refused with the difference named; with
    --allow_config_change it resumes and logs the change. Changing only Global.iters is free."""
    out = tmp_path / "run"
    train(demo_denoise, out, iters=2)
    res = run_tool("tools/train.py", "-c", DEMO_CFG, "-o", *tiny_overrides(demo_denoise, out, 3),
                   "LRScheduler.learning_rate=0.48", "--auto_resume")
    assert_one_line_error(res, "LRScheduler.learning_rate: 0.001 -> 0.48", "--allow_config_change")
    assert os.readlink(out / "latest") == "iter_2"
    res = train(demo_denoise, out, "LRScheduler.learning_rate=0.48", "--auto_resume",
                "--allow_config_change", iters=3)
    assert "resuming with a changed config: LRScheduler.learning_rate" in res.stdout
    assert "at iteration 2" in res.stdout


def test_config_changes_lists_what_breaks_exact_resume():
    """Schedule lengths and logging are free to change; the data, model and optimizer are not."""
    saved = {"Global": {"iters": 4, "seed": 0, "log_interval": 1}, "Train": {"num_workers": 0, "batch_size": 2},
             "Eval": {"metrics": []}}
    now = {"Global": {"iters": 8, "seed": 1, "log_interval": 5}, "Train": {"num_workers": 2, "batch_size": 2},
           "Eval": {"metrics": [{"name": "PSNR"}]}}
    assert config_changes(saved, now) == ["Global.seed: 0 -> 1"]


def test_iters_below_the_checkpoint_is_refused(tmp_path, demo_denoise):
    out = tmp_path / "run"
    train(demo_denoise, out, iters=2)
    res = run_tool("tools/train.py", "-c", DEMO_CFG, "-o", *tiny_overrides(demo_denoise, out, 1), "--auto_resume")
    assert_one_line_error(res, "Global.iters=1 is below the iteration of the checkpoint to resume, 2")


def test_dangling_latest_falls_back_to_the_newest_complete_checkpoint(tmp_path, demo_denoise):
    """`latest` pointing at a deleted dir: --auto_resume says so and continues from iter_2, not from 0."""
    out = tmp_path / "run"
    train(demo_denoise, out, "Global.keep_checkpoint_max=5", iters=4)
    shutil.rmtree(out / "iter_4")
    res = train(demo_denoise, out, "--auto_resume", "Global.keep_checkpoint_max=5", iters=4)
    assert "which is missing or incomplete; using the newest complete checkpoint iter_2" in res.stdout
    assert "at iteration 2" in res.stdout
    assert os.readlink(out / "latest") == "iter_4"


@pytest.mark.parametrize("name", ["model.pdopt", "state.pdstates"])
def test_truncated_checkpoint_file_is_one_line(tmp_path, demo_denoise, name):
    out = tmp_path / "run"
    train(demo_denoise, out, iters=2)
    victim = out / "iter_2" / name
    victim.write_bytes(victim.read_bytes()[:40])
    res = run_tool("tools/train.py", "-c", DEMO_CFG, "-o", *tiny_overrides(demo_denoise, out, 4), "--auto_resume")
    assert_one_line_error(res, "cannot read the", str(victim))


# ---- bad data never hangs; validation failures keep the checkpoint -----------------------------

def corrupt_copy(demo, tmp_path, split, relpath):
    """A copy of the demo dataset with one image replaced by garbage bytes; returns its root."""
    root = tmp_path / "data"
    shutil.copytree(demo, root)
    (root / split / relpath).write_bytes(b"not an image")
    return root


@pytest.mark.parametrize("workers", [0, 2])
def test_corrupt_training_image_ends_the_run_promptly(tmp_path, demo_denoise, workers):
    """A sample that cannot be read stops training within seconds (exit 2, the file named), with
    and without worker processes: no traceback from a loader thread, no hang."""
    name = sorted(os.listdir(os.path.join(demo_denoise, "train", "input")))[0]
    root = corrupt_copy(demo_denoise, tmp_path, "train", f"input/{name}")
    # 30 iterations read 32 samples: the whole 24-image training split, the corrupt one included.
    res = run_tool("tools/train.py", "-c", DEMO_CFG, "-o", *tiny_overrides(root, tmp_path / "run", 30),
                   f"Train.num_workers={workers}", timeout=120)
    assert_one_line_error(res, "cannot load sample", name, "cannot decode image")


def test_bad_validation_image_stops_the_run_after_saving(tmp_path, demo_denoise):
    """Validation that cannot read an image stops the run (exit 2) naming the checkpoint that was
    saved before validating; --auto_resume can continue from it."""
    name = sorted(os.listdir(os.path.join(demo_denoise, "val", "input")))[0]
    root = corrupt_copy(demo_denoise, tmp_path, "val", f"input/{name}")
    overrides = tiny_overrides(root, tmp_path / "run", 4)
    overrides[overrides.index("Global.eval_interval=0")] = "Global.eval_interval=2"
    res = run_tool("tools/train.py", "-c", DEMO_CFG, "-o", *overrides)
    assert_one_line_error(res, "validation at iteration 2 failed", name, "The checkpoint of iteration 2 is saved")
    assert is_complete(tmp_path / "run" / "iter_2")


def test_sigterm_saves_the_iteration_and_resume_is_exact(tmp_path, demo_denoise, straight_run):  # noqa: F811
    """SIGTERM (what schedulers send): the run finishes the current iteration, saves it, exits 143
    with one line; --auto_resume then ends bit-identical to an uninterrupted run."""
    out = tmp_path / "run"
    cmd = [sys.executable, os.path.join(ROOT, "tools/train.py"), "-c", DEMO_CFG, "-o",
           *tiny_overrides(demo_denoise, out, 6)]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    for line in proc.stdout:
        if "iter 2/6" in line or time.time() > deadline:
            break
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, err[-2000:]
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("stopped: SIGTERM received: saved iteration"), err[-2000:]
    saved = int(os.readlink(out / "latest")[5:])
    assert saved >= 2 and is_complete(out / "latest")
    train(demo_denoise, out, "--auto_resume", iters=6)
    assert_same_weights(straight_run / "latest", out / "latest")
