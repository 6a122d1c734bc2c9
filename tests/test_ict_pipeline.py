"""ICT end to end through the inference library (tiny seeded networks, 32x32 images, an 8x8
prior): tools/ict_export.py joins two separately trained stages into one export, `ppir.load` and
deploy/infer.py run it; seeded sampling is reproducible, seeds differ, every CPU path samples
the dygraph pipeline's tokens, and every sample is written."""
import os

import numpy as np
import paddle
import pytest
import yaml

from ppir.data.image_io import write_image
from ppir.models import build_model
import ppir
from tools import ict_export

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
    export = root / "export"
    ict_export.main(["--transformer", str(root / "transformer.yml"),
                     "--transformer_weights", str(root / "transformer.pdparams"),
                     "--upsampler", str(root / "upsampler.yml"),
                     "--upsampler_weights", str(root / "upsampler.pdparams"),
                     "--save_dir", str(export), "--n_samples", "2", "--seed", "3", "--onnx"])
    return root


def dygraph(root, seed, n_samples):
    """The pipeline on the dygraph stage models: [(prior uint8, completion HWC [0, 1])]."""
    from ppir.config import load_config
    from ppir.data.image_io import read_image
    from ppir.data.masks import read_mask
    from ppir.engine.checkpoint import build_trained_model
    from ppir.inference.ict import complete
    from ppir.models.ict_sampling import paddle_logits_fn

    stages = [build_trained_model(load_config(str(root / f"{n}.yml"), [f"Global.pretrained_model={root / n}.pdparams"]))
              for n in ("transformer", "upsampler")]
    image = read_image(str(root / "image.png")).transpose(2, 0, 1)
    mask = read_mask(str(root / "mask.png"))[None]

    def upsample(img, hole, prior):
        feeds = {"input": img[None], "mask": hole[None], "prior": prior[None]}
        return stages[1].predict({k: paddle.to_tensor(v) for k, v in feeds.items()}).numpy()[0]

    return [(prior, out.transpose(1, 2, 0)) for prior, out in
            complete(image, mask, stages[0].palette, 8, paddle_logits_fn(stages[0].net), upsample,
                     n_samples, 40, 1.0, seed)]


def test_fixed_seed_repeats_and_other_seeds_differ(setup):
    """The same seed gives byte-identical completions twice; another seed gives other ones; the
    n_samples of one call differ from each other; defaults come from the export (2 samples)."""
    model = ppir.load(str(setup / "export"))
    image, mask = str(setup / "image.png"), str(setup / "mask.png")
    first = model(image, mask=mask)
    assert len(first) == 2 and all(o.shape == (32, 32, 3) and o.dtype == np.uint8 for o in first)
    assert all(np.array_equal(a, b) for a, b in zip(first, model(image, mask=mask, seed=3)))
    other = model(image, mask=mask, seed=4, n_samples=1)
    assert len(other) == 1 and not np.array_equal(other[0], first[0])
    assert not np.array_equal(first[0], first[1])


@pytest.mark.parametrize("flags", [{"backend": "paddle", "enable_mkldnn": True},
                                   {"backend": "paddle", "enable_mkldnn": False}, {"backend": "onnxruntime"}])
def test_every_path_samples_the_dygraph_tokens(setup, flags):
    """The exported logits graph on each CPU path draws the dygraph pipeline's tokens for a seed
    (the same priors), and the completions agree within 1/255."""
    model = ppir.load(str(setup / "export"), **flags)
    outs = model(str(setup / "image.png"), mask=str(setup / "mask.png"), seed=7, n_samples=2)
    ref = dygraph(setup, seed=7, n_samples=2)
    for k, (prior, completion) in enumerate(ref):
        assert np.array_equal(model.last_run["priors"][0][k], prior)
        assert np.abs(outs[k].astype(np.float64) / 255 - completion).max() <= 1 / 255 + 1e-6


def test_export_records_the_fastest_logits_path_and_deploy_runs_it(setup, tmp_path, capsys):
    """The export times the transformer's CPU paths (oneDNN on/off, onnxruntime) and records the
    fastest as its default; deploy/infer.py runs it, writes every sample and prior, and writes
    the API's bytes."""
    from deploy import infer

    export = setup / "export"
    spec = yaml.safe_load((export / "inference.yml").read_text())
    assert spec["task"] == "ict" and set(spec["stages"]) == {"transformer", "upsampler"}
    stage = spec["stages"]["transformer"]
    assert max(stage["max_abs_diff"].values()) < 1e-4 and max(spec["stages"]["upsampler"]["max_abs_diff"].values()) < 1e-4
    timings = stage["cpu_paths"]["timings"][0]["median_ms"]
    assert set(timings) == {"paddle_onednn_on", "paddle_onednn_off", "onnxruntime"}
    fastest = min(timings, key=timings.get)
    assert stage["default_path"] == {"backend": "onnxruntime" if fastest == "onnxruntime" else "paddle",
                                     "enable_mkldnn": fastest == "paddle_onednn_on"}
    capsys.readouterr()
    assert infer.main(["--model_dir", str(export), "--input", str(setup / "image.png"),
                       "--mask", str(setup / "mask.png"), "--output", str(tmp_path / "dep"),
                       "--benchmark", "True", "--quiet"]) == 0
    assert "measured at export" in capsys.readouterr().out
    got = sorted(n for n in os.listdir(tmp_path / "dep") if not n.startswith("."))  # not the marker
    assert got == ["image_prior0.png", "image_prior1.png", "image_sample0.png", "image_sample1.png"]
    api = ppir.load(str(export))(str(setup / "image.png"), mask=str(setup / "mask.png"))
    from ppir.data.image_io import read_image

    for k in range(2):
        ours = read_image(str(tmp_path / "dep" / f"image_sample{k}.png"))
        assert np.array_equal(np.round(ours * 255).astype(np.uint8), api[k])


def test_sampling_options_are_checked_before_any_work(setup, tmp_path):
    """--n_samples below 1 and a negative --seed are one-line errors before anything is read or
    written (they used to raise ValueError, or silently write one sample)."""
    from deploy import infer
    from ppir.errors import ConfigError

    for bad in (["--n_samples", "0"], ["--n_samples", "-2"], ["--seed", "-1"]):
        with pytest.raises(SystemExit):
            infer.parse_args(["--model_dir", str(setup / "export"), "--input", "x.png"] + bad)
    with pytest.raises(ConfigError, match="n_samples must be an integer >= 1"):
        ppir.load(str(setup / "export"))(str(setup / "image.png"), mask=str(setup / "mask.png"), n_samples=0)
    assert not (tmp_path / "out").exists()
