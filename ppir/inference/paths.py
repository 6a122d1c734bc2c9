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


# `--precision auto` takes oneDNN bf16 when the export measured it at most this far from fp32.
BF16_MAX_PSNR_CHANGE_DB = 0.05
# The output quality the PSNR change is bounded for: MIRNetV2's 39.8 dB on SIDD (paper Table 2),
# the highest of this suite. A better fp32 output is hurt more by the same bf16 rounding.
BF16_REFERENCE_PSNR_DB = 40.0


def bf16_psnr_change_bound(psnr_vs_fp32_db, reference_db=BF16_REFERENCE_PSNR_DB):
    """The PSNR a model loses in bf16 when its fp32 output is `reference_db` from the truth and
    its bf16 output `psnr_vs_fp32_db` from the fp32 one, the rounding error independent of the
    model's own error (their mean squared errors add): 10 log10(1 + 10^((ref - psnr) / 10))."""
    return float(10.0 * math.log10(1.0 + 10.0 ** ((reference_db - psnr_vs_fp32_db) / 10.0)))


def nearest_size(entries, pixels):
    """The entry ({"size": [H, W], ...}) timed at the size nearest to `pixels` by log pixel count."""
    return min(entries, key=lambda e: abs(math.log(pixels / (e["size"][0] * e["size"][1]))))


def choose_precision(record, precision="fp32", pixels=None, backend=None, enable_mkldnn=None, device="cpu",
                     has_bf16=None):
    """(precision, note) for one graph and an input of `pixels`. "auto" is bf16 when this CPU runs
    bf16 (`has_bf16`, probed when None), the user left the path to oneDNN, and the export measured
    bf16 (inference.yml `bf16`) within BF16_MAX_PSNR_CHANGE_DB of fp32 and faster than the fastest
    fp32 path at the timed size nearest to the input; fp32 otherwise. The note says why, or, for an
    fp32 run that bf16 would have sped up, by how much and at what quality (None when silent)."""
    measured = record.get("bf16")
    if precision not in ("auto", "fp32") or device != "cpu" or backend == "onnxruntime" \
            or enable_mkldnn is False or not isinstance(measured, dict) or not measured.get("timings"):
        return ("fp32" if precision == "auto" else precision), None
    if has_bf16 is None:
        from ppir.inference.predictor import cpu_has_bf16

        has_bf16 = cpu_has_bf16()
    if not has_bf16:  # the export ran on another CPU: nothing changes here
        return "fp32", None
    timing = nearest_size(measured["timings"], pixels) if pixels else max(measured["timings"],
                                                                          key=lambda t: t["speedup"])
    change, speedup = float(measured["psnr_change_bound_db"]), float(timing["speedup"])
    size = f"{timing['size'][1]}x{timing['size'][0]}"
    quality = f"PSNR change <= {change:.3f} dB (max abs diff {measured['max_abs_diff']:g} vs fp32)"
    if change > BF16_MAX_PSNR_CHANGE_DB:
        return "fp32", (f"bf16 not taken: {quality}, above the {BF16_MAX_PSNR_CHANGE_DB} dB bound"
                        if precision == "auto" else None)
    if speedup <= 1.0:
        return "fp32", (f"bf16 not taken: measured {speedup:.2f}x the fastest fp32 path at {size}"
                        if precision == "auto" else None)
    if precision == "auto":
        return "bf16", f"bf16: measured {speedup:.2f}x faster than fp32 at {size}, {quality}"
    return "fp32", (f"this CPU runs bf16: the export measured it {speedup:.2f}x faster at {size} with "
                    f"{quality}; pass --precision auto (API: precision='auto') to take it")


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
        measured = nearest_size(by_size, pixels)
        where = (f" at {measured['size'][1]}x{measured['size'][0]}, the timed size nearest to this "
                 f"input by pixel count")
    if isinstance(measured, dict) and measured.get("backend") in ("paddle", "onnxruntime"):
        if measured["backend"] != "onnxruntime" or specs.has_onnx(model_dir, record):
            return (measured["backend"], bool(measured.get("enable_mkldnn", True)),
                    f"the fastest path measured at export{where}")
    if "paddle_onednn_on" in (record.get("failed_paths") or {}):
        return "paddle", False, "default (oneDNN did not match dygraph at export)"
    return "paddle", True, "default"
