"""LPIPS v0.1 port: numerical parity with the `lpips` 0.1.4 package on seeded weights."""
import os

import numpy as np
import paddle
import pytest

from ppir.errors import CheckpointError, ConfigError
from ppir.metrics import METRICS
from ppir.metrics.lpips import LPIPSNet, load_lpips_weights, lpips_distance

FIXTURE = os.path.join(os.path.dirname(__file__), "fixtures", "lpips_seeded.npz")


def seeded_weights(net, seed):
    """The weights the fixture was made with: one numpy stream over the sorted keys (He-scaled
    convs, non-negative lin weights as the trained ones are, small biases)."""
    rng = np.random.default_rng(seed)
    out = {}
    for key, param in sorted(net.state_dict().items()):
        shape = tuple(param.shape)
        if key.startswith("lin"):
            out[key] = np.abs(rng.normal(0, 0.1, shape)).astype(np.float32)
        elif len(shape) == 4:
            out[key] = (rng.normal(0, 1, shape) * np.sqrt(2.0 / np.prod(shape[1:]))).astype(
                np.float32)
        else:
            out[key] = rng.normal(0, 0.05, shape).astype(np.float32)
    return out


@pytest.mark.parametrize("net_name,seed", [("alex", 11), ("vgg", 12)])
def test_matches_the_lpips_package(net_name, seed):
    """With the same seeded weights, LPIPS(net) of two image pairs (a slight and a strong
    perturbation, [0, 1] inputs mapped to [-1, 1]) equals `lpips.LPIPS(net=...)(x, y,
    normalize=True)` from lpips 0.1.4 to 1e-6."""
    data = np.load(FIXTURE)
    net = LPIPSNet(net_name)
    load_lpips_weights(net, seeded_weights(net, seed))
    ours = [lpips_distance(net, a.transpose(1, 2, 0), b.transpose(1, 2, 0))
            for a, b in zip(data["img0"], data["img1"])]
    np.testing.assert_allclose(ours, data[f"{net_name}_lpips"], rtol=0, atol=1e-6)
    assert ours[1] > 5 * ours[0]


def test_metric_from_config_reads_pdparams(tmp_path):
    """`{name: LPIPS, net, weights}` loads a .pdparams with the package's keys and scores HWC
    [0, 1] images like the fixture; lower is better; key 'lpips'."""
    data = np.load(FIXTURE)
    path = str(tmp_path / "w.pdparams")
    paddle.save({k: paddle.to_tensor(v) for k, v in seeded_weights(LPIPSNet("alex"), 11).items()},
                path)
    metric = METRICS.build({"name": "LPIPS", "net": "alex", "weights": path})
    assert metric.name == "lpips" and not metric.higher_is_better
    assert metric(data["img0"][1].transpose(1, 2, 0), data["img1"][1].transpose(1, 2, 0)) == \
        pytest.approx(float(data["alex_lpips"][1]), abs=1e-6)


def test_bad_weights_and_options_fail_clearly():
    """A missing or mis-shaped weight is a CheckpointError naming the key; an unknown net or a
    missing weights file is refused when the metric is built."""
    net = LPIPSNet("alex")
    weights = seeded_weights(net, 0)
    with pytest.raises(CheckpointError, match="lin4.model.1.weight missing"):
        load_lpips_weights(net, {k: v for k, v in weights.items() if k != "lin4.model.1.weight"})
    weights["net.slice1.0.bias"] = np.zeros(3, np.float32)
    with pytest.raises(CheckpointError, match=r"net.slice1.0.bias has shape \[3\]"):
        load_lpips_weights(net, weights)
    with pytest.raises(ConfigError, match="net must be one of alex, vgg"):
        METRICS.build({"name": "LPIPS", "net": "squeeze", "weights": "x.pth"})
    with pytest.raises(CheckpointError, match="not found"):
        METRICS.build({"name": "LPIPS", "net": "vgg", "weights": "/nonexistent/lpips.pth"})
