"""Weight files of the frameworks ppir converts from, told apart by their first bytes.

| format         | written by                                   | starts with                     |
|----------------|----------------------------------------------|---------------------------------|
| `torch`        | `torch.save` (zip, torch >= 1.6)             | `PK\\x03\\x04`                    |
| `torch-legacy` | `torch.save` before 1.6                      | a pickled magic number          |
| `mindspore`    | `mindspore.save_checkpoint` (protobuf)       | `\\x0a` (field 1, length-delimited) |
| `paddle`       | `paddle.save` (pickle)                       | `\\x80` (pickle protocol marker)  |

`read_weights(path)` returns `(object, format)`; tensors are numpy arrays in every case, and
nothing from a file is imported or executed (the pickles go through restricted unpicklers).
"""
import os
import pickle
from collections import OrderedDict

import numpy as np

try:
    from numpy._core import multiarray as _multiarray  # numpy >= 2
except ImportError:  # pragma: no cover - numpy 1.x
    from numpy.core import multiarray as _multiarray

from ppir.errors import CheckpointError
from ppir.utils.mindspore_ckpt import read_ckpt
from ppir.utils.pth import LEGACY_MAGIC, ZIP_MAGICS, file_head, opaque_class, read_pth

FORMATS = ("torch", "torch-legacy", "mindspore", "paddle")


def detect_format(path):
    """Name the framework that wrote `path` (one of FORMATS) from its first bytes."""
    path = os.fspath(path)
    head = file_head(path)
    if head.startswith(ZIP_MAGICS):
        return "torch"
    if head == LEGACY_MAGIC:
        return "torch-legacy"
    if head[:1] == b"\x0a":
        return "mindspore"
    if head[:1] == b"\x80":
        return "paddle"
    raise CheckpointError(
        f"{path}: not a weight file ppir can read (it starts with {head[:8]!r}); expected a "
        f"torch.save .pth, a MindSpore .ckpt or a paddle.save .pdparams")


class _PaddleUnpickler(pickle.Unpickler):
    """paddle.save pickles: dicts of numpy arrays, tensors as `(name, ndarray)` tuples."""

    _NUMPY = {("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype}

    def find_class(self, module, name):
        if (module, name) == ("collections", "OrderedDict"):
            return OrderedDict
        if module == "builtins" and name in ("tuple", "list", "dict", "set", "slice"):
            return {"tuple": tuple, "list": list, "dict": dict, "set": set, "slice": slice}[name]
        if (module, name) == ("builtins", "eval"):
            return _paddle_eval  # how paddle.save pickles a LoDTensor
        if module in ("numpy.core.multiarray", "numpy._core.multiarray") and \
                name in ("_reconstruct", "scalar"):
            return getattr(_multiarray, name)
        if (module, name) in self._NUMPY:
            return self._NUMPY[(module, name)]
        return opaque_class(module, name)


def _paddle_eval(expression, namespace):
    # paddle.save writes a LoDTensor as `eval('data', {'data': array})`: only that is honoured.
    if expression == "data" and isinstance(namespace, dict) and "data" in namespace:
        return namespace["data"]
    raise CheckpointError(f"unsupported object in a paddle pickle: eval({expression!r})")


def _untuple(obj):
    """paddle.load's rule: a `(name, ndarray)` pair is the tensor `name` holding that array."""
    if isinstance(obj, tuple) and len(obj) == 2 and isinstance(obj[0], str) and \
            isinstance(obj[1], np.ndarray):
        return obj[1]
    if isinstance(obj, dict):
        return type(obj)((k, _untuple(v)) for k, v in obj.items())
    if isinstance(obj, (list, tuple)):
        return type(obj)(_untuple(v) for v in obj)
    return obj


def read_paddle_pickle(path):
    """Read a `paddle.save` file without paddle; tensors become numpy arrays."""
    path = os.fspath(path)
    with open(path, "rb") as file:
        try:
            return _untuple(_PaddleUnpickler(file).load())
        except CheckpointError:
            raise
        except Exception as exc:  # a truncated or foreign pickle can raise almost anything
            raise CheckpointError(f"{path}: cannot read this paddle.save pickle "
                                  f"(truncated or corrupt?): {exc}") from None


def read_weights(path):
    """Read any supported weight file; returns `(object, format)` with numpy arrays inside."""
    fmt = detect_format(path)
    if fmt in ("torch", "torch-legacy"):
        return read_pth(path), fmt
    if fmt == "mindspore":
        return read_ckpt(path), fmt
    return read_paddle_pickle(path), fmt
