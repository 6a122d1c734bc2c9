"""What an export directory holds, and the host-side pre/post-processing around an exported model.

`tools/export.py` writes the directory and `deploy/infer.py` reads it; both use this module, so
the two sides cannot drift apart. An export directory holds

    inference.json + inference.pdiparams   the static model (Paddle 3 PIR; a legacy
                                           inference.pdmodel is read too)
    inference.onnx                         optional, from `tools/export.py --onnx`
    inference.yml                          everything a predictor needs to feed the model
    shape_range_info.pbtxt, trt_fp*/        TensorRT caches deploy/infer.py adds on a GPU

`inference.yml` is written last and removed first when an export is replaced, so a directory
with an inference.yml always holds a complete, verified export.
"""
import os
import sys

import numpy as np
import yaml

from ppir.data.image_io import is_image_file
from ppir.errors import DataError, ExportError
from ppir.utils.paths import check_outputs, refuse_overlap

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


def paddle_model_files(model_dir, spec=None):
    """(model file, params file) of the static model; ExportError names the missing file."""
    names = [spec["model_file"]] if spec and spec.get("model_file") else list(MODEL_FILES)
    model_file = next((os.path.join(model_dir, n) for n in names
                       if os.path.isfile(os.path.join(model_dir, n))), None)
    if model_file is None:
        raise ExportError(f"export is incomplete: missing {' or '.join(os.path.join(model_dir, n) for n in names)}")
    params_file = os.path.join(model_dir, (spec or {}).get("params_file") or PARAMS_FILE)
    if not os.path.isfile(params_file):
        raise ExportError(f"export is incomplete: missing {params_file}")
    return model_file, params_file


def onnx_model_file(model_dir, spec=None):
    path = os.path.join(model_dir, (spec or {}).get("onnx_file") or ONNX_FILE)
    if not os.path.isfile(path):
        raise ExportError(f"missing {path}; export with `tools/export.py --onnx` to use onnxruntime")
    return path


def input_channels(spec):
    """Channels of the concatenated graph inputs (how deploy/infer.py batches, pads and tiles them)."""
    return sum(int(item["channels"]) for item in spec["inputs"])


def needs_mask(spec):
    return any(item.get("role") == "mask" for item in spec["inputs"])


# ---- files -----------------------------------------------------------------------------------

def list_inputs(path, what="--input"):
    """One image file, or the sorted images of a folder; DataError if there are none."""
    if os.path.isfile(path):
        return [path]
    if os.path.isdir(path):
        files = sorted(os.path.join(path, n) for n in os.listdir(path) if is_image_file(n))
        if not files:
            raise DataError(f"{what}: no images in folder {path}")
        return files
    raise DataError(f"{what}: no such file or folder: {path}")


def match_files(inputs, path, what):
    """The file in `path` (a file, or a folder searched by name then by stem) for every input."""
    if os.path.isfile(path):
        if len(inputs) != 1:
            raise DataError(f"{what}: {path} is one file but --input has {len(inputs)} images; give a folder")
        return [path]
    if not os.path.isdir(path):
        raise DataError(f"{what}: no such file or folder: {path}")
    by_stem = {}
    for name in sorted(os.listdir(path)):
        if is_image_file(name):
            by_stem.setdefault(os.path.splitext(name)[0], name)
    matched = []
    for src in inputs:
        name = os.path.basename(src)
        if os.path.isfile(os.path.join(path, name)):
            matched.append(os.path.join(path, name))
        elif os.path.splitext(name)[0] in by_stem:
            matched.append(os.path.join(path, by_stem[os.path.splitext(name)[0]]))
        else:
            raise DataError(f"{what}: no file for input {name} in {path}")
    return matched


def default_output_dir(spec):
    """`./output/infer/<model_name>/`: where results go when no --output is given (the TIPC harness
    passes none), a folder of its own so results never land next to or onto the inputs."""
    name = os.path.basename(str(spec["model_name"]).strip().replace("\\", "/").rstrip("/")) or "model"
    if name in (".", ".."):
        name = "model"
    return os.path.join("output", "infer", name, "")


def output_paths(inputs, output):
    """Where each result goes: `output` itself for one input and an image-file name, else
    `<output>/<input stem>.png` (PNG, so saving adds no second loss)."""
    if len(inputs) == 1 and is_image_file(output) and not os.path.isdir(output):
        return [output]
    if os.path.exists(output) and not os.path.isdir(output):
        if len(inputs) == 1:
            raise DataError(f"--output {output} is an existing file without an image extension; "
                            "give an image file name (.png) or a folder")
        raise DataError(f"--output {output} is an existing file, but --input has {len(inputs)} images; give a folder")
    if is_image_file(output) and not os.path.isdir(output):
        raise DataError(f"--output {output} names an image file, but --input has {len(inputs)} images; "
                        "give a folder")
    paths = [os.path.join(output, os.path.splitext(os.path.basename(p))[0] + ".png") for p in inputs]
    dupes = sorted({p for p in paths if paths.count(p) > 1})
    if dupes:
        raise DataError(f"--output: two inputs would both be written to {dupes[0]}")
    return paths


def plan_outputs(source, inputs, output, reads=(), overwrite=False):
    """The output path of every input (listed from `source`, the --input file or folder), checked
    before any work: nothing lands on an input, inside the --input folder or on a path in `reads`
    ((path, flag) pairs, files or folders), and no file ppir did not write is replaced without
    `overwrite`. Creates nothing (`ppir.utils.paths.record_outputs` does, before writing)."""
    paths = output_paths(inputs, output)
    writes = [(p, "--output") for p in paths]
    if paths != [output]:
        writes.insert(0, (output, "--output"))
    refuse_overlap(writes, [(source, "--input")] + list(reads) + [(p, "--input") for p in inputs])
    check_outputs(paths, overwrite)
    return paths


class Failures:
    """The inputs of a run that could not be processed. With one input the error stops the run
    (exit 2 through run_cli); in a folder run each is reported in one line and the run goes on,
    ending with the list and exit code 1."""

    def __init__(self, total):
        self.total, self.paths = total, []

    def add(self, path, exc):
        if self.total == 1:
            raise exc
        self.paths.append(path)
        print(f"skipped {path}: {exc}", file=sys.stderr, flush=True)

    def exit_code(self):
        if not self.paths:
            return 0
        print(f"error: {len(self.paths)} of {self.total} images failed: {', '.join(self.paths)}",
              file=sys.stderr, flush=True)
        return 1


# ---- arrays ----------------------------------------------------------------------------------

def host_sample(img, mask=None):
    """The host-side sample of one image file (HWC [0, 1]) and its mask (HxW, 1 = hole): CHW
    arrays named as the data layer names them (`input` is the image with its holes zeroed)."""
    x = np.ascontiguousarray(img.transpose(2, 0, 1), dtype=np.float32)
    if mask is None:
        return {"input": x}
    m = np.ascontiguousarray(mask[None], dtype=np.float32)
    return {"input": x * (1.0 - m), "mask": m}


def graph_inputs(sample, spec):
    """The exported graph's inputs for one host sample, concatenated along channels (CHW):
    each input's `source` array (after the host steps ran) mapped from [0, 1] to its value range,
    a `1 = known` mask inverted. One array, so padding, tiling and batching treat every input
    alike; the Predictor splits it by `spec['inputs']` channels."""
    from ppir.data.host_steps import run_host_steps

    sample = run_host_steps(sample, spec.get("host_steps"))
    parts = []
    for item in spec["inputs"]:
        if item["source"] not in sample:
            raise DataError(f"the model needs '{item['source']}' for input {item['name']}, which the host "
                            f"steps did not produce (inference.yml inputs/host_steps)")
        x = sample[item["source"]].astype(np.float32)
        if x.shape[0] != int(item["channels"]):
            raise DataError(f"input {item['name']} has {x.shape[0]} channels; the model takes {item['channels']}")
        if item.get("role") == "mask" and item.get("mask_convention") == "1 = known":
            x = 1.0 - x
        low, high = (float(v) for v in item.get("value_range", (0.0, 1.0)))
        if (low, high) != (0.0, 1.0):
            x = x * np.float32(high - low) + np.float32(low)
        parts.append(x)
    return np.ascontiguousarray(np.concatenate(parts, axis=0), dtype=np.float32)


def postprocess(out, spec, sample=None):
    """CHW model output -> HWC float32 in [0, 1] (clipped to the output's value range); with
    `output.composite`, known pixels come from the host sample's input (holes from the model)."""
    low, high = (float(v) for v in spec["output"].get("value_range", (0.0, 1.0)))
    img = (np.clip(out, low, high) - low) / (high - low)
    if spec["output"].get("composite") and sample is not None and "mask" in sample:
        m = sample["mask"]
        img = sample["input"] * (1.0 - m) + img * m
    return np.ascontiguousarray(img.transpose(1, 2, 0).astype(np.float32))
