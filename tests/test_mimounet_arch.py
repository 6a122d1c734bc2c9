"""MIMO-UNet / MIMO-UNet+ port: size, state-dict keys, numerics against the official PyTorch code.

The fixture tests/fixtures/mimounet_align.npz was produced in scratch by the official classes
(chosj95/MIMO-UNet @ 5c58013, torch 2.13 CPU; outputs in eval mode) with weights made by `seeded_state`
below, so it stays small: it holds the input, the target, the official outputs, the official MSFR
loss and the official losses of three Adam steps, plus the official key list.
"""
import os

import numpy as np
import paddle
import paddle.nn.functional as F
import pytest

from ppir.losses.fft_loss import MSFRLoss
from ppir.models import build_network
from ppir.models.convert import convert_state_dict
from ppir.models.archs.mimounet_arch import MIMOUNet, MIMOUNetPlus, _nearest_half

FIXTURE = os.path.join(os.path.dirname(__file__), "fixtures", "mimounet_align.npz")


def seeded_state(shapes, seed):
    """Deterministic weights at torch's default init scale, identical in torch and numpy.

    Keys are visited in sorted order with one RandomState; each tensor is U(-b, b) with
    b = 1/sqrt(fan_in), fan_in = prod(weight.shape[1:]) (a bias uses its weight's fan_in).
    """
    rng = np.random.RandomState(seed)
    out = {}
    for key in sorted(shapes):
        wkey = key[:-4] + "weight" if key.endswith(".bias") else key
        bound = 1.0 / np.sqrt(int(np.prod(shapes[wkey][1:])))
        out[key] = rng.uniform(-bound, bound, size=shapes[key]).astype(np.float32)
    return out


def load_seeded(net, seed, name=None):
    """Fill `net` by the recipe; with `name`, go through the release-file converter as an official
    `{'model': state_dict}` file would."""
    state = seeded_state({k: tuple(v.shape) for k, v in net.state_dict().items()}, seed)
    if name is not None:
        state = convert_state_dict(name, {"model": state}, net=net)
    net.set_state_dict({k: paddle.to_tensor(v) for k, v in state.items()})
    assert all(np.array_equal(v.numpy(), state[k]) for k, v in net.state_dict().items())
    return net


@pytest.fixture(scope="module")
def fx():
    return np.load(FIXTURE)


@pytest.mark.parametrize("name, params, n_keys", [("MIMOUNet", 6_807_171, 244),
                                                   ("MIMOUNetPlus", 16_107_651, 532)])
def test_full_size_and_official_keys(fx, name, params, n_keys):
    """Default constructors are the paper's networks: official parameter count and the official
    state-dict keys, shapes and order, so released .pkl weights load without renaming."""
    net = build_network({"name": name})
    sd = net.state_dict()
    assert sum(int(v.size) for v in sd.values()) == params
    got = [k + ":" + ",".join(str(d) for d in v.shape) for k, v in sd.items()]
    assert len(got) == n_keys
    assert got == [str(k) for k in fx[name.lower() + "_keys"]]


@pytest.mark.parametrize("cls", [MIMOUNet, MIMOUNetPlus])
def test_three_output_scales(cls):
    """forward returns the list [1/4, 1/2, full] of 3-channel images, and size_multiple is 4."""
    net = cls(num_res=1)
    net.eval()
    with paddle.no_grad():
        outs = net(paddle.rand([1, 3, 64, 64]))
    assert isinstance(outs, list) and len(outs) == 3
    assert [o.shape for o in outs] == [[1, 3, 16, 16], [1, 3, 32, 32], [1, 3, 64, 64]]
    assert cls.size_multiple == 4


@pytest.mark.parametrize("name", ["MIMOUNet", "MIMOUNetPlus"])
def test_matches_official_forward(fx, name):
    """Same weights (loaded through the official-checkpoint converter) and input as the official
    PyTorch model give the same three outputs (reprod_log criterion: mean abs diff <= 1e-5;
    measured ~2e-8)."""
    key = name.lower()
    net = load_seeded(build_network({"name": name, "num_res": int(fx[key + "_num_res"])}),
                      int(fx["weight_seed"]), name)
    net.eval()
    with paddle.no_grad():
        outs = net(paddle.to_tensor(fx["input"]))
    for i, out in enumerate(outs):
        diff = np.abs(out.numpy() - fx[f"{key}_out{i}"])
        assert diff.mean() <= 1e-5 and diff.max() <= 1e-4, (i, diff.mean(), diff.max())


def test_training_steps_match_official(fx):
    """From the same weights and batch, Adam(1e-4) + MSFR loss gives the official losses at steps
    1 and 2 (backward alignment: gradients, optimizer update and loss agree)."""
    paddle.seed(0)
    net = load_seeded(MIMOUNet(num_res=int(fx["mimounet_num_res"])), int(fx["weight_seed"]))
    net.train()
    opt = paddle.optimizer.Adam(learning_rate=1e-4, parameters=net.parameters())
    loss_fn = MSFRLoss()
    x, t = paddle.to_tensor(fx["input"]), paddle.to_tensor(fx["target"])
    losses = []
    for _ in range(2):
        loss = loss_fn(net(x), t)
        loss.backward()
        opt.step()
        opt.clear_grad()
        losses.append(loss.item())
    np.testing.assert_allclose(losses, fx["train_losses"][:2], rtol=1e-5)


def test_half_scale_is_torch_nearest():
    """The x0.5 resampling keeps the even pixels, exactly like torch's default nearest
    interpolate (and Paddle's own dygraph nearest, which agrees with torch)."""
    x = paddle.rand([1, 2, 12, 20])
    half = _nearest_half(x)
    ref = F.interpolate(x, scale_factor=0.5, mode="nearest")
    assert np.array_equal(half.numpy(), ref.numpy())
    assert np.array_equal(half.numpy(), x.numpy()[:, :, 0::2, 0::2])


@pytest.mark.parametrize("shape", [[1, 3, 62, 62], [1, 3, 64, 66]])
def test_size_not_multiple_of_4_is_refused(shape):
    """H/W that are not multiples of 4 raise a ValueError naming the size, instead of the
    shape error deep inside the network that the official code gives."""
    net = MIMOUNet(num_res=1)
    with pytest.raises(ValueError, match=r"multiples of 4, got \d+x\d+"):
        net(paddle.rand(shape))


def test_plus_dropout_only_in_training():
    """MIMO-UNet+ applies Dropout2d(0.1) to the AFF outputs in train mode only: training
    forwards are stochastic, eval forwards are deterministic; whole channels are dropped."""
    net = MIMOUNetPlus(num_res=1)
    x = paddle.rand([1, 3, 32, 32])
    net.train()
    paddle.seed(1)
    a = net(x)[2].numpy()
    paddle.seed(2)
    b = net(x)[2].numpy()
    assert np.abs(a - b).max() > 0
    net.eval()
    with paddle.no_grad():
        c, d = net(x)[2].numpy(), net(x)[2].numpy()
    assert np.array_equal(c, d)

    net.drop1.train()
    paddle.seed(3)
    feat = paddle.ones([4, 64, 5, 5])
    out = net.drop1(feat).numpy()
    per_channel = out.reshape(4 * 64, -1)
    assert np.all(per_channel.min(1) == per_channel.max(1))  # each channel dropped or kept whole
    kept = per_channel[per_channel[:, 0] != 0, 0]
    np.testing.assert_allclose(kept, 1 / 0.9, rtol=1e-6)  # survivors rescaled by 1/(1-p)
    assert (per_channel[:, 0] == 0).any()


def test_to_static_with_dynamic_non_square_input():
    """The network traces with paddle.jit.to_static(full_graph=True) and InputSpec
    [None, 3, None, None] (the export path), and the static program reproduces dygraph on a
    non-square input and then on a second shape."""
    net = MIMOUNetPlus(num_res=1)
    net.eval()
    x = paddle.rand([1, 3, 32, 48])
    with paddle.no_grad():
        ref = [o.numpy() for o in net(x)]
        spec = [paddle.static.InputSpec([None, 3, None, None], "float32", "x")]
        static = paddle.jit.to_static(net, input_spec=spec, full_graph=True)
        got = [o.numpy() for o in static(x)]
        other = static(paddle.rand([2, 3, 24, 16]))
    for r, g in zip(ref, got):
        np.testing.assert_allclose(g, r, atol=1e-6)
    assert [o.shape for o in other] == [[2, 3, 6, 4], [2, 3, 12, 8], [2, 3, 24, 16]]
