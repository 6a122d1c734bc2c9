"""CTSDG export and deployment: tools/export.py on the demo config, the Paddle Inference model
checked against dygraph at 256x256 and 128x256 (a non-square multiple of 128) with realistic hole
masks, oneDNN on and off, and deploy/infer.py --input/--mask on a file and on a folder."""
import importlib.util
import os

import numpy as np
import paddle
import pytest
import yaml

from tests.conftest import ROOT, run_tool

DEMO_CFG = "configs/demo/ctsdg_demo.yml"


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    from ppir.config import load_config
    from ppir.models import build_model

    root = tmp_path_factory.mktemp("ctsdg_export")
    paddle.set_device("cpu")
    paddle.seed(5)
    model = build_model(load_config(DEMO_CFG))
    model.set_train(False)
    weights = str(root / "generator.pdparams")
    paddle.save(model.net.state_dict(), weights)
    save_dir = root / "model"
    proc = run_tool("tools/export.py", "-c", DEMO_CFG, "-o", f"Global.pretrained_model={weights}",
                    "--save_dir", str(save_dir), "--atol", "5e-3", "--tune_sizes", "64x64", timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return {"dir": str(save_dir), "model": model, "root": root, "stdout": proc.stdout}


def _case(h, w, seed):
    import cv2

    from ppir.data.masks import generate_mask

    rng = np.random.default_rng(seed)
    coarse = rng.random((h // 16, w // 16, 3)).astype(np.float32)
    img = cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC).clip(0, 1)
    return img, generate_mask((h, w), rng, (0.2, 0.5)).astype(np.float32)


def test_inference_yml_describes_the_three_inputs(exported):
    """inference.yml lists image ([-1, 1]), edge and mask (1 = known) in the graph's order, the
    ctsdg_edges host step on the masked input, a composited [-1, 1] output and padding to 128."""
    with open(os.path.join(exported["dir"], "inference.yml")) as f:
        spec = yaml.safe_load(f)
    assert [(i["name"], i["channels"]) for i in spec["inputs"]] == [("image", 3), ("edge", 2), ("mask", 1)]
    assert spec["inputs"][0]["value_range"] == [-1.0, 1.0]
    assert spec["inputs"][2]["mask_convention"] == "1 = known"
    assert spec["host_steps"] == [{"name": "ctsdg_edges", "source": "input", "sigma": 2.0, "official_wrap": True}]
    assert spec["output"]["composite"] is True and spec["pad_multiple"] == 128
    assert "check paddle_inference_onednn_on" in exported["stdout"]


@pytest.mark.parametrize("onednn", [True, False])
def test_paddle_inference_matches_dygraph_square_and_non_square(exported, onednn):
    """The static model equals the dygraph `predict` (max abs diff <= 5e-3 on [0, 1] results,
    about one 8-bit step: oneDNN's convolutions round differently and the partial
    convolutions' mask ratios, up to C*k*k, amplify it; oneDNN off is far closer) at
    256x256 and 128x256 with stroke/ellipse holes, fed exactly as deploy/infer.py feeds it."""
    from ppir.inference import host as io
    from ppir.inference.predictor import open_graph
    from ppir.inference.spec import load_spec

    predictor = open_graph(exported["dir"], device="cpu", enable_mkldnn=onednn)
    spec = load_spec(exported["dir"])
    for h, w in ((256, 256), (128, 256)):
        img, mask = _case(h, w, seed=h + w)
        sample = io.host_sample(img, mask)
        out = predictor.run_concat(io.graph_inputs(sample, spec)[None])[0]
        got = io.postprocess(out, spec, sample)
        with paddle.no_grad():
            want = exported["model"].predict({k: paddle.to_tensor(v[None]) for k, v in sample.items()})
        diff = np.abs(got - want.numpy()[0].transpose(1, 2, 0))
        assert diff.max() <= 5e-3, (h, w, onednn, diff.max())
        assert diff[mask == 0].max() == 0.0  # known pixels come from the input


def test_deploy_infer_on_files_and_folders(exported, tmp_path):
    """deploy/infer.py --input/--mask: one file pair, then a folder paired by file name (one
    image not a multiple of 128); each result keeps the known pixels and fills the holes."""
    from ppir.data.image_io import read_image, write_image

    images, masks = tmp_path / "images", tmp_path / "masks"
    images.mkdir()
    masks.mkdir()
    for name, (h, w) in (("a", (128, 128)), ("b", (96, 160))):
        img, mask = _case(h, w, seed=w)
        write_image(str(images / f"{name}.png"), img)
        write_image(str(masks / f"{name}.png"), np.repeat(mask[..., None], 3, axis=2))
    spec = importlib.util.spec_from_file_location("ppir_deploy_infer", os.path.join(ROOT, "deploy", "infer.py"))
    infer = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(infer)
    assert infer.main(["--model_dir", exported["dir"], "--input", str(images / "a.png"),
                       "--mask", str(masks / "a.png"), "--output", str(tmp_path / "one.png")]) == 0
    assert infer.main(["--model_dir", exported["dir"], "--input", str(images), "--mask", str(masks),
                       "--output", str(tmp_path / "many")]) == 0
    for name, out in (("a", tmp_path / "one.png"), ("a", tmp_path / "many" / "a.png"),
                      ("b", tmp_path / "many" / "b.png")):
        img, res = read_image(str(images / f"{name}.png")), read_image(str(out))
        hole = read_image(str(masks / f"{name}.png"))[..., 0] > 0.5
        assert res.shape == img.shape
        np.testing.assert_allclose(res[~hole], img[~hole], atol=1 / 255 + 1e-6)
        assert np.abs(res[hole]).mean() > 0.01  # filled, not left black
