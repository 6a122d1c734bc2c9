"""Official PyTorch checkpoints -> Paddle state dicts, without needing torch.

Two parts:

* `read_pth(path)` reads a file written by `torch.save` (the zip format, PyTorch >= 1.6) with
  plain `pickle` + `zipfile` + numpy. Tensors come back as numpy arrays, dicts/lists/tuples keep
  their shape, and classes the reader does not know become inert placeholders (nothing from the
  file is ever imported or executed). The pre-1.6 non-zip format is read through `torch.load`
  when torch happens to be installed; otherwise it is refused with a CheckpointError.
* `convert_state_dict(arch, state)` unwraps the release wrapper (`{'params': ...}`, `{'model':
  ...}`, ...), strips `module.`, applies the generic PyTorch -> Paddle rules, and checks the
  result against the keys and shapes of `build_network({"name": arch, ...})`.

Every framework difference in parameter naming or layout lives here:
* BatchNorm buffers `running_mean` / `running_var` are Paddle's `_mean` / `_variance`;
  `num_batches_tracked` has no Paddle counterpart and is dropped.
* A Linear weight is [out, in] in torch and [in, out] in Paddle: transposed, but only where the
  target parameter really belongs to a `paddle.nn.Linear` (decided from the built network).
* A sub-module registered under two names (EdgeConnect's `self.conv1 = self.features`) is listed
  under both in torch and in Paddle; the copies must agree, and a file holding only one name
  fills the other.
* Spectral norm needs no rule: `paddle.nn.utils.spectral_norm` stores the same tensors under the
  same names as torch (`weight_orig` parameter, `weight_u` / `weight_v` buffers).
* Per-architecture exceptions (wrapper names, renames, dropped keys) are in `ARCH_RULES`.
"""
import os
import pickle
import re
import tempfile
import zipfile
from collections import OrderedDict
from collections.abc import Mapping

import numpy as np

from ppir.errors import CheckpointError

# ----------------------------------------------------------------------------------------------
# Reading torch.save files without torch
# ----------------------------------------------------------------------------------------------

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


def _opaque_class(module, name):
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
        return _opaque_class(module, name)

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


def read_pth(path):
    """Read a `torch.save` file; tensors become numpy arrays (bfloat16 is widened to float32).

    Raises CheckpointError when the file is missing, corrupt, or in the legacy (pre-1.6, non-zip)
    format while torch is not installed.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise CheckpointError(f"checkpoint file not found: {path}")
    if zipfile.is_zipfile(path):
        try:
            return _read_zip(path)
        except zipfile.BadZipFile as exc:
            raise CheckpointError(f"{path}: corrupt zip archive: {exc}") from None
    try:
        import torch
    except ImportError:
        raise CheckpointError(
            f"{path}: not a zip-format torch.save file (torch >= 1.6); reading the legacy format "
            f"needs torch installed, or re-save it with torch.save in a recent torch") from None
    try:
        obj = torch.load(path, map_location="cpu")
    except Exception as exc:
        raise CheckpointError(f"{path}: torch.load failed: {exc}") from None
    return _torch_to_numpy(obj)


# ----------------------------------------------------------------------------------------------
# Key conversion
# ----------------------------------------------------------------------------------------------

_GENERIC_WRAPPERS = ("params", "params_ema", "model", "state_dict", "generator")

# Per-architecture exceptions. `wrappers`: keys tried, in order, to find the state dict inside a
# release file; `rename`: (regex, replacement) applied to source keys; `drop`: regexes of source
# keys with no Paddle counterpart.
ARCH_RULES = {
    # BasicSR releases: {'params': sd}; the official test scripts load 'params', so it wins over
    # 'params_ema' when both are present.
    "MIRNetV2": {"wrappers": ("params", "params_ema")},
    # MIMO-UNet releases: {'model': sd} (plus optimizer/epoch in training states).
    "MIMOUNet": {"wrappers": ("model",)},
    "MIMOUNetPlus": {"wrappers": ("model",)},
    # MISF (src/models.py): {'iteration': n, 'generator': sd} and {'discriminator': sd}.
    "MISFGenerator": {"wrappers": ("generator",)},
    "MISFDiscriminator": {"wrappers": ("discriminator",)},
    # ICT transformer: {'model', 'epoch', 'optimizer', 'tokens', 'best_validation_loss'} from
    # DDP_trainer.save_checkpoint, or a bare state dict (.pt). Each official attention layer keeps
    # its causal tril as a persistent `mask` buffer; the port builds it on the fly (BERT mode never
    # reads it), so it is dropped.
    "ICTTransformer": {"wrappers": ("model",), "drop": (r"^blocks\.\d+\.attn\.mask$",)},
    # ICT guided upsampler: {'iteration', 'generator'} (InpaintingModel_gen.pth).
    "ICTUpsampler": {"wrappers": ("generator",)},
    # CTSDG training states: {'n_iter', 'generator', 'discriminator'}. Spectral-norm tensors
    # (weight_orig/_u/_v) and the discriminator's aliased `conv1.*` / `features.*` copies keep
    # their names: Paddle's spectral_norm and module aliasing produce the same keys.
    "CTSDGGenerator": {"wrappers": ("generator",)},
    "CTSDGDiscriminator": {"wrappers": ("discriminator",)},
    # torchvision ImageNet VGGs (bare state dicts): only `features` is ported.
    "VGG16": {"drop": (r"^classifier\.",)},
    "VGG19": {"drop": (r"^classifier\.",)},
    # pytorch-fid's pt_inception-2015-12-05-6726825d.pth (bare state dict): FID reads pool3, so
    # the 1008-way classifier is not ported.
    "FIDInceptionV3": {"drop": (r"^fc\.",)},
}

_BN_RENAMES = ((re.compile(r"\.running_mean$"), "._mean"),
               (re.compile(r"\.running_var$"), "._variance"))
_GENERIC_DROP = (re.compile(r"(^|\.)num_batches_tracked$"),)


def _is_state_dict(obj):
    return isinstance(obj, Mapping) and obj and all(
        isinstance(k, str) and isinstance(v, np.ndarray) for k, v in obj.items())


def unwrap_state_dict(arch, obj, param_key=None):
    """Find the flat {name: array} state dict inside a release file's object."""
    wrappers = (param_key,) if param_key else \
        ARCH_RULES.get(arch, {}).get("wrappers", ()) + _GENERIC_WRAPPERS
    path = []
    for _ in range(4):
        if _is_state_dict(obj):
            return obj, "/".join(path)
        if not isinstance(obj, Mapping):
            break
        for key in wrappers:
            if key in obj and isinstance(obj[key], Mapping):
                obj = obj[key]
                path.append(key)
                break
        else:
            break
    top = list(obj.keys())[:12] if isinstance(obj, Mapping) else type(obj).__name__
    raise CheckpointError(
        f"no state dict found{' under ' + '/'.join(path) if path else ''} (tried wrapper keys "
        f"{', '.join(k for k in wrappers)}); top-level content: {top}; pass --param-key")


def _target_spec(net):
    """{key: (shape, dtype_name)} of the network's state dict, the set of Linear weights, and
    the groups of keys that name one tensor (aliased sub-modules)."""
    from paddle import nn

    spec, by_tensor = OrderedDict(), OrderedDict()
    for key, value in net.state_dict().items():
        spec[key] = (tuple(int(s) for s in value.shape), str(value.dtype).replace("paddle.", ""))
        by_tensor.setdefault(id(value), []).append(key)
    linear = {f"{name}.weight" if name else "weight"
              for name, layer in net.named_sublayers(include_self=True)
              if isinstance(layer, nn.Linear)}
    aliases = [keys for keys in by_tensor.values() if len(keys) > 1]
    return spec, linear, aliases


def _fill_aliases(converted, aliases):
    """Aliased keys hold one tensor: present copies must agree; absent names get the value."""
    for group in aliases:
        present = [k for k in group if k in converted]
        if not present:
            continue
        value = converted[present[0]]
        for key in present[1:]:
            if converted[key].shape != value.shape or not np.array_equal(converted[key], value):
                raise CheckpointError(
                    f"{present[0]} and {key} name one tensor in the network but hold different "
                    f"values in the checkpoint")
        for key in group:
            converted.setdefault(key, value)


def _summary(keys, limit=6):
    keys = list(keys)
    shown = ", ".join(keys[:limit])
    return f"{shown}, ... ({len(keys)} in all)" if len(keys) > limit else shown


def convert_state_dict(arch, state, network_args=None, param_key=None, net=None):
    """Turn an official checkpoint object (as read by `read_pth`) into an OrderedDict of numpy
    arrays keyed like `build_network({"name": arch, **network_args}).state_dict()`.

    Raises CheckpointError listing missing, unexpected and shape-mismatched keys.
    """
    rules = ARCH_RULES.get(arch, {})
    if net is None:
        from ppir.models import build_network

        net = build_network({"name": arch, **(network_args or {})}, where="--arch")
    spec, linear_weights, aliases = _target_spec(net)
    state, _ = unwrap_state_dict(arch, state, param_key)

    renames = [(re.compile(p), r) for p, r in rules.get("rename", ())]
    drops = [re.compile(p) for p in rules.get("drop", ())] + list(_GENERIC_DROP)
    converted = OrderedDict()
    for key, value in state.items():
        if key.startswith("module."):
            key = key[len("module."):]
        for pattern, repl in renames:
            key = pattern.sub(repl, key)
        if any(p.search(key) for p in drops):
            continue
        for pattern, repl in _BN_RENAMES:
            key = pattern.sub(repl, key)
        if key in linear_weights and value.ndim == 2:
            value = value.T
        converted[key] = value
    _fill_aliases(converted, aliases)

    missing = [k for k in spec if k not in converted]
    unexpected = [k for k in converted if k not in spec]
    mismatched = [f"{k} (expected {list(spec[k][0])}, got {list(converted[k].shape)})"
                  for k in spec if k in converted and tuple(converted[k].shape) != spec[k][0]]
    if missing or unexpected or mismatched:
        parts = []
        if missing:
            parts.append(f"missing: {_summary(missing)}")
        if unexpected:
            parts.append(f"unexpected: {_summary(unexpected)}")
        if mismatched:
            parts.append(f"shape mismatch: {_summary(mismatched, 3)}")
        raise CheckpointError(
            f"checkpoint does not fit network '{arch}' (wrong --arch or --network-args?): "
            + "; ".join(parts))

    out = OrderedDict()
    for key, (_, dtype) in spec.items():
        value = converted[key]
        if value.dtype.kind == "f" and np.dtype(dtype).kind == "f":
            value = value.astype(dtype, copy=False)  # e.g. fp16 / bf16 release -> fp32 net
        elif value.dtype != np.dtype(dtype):
            raise CheckpointError(f"{key}: expected dtype {dtype}, got {value.dtype}")
        out[key] = np.ascontiguousarray(value)
    return out


def convert_checkpoint(arch, src, dst, network_args=None, param_key=None):
    """Read `src` (.pth), convert for `arch` and write a Paddle `.pdparams` to `dst` atomically.

    `dst` may not be `src` (also through a symlink or another spelling): refused before reading.
    Returns the converted OrderedDict of numpy arrays.
    """
    import paddle

    from ppir.utils.paths import describe_os_error, refuse_overlap

    dst = os.fspath(dst)
    refuse_overlap([(dst, "--dst")], [(os.fspath(src), "--src")])
    if os.path.isdir(dst):
        raise CheckpointError(f"--dst {dst} is a folder; give the .pdparams file name to write")
    state = convert_state_dict(arch, read_pth(src), network_args, param_key)
    folder = os.path.dirname(os.path.abspath(dst))
    tmp = None
    try:
        os.makedirs(folder, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".convert-", suffix=".pdparams", dir=folder)
        os.close(fd)
        paddle.save({k: paddle.to_tensor(v) for k, v in state.items()}, tmp)
        os.replace(tmp, dst)
    except OSError as exc:
        raise CheckpointError(f"cannot write {dst} (folder {folder}): {describe_os_error(exc)}") from None
    finally:
        if tmp and os.path.exists(tmp):
            os.remove(tmp)
    return state
