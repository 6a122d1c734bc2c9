"""Tests for ppir/models/archs/mirnet_v2_arch.py: structure, official numerics, export.

Fixtures (made in scratch by running the official PyTorch MIRNet_v2, torch 2.13 CPU):
* `mirnetv2_tiny.pth`: `{'params': state_dict}` of the official net at n_feat=8,
  chan_factor=1.0 after `torch.manual_seed(0)` (PyTorch default init), written by torch.save.
* `mirnetv2_align.npz`: the official key list and shapes at the defaults; the tiny net's input
  (1x3x32x48) and official output; the defocus variant's (inp_channels=6, n_feat=16,
  chan_factor=1.5) input and official output, its weights regenerated here by `_seeded_weights`.
"""
import math
import os

import numpy as np
import paddle
import pytest

from ppir.models import build_network
from ppir.models.archs.mirnet_v2_arch import MIRNet_v2
from ppir.models.convert import convert_state_dict
from ppir.utils.pth import read_pth
from tests.conftest import assert_reprod_close

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures")
TINY = {"name": "MIRNetV2", "n_feat": 8, "chan_factor": 1.0}
DEFOCUS = {"name": "MIRNetV2", "inp_channels": 6, "n_feat": 16, "chan_factor": 1.5,
           "task": "defocus_deblurring"}


@pytest.fixture(scope="module")
def align():
    return dict(np.load(os.path.join(FIXTURES, "mirnetv2_align.npz")))


@pytest.fixture(scope="module")
def full_net():
    return build_network({"name": "MIRNetV2"})


def _seeded_weights(net, seed):
    """U(-1/sqrt(fan_in), 1/sqrt(fan_in)) per key in sorted order, as the fixture script did."""
    rng = np.random.RandomState(seed)
    out = {}
    for key, value in sorted(net.state_dict().items()):
        shape = [int(s) for s in value.shape]
        bound = 1.0 / np.sqrt(np.prod(shape[1:]))
        out[key] = rng.uniform(-bound, bound, size=shape).astype(np.float32)
    return out


def test_default_size_and_keys_match_official(full_net, align):
    """At the defaults the port has the official 238 keys, in order, with the official shapes,
    and 5,858,560 parameters (so official checkpoints load key for key)."""
    state = full_net.state_dict()
    assert list(state) == [str(k) for k in align["official_keys"]]
    for key, row in zip(align["official_keys"], align["official_shapes"]):
        assert list(state[str(key)].shape) == [int(s) for s in row if s >= 0], key
    assert len(state) == 238
    assert sum(int(p.size) for p in full_net.parameters()) == 5_858_560
    assert MIRNet_v2.size_multiple == 4


def test_defocus_variant_parameter_count():
    """The 6-channel dual-pixel defocus variant has the official 5,860,720 parameters."""
    net = build_network({"name": "MIRNetV2", "inp_channels": 6, "task": "defocus_deblurring"})
    assert sum(int(p.size) for p in net.parameters()) == 5_860_720


def test_ignored_arguments_stay_ignored():
    """height, width and scale are accepted but unused, as in the official code (n_RRG, which
    the official code also ignores, is honoured: see test_convert_seeds.py)."""
    base = build_network(TINY)
    other = build_network({**TINY, "height": 5, "width": 7, "scale": 4})
    assert {k: v.shape for k, v in base.state_dict().items()} == \
        {k: v.shape for k, v in other.state_dict().items()}


def test_init_is_pytorch_default():
    """Convs start from PyTorch's default U(-1/sqrt(fan_in), 1/sqrt(fan_in)), not Paddle's."""
    paddle.seed(0)
    net = build_network(TINY)
    w = net.body[0].body[0].dau_bot.body[0].weight.numpy()  # 8->8, 3x3, groups 1
    bound = 1.0 / math.sqrt(8 * 9)
    assert np.abs(w).max() <= bound
    assert abs(w.std() - bound / math.sqrt(3)) < 0.15 * bound / math.sqrt(3)


def test_input_size_must_be_multiple_of_4():
    """A height or width that is not a multiple of 4 raises ValueError naming the size."""
    net = build_network(TINY)
    with pytest.raises(ValueError, match="multiples of 4.*30x32"):
        net(paddle.zeros([1, 3, 30, 32]))


def test_converted_official_checkpoint_matches_official_forward(align):
    """The official tiny checkpoint, converted from its .pth, reproduces the official PyTorch
    output on a non-square input (reprod_log mean abs diff <= 1e-5)."""
    net = build_network(TINY)
    state = convert_state_dict("MIRNetV2", read_pth(os.path.join(FIXTURES, "mirnetv2_tiny.pth")),
                               network_args={k: v for k, v in TINY.items() if k != "name"})
    missing, unexpected = net.set_state_dict(state)
    assert not missing and not unexpected
    net.eval()
    with paddle.no_grad():
        out = net(paddle.to_tensor(align["tiny_input"])).numpy()
    assert_reprod_close(out, align["tiny_output"])


def test_defocus_variant_matches_official_forward(align):
    """The defocus branch (shallow-feature skip, no image residual) with chan_factor=1.5 channel
    arithmetic reproduces the official output."""
    net = build_network(DEFOCUS)
    net.set_state_dict(_seeded_weights(net, int(align["defocus_weight_seed"])))
    net.eval()
    with paddle.no_grad():
        out = net(paddle.to_tensor(align["defocus_input"])).numpy()
    assert_reprod_close(out, align["defocus_output"])


def test_to_static_export_runs_non_square(tmp_path):
    """The forward traces under to_static(full_graph=True) with dynamic H/W, saves, reloads, and
    gives the dygraph result on a non-square input."""
    paddle.seed(1)
    net = build_network({**TINY, "n_MRB": 1})  # every block type, half the tracing time
    net.eval()
    x = paddle.rand([1, 3, 36, 20])
    with paddle.no_grad():
        ref = net(x).numpy()
    spec = [paddle.static.InputSpec([None, 3, None, None], "float32", "x")]
    static = paddle.jit.to_static(net, input_spec=spec, full_graph=True)
    prefix = str(tmp_path / "inference")
    paddle.jit.save(static, prefix)
    loaded = paddle.jit.load(prefix)
    with paddle.no_grad():
        got = loaded(x).numpy()
    assert got.shape == (1, 3, 36, 20)
    np.testing.assert_allclose(got, ref, atol=1e-5)
