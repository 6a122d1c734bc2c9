"""The shared VGG feature extractor and the perceptual, style and adversarial losses, checked
against EdgeConnect's `src/loss.py` (as MISF ships it) run on the same seeded VGG weights."""
import os

import numpy as np
import paddle
import pytest

from ppir.errors import CheckpointError, ConfigError
from ppir.losses import LOSSES
from ppir.models import build_network
from ppir.models.archs.vgg_arch import build_vgg, layer_names, seeded_vgg_state
from ppir.models.convert import convert_state_dict
from tests.conftest import assert_reprod_close

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures")


@pytest.fixture(scope="module")
def ref():
    return dict(np.load(os.path.join(FIXTURES, "vgg_losses.npz")))


def _weights(tmp_path, arch):
    path = str(tmp_path / f"{arch.lower()}.pdparams")
    paddle.save({k: paddle.to_tensor(v) for k, v in seeded_vgg_state(arch, 0).items()}, path)
    return path


def test_layer_names_follow_torchvision_indices():
    """Index 35 of VGG19 features is relu5_4 and 36 pool5; VGG16 pool3 is index 16 (CTSDG's
    features[:17])."""
    assert layer_names("VGG19")[35] == "relu5_4" and layer_names("VGG19")[36] == "pool5"
    assert layer_names("VGG16")[16] == "pool3" and len(layer_names("VGG16")) == 31


def test_vgg_activations_match_torchvision_layout(tmp_path, ref):
    """Seeded weights loaded under torchvision's keys give the official activations."""
    vgg19 = build_vgg("VGG19", _weights(tmp_path, "VGG19"))
    feats = vgg19(paddle.to_tensor(ref["x"]), ["relu3_1", "relu5_4"])
    assert sorted(feats) == ["relu3_1", "relu5_4"]
    assert_reprod_close(feats["relu3_1"].numpy(), ref["vgg19_relu3_1"])
    assert_reprod_close(feats["relu5_4"].numpy(), ref["vgg19_relu5_4"])
    vgg16 = build_vgg("VGG16", _weights(tmp_path, "VGG16"))
    assert_reprod_close(vgg16(paddle.to_tensor(ref["x"]), ["pool3"])["pool3"].numpy(),
                        ref["vgg16_pool3"])
    assert all(p.stop_gradient for p in vgg19.parameters())


def test_perceptual_and_style_losses_match_edgeconnect(tmp_path, ref):
    """PerceptualLoss (relu1_1..relu5_1) and StyleLoss (Gram / CHW of relu2_2, 3_4, 4_4, 5_2)
    equal the official values on the same VGG19 weights."""
    vgg = build_vgg("VGG19", _weights(tmp_path, "VGG19"))
    per = LOSSES.build({"name": "PerceptualLoss"})
    sty = LOSSES.build({"name": "StyleLoss"})
    x, y = paddle.to_tensor(ref["x"]), paddle.to_tensor(ref["y"])
    p = float(per(vgg(x, per.layers), vgg(y, per.layers)))
    s = float(sty(vgg(x, sty.layers), vgg(y, sty.layers)))
    np.testing.assert_allclose(p, ref["perceptual"], rtol=1e-5)
    np.testing.assert_allclose(s, ref["style"], rtol=1e-4)


def test_gan_losses_match_edgeconnect(ref):
    """nsgan / lsgan on sigmoid outputs and hinge on raw outputs: D real, D fake, G terms."""
    got = []
    for kind in ("nsgan", "lsgan", "hinge"):
        gan = LOSSES.build({"name": "GANLoss", "type": kind})
        out = paddle.to_tensor(ref["raw"] if kind == "hinge" else ref["d"])
        got += [float(gan(out, True, True)), float(gan(out, False, True)), float(gan(out, True, False))]
    np.testing.assert_allclose(got, ref["gan"], rtol=1e-5, atol=1e-7)
    with pytest.raises(ConfigError, match="wgan"):
        LOSSES.build({"name": "GANLoss", "type": "wgan"})


def test_missing_vgg_weights_is_one_line_checkpoint_error(tmp_path):
    """A configured path that does not exist names the file and how to make it."""
    missing = str(tmp_path / "vgg19.pdparams")
    with pytest.raises(CheckpointError, match="VGG19 weights file not found") as err:
        build_vgg("VGG19", missing)
    assert missing in str(err.value) and "\n" not in str(err.value)
    assert "convert_weights.py --arch VGG19" in str(err.value)


def test_torchvision_state_dict_converts_dropping_the_classifier():
    """torchvision's vgg19 state dict (features + classifier) converts to the registered VGG19
    network; the classifier keys are dropped."""
    state = dict(seeded_vgg_state("VGG19", 1))
    state["classifier.0.weight"] = np.zeros((4096, 25088), np.float32)[:2, :2]
    state["classifier.0.bias"] = np.zeros(2, np.float32)
    net = build_network({"name": "VGG19"})
    out = convert_state_dict("VGG19", state, net=net)
    assert list(out) == list(net.state_dict())
    np.testing.assert_array_equal(out["features.34.weight"], state["features.34.weight"])
    with pytest.raises(ConfigError, match="relu6_1"):
        net(paddle.zeros([1, 3, 8, 8]), ["relu6_1"])
