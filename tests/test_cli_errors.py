"""Every entry point answers bad input with one `error: ...` line on stderr and exit code 2."""
import os

import cv2
import numpy as np
import pytest

from tests.conftest import run_tool, tiny_overrides
from tests.test_trainer import DEMO_CFG


def assert_one_line_error(res, *fragments):
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert res.returncode == 2, res.stdout[-1500:] + res.stderr[-1500:]
    assert len(lines) == 1 and lines[0].startswith("error: "), res.stderr[-2000:]
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


@pytest.mark.parametrize("args, fragments", [
    (["-c", "configs/nope.yml"], ["config file not found", "configs/nope.yml"]),
    (["-c", DEMO_CFG, "-o", "Global.itres=5"], ["unknown config key 'Global.itres'"]),
    (["-c", DEMO_CFG, "-o", "Model.network.n_fet=8"], ["n_fet"]),
    (["-c", DEMO_CFG, "-o", "Train.dataset={'name': 'PairedImageDataset', 'root': '/no/such/dir'}"],
     ["dataset folder not found: /no/such/dir"]),
    (["-c", DEMO_CFG, "--resume", "/no/such/ckpt"], ["checkpoint dir not found"]),
])
def test_train_bad_input(args, fragments, tmp_path):
    res = run_tool("tools/train.py", *args, f"Global.output_dir={tmp_path / 'out'}")
    assert_one_line_error(res, *fragments)


def test_missing_base_file(tmp_path):
    cfg = tmp_path / "child.yml"
    cfg.write_text("_base_: gone.yml\n")
    assert_one_line_error(run_tool("tools/train.py", "-c", str(cfg)), "_base_ file not found", "gone.yml")


def test_eval_refuses_weights_that_do_not_fit(tmp_path, demo_denoise):
    """A checkpoint of another width: the missing/unexpected/mismatched keys are listed."""
    out = tmp_path / "run"
    res = run_tool("tools/train.py", "-c", DEMO_CFG, "-o", *tiny_overrides(demo_denoise, out, 1))
    assert res.returncode == 0, res.stderr[-2000:]
    res = run_tool("tools/eval.py", "-c", DEMO_CFG, "-o", "Model.network.n_feat=32",
                   f"Global.pretrained_model={out / 'latest'}", f"Eval.dataset.root={demo_denoise}")
    assert_one_line_error(res, "does not fit MIRNet_v2", "shape mismatch", "conv_in.weight [16, 3, 3, 3] vs [32, 3, 3, 3]")


def test_eval_without_weights():
    assert_one_line_error(run_tool("tools/eval.py", "-c", DEMO_CFG), "Global.pretrained_model")


def test_eval_with_a_missing_weights_file():
    res = run_tool("tools/eval.py", "-c", DEMO_CFG, "-o", "Global.pretrained_model=/no/such.pdparams")
    assert_one_line_error(res, "weights file not found: /no/such.pdparams")


def test_predict_refuses_a_corrupt_image(tmp_path, demo_denoise):
    out = tmp_path / "run"
    assert run_tool("tools/train.py", "-c", DEMO_CFG, "-o", *tiny_overrides(demo_denoise, out, 1)).returncode == 0
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG not really")
    res = run_tool("tools/predict.py", "-c", DEMO_CFG, "-o", "Model.network.n_feat=16",
                   f"Global.pretrained_model={out / 'latest'}", "--input", str(bad), "--output", str(tmp_path / "o.png"))
    assert_one_line_error(res, "cannot decode image", "bad.png")
    assert not (tmp_path / "o.png").exists()
    rgba = np.full((20, 20, 4), 255, np.uint8)
    rgba[..., 3] = 10
    cv2.imwrite(str(tmp_path / "t.png"), rgba)
    res = run_tool("tools/predict.py", "-c", DEMO_CFG, "-o", "Model.network.n_feat=16",
                   f"Global.pretrained_model={out / 'latest'}", "--input", str(tmp_path / "t.png"),
                   "--output", str(tmp_path / "o.png"))
    assert_one_line_error(res, "transparent alpha")


def test_predict_restores_odd_sizes(tmp_path, demo_denoise):
    """A 30x21 image (not a multiple of 4) is padded, restored and cropped back to 30x21."""
    out = tmp_path / "run"
    assert run_tool("tools/train.py", "-c", DEMO_CFG, "-o", *tiny_overrides(demo_denoise, out, 1)).returncode == 0
    cv2.imwrite(str(tmp_path / "odd.png"), np.random.default_rng(0).integers(0, 255, (21, 30, 3), dtype=np.uint8))
    res = run_tool("tools/predict.py", "-c", DEMO_CFG, "-o", "Model.network.n_feat=16",
                   f"Global.pretrained_model={out / 'latest'}", "--input", str(tmp_path / "odd.png"),
                   "--output", str(tmp_path / "restored" / "odd.png"))
    assert res.returncode == 0, res.stderr[-2000:]
    assert cv2.imread(str(tmp_path / "restored" / "odd.png")).shape == (21, 30, 3)
    assert os.path.getsize(tmp_path / "restored" / "odd.png") > 0
