"""tools/ict_inpaint.py, ICT end to end (tiny seeded networks, 32x32 images, an 8x8 prior):
seeded sampling is reproducible, seeds differ, the Paddle Inference path samples the same
tokens as eager, and every sample is written."""
import os

import numpy as np
import paddle
import pytest
import yaml

from ppir.data.image_io import write_image
from ppir.models import build_model
from tools import ict_inpaint

PALETTE = np.stack(np.meshgrid(np.arange(4) * 80, np.arange(4) * 80, np.arange(4) * 80,
                               indexing="ij"), -1).reshape(-1, 3).astype(np.float32)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("ict")
    np.save(root / "palette.npy", PALETTE / 127.5 - 1)
    transformer = {"Model": {"name": "ICTTransformerModel", "palette": str(root / "palette.npy"),
                             "prior_size": 8, "top_k": 40,
                             "networks": {"transformer": {
                                 "name": "ICTTransformer", "vocab_size": 64, "block_size": 64,
                                 "n_layer": 1, "n_head": 2, "n_embd": 32, "embd_pdrop": 0.0,
                                 "resid_pdrop": 0.0, "attn_pdrop": 0.0}}}}
    upsampler = {"Model": {"name": "ICTUpsamplerModel", "vgg_weights": None,
                           "perceptual_weight": 0.0, "style_weight": 0.0,
                           "networks": {"generator": {"name": "ICTUpsampler", "residual_blocks": 1},
                                        "discriminator": {"name": "MISFDiscriminator"}}}}
    paddle.seed(5)
    for name, cfg in (("transformer", transformer), ("upsampler", upsampler)):
        with open(root / f"{name}.yml", "w") as f:
            yaml.safe_dump(cfg, f, sort_keys=False)
        model = build_model(cfg)
        paddle.save(model.net.state_dict(), str(root / f"{name}.pdparams"))
    rng = np.random.default_rng(0)
    write_image(str(root / "image.png"), rng.random((32, 32, 3)).astype(np.float32))
    mask = np.zeros((32, 32, 3), np.float32)
    mask[8:24, 4:24] = 1.0  # about 40 % of the 8x8 token grid
    write_image(str(root / "mask.png"), mask)
    return root


def run(root, out, seed, n_samples=2, backend="eager"):
    ict_inpaint.main(["--transformer", str(root / "transformer.yml"),
                      "--transformer_weights", str(root / "transformer.pdparams"),
                      "--upsampler", str(root / "upsampler.yml"),
                      "--upsampler_weights", str(root / "upsampler.pdparams"),
                      "--image", str(root / "image.png"), "--mask", str(root / "mask.png"),
                      "--size", "32", "--n_samples", str(n_samples), "--seed", str(seed),
                      "--backend", backend, "--output", str(out)])
    return {name: (out / name).read_bytes() for name in sorted(os.listdir(out))}


def test_fixed_seed_repeats_and_other_seeds_differ(setup, tmp_path):
    """The same seed gives byte-identical priors and completions twice; another seed gives other
    ones; the n_samples of one run differ from each other; every sample is written."""
    first = run(setup, tmp_path / "a", seed=3)
    again = run(setup, tmp_path / "b", seed=3)
    other = run(setup, tmp_path / "c", seed=4)
    assert sorted(first) == ["completion_0.png", "completion_1.png", "mask.png", "masked.png",
                             "prior_0.png", "prior_1.png"]
    assert first == again
    assert first["prior_0.png"] != other["prior_0.png"]
    assert first["completion_0.png"] != other["completion_0.png"]
    assert first["prior_0.png"] != first["prior_1.png"]


def test_paddle_inference_backend_samples_the_same_completions(setup, tmp_path):
    """The exported logits graph through Paddle Inference (oneDNN) draws the same tokens as the
    dygraph transformer for the same seed, hence the same files."""
    assert run(setup, tmp_path / "eager", seed=7, n_samples=1) == \
        run(setup, tmp_path / "pi", seed=7, n_samples=1, backend="inference")


def test_export_and_deploy_match_the_pipeline(setup, tmp_path):
    """tools/ict_export.py writes both stages (each checked against dygraph: logits and the
    upsampler's composite) and deploy/infer.py, driven by that one inference.yml, samples the same
    priors as tools/ict_inpaint.py for the same seed and completions within 1/255 (the upsampler
    graph through oneDNN), every sample written."""
    from deploy import infer
    from ppir.data.image_io import read_image
    from tools import ict_export

    export = tmp_path / "export"
    ict_export.main(["--transformer", str(setup / "transformer.yml"),
                     "--transformer_weights", str(setup / "transformer.pdparams"),
                     "--upsampler", str(setup / "upsampler.yml"),
                     "--upsampler_weights", str(setup / "upsampler.pdparams"),
                     "--save_dir", str(export), "--n_samples", "2", "--seed", "3"])
    spec = yaml.safe_load((export / "inference.yml").read_text())
    assert spec["task"] == "ict" and set(spec["stages"]) == {"transformer", "upsampler"}
    assert max(spec["export_checks"].values()) < 1e-4
    # deploy reads the image at its own size: make the pipeline's working size the same
    ref = run(setup, tmp_path / "ref", seed=3, n_samples=2)
    assert infer.main(["--model_dir", str(export), "--input", str(setup / "image.png"),
                       "--mask", str(setup / "mask.png"), "--output", str(tmp_path / "dep")]) == 0
    got = sorted(n for n in os.listdir(tmp_path / "dep") if not n.startswith("."))  # not the marker
    assert got == ["image_prior0.png", "image_prior1.png", "image_sample0.png", "image_sample1.png"]
    for k in range(2):
        assert (tmp_path / "dep" / f"image_prior{k}.png").read_bytes() == ref[f"prior_{k}.png"]
        ours = read_image(str(tmp_path / "dep" / f"image_sample{k}.png"))
        theirs = read_image(str(tmp_path / "ref" / f"completion_{k}.png"))
        assert np.abs(ours - theirs).max() <= 1 / 255 + 1e-6


def test_export_records_the_fastest_logits_path_and_deploy_runs_it(setup, tmp_path, capsys):
    """With --onnx, tools/ict_export.py times the transformer's CPU paths (oneDNN on/off,
    onnxruntime) and records the fastest as stages.transformer.default_path; deploy/infer.py
    runs that path by default and says so with --benchmark, and the forced onnxruntime path
    samples the dygraph pipeline's priors for the same seed."""
    from deploy import infer
    from tools import ict_export

    export = tmp_path / "export"
    ict_export.main(["--transformer", str(setup / "transformer.yml"),
                     "--transformer_weights", str(setup / "transformer.pdparams"),
                     "--upsampler", str(setup / "upsampler.yml"),
                     "--upsampler_weights", str(setup / "upsampler.pdparams"),
                     "--save_dir", str(export), "--onnx"])
    stage = yaml.safe_load((export / "inference.yml").read_text())["stages"]["transformer"]
    timings = stage["cpu_paths"]["median_s_per_forward"]
    assert set(timings) == {"paddle_onednn_on", "paddle_onednn_off", "onnxruntime"}
    fastest = min(timings, key=timings.get)
    assert stage["default_path"] == {"backend": "onnxruntime" if fastest == "onnxruntime" else "paddle",
                                     "enable_mkldnn": fastest == "paddle_onednn_on"}
    ref = run(setup, tmp_path / "ref", seed=0, n_samples=1)
    for extra, shown in (([], "tools/ict_export.py measured"),
                         (["--backend", "onnxruntime"], "onnxruntime (as requested)")):
        out = tmp_path / f"dep{len(extra)}"
        capsys.readouterr()
        assert infer.main(["--model_dir", str(export), "--input", str(setup / "image.png"),
                           "--mask", str(setup / "mask.png"), "--output", str(out),
                           "--benchmark", "True"] + extra) == 0
        printed = capsys.readouterr().out
        assert "ICT transformer: " in printed and shown in printed
        assert (out / "image_prior0.png").read_bytes() == ref["prior_0.png"]
