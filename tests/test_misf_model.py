"""MISFModel: the official training step (losses, update order, spectral-norm calls) from the
same weights and batches, the update-order switch, any-size prediction and the VGG weights
check."""
import os

import numpy as np
import paddle
import pytest

from ppir.engine.amp import NoAmp
from ppir.engine.lr_scheduler import build_optimizers
from ppir.engine.step import TrainStep
from ppir.errors import CheckpointError, ConfigError
from ppir.models import build_model
from ppir.models.archs.vgg_arch import seeded_vgg_state

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures")
# Official recipe: Adam 1e-4, betas (0, 0.9); D at 0.1 x the G rate.
OPTIM = {"Optimizer": {"name": "Adam", "beta1": 0.0, "beta2": 0.9},
         "LRScheduler": {"generator": 1.0e-4, "discriminator": 1.0e-5}}
LOGGED = {"gen_loss": "gen_loss", "dis_loss": "dis_loss", "adv": "l_g2", "l1": "l_l1",
          "perceptual": "l_per", "style": "l_sty"}


def write_vgg(path, seed=0):
    paddle.save({k: paddle.to_tensor(v) for k, v in seeded_vgg_state("VGG19", seed).items()}, path)
    return path


def build(weights, vgg, order="official", **kwargs):
    model = build_model({"Model": {"name": "MISFModel", "vgg_weights": vgg, "update_order": order,
                                   **kwargs}})
    for name, prefix in (("generator", "gen."), ("discriminator", "dis.")):
        net = model.networks[name]
        net.set_state_dict({k: weights[prefix + k] for k in net.state_dict()})
    return model


def run_steps(weights, images, masks, vgg, order="official", verbose=False):
    """Train from `weights` ({gen.*, dis.*} arrays) on the given batches; the logged losses."""
    model = build(weights, vgg, order)
    optimizers, _ = build_optimizers(OPTIM, model)
    step = TrainStep(model.networks, optimizers, NoAmp())
    model.set_train(True)
    rec = {k: [] for k in LOGGED}
    for i in range(len(images)):
        logged = model.train_step({"target": paddle.to_tensor(images[i]),
                                   "mask": paddle.to_tensor(masks[i])}, step)
        for k in rec:
            rec[k].append(logged[k])
        if verbose:
            print(i, {k: round(v[-1], 6) for k, v in rec.items()}, flush=True)
    return rec


def seeded_weights():
    """The alignment weights: every tensor from its key's seed (tests/test_misf_arch.py), the
    discriminator's aliased conv1.0 / features.0 holding one value."""
    from ppir.models import build_network
    from tests.test_misf_arch import seeded_state

    weights = {}
    for prefix, name in (("gen.", "MISFGenerator"), ("dis.", "MISFDiscriminator")):
        net = build_network({"name": name})
        state = seeded_state({k: tuple(v.shape) for k, v in net.state_dict().items()}, 1.0)
        state.update({k.replace("conv1.0.", "features.0."): v for k, v in state.items()
                      if k.startswith("conv1.0.")})
        weights.update({prefix + k: np.asarray(v, np.float32) for k, v in state.items()})
    return weights


@pytest.fixture(scope="module")
def vgg(tmp_path_factory):
    return write_vgg(str(tmp_path_factory.mktemp("vgg") / "vgg19_seed0.pdparams"))


@pytest.fixture(scope="module")
def steps_ref():
    ref = dict(np.load(os.path.join(FIXTURES, "misf_train_steps.npz")))
    ref["images"] = ref["images"].astype(np.float32) / 255.0
    shape = tuple(ref.pop("mask_shape"))
    ref["masks"] = np.unpackbits(ref["masks"])[:int(np.prod(shape))].reshape(shape).astype(np.float32)
    return ref


def test_training_steps_match_the_official_training_step(steps_ref, vgg):
    """Three official steps (InpaintingModel.process + backward: L1/mean(M), VGG19 perceptual
    and style, nsgan, Adam (0, 0.9), D lr x0.1, D's step carrying G's adversarial gradient) from
    the same weights, VGG and 32x32 batches give the official G and D losses. The first step is
    a pure forward comparison (<= 2e-6 relative); after that Adam with beta1 = 0 moves every
    parameter by about lr * sign(grad), so float-level gradient differences grow to ~1e-4."""
    from reprod_log import ReprodDiffHelper

    rec = run_steps(seeded_weights(), steps_ref["images"], steps_ref["masks"], vgg)
    helper = ReprodDiffHelper()
    ours = {k: np.array(rec[k]) for k in LOGGED}
    theirs = {k: steps_ref[v] for k, v in LOGGED.items()}
    helper.compare_info(ours, theirs)
    for key, official in theirs.items():
        rel = np.abs(ours[key] - official) / np.abs(official)
        assert rel[0] <= 2e-6, (key, rel)
        assert rel.max() <= 5e-4, (key, rel)
        assert helper.diff_dict[key]["mean"] <= 5e-5, (key, helper.diff_dict[key])


def test_standard_order_keeps_the_adversarial_gradient_out_of_the_d_step(steps_ref, vgg):
    """`update_order: standard` steps G exactly as `official` does (same D calls, same G
    gradient) but clears D's gradient before dis_loss.backward, so the D updates differ: the
    official one also carries the generator's adversarial term."""
    weights = seeded_weights()
    batch = {"target": paddle.to_tensor(steps_ref["images"][0]),
             "mask": paddle.to_tensor(steps_ref["masks"][0])}
    after = {}
    for order in ("official", "standard"):
        model = build(weights, vgg, order)
        optimizers, _ = build_optimizers(OPTIM, model)
        model.set_train(True)
        model.train_step(batch, TrainStep(model.networks, optimizers, NoAmp()))
        after[order] = {n: {k: v.numpy().copy() for k, v in model.networks[n].state_dict().items()}
                        for n in model.networks}
    for key, value in after["official"]["generator"].items():
        np.testing.assert_array_equal(value, after["standard"]["generator"][key])
    moved = [k for k, v in after["official"]["discriminator"].items() if k.endswith("weight_orig")
             and not np.allclose(v, after["standard"]["discriminator"][k], rtol=0, atol=1e-9)]
    assert moved, "the official D step should carry the generator's adversarial gradient"


def test_predict_composites_any_size(vgg):
    """predict pads image and mask to a multiple of 4, the graph pads them to a square (the
    bare generator refuses H != W) and crops back; known pixels come from the input."""
    model = build_model({"Model": {"name": "MISFModel", "perceptual_weight": 0, "style_weight": 0}})
    model.set_train(False)
    rng = np.random.default_rng(0)
    for h, w in ((30, 22), (17, 40), (24, 24)):
        image = rng.random((1, 3, h, w), dtype=np.float32)
        mask = (rng.random((1, 1, h, w)) < 0.3).astype(np.float32)
        out = model.predict({"input": paddle.to_tensor(image * (1 - mask)),
                             "mask": paddle.to_tensor(mask)}).numpy()
        assert out.shape == (1, 3, h, w)
        known = np.broadcast_to(mask == 0, out.shape)
        np.testing.assert_allclose(out[known], (image * (1 - mask))[known], atol=1e-6)
        assert np.all((out >= 0) & (out <= 1))


def test_vgg_weights_are_required_and_checked(tmp_path):
    """Perceptual/style losses without vgg_weights is a ConfigError; a missing file is a
    one-line CheckpointError naming it when training starts (evaluation does not need it); an unknown update order, and a sigmoid discriminator
    with the hinge loss (the official code drops the sigmoid for hinge), are refused."""
    with pytest.raises(ConfigError, match="vgg_weights"):
        build_model({"Model": {"name": "MISFModel"}})
    missing = str(tmp_path / "vgg19.pdparams")
    model = build_model({"Model": {"name": "MISFModel", "vgg_weights": missing}})
    model.set_train(False)  # evaluation and export never read the VGG weights
    with pytest.raises(CheckpointError, match="vgg19.pdparams"):
        model.set_train(True)
    with pytest.raises(ConfigError, match="update_order"):
        build_model({"Model": {"name": "MISFModel", "perceptual_weight": 0, "style_weight": 0,
                               "update_order": "textbook"}})
    with pytest.raises(ConfigError, match="use_sigmoid"):
        build_model({"Model": {"name": "MISFModel", "perceptual_weight": 0, "style_weight": 0,
                               "gan_type": "hinge"}})
