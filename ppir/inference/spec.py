"""The export-directory contract: what `ppir.inference.export` writes and every reader relies on.

An export directory holds

    inference.json + inference.pdiparams   the static model (Paddle 3 PIR; a legacy
                                           inference.pdmodel is read too)
    inference.onnx                         optional, from `tools/export.py --onnx`
    inference.yml                          everything a predictor needs to feed the model
    shape_range_info.pbtxt, trt_fp*/        TensorRT caches a GPU predictor adds

A multi-graph model (ICT) keeps each graph in a folder of its own (`transformer/`,
`upsampler/`) and lists them under `stages`; every graph is described by the same record
(`graph_record`): its files, the CPU paths that matched dygraph, their timings and the default.

`inference.yml` is written last and removed first when an export is replaced, so a directory
with an inference.yml always holds a complete, verified export.
"""
import os

import numpy as np
import yaml

from ppir.errors import ExportError

SPEC_FILE = "inference.yml"
PARAMS_FILE = "inference.pdiparams"
MODEL_FILES = ("inference.json", "inference.pdmodel")  # PIR (Paddle >= 3.0) first, then legacy
ONNX_FILE = "inference.onnx"
SHAPE_RANGE_FILE = "shape_range_info.pbtxt"
# Every file an export may leave in its directory (the directory may also hold checkpoints).
EXPORT_FILES = MODEL_FILES + (PARAMS_FILE, "inference.pdiparams.info", ONNX_FILE, SHAPE_RANGE_FILE,
                              SPEC_FILE)
# TensorRT builds deploy/infer.py caches next to a PIR export; stale once the model changes.
CACHE_DIRS = ("trt_fp32", "trt_fp16")
REQUIRED_KEYS = ("model_name", "color_order", "layout", "pad_multiple", "pad_mode", "inputs", "output")
ROLES = ("image", "mask", "edge", "prior", "tokens")
MASK_CONVENTIONS = ("1 = hole", "1 = known")


def load_spec(model_dir):
    """Read and check `<model_dir>/inference.yml`; ExportError names the missing file or key."""
    if os.path.isfile(model_dir):
        raise ExportError(f"--model_dir {model_dir} is a file; give the export folder (tools/export.py --save_dir)")
    if not os.path.isdir(model_dir):
        raise ExportError(f"model dir not found: {model_dir}")
    path = os.path.join(model_dir, SPEC_FILE)
    if not os.path.isfile(path):
        raise ExportError(f"not an export directory (missing {SPEC_FILE}): {path}")
    try:
        with open(path, encoding="utf-8") as f:
            spec = yaml.safe_load(f)
    except yaml.YAMLError as exc:
        raise ExportError(f"cannot parse {path}: {exc}") from None
    if not isinstance(spec, dict):
        raise ExportError(f"{path}: expected a mapping")
    spec = upgrade_spec(spec)
    missing = [k for k in REQUIRED_KEYS if k not in spec]
    if missing:
        raise ExportError(f"{path}: missing key(s) {', '.join(missing)}")
    if spec["layout"] != "NCHW":
        raise ExportError(f"{path}: layout {spec['layout']!r} is not supported (expected NCHW)")
    check_spec_types(spec, path)
    return spec


def upgrade_spec(spec):
    """An inference.yml written before multi-input exports (one image input `input_name` with
    `in_channels` and `value_range`) in today's form, so older export folders keep working."""
    if "inputs" in spec or "in_channels" not in spec:
        return spec
    spec = dict(spec)
    value_range = spec.pop("value_range", [0.0, 1.0])
    spec["inputs"] = [{"name": spec.pop("input_name", "x"), "source": "input", "channels": spec.pop("in_channels"),
                       "dtype": "float32", "value_range": value_range, "role": "image"}]
    spec["output"] = {"channels": spec.pop("out_channels", 3), "value_range": value_range, "composite": False}
    spec.pop("mask", None)
    spec.setdefault("host_steps", [])
    return spec


def _is_int(value, low):
    return isinstance(value, int) and not isinstance(value, bool) and value >= low


def check_spec_types(spec, path):
    """ExportError naming the key of a hand-edited or damaged inference.yml value that would
    otherwise surface as a traceback deep inside inference."""
    from ppir.utils.tiling import _NUMPY_PAD_MODES

    def bad(key, expected):
        raise ExportError(f"{path}: {key} must be {expected}, got {spec.get(key)!r}")

    def range_ok(low_high):
        return (isinstance(low_high, list) and len(low_high) == 2
                and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in low_high)
                and low_high[0] < low_high[1])

    inputs = spec["inputs"]
    if not (isinstance(inputs, list) and inputs and all(isinstance(i, dict) for i in inputs)):
        bad("inputs", "a non-empty list of mappings")
    for k, item in enumerate(inputs):
        where = f"inputs[{k}]"
        if not (isinstance(item.get("name"), str) and item["name"].strip()):
            raise ExportError(f"{path}: {where}.name must be a non-empty string, got {item.get('name')!r}")
        if not isinstance(item.get("source"), str):
            raise ExportError(f"{path}: {where}.source must name a host array (input, mask, ...), got {item.get('source')!r}")
        if not _is_int(item.get("channels"), 1):
            raise ExportError(f"{path}: {where}.channels must be a positive integer, got {item.get('channels')!r}")
        if not range_ok(item.get("value_range", [0.0, 1.0])):
            raise ExportError(f"{path}: {where}.value_range must be [low, high] with low < high, "
                              f"got {item.get('value_range')!r}")
        if item.get("role", "image") not in ROLES:
            raise ExportError(f"{path}: {where}.role must be one of {', '.join(ROLES)}, got {item.get('role')!r}")
        if item.get("role") == "mask" and item.get("mask_convention", "1 = hole") not in MASK_CONVENTIONS:
            raise ExportError(f"{path}: {where}.mask_convention must be '1 = hole' or '1 = known', "
                              f"got {item.get('mask_convention')!r}")
    output = spec["output"]
    if not (isinstance(output, dict) and _is_int(output.get("channels", 3), 1)
            and range_ok(output.get("value_range", [0.0, 1.0]))):
        bad("output", "a mapping with channels and value_range [low, high]")
    if not isinstance(spec.get("host_steps", []), list):
        bad("host_steps", "a list of {name: ...} mappings")
    if spec["pad_multiple"] is not None and not _is_int(spec["pad_multiple"], 1):
        bad("pad_multiple", "a positive integer or null")
    if spec["pad_mode"] not in _NUMPY_PAD_MODES:
        bad("pad_mode", f"one of {', '.join(sorted(_NUMPY_PAD_MODES))}")
    if spec.get("tile") is not None and not _is_int(spec["tile"], 0):
        bad("tile", "a non-negative integer or null")
    if not _is_int(spec.get("tile_overlap", 32), 0):
        bad("tile_overlap", "a non-negative integer")
    if not isinstance(spec["model_name"], str) or not spec["model_name"].strip():
        bad("model_name", "a non-empty string")
    for key in ("model_file", "params_file", "onnx_file"):
        if spec.get(key) is not None and not isinstance(spec[key], str):
            bad(key, "a file name or null")
    if spec.get("metrics") is not None and not (isinstance(spec["metrics"], list)
                                                and all(isinstance(m, dict) for m in spec["metrics"])):
        bad("metrics", "a list of mappings")


def graph_record(spec, stage=None):
    """The record of one exported graph: its files (`model_file`, `params_file`, `onnx_file`,
    relative to the export folder), `failed_paths` (CPU paths that did not match dygraph),
    `default_path` and `default_path_by_size` (the fastest verified paths tools/export.py timed).
    A single-graph export keeps its record at the top level of inference.yml; a multi-graph one
    under `stages.<name>`."""
    if stage is None:
        record = dict(spec)
        record["failed_paths"] = (spec.get("export") or {}).get("failed_paths") or {}
        return record
    stages = spec.get("stages") or {}
    if stage not in stages or not isinstance(stages[stage], dict):
        raise ExportError(f"inference.yml has no stages.{stage}; re-export the model")
    return dict(stages[stage], failed_paths=stages[stage].get("failed_paths") or {})


def paddle_model_files(model_dir, record=None):
    """(model file, params file) of a graph's static model; ExportError names the missing file."""
    names = [record["model_file"]] if record and record.get("model_file") else list(MODEL_FILES)
    model_file = next((os.path.join(model_dir, n) for n in names
                       if os.path.isfile(os.path.join(model_dir, n))), None)
    if model_file is None:
        raise ExportError(f"export is incomplete: missing {' or '.join(os.path.join(model_dir, n) for n in names)}")
    params_file = os.path.join(model_dir, (record or {}).get("params_file") or PARAMS_FILE)
    if not os.path.isfile(params_file):
        raise ExportError(f"export is incomplete: missing {params_file}")
    return model_file, params_file


def onnx_model_file(model_dir, record=None):
    name = (record or {}).get("onnx_file") or ONNX_FILE
    path = os.path.join(model_dir, name)
    if not os.path.isfile(path):
        raise ExportError(f"missing {path}; export with `tools/export.py --onnx` to use onnxruntime")
    return path


def has_onnx(model_dir, record):
    return os.path.isfile(os.path.join(model_dir, record.get("onnx_file") or ONNX_FILE))


def input_channels(spec):
    """Channels of the concatenated graph inputs (how deploy/infer.py batches, pads and tiles them)."""
    return sum(int(item["channels"]) for item in spec["inputs"])


def needs_mask(spec):
    return any(item.get("role") == "mask" for item in spec["inputs"])


def split_inputs(x, inputs):
    """{input name: NCHW part} of a channel-concatenated array, in `inputs` order."""
    parts, start = {}, 0
    for item in inputs:
        end = start + int(item["channels"])
        parts[item["name"]] = np.ascontiguousarray(x[:, start:end])
        start = end
    return parts
