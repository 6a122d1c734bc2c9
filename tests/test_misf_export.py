"""MISF export and deployment: the two-input graph (image, mask 1 = hole) exports with dynamic
sizes, non-square included (the graph pads to a square), and deploy/infer.py --mask writes the
composite: known pixels unchanged, holes filled by the network."""
import os

import numpy as np
import pytest
import yaml

from tests.conftest import ROOT, run_tool

DEMO_CFG = os.path.join(ROOT, "configs", "demo", "misf_demo.yml")


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """The demo generator (4 residual blocks) with seeded non-trivial weights, exported."""
    import paddle

    from ppir.models import build_network
    from tests.test_misf_arch import seeded_state

    root = tmp_path_factory.mktemp("misf_export")
    net = build_network({"name": "MISFGenerator", "residual_blocks": 4})
    state = seeded_state({k: tuple(v.shape) for k, v in net.state_dict().items()}, 1.0)
    weights = str(root / "gen.pdparams")
    paddle.save({k: paddle.to_tensor(v) for k, v in state.items()}, weights)
    proc = run_tool("tools/export.py", "-c", DEMO_CFG, "-o", f"Global.pretrained_model={weights}",
                    "--save_dir", str(root / "model"), "--tune_sizes", "64x64")
    assert proc.returncode == 0, proc.stderr
    return root


def test_export_spec_and_checks(exported):
    """inference.yml lists both graph inputs and a composited output; the square and the
    non-square checks agree with dygraph to 1e-5."""
    with open(exported / "model" / "inference.yml") as f:
        spec = yaml.safe_load(f)
    assert spec["model_name"] == "MISFGenerator" and spec["pad_multiple"] == 4
    assert [i["name"] for i in spec["inputs"]] == ["image", "mask"]
    assert spec["inputs"][1]["mask_convention"] == "1 = hole" and spec["output"]["composite"]
    assert max(spec["export"]["max_abs_diff"].values()) <= 1e-5


def test_deploy_with_mask_fills_only_the_holes(exported, tmp_path):
    """deploy/infer.py --input IMG --mask MASK on a 50x70 image: output size kept, pixels
    outside the hole unchanged (up to 8-bit rounding), the hole differs from the black input."""
    import cv2

    rng = np.random.default_rng(0)
    img = cv2.resize(rng.integers(0, 256, (7, 9, 3)).astype(np.uint8), (70, 50),
                     interpolation=cv2.INTER_CUBIC)
    mask = np.zeros((50, 70), np.uint8)
    mask[15:35, 20:45] = 255
    cv2.imwrite(str(tmp_path / "img.png"), img[:, :, ::-1])
    cv2.imwrite(str(tmp_path / "img_mask.png"), mask)
    out_dir = tmp_path / "out"
    proc = run_tool("deploy/infer.py", "--model_dir", str(exported / "model"), "--input",
                    str(tmp_path / "img.png"), "--mask", str(tmp_path / "img_mask.png"),
                    "--output", str(out_dir))
    assert proc.returncode == 0, proc.stderr
    out = cv2.imread(str(out_dir / "img.png"))[:, :, ::-1].astype(int)
    assert out.shape == img.shape
    known = mask == 0
    assert np.abs(out[known] - img[known].astype(int)).max() <= 1
    assert out[~known].mean() > 5
