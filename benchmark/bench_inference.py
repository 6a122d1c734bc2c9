"""CPU inference latency of every deployment path, measured side by side in one process.

    python benchmark/bench_inference.py --models MIRNetV2 --repeat 3 --out docs/benchmark_mirnetv2.md
    python benchmark/bench_inference.py --models MIMOUNet MIMOUNetPlus --size 256x256 --size 1280x720
    python benchmark/bench_inference.py --models MIRNetV2 --set MIRNetV2.n_feat=16 --repeat 5   # a tiny width

For each network (seeded random weights: no official weights ship here) and each input size, it
times the dygraph network (eager, no_grad), its to_static version, the exported model through
deploy/infer.py's Predictor (Paddle Inference, oneDNN off/on x 1/2 threads) and, unless
--no_onnx, the paddle2onnx model through onnxruntime (1/2 threads). Every path reports the median
and minimum of --repeat timed runs after --warmup untimed ones, its ratio to the eager median of
the same run, and its max abs difference from the eager output. The input is a crop of
scikit-image's astronaut photo (resized for sizes larger than the photo), so the numbers are for
real image statistics. Writes a markdown table to stdout and, with --out, to a file.
"""
import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # for `deploy`

import numpy as np
import yaml

import ppir  # noqa: F401  (sets GLOG/OMP/MKL defaults before paddle is imported)
from benchmark.common import machine_info, photo, timed
from ppir.config import parse_value
from ppir.errors import ConfigError, run_cli
from ppir.inference import spec as io

PATHS = ("eager", "to_static", "pi_onednn_off_1t", "pi_onednn_off_2t", "pi_onednn_on_1t", "pi_onednn_on_2t",
         "ort_1t", "ort_2t")
LABELS = {
    "eager": "dygraph eager (no_grad)",
    "to_static": "paddle.jit.to_static (full_graph)",
    "pi_onednn_off_1t": "Paddle Inference, oneDNN off, 1 thread",
    "pi_onednn_off_2t": "Paddle Inference, oneDNN off, 2 threads",
    "pi_onednn_on_1t": "Paddle Inference, oneDNN on, 1 thread",
    "pi_onednn_on_2t": "Paddle Inference, oneDNN on, 2 threads",
    "ort_1t": "onnxruntime, 1 thread",
    "ort_2t": "onnxruntime, 2 threads",
}


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["MIRNetV2", "MIMOUNet", "MIMOUNetPlus"])
    parser.add_argument("--set", nargs="+", default=[], action="extend", metavar="NAME.key=value",
                        help="network constructor overrides, e.g. MIRNetV2.n_feat=16 (default: full width)")
    parser.add_argument("--size", action="append", default=None, metavar="WxH",
                        help="input size, repeatable (default 256x256); e.g. --size 1280x720")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per path (median reported)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed runs per path first")
    parser.add_argument("--paths", nargs="+", default=list(PATHS), choices=PATHS)
    parser.add_argument("--no_onnx", action="store_true", help="skip paddle2onnx and onnxruntime")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, help="also write the markdown to this file")
    args = parser.parse_args(argv)
    if args.no_onnx:
        args.paths = [p for p in args.paths if not p.startswith("ort")]
    return args


def network_kwargs(name, overrides):
    kwargs = {}
    for item in overrides:
        key, sep, value = item.partition("=")
        model, dot, field = key.partition(".")
        if not sep or not dot:
            raise ConfigError(f"--set {item!r}: expected NAME.key=value")
        if model == name:
            kwargs[field] = parse_value(value)
    return kwargs


def write_export(layer, in_channels, multiple, folder, name, with_onnx):
    """Save the static model plus the inference.yml the deploy Predictor needs."""
    import paddle

    paddle.jit.save(layer, os.path.join(folder, "inference"))  # layer is already to_static with its InputSpec
    spec = {"model_name": name, "in_channels": in_channels, "out_channels": 3, "value_range": [0.0, 1.0],
            "color_order": "RGB", "layout": "NCHW", "pad_multiple": multiple, "pad_mode": "reflect",
            "mask": None, "input_name": "x", "model_file": "inference.json", "onnx_file": None}
    seconds = None
    if with_onnx:
        import paddle2onnx

        start = time.perf_counter()
        # optimize_tool="None": the default pip-installs packages at run time (see tools/export.py).
        paddle2onnx.export(os.path.join(folder, "inference.json"), os.path.join(folder, io.PARAMS_FILE),
                           os.path.join(folder, io.ONNX_FILE), opset_version=13, optimize_tool="None")
        seconds = time.perf_counter() - start
        spec["onnx_file"] = io.ONNX_FILE
    with open(os.path.join(folder, io.SPEC_FILE), "w") as f:
        yaml.safe_dump(spec, f, sort_keys=False)
    return seconds


def bench_model(name, kwargs, sizes, args):
    import paddle
    from paddle.static import InputSpec

    from ppir.inference.predictor import open_graph
    from ppir.models import build_network
    from ppir.models.restoration_model import FinalOutput

    paddle.set_device("cpu")
    paddle.seed(args.seed)
    net = build_network({"name": name, **kwargs})
    layer = FinalOutput(net)
    layer.eval()
    params = sum(int(np.prod(p.shape)) for p in layer.parameters())
    multiple = int(getattr(type(net), "size_multiple", 1))
    in_channels = int(kwargs.get("inp_channels", kwargs.get("in_channels", 3)))
    inputs = {s: np.ascontiguousarray(photo(*s).transpose(2, 0, 1)[None]) for s in sizes}
    rows = {s: [] for s in sizes}
    refs = {}

    def record(size, path, out, times):
        diff = 0.0 if path == "eager" else float(np.abs(np.asarray(out, np.float64) - refs[size]).max())
        rows[size].append((path, statistics.median(times), min(times), diff))
        print(f"  {name} {size[0]}x{size[1]} {path}: median {statistics.median(times):.4f} s, "
              f"max abs diff {diff:.2g}", file=sys.stderr, flush=True)

    for size, x in inputs.items():  # eager always runs: it is the reference and the ratio base
        with paddle.no_grad():
            out, times = timed(lambda a: layer(paddle.to_tensor(a)).numpy(), x, args.repeat, args.warmup)
        refs[size] = out.astype(np.float64)
        record(size, "eager", out, times)

    static = paddle.jit.to_static(layer, input_spec=[InputSpec([None, in_channels, None, None], "float32", "x")],
                                  full_graph=True)
    if "to_static" in args.paths:
        for size, x in inputs.items():
            with paddle.no_grad():
                out, times = timed(lambda a: static(paddle.to_tensor(a)).numpy(), x, args.repeat, args.warmup)
            record(size, "to_static", out, times)

    folder = tempfile.mkdtemp(prefix=f"bench-{name}-")
    notes = []
    try:
        with_onnx = any(p.startswith("ort") for p in args.paths)
        p2o_seconds = write_export(static, in_channels, multiple, folder, name, with_onnx)
        if p2o_seconds is not None:
            notes.append(f"paddle2onnx conversion (opset 13) took {p2o_seconds:.1f} s")
        for path in args.paths:
            if path in ("eager", "to_static"):
                continue
            threads = int(path[-2])
            if path.startswith("pi"):
                predictor = open_graph(folder, enable_mkldnn="_on_" in path, cpu_threads=threads)
            else:
                predictor = open_graph(folder, backend="onnxruntime", cpu_threads=threads)
            for size, x in inputs.items():
                out, times = timed(predictor.run_concat, x, args.repeat, args.warmup)
                record(size, path, out, times)
            del predictor
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return params, rows, notes


def markdown(name, kwargs, params, rows, notes, args):
    width = ", ".join(f"{k}={v}" for k, v in kwargs.items()) or "official default width"
    lines = [f"### {name} ({width}; {params / 1e6:.2f}M parameters, seeded random weights)", ""]
    for (w, h), entries in rows.items():
        eager = next(e[1] for e in entries if e[0] == "eager")
        lines += [f"Input 1x3x{h}x{w} (astronaut photo), median of {args.repeat} after {args.warmup} warm-up:", "",
                  "| path | median s | min s | ratio vs eager | max abs diff vs eager |",
                  "|---|---|---|---|---|"]
        for path, median, fastest, diff in entries:
            shown = "(reference)" if path == "eager" else f"{diff:.2g}"
            lines.append(f"| {LABELS[path]} | {median:.3f} | {fastest:.3f} | {median / eager:.2f} | {shown} |")
        lines.append("")
    lines += [f"- {n}" for n in notes]
    return "\n".join(lines).rstrip() + "\n"


def main(argv=None):
    args = parse_args(argv)
    sizes = []
    for text in args.size or ["256x256"]:
        try:
            w, h = (int(v) for v in text.lower().split("x"))
        except ValueError:
            raise ConfigError(f"--size {text!r}: expected WxH, e.g. 1280x720") from None
        sizes.append((w, h))
    load_before = os.getloadavg()
    sections = []
    for name in args.models:
        kwargs = network_kwargs(name, args.set)
        params, rows, notes = bench_model(name, kwargs, sizes, args)
        sections.append(markdown(name, kwargs, params, rows, notes, args))
    load_after = os.getloadavg()
    command = " ".join(argv if argv is not None else sys.argv[1:])
    header = (f"Machine: {machine_info()}.\n"
              f"Load average (1/5/15 min) before: {', '.join(f'{v:.2f}' for v in load_before)}; "
              f"after: {', '.join(f'{v:.2f}' for v in load_after)}.\n"
              f"Command: `python benchmark/bench_inference.py {command}`\n")
    text = header + "\n" + "\n".join(sections)
    print(text)
    if args.out:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out, "w") as f:
            f.write(text)
    return 0


if __name__ == "__main__":
    run_cli(main)
