"""Tests for ppir/models/ctsdg_model.py: the CTSDG task model (losses, training step, BatchNorm
freeze, prediction, export spec).

`ctsdg_train_steps.npz` was made in scratch by running the official training step of
xiefan-guo/ctsdg (`trainer.py` loop body with `criteria/loss.py`, torch 2.13 CPU, Adam lr 2e-4
and 2e-5) for three iterations on batches of two 128x128 demo images ([0, 1], [2, 3], [0, 1]):
generator and discriminator weights from `_seeded_official_state` (tests/test_ctsdg_arch.py,
seeds `gen_seed`/`dis_seed`), VGG16 features from `seeded_vgg_state("VGG16", 0)`, edges and gray
from the official Canny path (recomputed here by the `ctsdg_edges` host step, bit-exact). It
holds the inputs (`target_u8` NCHW, `mask_bits` 1 = hole), every loss term of every step, and
a few tensors after the third step: the generator's `out_layer.0.weight` and
`ec_texture_2.bn.running_mean`, the discriminator's `texture_branch.conv2.0.weight_u` and
`edge_detector.projection.1.running_mean`.
"""
import os

import numpy as np
import paddle
import pytest

from ppir.data.host_steps import run_host_steps
from ppir.engine.amp import NoAmp
from ppir.engine.step import TrainStep
from ppir.models.convert import convert_state_dict
from ppir.models.ctsdg_model import CTSDGModel
from tests.test_ctsdg_arch import _seeded_official_state, _shapes

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures")
LOSS_KEYS = ("g_hole", "g_valid", "g_perceptual", "g_style", "g_adversarial", "g_intermediate",
             "g_loss", "d_loss")


@pytest.fixture(scope="module")
def steps():
    return dict(np.load(os.path.join(FIXTURES, "ctsdg_train_steps.npz")))


def _batches(steps):
    target = steps["target_u8"].astype(np.float32) / np.float32(255)
    n, _, h, w = target.shape
    mask = np.unpackbits(steps["mask_bits"])[:n * h * w].reshape(n, 1, h, w).astype(np.float32)
    edge = np.stack([run_host_steps({"target": t}, [{"name": "ctsdg_edges"}])["edge"] for t in target])
    return [{"target": paddle.to_tensor(target[i]), "mask": paddle.to_tensor(mask[i]),
             "input": paddle.to_tensor(target[i] * (1 - mask[i])), "edge": paddle.to_tensor(edge[i]),
             "index": paddle.to_tensor(np.array(i))} for i in ([0, 1], [2, 3], [0, 1])]


def _seeded_model(steps, **kwargs):
    align = dict(np.load(os.path.join(FIXTURES, "ctsdg_align.npz")))
    model = CTSDGModel(vgg_seed=0, **kwargs)
    for arch, name, prefix, seed in (("CTSDGGenerator", "generator", "gen", steps["gen_seed"]),
                                     ("CTSDGDiscriminator", "discriminator", "dis", steps["dis_seed"])):
        state = _seeded_official_state([str(k) for k in align[f"{prefix}_keys"]],
                                       _shapes(align[f"{prefix}_shapes"]), int(seed))
        net = model.networks[name]
        missing, unexpected = net.set_state_dict(convert_state_dict(arch, state, net=net))
        assert not missing and not unexpected
    return model


def _train_step(model, lr=2e-4):
    opts = {"generator": paddle.optimizer.Adam(lr, parameters=model.networks["generator"].parameters()),
            "discriminator": paddle.optimizer.Adam(lr * 0.1,
                                                   parameters=model.networks["discriminator"].parameters())}
    return TrainStep(model.networks, opts, NoAmp())


def test_training_steps_match_official(steps):
    """Three iterations of `train_step` from the official weights and batches give the official
    loss terms: the first iteration to 1e-5 relative (measured: <= 7.5e-7), the next two to
    5e-3 (measured: <= 2e-3; Adam's first updates are ~lr * sign(grad), and the 1x1 bottleneck
    BatchNorm over a batch of two amplifies float differences). The weights, BatchNorm means and
    spectral-norm vectors after them agree too, which pins the update order and the number of
    generator and discriminator calls (each call moves the running means by 10 %)."""
    paddle.seed(0)
    model = _seeded_model(steps)
    model.set_train(True)
    step = _train_step(model)
    for i, batch in enumerate(_batches(steps)):
        logged = model.train_step(batch, step)
        rtol = 1e-5 if i == 0 else 5e-3
        for key in LOSS_KEYS:
            want = float(steps[key][i])
            assert abs(logged[key] - want) <= rtol * abs(want), (i, key, logged[key], want)
    gen = model.networks["generator"].state_dict()
    dis = model.networks["discriminator"].state_dict()
    for ours, key, atol in ((gen["out_layer.0.weight"], "after_g_out_layer", 1e-4),
                            (gen["ec_texture_2.bn._mean"], "after_g_bn_mean", 5e-3),
                            (dis["texture_branch.conv2.0.weight_u"], "after_d_u", 1e-4),
                            (dis["edge_detector.projection.1._mean"], "after_d_edge_bn_mean", 5e-4)):
        np.testing.assert_allclose(ours.numpy(), steps[key], atol=atol, err_msg=key)


# ---- configuration, BatchNorm freeze, prediction ---------------------------------------------

def _bn_layers(net):
    return [layer for layer in net.sublayers() if isinstance(layer, paddle.nn.BatchNorm2D)]


@pytest.fixture(scope="module")
def small_model():
    """Official networks with the official init; perceptual and style off (no VGG needed)."""
    paddle.seed(3)
    return CTSDGModel(loss_weights={"perceptual": 0.0, "style": 0.0}, freeze_bn=True)


def test_vgg_weights_are_required_for_the_feature_losses(tmp_path):
    """Perceptual or style losses without a VGG16 weights file or a seed are a one-line
    ConfigError naming Model.vgg_weights; a missing file is a CheckpointError naming it."""
    from ppir.errors import CheckpointError, ConfigError
    from ppir.models.ctsdg_model import build_vgg16

    with pytest.raises(ConfigError, match="Model.vgg_weights"):
        build_vgg16(None, None)
    with pytest.raises(CheckpointError, match="vgg16.pdparams"):
        build_vgg16(str(tmp_path / "vgg16.pdparams"), None)
    with pytest.raises(ConfigError, match="unknown term"):
        CTSDGModel(loss_weights={"hinge": 1.0})


def test_freeze_bn_survives_every_mode_switch(small_model):
    """With freeze_bn, `set_train(True)` leaves every generator BatchNorm in eval mode (also after
    an evaluation switched everything to eval and back), the rest of the generator and the
    discriminator's BatchNorms train."""
    gen, disc = small_model.networks["generator"], small_model.networks["discriminator"]
    for _ in range(2):
        small_model.set_train(True)
        assert _bn_layers(gen) and not any(bn.training for bn in _bn_layers(gen))
        assert gen.training and all(bn.training for bn in _bn_layers(disc))
        small_model.set_train(False)
        assert not gen.training and not any(bn.training for bn in _bn_layers(disc))
    gen.train()  # the generator's own train() override keeps the freeze too
    assert not any(bn.training for bn in _bn_layers(gen))


def test_predict_pads_composites_and_matches_the_deploy_path(small_model):
    """`predict` takes any size (padded to 128 and cropped back), keeps the known pixels of the
    input exactly, computes the edges from the masked input when none are given, and equals the
    exported module fed through the inference.yml recipe (graph_inputs / postprocess)."""
    from ppir.data.masks import generate_mask
    from ppir.inference import host as io
    from ppir.utils.tiling import pad_to_multiple

    rng = np.random.default_rng(0)
    h, w = 100, 140
    img = rng.uniform(0, 1, (h, w, 3)).astype(np.float32)
    mask = generate_mask((h, w), rng, (0.2, 0.4)).astype(np.float32)
    sample = io.host_sample(img, mask)
    small_model.set_train(False)
    inputs = {k: paddle.to_tensor(v[None]) for k, v in sample.items()}
    out = small_model.predict(inputs).numpy()[0]
    assert out.shape == (3, h, w)
    known = sample["mask"] == 0
    np.testing.assert_array_equal(np.where(known, out, 0), np.where(known, sample["input"], 0))
    assert np.abs(out - sample["input"])[np.broadcast_to(~known, out.shape)].mean() > 1e-3

    edge = run_host_steps(sample, [{"name": "ctsdg_edges", "source": "input"}])["edge"]
    with_edge = small_model.predict({**inputs, "edge": paddle.to_tensor(edge[None])}).numpy()[0]
    np.testing.assert_array_equal(with_edge, out)

    spec = small_model.io_spec()
    x, hw = pad_to_multiple(io.graph_inputs(sample, spec)[None], spec["pad_multiple"], spec["pad_mode"])
    parts = np.split(x, np.cumsum([i["channels"] for i in spec["inputs"]])[:-1], axis=1)
    with paddle.no_grad():
        graph = small_model.export_module()(*(paddle.to_tensor(p) for p in parts)).numpy()
    deployed = io.postprocess(graph[0, :, :h, :w], spec, sample)
    np.testing.assert_allclose(deployed, out.transpose(1, 2, 0), atol=1e-6)
