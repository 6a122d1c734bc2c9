"""Shared fixtures: the embedded demo data (built once per session), tiny training configs, and
the reprod_log-style closeness check of the alignment tests."""
import os
import subprocess
import sys

import numpy as np
import pytest

os.environ.setdefault("GLOG_minloglevel", "2")
os.environ.setdefault("OMP_NUM_THREADS", "1")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="session")
def demo_denoise(tmp_path_factory):
    from ppir.data.demo import make_demo

    return make_demo("denoise", str(tmp_path_factory.mktemp("demo") / "denoise"), seed=0)


@pytest.fixture(scope="session")
def demo_deblur(tmp_path_factory):
    from ppir.data.demo import make_demo

    return make_demo("deblur", str(tmp_path_factory.mktemp("demo") / "deblur"), seed=0)


def tiny_overrides(demo_root, output_dir, iters=4):
    """A MIRNetV2 of width 16 (the smallest its grouped convs allow) on 32x32 patches: seconds per run, same code paths as the real thing."""
    return [
        f"Global.output_dir={output_dir}", f"Global.iters={iters}", "Global.log_interval=1",
        "Global.eval_interval=0", "Global.save_interval=2", "Global.use_visualdl=False",
        "Model.network.n_feat=16",
        "Train.progressive={'iters': [2, 100], 'patch_sizes': [32, 48], 'batch_sizes': [2, 1]}",
        f"Train.dataset.root={demo_root}", f"Eval.dataset.root={demo_root}",
    ]


def run_tool(script, *args, env=None, timeout=300):
    """Run tools/<script> in a subprocess; returns CompletedProcess with text output."""
    full_env = dict(os.environ, **(env or {}))
    return subprocess.run([sys.executable, os.path.join(ROOT, script), *args], cwd=ROOT,
                          capture_output=True, text=True, env=full_env, timeout=timeout)


def assert_reprod_close(ours, official, threshold=1e-5):
    """Compare like the reprod_log alignment reports: mean abs diff within `threshold` (and the
    max within 100x, so a few wild pixels cannot hide behind a small mean)."""
    from reprod_log import ReprodDiffHelper

    helper = ReprodDiffHelper()
    helper.compare_info({"output": official}, {"output": ours})
    mean_diff = helper.diff_dict["output"]["mean"]
    assert mean_diff <= threshold, f"mean abs diff {mean_diff:.3e} > {threshold}"
    assert np.abs(ours - official).max() <= 100 * threshold


# ----------------------------------------------------------------------------------------------
# Seed-release fixtures (tests/test_convert_readers.py, tests/test_convert_seeds.py)
# ----------------------------------------------------------------------------------------------

def seeded_value(name, shape, dtype="float32"):
    """The weights the seed-port fixtures were generated with: one numpy stream per parameter
    name (crc32 of the name), so a test rebuilds a port's checkpoint from its names and shapes.
    Scales/variances (`gamma`, `moving_variance`) in [0.5, 1.5), the rest U(-1, 1)/sqrt(fan_in)."""
    import zlib

    rng = np.random.default_rng(zlib.crc32(name.encode()))
    shape = tuple(int(s) for s in shape)
    if name.rsplit(".", 1)[-1] in ("gamma", "moving_variance"):
        return rng.uniform(0.5, 1.5, shape).astype(dtype)
    fan = int(np.prod(shape[1:])) if len(shape) > 1 else 1
    return (rng.uniform(-1.0, 1.0, shape) / np.sqrt(fan)).astype(dtype)


_MS_TYPES = {"float16": "Float16", "float32": "Float32", "float64": "Float64", "int32": "Int32",
             "int64": "Int64", "uint8": "UInt8", "bool": "Bool"}


def pb_varint(value):
    """Protobuf base-128 varint."""
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _len_field(number, payload):
    return pb_varint(number << 3 | 2) + pb_varint(len(payload)) + payload


def encode_ckpt(entries):
    """The bytes mindspore.save_checkpoint writes for {name: array} (checkpoint.proto: Checkpoint
    { repeated Value { tag = 1; TensorProto tensor = 2 { repeated int64 dims = 1;
    tensor_type = 2; tensor_content = 3 } } })."""
    values = []
    for name, arr in entries.items():
        arr = np.asarray(arr)
        tensor = b"".join(pb_varint(1 << 3) + pb_varint(int(d)) for d in arr.shape)
        tensor += _len_field(2, _MS_TYPES[arr.dtype.name].encode())
        content = np.ascontiguousarray(arr).astype(arr.dtype.newbyteorder("<")).tobytes()
        tensor += _len_field(3, content)
        values.append(_len_field(1, _len_field(1, name.encode()) + _len_field(2, tensor)))
    return b"".join(values)
