"""Which path runs a graph: the user's flags when given, else the fastest verified CPU path that
tools/export.py measured at the timed size nearest to the input.

The fastest path depends on the size: the demo-width MIRNetV2 runs 256x256 fastest with oneDNN
but 1280x720 2x faster with onnxruntime (docs/benchmark.md), so an export records one timing
per size (`default_path_by_size`) and the choice is made per input.
"""
import math

from ppir.errors import ExportError
from ppir.inference import spec as specs

# The fp32 CPU paths an export verifies and times, by the name their results are recorded under.
PATHS = {"paddle_onednn_on": {"backend": "paddle", "enable_mkldnn": True},
         "paddle_onednn_off": {"backend": "paddle", "enable_mkldnn": False},
         "onnxruntime": {"backend": "onnxruntime", "enable_mkldnn": False}}


def path_name(backend, enable_mkldnn):
    if backend == "onnxruntime":
        return "onnxruntime"
    return f"paddle_onednn_{'on' if enable_mkldnn else 'off'}"


def choose_path(model_dir, record, backend=None, enable_mkldnn=None, device="cpu", precision="fp32",
                pixels=None):
    """(backend, enable_mkldnn, why) for one graph. Flags the user gave win (a path the export
    found wrong is refused by name); otherwise the fastest fp32 CPU path measured at the timed
    size nearest to `pixels` (the model input's H x W: the image, or the tile), compared by
    log pixel count; otherwise Paddle Inference with oneDNN."""
    if backend is not None or enable_mkldnn is not None or device != "cpu" or precision != "fp32":
        backend = backend or "paddle"
        onednn = True if enable_mkldnn is None else bool(enable_mkldnn)
        failed = record.get("failed_paths") or {}
        name = path_name(backend, onednn)
        if device == "cpu" and name in failed:
            hint = f"--enable_mkldnn {not onednn}" if backend == "paddle" else "--backend paddle"
            raise ExportError(f"this export's {name} path did not match dygraph when it was exported "
                              f"({failed[name]}); run with {hint}")
        return backend, onednn, "as requested"
    measured, where = record.get("default_path"), ""
    by_size = record.get("default_path_by_size") or []
    if by_size and pixels:
        measured = min(by_size, key=lambda e: abs(math.log(pixels / (e["size"][0] * e["size"][1]))))
        where = (f" at {measured['size'][1]}x{measured['size'][0]}, the timed size nearest to this "
                 f"input by pixel count")
    if isinstance(measured, dict) and measured.get("backend") in ("paddle", "onnxruntime"):
        if measured["backend"] != "onnxruntime" or specs.has_onnx(model_dir, record):
            return (measured["backend"], bool(measured.get("enable_mkldnn", True)),
                    f"the fastest path measured at export{where}")
    if "paddle_onednn_on" in (record.get("failed_paths") or {}):
        return "paddle", False, "default (oneDNN did not match dygraph at export)"
    return "paddle", True, "default"
