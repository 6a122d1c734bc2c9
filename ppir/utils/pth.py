"""Reading `torch.save` files without torch.

`read_pth(path)` reads the zip format (PyTorch >= 1.6) with plain `pickle` + `zipfile` + numpy.
Tensors come back as numpy arrays, dicts/lists/tuples keep their shape, and classes the reader
does not know become inert placeholders (nothing from the file is ever imported or executed).
The pre-1.6 non-zip format is read through `torch.load` when torch happens to be installed;
otherwise it is refused with a CheckpointError. A zip archive cut short (an interrupted
download) is reported as truncated, not as the legacy format.
"""
import os
import pickle
import zipfile
from collections import OrderedDict
from collections.abc import Mapping

import numpy as np

from ppir.errors import CheckpointError

# Legacy typed storages (what torch.save writes for the classic dtypes) -> numpy dtype names.
# bfloat16 has no numpy dtype: it is read as its raw 16 bits and widened to float32 exactly.
_STORAGE_DTYPES = {
    "DoubleStorage": "float64", "FloatStorage": "float32", "HalfStorage": "float16",
    "BFloat16Storage": "bfloat16", "LongStorage": "int64", "IntStorage": "int32",
    "ShortStorage": "int16", "CharStorage": "int8", "ByteStorage": "uint8",
    "BoolStorage": "bool", "ComplexDoubleStorage": "complex128",
    "ComplexFloatStorage": "complex64", "UntypedStorage": "uint8",
}
# torch.<dtype> objects pickled next to an UntypedStorage (`_rebuild_tensor_v3`, newer dtypes).
_TORCH_DTYPES = {
    "float64": "float64", "double": "float64", "float32": "float32", "float": "float32",
    "float16": "float16", "half": "float16", "bfloat16": "bfloat16", "int64": "int64",
    "long": "int64", "int32": "int32", "int": "int32", "int16": "int16", "short": "int16",
    "int8": "int8", "uint8": "uint8", "uint16": "uint16", "uint32": "uint32",
    "uint64": "uint64", "bool": "bool", "complex64": "complex64", "cfloat": "complex64",
    "complex128": "complex128", "cdouble": "complex128",
}


class _DType:
    """Stands for a torch storage class or torch.dtype while unpickling."""

    def __init__(self, name, torch_name):
        self.name = name            # numpy dtype name, or "bfloat16"
        self.torch_name = torch_name

    def __repr__(self):
        return f"torch.{self.torch_name}"


class _Storage:
    """Raw little/big-endian bytes of one storage record of the archive."""

    def __init__(self, data, dtype, key, byteorder):
        self.data, self.dtype, self.key, self.byteorder = data, dtype, key, byteorder


class _Opaque:
    """Placeholder for any class the reader does not know (argparse.Namespace, optimizers, ...).

    It accepts whatever pickle hands it and keeps it, so that the tensors elsewhere in the file
    stay reachable; it never imports or runs the original class.
    """

    _qualname = "?"

    def __new__(cls, *args, **kwargs):
        obj = object.__new__(cls)
        obj.args = args
        return obj

    def __init__(self, *args, **kwargs):
        pass

    def __setstate__(self, state):
        self.state = state

    def __repr__(self):
        return f"<unreadable {self._qualname}>"


def opaque_class(module, name):
    return type(name, (_Opaque,), {"_qualname": f"{module}.{name}"})


def _numpy_dtype(dtype, byteorder):
    if dtype.name == "bfloat16":
        base = np.dtype("uint16")
    else:
        base = np.dtype(dtype.name)
    return base.newbyteorder("<" if byteorder == "little" else ">") if base.itemsize > 1 else base


def _rebuild(storage, storage_offset, size, stride, dtype=None, where=""):
    dtype = dtype or storage.dtype
    np_dtype = _numpy_dtype(dtype, storage.byteorder)
    size, stride = tuple(int(s) for s in size), tuple(int(s) for s in stride)
    flat = np.frombuffer(storage.data, dtype=np_dtype,
                         count=len(storage.data) // np_dtype.itemsize)
    if any(s == 0 for s in size):
        arr = np.zeros(size, dtype=np_dtype)
    else:
        last = storage_offset + sum((n - 1) * st for n, st in zip(size, stride))
        if storage_offset < 0 or any(st < 0 for st in stride) or last >= flat.size:
            raise CheckpointError(
                f"{where}: tensor of size {list(size)}, stride {list(stride)}, offset "
                f"{storage_offset} does not fit in storage '{storage.key}' of {flat.size} elements")
        arr = np.lib.stride_tricks.as_strided(
            flat[storage_offset:], shape=size,
            strides=tuple(st * np_dtype.itemsize for st in stride)).copy()
    arr = arr.astype(arr.dtype.newbyteorder("="), copy=False)
    if dtype.name == "bfloat16":
        arr = (arr.astype(np.uint32) << 16).view(np.float32)
    return arr


class _TorchUnpickler(pickle.Unpickler):
    def __init__(self, file, archive, prefix, byteorder, path):
        super().__init__(file)
        self._archive, self._prefix, self._byteorder, self._path = archive, prefix, byteorder, path
        self._storages = {}

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and pid and pid[0] in ("storage", b"storage")):
            raise CheckpointError(f"{self._path}: unsupported persistent id {pid!r}")
        _, dtype, key, _location, _numel = pid
        key = key.decode() if isinstance(key, bytes) else str(key)
        if not isinstance(dtype, _DType):
            raise CheckpointError(f"{self._path}: storage '{key}' has unsupported type {dtype!r}")
        if key not in self._storages:
            entry = f"{self._prefix}data/{key}"
            try:
                data = self._archive.read(entry)
            except KeyError:
                raise CheckpointError(f"{self._path}: archive entry '{entry}' is missing") from None
            self._storages[key] = _Storage(data, dtype, key, self._byteorder)
        return self._storages[key]

    def find_class(self, module, name):
        if module == "collections" and name == "OrderedDict":
            return OrderedDict
        if module == "torch._utils" and name == "_rebuild_tensor_v2":
            return self._rebuild_tensor_v2
        if module == "torch._utils" and name == "_rebuild_tensor_v3":
            return self._rebuild_tensor_v3
        if module == "torch._utils" and name in ("_rebuild_parameter",
                                                 "_rebuild_parameter_with_state"):
            return _rebuild_parameter
        # UntypedStorage pickles as torch.storage.UntypedStorage, the typed ones as torch.X.
        if module in ("torch", "torch.storage") and name in _STORAGE_DTYPES:
            return _DType(_STORAGE_DTYPES[name], name)
        if module == "torch" and name == "Size":
            return tuple
        if module == "torch" and name in _TORCH_DTYPES:
            return _DType(_TORCH_DTYPES[name], name)
        if module in ("torch", "torch.storage") and name.endswith("Storage"):
            return _DType("unsupported", name)
        if module == "builtins" and name in ("set", "frozenset", "slice", "complex", "bytearray"):
            return {"set": set, "frozenset": frozenset, "slice": slice, "complex": complex,
                    "bytearray": bytearray}[name]
        return opaque_class(module, name)

    def _check(self, storage, dtype):
        if not isinstance(storage, _Storage):
            raise CheckpointError(f"{self._path}: tensor without a storage ({storage!r})")
        dtype = dtype or storage.dtype
        if not isinstance(dtype, _DType):  # e.g. torch.float8_e4m3fn, unknown to this reader
            dtype = _DType("unsupported", getattr(dtype, "_qualname", repr(dtype)).split(".")[-1])
        if dtype.name == "unsupported":
            raise CheckpointError(
                f"{self._path}: tensors of type {dtype!r} cannot be read without torch")
        return dtype

    def _rebuild_tensor_v2(self, storage, storage_offset, size, stride, requires_grad=False,
                           backward_hooks=None, metadata=None):
        dtype = self._check(storage, None)
        return _rebuild(storage, storage_offset, size, stride, dtype, self._path)

    def _rebuild_tensor_v3(self, storage, storage_offset, size, stride, requires_grad,
                           backward_hooks, dtype, metadata=None):
        dtype = self._check(storage, dtype)
        return _rebuild(storage, storage_offset, size, stride, dtype, self._path)


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None, state=None):
    return data


def _read_zip(path):
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        pkl = [n for n in names if n == "data.pkl" or n.endswith("/data.pkl")]
        if not pkl:
            raise CheckpointError(
                f"{path}: zip file without data.pkl; not a torch.save checkpoint "
                f"(TorchScript archives and other zips are not supported)")
        pkl = min(pkl, key=len)
        prefix = pkl[: -len("data.pkl")]
        byteorder = "little"
        if f"{prefix}byteorder" in names:
            byteorder = archive.read(f"{prefix}byteorder").decode().strip()
        with archive.open(pkl) as file:
            try:
                return _TorchUnpickler(file, archive, prefix, byteorder, path).load()
            except CheckpointError:
                raise
            except Exception as exc:  # a corrupt pickle can raise almost anything
                raise CheckpointError(f"{path}: cannot unpickle {pkl}: {exc}") from None


def _torch_to_numpy(obj):
    import torch

    if isinstance(obj, torch.Tensor):
        t = obj.detach().cpu()
        return (t.float() if t.dtype == torch.bfloat16 else t).numpy()
    if isinstance(obj, Mapping):
        kind = OrderedDict if isinstance(obj, OrderedDict) else dict
        return kind((k, _torch_to_numpy(v)) for k, v in obj.items())
    if isinstance(obj, (list, tuple)):
        return type(obj)(_torch_to_numpy(v) for v in obj)
    return obj


# What every file written by torch.save before 1.6 starts with: a pickled protocol-2 LONG1 of the
# magic number 0x1950a86a20f9469cfc6c (torch/serialization.py MAGIC_NUMBER).
LEGACY_MAGIC = b"\x80\x02\x8a\x0a" + (0x1950A86A20F9469CFC6C).to_bytes(10, "little")
# Local-file header / empty-archive record: the first bytes of any zip archive.
ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")


def file_head(path):
    """The first bytes of `path` (enough to tell the weight formats apart)."""
    if not os.path.isfile(path):
        raise CheckpointError(f"checkpoint file not found: {path}")
    with open(path, "rb") as file:
        return file.read(len(LEGACY_MAGIC))


def read_pth(path):
    """Read a `torch.save` file; tensors become numpy arrays (bfloat16 is widened to float32).

    Raises CheckpointError when the file is missing, not a torch file, truncated or corrupt, or in
    the legacy (pre-1.6, non-zip) format while torch is not installed.
    """
    path = os.fspath(path)
    head = file_head(path)
    if head.startswith(ZIP_MAGICS):
        if not zipfile.is_zipfile(path):  # the central directory sits at the very end
            raise CheckpointError(
                f"{path}: truncated or corrupt zip archive ({os.path.getsize(path):,} bytes, no "
                f"central directory at the end); download or copy the file again")
        try:
            return _read_zip(path)
        except zipfile.BadZipFile as exc:
            raise CheckpointError(f"{path}: corrupt zip archive: {exc}") from None
    if head != LEGACY_MAGIC:
        raise CheckpointError(f"{path}: not a torch.save file (it starts with {head[:8]!r})")
    try:
        import torch
    except ImportError:
        raise CheckpointError(
            f"{path}: torch.save file in the legacy format (torch < 1.6); reading the legacy format "
            f"needs torch installed, or re-save it with torch.save in a recent torch") from None
    try:
        obj = torch.load(path, map_location="cpu")
    except Exception as exc:
        raise CheckpointError(f"{path}: torch.load failed: {exc}") from None
    return _torch_to_numpy(obj)
