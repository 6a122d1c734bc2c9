"""ICTModel, both ICT stages in one config (configs/demo/ict_demo.yml shrunk to seconds: a 1-layer
transformer over an 8 x 8 grid of 64 colours, a 1-block upsampler, 32 x 32 crops, the smallest
the PatchGAN discriminator gives an output for): it trains with tools/train.py's loop, its
checkpoint holds every network, tools/export.py writes both stages, and deploy/infer.py runs that
export."""
import os

import numpy as np
import paddle
import pytest
import yaml

from ppir.config import load_config
from ppir.data.image_io import read_image, write_image
from ppir.errors import CheckpointError, ConfigError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = os.path.join(ROOT, "configs", "demo", "ict_demo.yml")
PALETTE = np.stack(np.meshgrid(np.arange(4) * 80, np.arange(4) * 80, np.arange(4) * 80,
                               indexing="ij"), -1).reshape(-1, 3).astype(np.float32)


def tiny(palette, output_dir):
    steps = [{"name": "ict_tokens", "palette": palette, "size": 8}]
    return [f"Global.output_dir={output_dir}", "Global.iters=2", "Global.log_interval=1",
            "Global.eval_interval=0", "Global.save_interval=2", "Global.use_visualdl=False",
            "Global.device=cpu", f"Model.palette={palette}", "Model.prior_size=8",
            "Model.networks.transformer.block_size=64", "Model.networks.transformer.n_layer=1",
            "Model.networks.transformer.n_head=2", "Model.networks.transformer.n_embd=32",
            "Model.networks.generator.residual_blocks=1", "LRScheduler.transformer.warmup_tokens=64",
            "LRScheduler.transformer.final_tokens=256", "Train.batch_size=2",
            f"Train.dataset.palette={palette}", "Train.dataset.prior_size=8",
            "Train.dataset.dataset.size=32", f"Train.dataset.dataset.host_steps={steps}"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Two training iterations; returns (resolved config file, checkpoint dir, train.log text)."""
    from ppir.engine.trainer import Trainer

    root = tmp_path_factory.mktemp("ict_joint")
    np.save(root / "palette.npy", PALETTE / 127.5 - 1)
    out = root / "train"
    paddle.seed(0)
    Trainer(load_config(CONFIG, tiny(str(root / "palette.npy"), out))).train()
    return out / "config.yml", out / "latest", (out / "train.log").read_text()


def test_joint_step_trains_every_network_and_checkpoints_them_all(trained):
    """Each iteration logs the transformer's loss and the upsampler's G and D losses, and the
    checkpoint holds the three networks (transformer as the primary model.pdparams) with their
    optimizer states, under the networks' own parameter names."""
    from ppir.models import build_model

    cfg_file, ckpt, log = trained
    assert "transformer_loss" in log and "gen_loss" in log and "dis_loss" in log
    assert "non-finite" not in log and "nan" not in log.lower().replace("nan_", "")
    assert "lr_transformer" in log and "lr_generator" in log and "lr_discriminator" in log
    assert sorted(os.listdir(ckpt)) == [
        "COMPLETE", "discriminator.pdopt", "discriminator.pdparams", "generator.pdopt",
        "generator.pdparams", "model.pdopt", "model.pdparams", "state.pdstates"]
    model = build_model(load_config(str(cfg_file)))
    assert list(model.networks) == ["transformer", "generator", "discriminator"]
    for name, file in (("transformer", "model.pdparams"), ("generator", "generator.pdparams"),
                       ("discriminator", "discriminator.pdparams")):
        assert set(paddle.load(str(ckpt / file))) == set(model.networks[name].state_dict()), name


def test_export_writes_both_stages_and_deploy_runs_them(trained, tmp_path):
    """tools/export.py on the joint config writes the ICT folder (transformer logits graph,
    upsampler graph, palette, inference.yml `task: ict`, both graphs checked against dygraph),
    and deploy/infer.py completes an image with it: the known pixels kept, the composite within
    1/255 of the dygraph pipeline (ICTModel.predict, the same seed)."""
    from deploy import infer
    from ppir.engine.checkpoint import build_trained_model
    from tools import export

    cfg_file, ckpt, _ = trained
    save = tmp_path / "export"
    assert export.main(["-c", str(cfg_file), "-o", f"Global.pretrained_model={ckpt}",
                        "--save_dir", str(save)]) == 0
    assert sorted(os.listdir(save)) == ["inference.yml", "palette.npy", "transformer", "upsampler"]
    spec = yaml.safe_load((save / "inference.yml").read_text())
    assert spec["task"] == "ict" and set(spec["stages"]) == {"transformer", "upsampler"}
    assert spec["stages"]["transformer"]["prior_size"] == 8
    assert max(v for stage in spec["stages"].values() for v in stage["max_abs_diff"].values()) < 1e-4

    rng = np.random.default_rng(0)
    image = rng.random((32, 32, 3)).astype(np.float32)
    mask = np.zeros((32, 32, 3), np.float32)
    mask[8:24, 4:24] = 1.0
    write_image(str(tmp_path / "image.png"), image)
    write_image(str(tmp_path / "mask.png"), mask)
    assert infer.main(["--model_dir", str(save), "--input", str(tmp_path / "image.png"),
                       "--mask", str(tmp_path / "mask.png"), "--output", str(tmp_path / "out")]) == 0
    ours = read_image(str(tmp_path / "out" / "image_sample0.png"))
    assert (tmp_path / "out" / "image_prior0.png").is_file()

    model = build_trained_model(load_config(str(cfg_file), [f"Global.pretrained_model={ckpt}"]))
    image = read_image(str(tmp_path / "image.png"))
    hole = mask[..., :1].transpose(2, 0, 1)[None]
    ref = model.predict({"input": paddle.to_tensor(image.transpose(2, 0, 1)[None] * (1 - hole)),
                         "mask": paddle.to_tensor(hole)}).numpy()[0].transpose(1, 2, 0)
    assert np.abs(ours - ref).max() <= 1 / 255 + 1e-6
    known = mask == 0
    assert np.abs(ours[known] - image[known]).max() <= 1 / 255 + 1e-6

    # The Python API on the same export and the same files gives deploy/infer.py's bytes; on the
    # config and checkpoint (dygraph) it agrees within 1/255.
    import ppir

    api = ppir.load(str(save))(str(tmp_path / "image.png"), mask=str(tmp_path / "mask.png"))
    assert api[0].dtype == np.uint8 and api[0].shape == (32, 32, 3)
    assert np.array_equal(api[0], np.round(ours * 255).astype(np.uint8))
    eager = ppir.load(str(cfg_file), str(ckpt))(str(tmp_path / "image.png"), mask=str(tmp_path / "mask.png"))
    assert np.abs(eager[0].astype(int) - api[0].astype(int)).max() <= 1


def test_export_needs_both_stages_weights_and_make_weights_writes_them(trained, tmp_path):
    """A weights file holds the transformer only: the export refuses it, naming the generator.
    test_tipc/make_weights.py (TIPC whole_infer) writes every network of the joint model, a
    checkpoint dir tools/export.py accepts."""
    from test_tipc import make_weights
    from tools import export

    cfg_file, ckpt, _ = trained
    with pytest.raises(CheckpointError, match="generator"):
        export.main(["-c", str(cfg_file), "-o", f"Global.pretrained_model={ckpt / 'model.pdparams'}",
                     "--save_dir", str(tmp_path / "refused")])
    assert not (tmp_path / "refused").exists()
    weights = tmp_path / "seeded"
    assert make_weights.main(["-c", str(cfg_file), "--save_dir", str(weights)]) == 0
    assert sorted(os.listdir(weights)) == ["COMPLETE", "discriminator.pdparams",
                                           "generator.pdparams", "model.pdparams"]


def test_joint_model_names_its_three_networks():
    """A joint config without one of the three networks is a one-line ConfigError."""
    from ppir.models.ict_model import ICTModel

    with pytest.raises(ConfigError, match="discriminator, generator, transformer"):
        ICTModel({"transformer": {"name": "ICTTransformer"}, "generator": {"name": "ICTUpsampler"}},
                 palette=PALETTE)


def test_sampled_prior_reaches_the_upsampler(trained):
    """The whole pipeline's completion follows the transformer's sample: two sample seeds that
    draw different priors give different fills (the collapsed demo gave byte-identical images)."""
    from ppir.engine.checkpoint import build_trained_model

    cfg_file, ckpt, _ = trained
    model = build_trained_model(load_config(str(cfg_file), [f"Global.pretrained_model={ckpt}"]))
    rng = np.random.default_rng(0)
    image = paddle.to_tensor(rng.random((1, 3, 16, 16)).astype(np.float32))
    mask = np.zeros((1, 1, 16, 16), np.float32)
    mask[..., 2:14, 2:14] = 1
    mask = paddle.to_tensor(mask)
    outs, priors = [], []
    for seed in (0, 1):
        model.transformer.sample_seed = seed
        priors.append(model.transformer.prior(image.numpy()[0], mask.numpy()[0]))
        outs.append(model.predict({"input": image, "mask": mask}).numpy())
    assert np.abs(priors[0] - priors[1]).max() > 0.1
    assert np.abs(outs[0] - outs[1]).max() > 1e-3
