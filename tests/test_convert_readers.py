"""Tests for the weight-file readers: ppir/utils/pth.py, ppir/utils/mindspore_ckpt.py and
ppir/utils/weight_files.py (format detection, the paddle.save pickle reader).

Fixtures under tests/fixtures/seeds/ were written in a scratch environment by MindSpore 2.10.0
itself (`mindspore.save_checkpoint`):
* `ms_dtypes.ckpt`: float16, bfloat16, int64, bool and 0-d entries;
* `ms_toy_train.ckpt`: a small cell (Embedding, Conv2d, BatchNorm2d, Conv2dTranspose, LayerNorm,
  Dense) saved through its TrainOneStepCell after one Adam step, so its parameters carry the loss
  cell's `net.` prefix and the file also holds Adam's moments, step counters and an
  `append_dict` (epoch_num, step_num).
"""
import os
import pickle
import zipfile

import numpy as np
import paddle
import pytest

from ppir.errors import CheckpointError
from ppir.utils.mindspore_ckpt import parse_ckpt, read_ckpt
from ppir.utils.pth import LEGACY_MAGIC, read_pth
from ppir.utils.weight_files import detect_format, read_weights
from tests.conftest import encode_ckpt, pb_varint

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = os.path.join(ROOT, "tests", "fixtures")
SEEDS = os.path.join(FIXTURES, "seeds")
TOY_CKPT = os.path.join(SEEDS, "ms_toy_train.ckpt")

def test_mindspore_reader_dtypes():
    """Every MindSpore dtype of the fixture reads with its values: float16 stays float16,
    bfloat16 widens to float32 exactly, ints and bools keep their type, 0-d stays 0-d."""
    got = read_ckpt(os.path.join(SEEDS, "ms_dtypes.ckpt"))
    assert list(got) == ["half", "bf", "i64", "flag", "scalar"]
    assert got["half"].dtype == np.float16
    np.testing.assert_array_equal(got["half"], np.arange(6, dtype=np.float16).reshape(2, 3))
    assert got["bf"].dtype == np.float32
    np.testing.assert_array_equal(got["bf"], [1.5, -2.0])
    np.testing.assert_array_equal(got["i64"], np.array([[1, -2]], np.int64))
    assert got["i64"].dtype == np.int64 and got["flag"].dtype == np.bool_
    np.testing.assert_array_equal(got["flag"], [True, False])
    assert got["scalar"].shape == () and got["scalar"] == np.float32(2.5)


def test_mindspore_reader_round_trips_real_file():
    """Re-encoding what the reader returns gives back MindSpore's own bytes, entry order and
    shapes included: the reader (and this test's writer, used by the port tests) follow the
    real format."""
    with open(TOY_CKPT, "rb") as file:
        data = file.read()
    state = read_ckpt(TOY_CKPT)
    assert state["net.dense.weight"].shape == (5, 8) and state["epoch_num"] == 3
    assert encode_ckpt(state) == data


def test_mindspore_sliced_tensor_is_joined():
    """MindSpore writes a tensor above its slice size as consecutive Values with one tag, each a
    slice along the first axis; the reader joins them in order."""
    arr = np.arange(24, dtype=np.float32).reshape(4, 6)
    one = encode_ckpt({"w": arr})
    head, tail = encode_ckpt({"w": arr[:2]}), encode_ckpt({"w": arr[2:]})
    # dims of every slice say the full shape, as MindSpore writes them
    fix = lambda b: b.replace(pb_varint(1 << 3) + pb_varint(2), pb_varint(1 << 3) + pb_varint(4), 1)
    np.testing.assert_array_equal(parse_ckpt(fix(head) + fix(tail))["w"], parse_ckpt(one)["w"])


def test_mindspore_bad_files(tmp_path):
    """A truncated checkpoint, a file that is not one, an unknown tensor type and a content size
    that disagrees with the dims each raise one CheckpointError naming the file."""
    with open(TOY_CKPT, "rb") as file:
        data = file.read()
    cut = tmp_path / "cut.ckpt"
    cut.write_bytes(data[:len(data) // 2])
    with pytest.raises(CheckpointError, match=r"cut\.ckpt: not a MindSpore checkpoint, or a "
                                              r"truncated"):
        read_ckpt(cut)
    text = tmp_path / "notes.ckpt"
    text.write_bytes(b"\nhello, this is a text file\n")
    with pytest.raises(CheckpointError, match=r"notes\.ckpt: not a MindSpore checkpoint"):
        read_ckpt(text)
    odd = encode_ckpt({"w": np.zeros(2, np.float32)}).replace(b"Float32", b"Float99")
    with pytest.raises(CheckpointError, match=r"entry 'w' has tensor_type 'Float99'"):
        parse_ckpt(odd, "odd.ckpt")
    short = encode_ckpt({"w": np.zeros(2, np.float32)}).replace(pb_varint(1 << 3) + pb_varint(2),
                                                                  pb_varint(1 << 3) + pb_varint(3))
    with pytest.raises(CheckpointError, match=r"'w' \(Float32 \[3\]\) holds 8 bytes, expected 12"):
        parse_ckpt(short, "short.ckpt")


def test_format_detection(tmp_path):
    """The format is read off the first bytes, whatever the file name says."""
    assert detect_format(os.path.join(FIXTURES, "mirnetv2_tiny.pth")) == "torch"
    assert detect_format(TOY_CKPT) == "mindspore"
    pd = tmp_path / "weights.ckpt"  # a paddle.save file with a misleading suffix
    paddle.save({"w": paddle.ones([2])}, str(pd))
    assert detect_format(pd) == "paddle"
    legacy = tmp_path / "legacy.pth"
    legacy.write_bytes(LEGACY_MAGIC + b"rest")
    assert detect_format(legacy) == "torch-legacy"
    other = tmp_path / "image.pth"
    other.write_bytes(b"\x89PNG\r\n\x1a\n....")
    with pytest.raises(CheckpointError, match=r"image\.pth: not a weight file ppir can read"):
        detect_format(other)


def test_paddle_pickle_reader(tmp_path):
    """A paddle.save training state ({'epoch', 'state_dict', 'optimizer'}, as sldyns/
    MIRNetV2_paddle writes it) reads without executing anything: tensors become the arrays
    paddle.load returns, plain values stay."""
    paddle.seed(0)
    net = paddle.nn.Sequential(paddle.nn.Conv2D(2, 3, 3), paddle.nn.BatchNorm2D(3))
    opt = paddle.optimizer.Adam(parameters=net.parameters())
    net(paddle.randn([1, 2, 5, 5])).mean().backward()
    opt.step()
    path = tmp_path / "model_best.pdparams"
    paddle.save({"epoch": 20, "state_dict": net.state_dict(), "optimizer": opt.state_dict()},
                str(path))
    got, fmt = read_weights(path)
    assert fmt == "paddle" and got["epoch"] == 20
    want = paddle.load(str(path), return_numpy=True)
    for key, value in want["state_dict"].items():
        np.testing.assert_array_equal(got["state_dict"][key], value)
    marker = tmp_path / "ran"

    class Hostile:  # plain pickle.load would run `touch marker`
        def __reduce__(self):
            return os.system, (f"touch {marker}",)

    hostile = tmp_path / "hostile.pdparams"
    hostile.write_bytes(pickle.dumps({"w": Hostile()}))
    obj, _ = read_weights(hostile)
    assert "unreadable" in repr(obj["w"]) and not marker.exists()


def test_pth_reader_errors(tmp_path, monkeypatch):
    """Missing files, zips without data.pkl, a zip cut short (reported as truncated, not as the
    legacy format) and a legacy torch file without torch installed each give one clear line."""
    with pytest.raises(CheckpointError, match="not found"):
        read_pth(tmp_path / "nope.pth")
    other_zip = tmp_path / "other.pth"
    with zipfile.ZipFile(other_zip, "w") as z:
        z.writestr("readme.txt", "hello")
    with pytest.raises(CheckpointError, match=r"other\.pth.*data\.pkl"):
        read_pth(other_zip)
    with open(os.path.join(FIXTURES, "mirnetv2_tiny.pth"), "rb") as file:
        data = file.read()
    cut = tmp_path / "cut.pth"
    cut.write_bytes(data[:len(data) * 2 // 3])
    with pytest.raises(CheckpointError, match=r"cut\.pth: truncated or corrupt zip archive"):
        read_pth(cut)
    legacy = tmp_path / "legacy.pth"
    legacy.write_bytes(LEGACY_MAGIC + pickle.dumps({"a": 1}))
    monkeypatch.setitem(__import__("sys").modules, "torch", None)  # an install without torch
    with pytest.raises(CheckpointError, match=r"legacy\.pth.*legacy format needs torch"):
        read_pth(legacy)
    plain = tmp_path / "plain.pth"
    plain.write_bytes(pickle.dumps({"a": 1}))
    with pytest.raises(CheckpointError, match=r"plain\.pth: not a torch\.save file"):
        read_pth(plain)
