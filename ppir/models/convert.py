"""Released checkpoints (PyTorch, MindSpore, Paddle ports) -> ppir Paddle state dicts.

`ppir.utils.weight_files.read_weights` reads the file (format told by its first bytes, no torch
or MindSpore needed). `convert_state_dict(arch, state, source=...)` then unwraps the release
wrapper (`{'params': ...}`, `{'model': ...}`, ...), strips `module.`, applies the naming rules of
the source framework and of the architecture's port, and checks the result against the keys and
shapes of `build_network({"name": arch, ...})`.

Every framework and port difference in parameter naming or layout lives here, in
`FRAMEWORK_RULES` (per framework) and `ARCH_RULES` (per architecture, with a sub-table per port):
* torch BatchNorm buffers `running_mean` / `running_var` are Paddle's `_mean` / `_variance`;
  `num_batches_tracked` has no Paddle counterpart and is dropped.
* MindSpore names BatchNorm/LayerNorm parameters `gamma` / `beta` / `moving_mean` /
  `moving_variance` and an Embedding's matrix `embedding_table`; a `.ckpt` may also hold
  optimizer state and counters, which are skipped and listed.
* A Linear (Dense) weight is [out, in] in torch and MindSpore and [in, out] in Paddle: transposed,
  but only where the target parameter really belongs to a `paddle.nn.Linear` (decided from the
  built network).
* A sub-module registered under two names (EdgeConnect's `self.conv1 = self.features`) is listed
  under both in torch and in Paddle; the copies must agree, and a file holding only one name
  fills the other.
* Spectral norm needs no rule: `paddle.nn.utils.spectral_norm` stores the same tensors under the
  same names as torch (`weight_orig` parameter, `weight_u` / `weight_v` buffers).
"""
import os
import re
import tempfile
from collections import OrderedDict
from collections.abc import Mapping

import numpy as np

from ppir.errors import CheckpointError
from ppir.utils.weight_files import read_weights

# ----------------------------------------------------------------------------------------------
# Naming conventions of each source framework (applied to every architecture)
# ----------------------------------------------------------------------------------------------

_TORCH_RENAMES = ((r"\.running_mean$", "._mean"), (r"\.running_var$", "._variance"))
FRAMEWORK_RULES = {
    # BatchNorm buffers are `_mean` / `_variance` in Paddle; `num_batches_tracked` has no
    # counterpart. A Linear weight is [out, in] (Paddle: [in, out]).
    "torch": {"rename": _TORCH_RENAMES, "drop": (r"(^|\.)num_batches_tracked$",),
              "transpose_linear": True},
    # MindSpore: BatchNorm and LayerNorm scale/shift are `gamma` / `beta`, BatchNorm statistics
    # `moving_mean` / `moving_variance`, an Embedding's matrix `embedding_table`; a Dense weight
    # is [out, in] like torch's; conv and transposed-conv weights have torch's layouts
    # ([out, in/g, kh, kw] and [in, out/g, kh, kw]).
    "mindspore": {
        "rename": ((r"\.gamma$", ".weight"), (r"\.beta$", ".bias"),
                   (r"\.moving_mean$", "._mean"), (r"\.moving_variance$", "._variance"),
                   (r"(^|\.)embedding_table$", r"\1weight")),
        # What `mindspore.save_checkpoint` adds next to the network when it is given a training
        # cell or `append_dict`: optimizer moments and accumulators, step counters, loss scale.
        "skip": (r"^(moment1|moment2|moments|accum|mean_square|mean_grad|vhat|adam_m|adam_v)\.",
                 r"^(beta1_power|beta2_power|learning_rate|global_step|scale_sense|momentum|"
                 r"current_iterator_step|last_overflow_iterator_step|epoch_num|step_num|"
                 r"loss_scale|weight_decay)$"),
        "transpose_linear": True},
    # paddle.save state dicts already use Paddle's names and layouts.
    "paddle": {},
}
FRAMEWORK_RULES["torch-legacy"] = FRAMEWORK_RULES["torch"]

# ----------------------------------------------------------------------------------------------
# Per-architecture rules
# ----------------------------------------------------------------------------------------------

_GENERIC_WRAPPERS = ("params", "params_ema", "model", "state_dict", "generator")


def _vgg_stage_rename(offsets):
    """A port's VGG feature extractor split into stages `enc_1`, `enc_2`, ... with layer indices
    restarting at 0 -> torchvision's flat `features.N` (stage i starts at `offsets[i - 1]`)."""
    def repl(match):
        stage, index = int(match.group(1)), int(match.group(2))
        if not 1 <= stage <= len(offsets):
            return match.group(0)  # left unexpected: reported as such
        return f"features.{offsets[stage - 1] + index}."
    return ((r"^enc_(\d+)\.(\d+)\.", repl),)


def _vgg_relu_rename(arch):
    """`relu<b>_<i>.<k>.` (a port's cell named after the ReLU that ends it) -> the
    torchvision index of conv<b>_<i>."""
    def repl(match):
        from ppir.models.archs.vgg_layout import layer_names

        return f"features.{layer_names(arch).index(f'conv{match[1]}_{match[2]}')}."
    return repl


def _vgg_blocks(arch):
    """A VGG feature extractor released truncated (CTSDG's MindSpore VGG16 holds 3 blocks)."""
    def infer(state):
        from ppir.models.archs.vgg_layout import blocks_in

        return {"blocks": max(blocks_in(arch, state), 1)}
    return infer


def _mirnet_v2_args(state):
    """MIRNetV2's depth and width as stored in a file: ports differ (sldyns/MIRNetV2_paddle builds
    3 RRGs at n_feat=64; the official code 4 at 80)."""
    rrgs = {int(m.group(1)) for k in state for m in [re.match(r"body\.(\d+)\.", k)] if m}
    args = {}
    if rrgs:
        args["n_RRG"] = max(rrgs) + 1
    if "conv_in.weight" in state:
        args["n_feat"] = int(state["conv_in.weight"].shape[0])
    return args


_MIMO_MS_NOTE = ("the MindSpore port upsamples bilinearly: build the network with resample: "
                 "mindspore_bilinear (configs/seeds/mimounet_gopro_mindspore.yml) to compute what "
                 "these weights were trained for")

# `wrappers`: keys tried, in order, to find the state dict inside a release file; `rename`:
# (regex, replacement) applied to source keys; `drop`: regexes of source keys with no Paddle
# counterpart; `infer_args`: network arguments read off the file when --network-args leaves them
# out. A framework name (`mindspore`, `paddle`) holds extra rules of that framework's port,
# applied before the generic ones; its `note` is printed after converting such a file.
ARCH_RULES = {
    # BasicSR releases: {'params': sd}; the official test scripts load 'params', so it wins over
    # 'params_ema' when both are present. sldyns/MIRNetV2_paddle saves {'epoch', 'state_dict',
    # 'optimizer'} with the official key names.
    "MIRNetV2": {"wrappers": ("params", "params_ema"), "infer_args": _mirnet_v2_args},
    # MIMO-UNet releases: {'model': sd} (plus optimizer/epoch in training states). The
    # MindSpore port (mindspore-ai/models research/cv/MIMO-UNet) keeps every name, but resizes
    # bilinearly where the official code uses nearest.
    "MIMOUNet": {"wrappers": ("model",), "mindspore": {"note": _MIMO_MS_NOTE}},
    "MIMOUNetPlus": {"wrappers": ("model",), "mindspore": {"note": _MIMO_MS_NOTE}},
    # MISF (src/models.py): {'iteration': n, 'generator': sd} and {'discriminator': sd}.
    "MISFGenerator": {"wrappers": ("generator",)},
    "MISFDiscriminator": {"wrappers": ("discriminator",)},
    # ICT transformer: {'model', 'epoch', 'optimizer', 'tokens', 'best_validation_loss'} from
    # DDP_trainer.save_checkpoint, or a bare state dict (.pt). Each official attention layer keeps
    # its causal tril as a persistent `mask` buffer; the port builds it on the fly (BERT mode never
    # reads it), so it is dropped. The MindSpore port keeps the official names (and the mask, as
    # a Parameter).
    "ICTTransformer": {"wrappers": ("model",), "drop": (r"^blocks\.\d+\.attn\.mask$",)},
    # ICT guided upsampler: {'iteration', 'generator'} (InpaintingModel_gen.pth). The MindSpore
    # port keeps the names but pads the second conv of each residual block symmetrically.
    "ICTUpsampler": {"wrappers": ("generator",), "mindspore": {"note": (
        "the MindSpore port pads the second conv of each residual block symmetrically: build "
        "the network with resblock_second_pad: replicate (configs/seeds/ict_imagenet_mindspore.yml) "
        "to compute what these weights were trained for")}},
    # CTSDG training states: {'n_iter', 'generator', 'discriminator'}. Spectral-norm tensors
    # (weight_orig/_u/_v) and the discriminator's aliased `conv1.*` / `features.*` copies keep
    # their names: Paddle's spectral_norm and module aliasing produce the same keys.
    # The MindSpore port (mindspore-ai/models research/cv/CTSDG) keeps each stream's levels in a
    # CellList and its PartialConv2d wraps an nn.Conv2d (`ec_texture_layers.0.conv.conv.weight`
    # for the official `ec_texture_1.conv.weight`), its MSFA a CellList `dilated_convs.N` for
    # the official `dilated_conv_N`, and it resizes with align_corners=True.
    "CTSDGGenerator": {"wrappers": ("generator",), "mindspore": {
        "rename": ((r"^(ec|dc)_(texture|structure)_layers\.(\d+)\.(conv\.conv|bn)\.",
                    lambda m: f"{m[1]}_{m[2]}_{int(m[3]) + 1}.{m[4].split('.')[0]}."),
                   (r"^cfa\.msfa\.dilated_convs\.(\d+)\.", r"cfa.msfa.dilated_conv_\1.")),
        "note": ("the MindSpore port resizes with align_corners=True: build the network with "
                 "upsample_align_corners: true (configs/seeds/ctsdg_celeba_mindspore.yml) to "
                 "compute what these weights were trained for")}},
    "CTSDGDiscriminator": {"wrappers": ("discriminator",)},
    # torchvision ImageNet VGGs (bare state dicts): only `features` is ported. The CTSDG
    # MindSpore port's vgg16_feat_extr_ms.ckpt holds features[:17] as enc_1 = [:5],
    # enc_2 = [5:10], enc_3 = [10:17].
    "VGG16": {"drop": (r"^classifier\.",), "infer_args": _vgg_blocks("VGG16"),
              "mindspore": {"rename": _vgg_stage_rename((0, 5, 10))}},
    # ICT's MindSpore VGG19.ckpt names each conv after the ReLU that follows it, in a cell that
    # starts with the max-pool for the first conv of a block (`relu2_1.1.weight`).
    "VGG19": {"drop": (r"^classifier\.",), "infer_args": _vgg_blocks("VGG19"),
              "mindspore": {"rename": ((r"^relu(\d)_(\d)\.[01]\.", _vgg_relu_rename("VGG19")),)}},
    # pytorch-fid's pt_inception-2015-12-05-6726825d.pth (bare state dict): FID reads pool3, so
    # the 1008-way classifier is not ported.
    "FIDInceptionV3": {"drop": (r"^fc\.",)},
}


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


def _split_non_network(state, patterns, prefix=None):
    """(network entries, names of the skipped entries) of a flat checkpoint. With `prefix` (a
    training cell's attribute name) only the entries under `prefix.` belong to the network, and
    the prefix is stripped."""
    compiled = [re.compile(p) for p in patterns]
    kept, skipped = OrderedDict(), []
    for key, value in state.items():
        name = key
        if prefix:
            if not key.startswith(prefix + "."):
                skipped.append(key)
                continue
            name = key[len(prefix) + 1:]
        if not isinstance(value, np.ndarray) or any(p.search(name) for p in compiled):
            skipped.append(key)
        else:
            kept[name] = value
    return kept, skipped


def _rules(arch, source):
    """The rename and drop lists for `arch` read from a `source` file: port rules first."""
    if source not in FRAMEWORK_RULES:
        raise CheckpointError(f"unknown source format '{source}' "
                              f"(one of {', '.join(FRAMEWORK_RULES)})")
    arch_rules, framework = ARCH_RULES.get(arch, {}), FRAMEWORK_RULES[source]
    port = arch_rules.get(source, {})
    renames = [(re.compile(p), r) for p, r in
               tuple(port.get("rename", ())) + tuple(arch_rules.get("rename", ()))
               + tuple(framework.get("rename", ()))]
    drops = [re.compile(p) for p in
             tuple(port.get("drop", ())) + tuple(arch_rules.get("drop", ()))
             + tuple(framework.get("drop", ()))]
    return renames, drops, framework, port


def _default_arg(arch, name):
    """The constructor default of network `arch`'s argument `name` (None when it has none)."""
    import inspect

    from ppir.models import NETWORKS

    if arch not in NETWORKS:
        return None
    param = inspect.signature(NETWORKS.get(arch)).parameters.get(name)
    return None if param is None or param.default is inspect.Parameter.empty else param.default


def convert_state_dict(arch, state, network_args=None, param_key=None, net=None, source="torch",
                       notes=None):
    """Turn a checkpoint object (as read by `read_weights`, written by the framework `source`)
    into an OrderedDict of numpy arrays keyed like
    `build_network({"name": arch, **network_args}).state_dict()`.

    `notes`, when a list, receives one line per thing the caller should tell the user: skipped
    non-network entries, network arguments read off the file, widened half-precision tensors,
    the port's architecture difference. Raises CheckpointError listing missing, unexpected and
    shape-mismatched keys.
    """
    notes = [] if notes is None else notes
    renames, drops, framework, port = _rules(arch, source)
    if source == "mindspore":  # always flat; --param-key selects a training cell's sub-cell
        state, skipped = _split_non_network(state, framework.get("skip", ()),
                                            param_key.rstrip(".") if param_key else None)
        if skipped:
            notes.append(f"skipped {len(skipped)} non-network entries (optimizer state, "
                         f"counters): {_summary(skipped)}")
        if not state:
            raise CheckpointError("the checkpoint holds no network parameters"
                                  + (f" under '{param_key}.'" if param_key else ""))
    else:
        top = state
        state, where = unwrap_state_dict(arch, state, param_key)
        others = [str(k) for k in top if k != where.split("/")[0]] if where else []
        if others:
            notes.append(f"state dict read from '{where}'; ignored: {_summary(others)}")
    renamed = OrderedDict()
    for key, value in state.items():
        if key.startswith("module."):
            key = key[len("module."):]
        for pattern, repl in renames:
            key = pattern.sub(repl, key)
        if not any(p.search(key) for p in drops):
            renamed[key] = value

    if net is None:
        from ppir.models import build_network

        args = dict(network_args or {})
        infer = ARCH_RULES.get(arch, {}).get("infer_args")
        inferred = {k: v for k, v in (infer(renamed) if infer else {}).items()
                    if k not in args and v != _default_arg(arch, k)}
        if inferred:
            notes.append("network arguments read off the file: " + ", ".join(
                f"{k}={v}" for k, v in inferred.items()))
        net = build_network({"name": arch, **args, **inferred}, where="--arch")
    spec, linear_weights, aliases = _target_spec(net)
    converted = OrderedDict(
        (key, value.T if framework.get("transpose_linear") and key in linear_weights
         and value.ndim == 2 else value) for key, value in renamed.items())
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
            f"checkpoint does not fit network '{arch}' ({source} file; wrong --arch or "
            f"--network-args?): " + "; ".join(parts))

    out, widened = OrderedDict(), []
    for key, (_, dtype) in spec.items():
        value = converted[key]
        if value.dtype.kind == "f" and np.dtype(dtype).kind == "f":
            if value.dtype == np.float16 and dtype != "float16":
                widened.append(key)
            value = value.astype(dtype, copy=False)  # e.g. fp16 / bf16 release -> fp32 net
        elif value.dtype != np.dtype(dtype):
            raise CheckpointError(f"{key}: expected dtype {dtype}, got {value.dtype}")
        out[key] = np.ascontiguousarray(value)
    if widened:
        notes.append(f"{len(widened)} half-precision (float16) tensors widened to the network's "
                     f"float32 (exact: the values keep float16 precision)")
    if port.get("note"):
        notes.append(port["note"])
    return out


def convert_checkpoint(arch, src, dst, network_args=None, param_key=None, notes=None):
    """Read `src` (a torch `.pth`, MindSpore `.ckpt` or Paddle `.pdparams`; the format is read
    off the file), convert for `arch` and write a Paddle `.pdparams` to `dst` atomically.

    `dst` may not be `src` (also through a symlink or another spelling): refused before reading.
    `notes` (a list) receives the lines to show the user, the first naming the detected format.
    Returns the converted OrderedDict of numpy arrays.
    """
    import paddle

    from ppir.utils.paths import describe_os_error, refuse_overlap

    notes = [] if notes is None else notes
    dst = os.fspath(dst)
    refuse_overlap([(dst, "--dst")], [(os.fspath(src), "--src")])
    if os.path.isdir(dst):
        raise CheckpointError(f"--dst {dst} is a folder; give the .pdparams file name to write")
    obj, source = read_weights(src)
    notes.append(f"{src}: {source} format")
    state = convert_state_dict(arch, obj, network_args, param_key, source=source, notes=notes)
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
