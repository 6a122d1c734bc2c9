"""YAML configs with `_base_` inheritance, typed `-o a.b=value` overrides and a fixed schema.

Rules (PaddleSeg's loader, PaddleClas's CLI):
* `_base_: path` or a list of paths, relative to the file; the file's own keys win. Mappings merge
  key by key; any other value (lists included) is replaced. A mapping holding `_inherited_: false`
  replaces the inherited mapping instead of merging into it.
* `-o Section.key=value` sets one value, parsed as a Python/YAML literal (`1e-4`, `[1, 2]`, `null`,
  `true`), and otherwise kept as a string.
* Every section and key must be known. Plain sections have a fixed key list (`SCHEMA`); mappings
  with a `name` (networks, losses, datasets, metrics, optimizers, schedulers) are checked against
  the constructor they name when they are built. A typo is an error naming the key.
"""
import ast
import copy
import os
import re

import yaml

from ppir.errors import ConfigError

# Fixed keys of the plain sections with their defaults; `None` marks a section whose mapping is a
# component (has `name`). The types and ranges of these keys are in RULES below.
SCHEMA = {
    "Global": {
        "output_dir": None,          # default: output/<config file stem>
        "iters": 1000,
        "seed": 0,
        "device": "auto",            # auto | cpu | gpu
        "log_interval": 10,
        "eval_interval": 1000,       # 0 disables validation during training
        "save_interval": 1000,
        "keep_checkpoint_max": 3,    # iter_N checkpoints kept besides best_model
        "pretrained_model": None,    # weights to start from (a .pdparams file or a checkpoint dir)
        "use_visualdl": True,
        "save_val_images": False,
        "max_nonfinite_steps": 10,   # consecutive NaN/Inf steps before the run stops
        # The switches TIPC's AMP chain appends (PaddleOCR's Global.* spelling); when set they
        # take precedence over AMP.enable / AMP.init_loss_scaling (ppir/engine/amp.py).
        "use_amp": None,
        "scale_loss": None,
        "use_dynamic_loss_scaling": None,
    },
    "Model": None,
    "Optimizer": None,
    "LRScheduler": None,
    "Train": {
        "dataset": None,
        "batch_size": 8,             # per card
        "patch_size": None,          # square training crop; None trains on whole images
        "num_workers": 2,
        "progressive": None,         # {iters: [...], patch_sizes: [...], batch_sizes: [...]}
        "mixup": None,               # {beta: 1.2, use_identity: true}
    },
    "Eval": {
        "dataset": None,
        "metrics": [],
        "num_workers": 0,
        "clamp": True,               # clamp the output to [0, 1] before scoring, as the papers do
    },
    "AMP": {
        "enable": False,
        "level": "O1",
        "dtype": "float16",
        "init_loss_scaling": 1024.0,
    },
    "EMA": {
        "enable": False,
        "decay": 0.999,
    },
    "Export": {
        "tile": None,                # suggested tile size for deploy/infer.py (None = whole image)
        "tile_overlap": 32,
    },
}


def _integer(low=None, optional=False):
    def check(value):
        if value is None and optional:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            hint = f" (write {int(value)})" if isinstance(value, float) and value.is_integer() else ""
            return f"expected an integer, got {value!r}{hint}"
        if low is not None and value < low:
            return f"must be >= {low}, got {value}"
        return None
    return check


def _number(low=None, high=None, low_open=False):
    def check(value):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return f"expected a number, got {value!r}"
        if low is not None and (value <= low if low_open else value < low):
            return f"must be {'>' if low_open else '>='} {low}, got {value}"
        if high is not None and value > high:
            return f"must be <= {high}, got {value}"
        return None
    return check


def _boolean(value):
    return None if isinstance(value, bool) else f"expected true or false, got {value!r}"


def _boolean_or_none(value):
    return None if value is None else _boolean(value)


def _number_or_none(low):
    def check(value):
        return None if value is None else _number(low, low_open=True)(value)
    return check


def _one_of(*choices):
    def check(value):
        return None if value in choices else f"must be one of {', '.join(map(str, choices))}, got {value!r}"
    return check


def _text(optional=True):
    def check(value):
        if value is None and optional:
            return None
        return None if isinstance(value, str) and value else f"expected a path or name, got {value!r}"
    return check


def _weights(value):
    """A weights file or checkpoint dir, or {network name: weights file} for multi-network models."""
    if isinstance(value, dict):
        bad = [k for k, v in value.items() if not (isinstance(v, str) and v)]
        return f"expected {{network: weights file}}, got {value!r}" if bad or not value else None
    return _text()(value)


def _mapping(value):
    return None if value is None or isinstance(value, dict) else f"expected a mapping, got {value!r}"


# Type and range of every fixed key: a function returning None when the value is fine, else the
# reason. Checked before anything starts, so a bad value is one line naming the key, not a crash
# (or a silent misreading) later.
RULES = {
    "Global": {
        "output_dir": _text(), "iters": _integer(1), "seed": _integer(0),
        "device": _one_of("auto", "cpu", "gpu"), "log_interval": _integer(1),
        "eval_interval": _integer(0), "save_interval": _integer(1),
        "keep_checkpoint_max": _integer(1), "pretrained_model": _weights, "use_visualdl": _boolean,
        "save_val_images": _boolean, "max_nonfinite_steps": _integer(1),
        "use_amp": _boolean_or_none, "scale_loss": _number_or_none(0), "use_dynamic_loss_scaling": _boolean_or_none,
    },
    "Train": {
        "dataset": _mapping, "batch_size": _integer(1), "patch_size": _integer(1, optional=True),
        "num_workers": _integer(0), "progressive": _mapping, "mixup": _mapping,
    },
    "Eval": {
        "dataset": _mapping, "metrics": lambda v: None if isinstance(v, list) else
        f"expected a list of {{name: ...}} mappings, got {v!r}",
        "num_workers": _integer(0), "clamp": _boolean,
    },
    "AMP": {
        "enable": _boolean, "level": _one_of("O1", "O2"), "dtype": _one_of("float16", "bfloat16"),
        "init_loss_scaling": _number(0, low_open=True),
    },
    "EMA": {"enable": _boolean, "decay": _number(0, 1)},
    "Export": {"tile": _integer(1, optional=True), "tile_overlap": _integer(0)},
}
# Sections built from a `name` (checked against their constructors), and keys that belong elsewhere.
COMPONENTS = ("Model", "Optimizer", "LRScheduler")
MISPLACED = {
    ("Optimizer", "learning_rate"): "the learning rate belongs to LRScheduler (LRScheduler.learning_rate)",
}


class _Loader(yaml.SafeLoader):
    """SafeLoader that also reads `2e-4` as a float (YAML 1.1 wants `2.0e-4`)."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
                   |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
                   |\.[0-9_]+(?:[eE][-+][0-9]+)?
                   |[-+]?\.(?:inf|Inf|INF)
                   |\.(?:nan|NaN|NAN))$""", re.X),
    list("-+0123456789."))


def _read_yaml(path):
    if not os.path.isfile(path):
        raise ConfigError(f"config file not found: {path}")
    try:
        with open(path, "r", encoding="utf-8") as f:
            data = yaml.load(f, Loader=_Loader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise ConfigError(f"cannot parse {path}{where}: {getattr(exc, 'problem', exc)}") from None
    if data is None:
        raise ConfigError(f"config file is empty: {path}")
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of sections")
    return data


def merge(base, update):
    """Return `base` updated by `update` (mappings merge, everything else is replaced)."""
    out = copy.deepcopy(base)
    for key, value in update.items():
        if isinstance(value, dict) and value.get("_inherited_", True) is False:
            out[key] = {k: v for k, v in value.items() if k != "_inherited_"}
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _load_with_bases(path, chain=()):
    path = os.path.abspath(path)
    if path in chain:
        raise ConfigError(f"_base_ cycle: {' -> '.join(chain + (path,))}")
    data = _read_yaml(path)
    bases = data.pop("_base_", [])
    if isinstance(bases, str):
        bases = [bases]
    merged = {}
    for base in bases:
        base_path = os.path.join(os.path.dirname(path), base)
        if not os.path.isfile(base_path):
            raise ConfigError(f"{path}: _base_ file not found: {base_path}")
        merged = merge(merged, _load_with_bases(base_path, chain + (path,)))
    return merge(merged, data)


def parse_value(text):
    """Type an override value: Python literal first, then YAML (true/null/1e-4), else the string."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        pass
    try:
        return yaml.load(text, Loader=_Loader)
    except yaml.YAMLError:
        return text


# The AMP switches that PaddleOCR/PaddleClas-derived TIPC harnesses append to every train
# command: `amp=None` when AMP is off, `amp.scale_loss=1024.0 amp.use_dynamic_loss_scaling=True
# amp.amp_level=O2` when it is on. Each maps onto ppir's own keys (Global.use_dynamic_loss_scaling
# is read by ppir/engine/amp.py); any other `amp.*` key is refused like every unknown key.
HARNESS_AMP_KEYS = {"scale_loss": "AMP.init_loss_scaling", "use_dynamic_loss_scaling": "Global.use_dynamic_loss_scaling",
                    "amp_level": "AMP.level", "level": "AMP.level"}


def harness_amp_overrides(key, value, item):
    """ppir overrides (key, value) for a harness AMP override, or None if `key` is not one."""
    parts = key.split(".")
    if parts[0] != "amp" and key != "AMP":
        return None
    if len(parts) == 1:  # amp=None (off); amp=True/False also read as the switch
        if value is None or isinstance(value, bool) or str(value).lower() == "none":
            return [("AMP.enable", bool(value) and str(value).lower() != "none")]
        raise ConfigError(f"override '{item}': {key} takes None (AMP off) or a boolean")
    if len(parts) == 2 and parts[1] in HARNESS_AMP_KEYS:
        return [("AMP.enable", True), (HARNESS_AMP_KEYS[parts[1]], value)]
    raise ConfigError(f"unknown config key '{key}' (from override '{item}'); the harness AMP keys are "
                      f"amp=None and amp.{', amp.'.join(HARNESS_AMP_KEYS)}")


def apply_override(cfg, item):
    """Apply one `a.b.c=value` override in place; the key must already be allowed."""
    if "=" not in item:
        raise ConfigError(f"override '{item}' is not of the form key=value")
    key, text = item.split("=", 1)
    mapped = harness_amp_overrides(key.strip(), parse_value(text.strip()), item)
    if mapped is not None:
        for ppir_key, value in mapped:
            apply_override(cfg, f"{ppir_key}={value!r}")
        return
    parts = key.strip().split(".")
    node = cfg
    for i, part in enumerate(parts[:-1]):
        child = node.get(part) if isinstance(node, dict) else None
        if isinstance(child, list):
            raise ConfigError(f"override '{item}': lists are set whole, e.g. "
                              f"{'.'.join(parts[:i + 1])}=[...]")
        if not isinstance(child, dict):
            if child is None and _allows_new_key(cfg, parts[:i + 1]):
                node[part] = child = {}
            else:
                raise ConfigError(f"unknown config key '{'.'.join(parts[:i + 1])}' (from override '{item}')")
        node = child
    last = parts[-1]
    if last not in node and not _allows_new_key(cfg, parts):
        raise ConfigError(f"unknown config key '{key}' (from override '{item}')")
    node[last] = parse_value(text.strip())


def _allows_new_key(cfg, parts):
    """A key that is not in the file may still be set when the schema or a component allows it."""
    section = parts[0]
    if section not in SCHEMA:
        return False
    fixed = SCHEMA[section]
    if len(parts) == 1:
        return True
    if isinstance(fixed, dict) and len(parts) == 2:
        return parts[1] in fixed
    # Inside a component mapping (it has a `name`): the constructor check at build time decides.
    node = cfg
    for part in parts[:-1]:
        node = node.get(part) if isinstance(node, dict) else None
    return isinstance(node, dict) and "name" in node


def validate(cfg, source="config"):
    """Refuse unknown sections, unknown or mistyped keys of the fixed sections, and values that
    would be silently ignored; fill the defaults."""
    unknown = sorted(set(cfg) - set(SCHEMA))
    if unknown:
        raise ConfigError(f"{source}: unknown section(s) {', '.join(unknown)}; "
                          f"known: {', '.join(SCHEMA)}")
    for section in COMPONENTS:
        value = cfg.get(section)
        # A bare number is a constant learning rate (ppir.engine.lr_scheduler.build_lr_scheduler).
        allowed = (dict, int, float) if section == "LRScheduler" else (dict,)
        if section in cfg and (isinstance(value, bool) or not isinstance(value, allowed)):
            raise ConfigError(f"{source}: section {section} must be a mapping, got {value!r}")
    for (section, key), reason in MISPLACED.items():
        if isinstance(cfg.get(section), dict) and key in cfg[section]:
            raise ConfigError(f"{source}: {section}.{key} is not used: {reason}")
    for section, fixed in SCHEMA.items():
        if not isinstance(fixed, dict):
            continue
        if section in cfg and not isinstance(cfg[section], dict):
            raise ConfigError(f"{source}: section {section} must be a mapping, got {cfg[section]!r}")
        given = cfg.get(section) or {}
        bad = sorted(set(given) - set(fixed))
        if bad:
            raise ConfigError(f"{source}: unknown key(s) {', '.join(section + '.' + b for b in bad)}; "
                              f"known: {', '.join(fixed)}")
        for key, value in given.items():
            reason = RULES.get(section, {}).get(key, lambda v: None)(value)
            if reason:
                raise ConfigError(f"{source}: {section}.{key} {reason}")
        defaults = copy.deepcopy(fixed)
        if section == "Train" and given.get("progressive"):
            ignored = [k for k in ("batch_size", "patch_size") if k in given]
            if ignored:
                raise ConfigError(f"{source}: Train.{ignored[0]} is not used while Train.progressive is set "
                                  f"(its {ignored[0]}s list wins); remove one of them")
            # The progressive schedule owns both; a default here would only mislead a reader.
            del defaults["batch_size"], defaults["patch_size"]
        cfg[section] = {**defaults, **given}
    return cfg


def load_config(path, overrides=()):
    """Load a config file, apply `-o` overrides, validate, and fill defaults."""
    cfg = _load_with_bases(path)
    validate(copy.deepcopy(cfg), source=path)
    for item in overrides or ():
        apply_override(cfg, item)
    cfg = validate(cfg, source=f"{path} with the -o overrides" if overrides else path)
    if not cfg["Global"]["output_dir"]:
        stem = os.path.splitext(os.path.basename(path))[0]
        cfg["Global"]["output_dir"] = os.path.join("output", stem)
    cfg["_config_path"] = path
    return cfg


def dump_config(cfg, path):
    """Write the resolved config (without private keys) as YAML."""
    public = {k: v for k, v in cfg.items() if not k.startswith("_")}
    with open(path, "w", encoding="utf-8") as f:
        yaml.safe_dump(public, f, sort_keys=False, default_flow_style=None)


def add_config_arguments(parser):
    """The config arguments every tool shares: -c CFG, -o k=v ..., and bare k=v tokens."""
    parser.add_argument("-c", "--config", required=True, help="path to the yml config")
    parser.add_argument("-o", "--override", nargs="+", default=[], action="extend",
                        help="config overrides key=value, e.g. Global.iters=100")
    parser.add_argument("extra_overrides", nargs="*", metavar="KEY=VALUE",
                        help="more overrides (bare key=value tokens are accepted too)")


def config_from_args(args):
    return load_config(args.config, args.override + args.extra_overrides)
