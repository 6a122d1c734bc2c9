"""Tests for ppir/models/convert.py and tools/convert_weights.py (the readers: test_convert_readers.py).

`torch_reader.pth` was written by torch.save (torch 2.13) in scratch and holds assorted tensors:
every classic dtype, bfloat16, a 0-d and an empty tensor, views with storage offsets and
transposed strides, two tensors sharing one storage, an nn.Parameter, nested containers and plain
Python values. `torch_reader.npz` holds what torch itself returns for them (bfloat16 widened to
float32). `mirnetv2_tiny.pth` is an official-format `{'params': state_dict}` release file.
"""
import importlib.util
import os
import pickle
import sys
import zipfile
from collections import OrderedDict

import numpy as np
import paddle
import pytest
from paddle import nn

from ppir.errors import CheckpointError
from ppir.models import build_network
from ppir.models.convert import convert_state_dict, unwrap_state_dict
from ppir.utils.pth import read_pth

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = os.path.join(ROOT, "tests", "fixtures")
TINY_PTH = os.path.join(FIXTURES, "mirnetv2_tiny.pth")
TINY_ARGS = {"n_feat": 8, "chan_factor": 1.0}


@pytest.fixture(scope="module")
def tiny_net():
    return build_network({"name": "MIRNetV2", **TINY_ARGS})


@pytest.fixture(scope="module")
def tiny_state():
    return read_pth(TINY_PTH)["params"]


def _load_tool(name):
    spec = importlib.util.spec_from_file_location(name, os.path.join(ROOT, "tools", f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_reader_matches_torch_values():
    """The torch-free reader returns exactly the values and dtypes torch itself loads, including
    views (offset/stride), shared storages, bfloat16, 0-d/empty tensors and nested containers."""
    got = read_pth(os.path.join(FIXTURES, "torch_reader.pth"))
    want = np.load(os.path.join(FIXTURES, "torch_reader.npz"))
    for key in want.files:
        if key.startswith("nested_"):
            continue
        assert got[key].dtype == want[key].dtype, key
        np.testing.assert_array_equal(got[key], want[key], err_msg=key)
    np.testing.assert_array_equal(got["nested"]["list"][0], want["nested_list0"])
    np.testing.assert_array_equal(got["nested"]["tuple"][0], want["nested_tuple0"])
    assert got["nested"]["list"][1:] == [5, "text"]
    assert isinstance(got["nested"]["tuple"], tuple)
    assert got["meta"] == {"epoch": 7, "name": "x", "lr": 1e-4}
    assert got["view_transposed"].flags["C_CONTIGUOUS"] and got["view_transposed"].flags.writeable


def test_reader_release_file_layout(tiny_state):
    """An official release file reads as {'params': OrderedDict} with all 238 float32 tensors."""
    assert isinstance(tiny_state, OrderedDict) and len(tiny_state) == 238
    assert all(v.dtype == np.float32 for v in tiny_state.values())


def test_unwrap_release_wrappers(tiny_state):
    """State dicts are found under the release wrappers ('params', 'params_ema', 'model',
    'state_dict', 'generator') or bare; 'params' wins for MIRNetV2; otherwise a clear error."""
    sd = {"w": np.zeros(2, np.float32)}
    other = {"w": np.ones(2, np.float32)}
    assert unwrap_state_dict("MIRNetV2", {"params": sd, "params_ema": other})[0] is sd
    assert unwrap_state_dict("MIRNetV2", {"params_ema": other})[0] is other
    assert unwrap_state_dict("MIMOUNet", {"model": sd, "epoch": 3, "optimizer": {}})[0] is sd
    assert unwrap_state_dict("X", {"state_dict": sd})[0] is sd
    assert unwrap_state_dict("X", {"generator": sd})[0] is sd
    assert unwrap_state_dict("X", sd)[0] is sd
    assert unwrap_state_dict("X", {"net_g": sd}, param_key="net_g")[0] is sd
    with pytest.raises(CheckpointError, match="no state dict found.*net_g"):
        unwrap_state_dict("X", {"net_g": sd, "iter": 5})


def test_convert_strips_module_prefix(tiny_net, tiny_state):
    """DataParallel `module.` prefixes are removed and float16 weights are cast to the network's
    float32."""
    wrapped = {"state_dict": {f"module.{k}": v.astype(np.float16) for k, v in tiny_state.items()}}
    out = convert_state_dict("MIRNetV2", wrapped, net=tiny_net)
    assert list(out) == list(tiny_net.state_dict())
    assert all(v.dtype == np.float32 for v in out.values())


def test_convert_wrong_network_names_keys(tiny_net, tiny_state):
    """A checkpoint that does not fit the target network (wrong --arch / --network-args, or
    renamed keys) raises CheckpointError naming missing, unexpected and mismatched keys."""
    with pytest.raises(CheckpointError, match=r"shape mismatch: conv_in\.weight \(expected "
                                              r"\[16, 3, 3, 3\], got \[8, 3, 3, 3\]\)"):
        convert_state_dict("MIRNetV2", {"params": tiny_state}, network_args={"n_feat": 16,
                                                                              "chan_factor": 1.0})
    bad = OrderedDict(tiny_state)
    bad["extra.weight"] = bad.pop("conv_out.weight")
    with pytest.raises(CheckpointError, match=r"missing: conv_out\.weight; unexpected: "
                                              r"extra\.weight"):
        convert_state_dict("MIRNetV2", bad, net=tiny_net)


def test_convert_with_another_arch_names_keys(tiny_state):
    """Converting a MIRNetV2 release with --arch set to another network fails with the lists of
    missing and unexpected keys rather than a partial load."""
    from ppir.models import NETWORKS

    if "MIMOUNet" not in NETWORKS:
        pytest.skip("MIMOUNet is not registered")
    with pytest.raises(CheckpointError, match=r"'MIMOUNet'.*missing: Encoder\..*unexpected: "
                                              r"conv_in\.weight.*\(238 in all\)"):
        convert_state_dict("MIMOUNet", {"params": tiny_state})


def test_generic_batchnorm_and_linear_rules():
    """BatchNorm running stats map to _mean/_variance, num_batches_tracked is dropped, and only
    weights of real nn.Linear layers are transposed ([out, in] -> [in, out])."""
    paddle.seed(0)
    net = nn.Sequential(nn.Conv2D(2, 3, 1), nn.BatchNorm2D(3), nn.Linear(4, 5))
    rng = np.random.default_rng(0)
    lin = rng.random((5, 4), dtype=np.float32)
    conv = rng.random((3, 2, 1, 1), dtype=np.float32)
    src = {"0.weight": conv, "0.bias": np.zeros(3, np.float32),
           "1.weight": np.ones(3, np.float32), "1.bias": np.zeros(3, np.float32),
           "1.running_mean": np.full(3, 0.5, np.float32), "1.running_var": np.full(3, 2.0, np.float32),
           "1.num_batches_tracked": np.array(10), "2.weight": lin, "2.bias": np.ones(5, np.float32)}
    out = convert_state_dict("Toy", {"model": src}, net=net)
    np.testing.assert_array_equal(out["2.weight"], lin.T)
    np.testing.assert_array_equal(out["0.weight"], conv)
    np.testing.assert_array_equal(out["1._variance"], np.full(3, 2.0, np.float32))
    assert "1.num_batches_tracked" not in out
    missing, unexpected = net.set_state_dict(out)
    assert not missing and not unexpected


def test_convert_weights_cli_end_to_end(tmp_path, tiny_state, capsys):
    """tools/convert_weights.py writes a .pdparams (and no leftover temp file) that loads with
    no missing/unexpected keys and holds the official values; bad input exits 2 with `error:`."""
    tool = _load_tool("convert_weights")
    dst = tmp_path / "out" / "tiny.pdparams"
    assert tool.main(["--arch", "MIRNetV2", "--src", TINY_PTH, "--dst", str(dst),
                      "--network-args", '{"n_feat": 8, "chan_factor": 1.0}']) == 0
    assert sorted(os.listdir(dst.parent)) == [".ppir-outputs", "tiny.pdparams"]
    net = build_network({"name": "MIRNetV2", **TINY_ARGS})
    missing, unexpected = net.set_state_dict(paddle.load(str(dst)))
    assert not missing and not unexpected
    np.testing.assert_array_equal(net.state_dict()["conv_in.weight"].numpy(),
                                  tiny_state["conv_in.weight"])

    from ppir.errors import run_cli

    with pytest.raises(SystemExit) as exit_info:
        run_cli(tool.main, ["--arch", "MIRNetV2", "--src", TINY_PTH,
                            "--dst", str(tmp_path / "bad.pdparams"),
                            "--network-args", '{"n_feat": 4, "chan_factor": 1.0}'])
    assert exit_info.value.code == 2
    assert "error: checkpoint does not fit network 'MIRNetV2'" in capsys.readouterr().err
    assert not (tmp_path / "bad.pdparams").exists()


def _official_like(net, rng):
    """A numpy state dict with the network's keys and shapes, as a torch state_dict would be."""
    return OrderedDict((k, rng.standard_normal([int(s) for s in v.shape]).astype(np.float32))
                       for k, v in net.state_dict().items())


@pytest.fixture(scope="module")
def misf_nets():
    return (build_network({"name": "MISFGenerator", "residual_blocks": 1}),
            build_network({"name": "MISFDiscriminator"}))


def test_misf_release_files_convert(misf_nets):
    """The official MISF files convert key for key: `{'iteration', 'generator'}` for
    MISFGenerator and `{'discriminator'}` (spectral-norm weight_orig/u/v, aliased conv1.0 and
    features.0) for MISFDiscriminator, both loading with no missing or unexpected keys."""
    gen, dis = misf_nets
    rng = np.random.default_rng(0)
    gen_sd = _official_like(gen, rng)
    out = convert_state_dict("MISFGenerator", {"iteration": 2000, "generator": gen_sd}, net=gen)
    assert list(out) == list(gen_sd)
    np.testing.assert_array_equal(out["decoder.0.weight"], gen_sd["decoder.0.weight"])
    dis_sd = _official_like(dis, rng)
    for suffix in ("weight_orig", "weight_u", "weight_v"):
        dis_sd[f"features.0.{suffix}"] = dis_sd[f"conv1.0.{suffix}"]
    out = convert_state_dict("MISFDiscriminator", {"discriminator": dis_sd}, net=dis)
    assert list(out) == list(dis_sd)
    missing, unexpected = dis.set_state_dict(out)
    assert not missing and not unexpected
    np.testing.assert_array_equal(dis.conv1[0].weight_orig.numpy(), dis_sd["conv1.0.weight_orig"])


def test_aliased_keys_are_filled_or_must_agree(misf_nets):
    """A file holding only one name of an aliased module (conv1.0 without features.0) gets the
    other filled; two names with different values raise a CheckpointError naming both."""
    _, dis = misf_nets
    rng = np.random.default_rng(1)
    sd = OrderedDict((k, v) for k, v in _official_like(dis, rng).items()
                     if not k.startswith("features."))
    out = convert_state_dict("MISFDiscriminator", {"discriminator": sd}, net=dis)
    np.testing.assert_array_equal(out["features.0.weight_v"], sd["conv1.0.weight_v"])
    sd["features.0.weight_u"] = sd["conv1.0.weight_u"] + 1
    with pytest.raises(CheckpointError, match=r"conv1\.0\.weight_u and features\.0\.weight_u "
                                              r"name one tensor.*different values"):
        convert_state_dict("MISFDiscriminator", {"discriminator": sd}, net=dis)
