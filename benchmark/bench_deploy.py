r"""What a user waits for: deploy latency of an exported ppir model per CPU path, against an
optional PyTorch reference, per input size.

    python benchmark/bench_deploy.py -c configs/mirnetv2_sidd.yml --size 256x256 --size 1280x720
    PYTHONPATH=/path/to/MIMO-UNet python benchmark/bench_deploy.py -c configs/mimounet_gopro.yml \
        --size 256x256 --torch models.MIMOUNet:MIMOUNet --torch_python /path/to/torch-venv/bin/python
    python benchmark/bench_deploy.py -c configs/demo/mirnetv2_demo.yml --size 600x400

Steps: the config's model is built with seeded random weights (official weights are not needed
for timing) and exported by `tools/export.py --onnx`, which checks every CPU path against dygraph
and records the fastest at 256x256 and at 1280x720 in inference.yml. Then, for each --size, the
input (scikit-image's astronaut photo cropped or resized to the size, plus for inpainting models
a seeded free-form mask with 30-40 % holes) goes through `deploy/infer.py`'s own preparation
(host steps, padding to the model's multiple, cropping back) on each path: Paddle Inference with
oneDNN on and off, and onnxruntime, all with the thread count deploy/infer.py uses by default.
The table gives each path's median and its ratio to the fastest path; "default" marks the path
`deploy/infer.py` runs for that size without performance flags.

`--torch module:Class` times the official PyTorch network's eager forward (`torch.no_grad()`,
`torch.set_num_threads` equal to the Paddle thread count) on the same arrays, in a separate
process (`--torch_python`, default this interpreter) so the two frameworks' thread pools never
share a process. `--torch_inputs` says how the graph inputs map to its forward: `separate`
(one argument per inference.yml input, in order) or `concat` (one channel-concatenated tensor;
`concat:image,prior` keeps only the named inputs). `--torch_square` pads its inputs to a square
(bottom/right, reflect) for official code that runs square images only.
Nothing of the official code ships with ppir: put its repository on PYTHONPATH yourself.

Achieved GFLOP/s counts the convolutions and linear layers (2 x multiply-adds, measured with
forward hooks on a 256x256 dygraph pass and scaled by pixel count); attention matmuls and
elementwise ops are not counted, so it is a lower bound.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # for `deploy`, `tools`

import numpy as np

import ppir  # noqa: F401  (thread and log defaults before paddle is imported)
from benchmark.common import machine_info, photo, timed
from ppir.errors import ConfigError, run_cli

PATHS = ("paddle_onednn_on", "paddle_onednn_off", "onnxruntime")
LABELS = {"paddle_onednn_on": "Paddle Inference, oneDNN on", "paddle_onednn_off": "Paddle Inference, oneDNN off",
          "onnxruntime": "onnxruntime", "torch": "official PyTorch eager"}


def parse_size(text):
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise ConfigError(f"--size {text!r}: expected WxH, e.g. 1280x720") from None
    return w, h


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-c", "--config", required=True)
    parser.add_argument("-o", "--override", nargs="+", default=[], action="extend")
    parser.add_argument("--size", action="append", type=parse_size, default=None, metavar="WxH",
                        help="input size, repeatable (default 256x256)")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per path (median reported)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed runs per path first")
    parser.add_argument("--paths", nargs="+", default=list(PATHS), choices=PATHS)
    parser.add_argument("--tile", type=int, default=0, help="tile size as deploy/infer.py --tile (0 = whole image)")
    parser.add_argument("--torch", default=None, metavar="MODULE:CLASS", help="official PyTorch network to compare")
    parser.add_argument("--torch_kwargs", default="{}",
                        help='its constructor arguments as JSON; {"config": {"__attrs__": {...}}} passes an '
                             'object with those attributes (official code that takes a config object)')
    parser.add_argument("--torch_inputs", default="separate", metavar="separate|concat[:NAME,NAME]",
                        help="separate arguments, or one channel-concatenated tensor (optionally of the named "
                             "inference.yml inputs only)")
    parser.add_argument("--torch_square", action="store_true",
                        help="pad the PyTorch inputs to a square (for official code that only runs square inputs)")
    parser.add_argument("--torch_python", default=sys.executable, help="interpreter that has torch")
    parser.add_argument("--export_dir", default=None, help="reuse this export instead of exporting again")
    parser.add_argument("--out", default=None, help="also write the markdown to this file")
    parser.add_argument("--torch_worker", default=None, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def deploy_input(spec, width, height, seed=0):
    """The 1xCxHxW array deploy/infer.py builds for one photo (and mask) of this size."""
    from ppir.data.masks import generate_mask
    from ppir.inference import host
    from ppir.inference.spec import needs_mask

    mask = generate_mask((height, width), np.random.default_rng(seed), (0.3, 0.4)) if needs_mask(spec) else None
    return host.graph_inputs(host.host_sample(photo(width, height), mask), spec)[None]


def median_seconds(fn, x, repeat, warmup):
    _, times = timed(fn, x, repeat, warmup)
    return statistics.median(times), min(times)


def conv_linear_flops(layer, inputs):
    """2 x multiply-adds of every Conv2D / Conv2DTranspose / Linear in one dygraph forward."""
    import paddle

    total = [0]

    def hook(sub, args, out):
        out = out[0] if isinstance(out, (tuple, list)) else out  # e.g. a partial conv's (image, mask)
        w = sub.weight.shape
        if isinstance(sub, paddle.nn.Linear):
            total[0] += int(np.prod(out.shape)) * w[0]
        elif isinstance(sub, paddle.nn.Conv2DTranspose):
            total[0] += int(np.prod(args[0].shape)) * w[1] * w[2] * w[3]
        else:
            total[0] += int(np.prod(out.shape)) * w[1] * w[2] * w[3]

    kinds = (paddle.nn.Conv2D, paddle.nn.Conv2DTranspose, paddle.nn.Linear)
    handles = [s.register_forward_post_hook(hook) for s in layer.sublayers() if isinstance(s, kinds)]
    try:
        with paddle.no_grad():
            layer(*[paddle.to_tensor(a) for a in inputs])
    finally:
        for h in handles:
            h.remove()
    return 2 * total[0]


def export_model(args, folder):
    """tools/export.py with ONNX; without it when onnxruntime cannot run the converted model."""
    from ppir.errors import ExportError
    from tools import export

    argv = ["-c", args.config, "--save_dir", folder, "--allow_random"] + (["-o", *args.override] if args.override else [])
    try:
        export.main(argv + ["--onnx"])
    except ExportError as exc:
        if "onnxruntime" not in str(exc):
            raise
        print(f"warning: {exc}; timing the Paddle Inference paths only", file=sys.stderr)
        export.main(argv)


def padded(x, multiple):
    from ppir.utils.tiling import pad_to_multiple

    return pad_to_multiple(x, multiple)[0] if multiple > 1 else x


def padded_square(x):
    side = max(x.shape[-2:])
    return np.pad(x, ((0, 0), (0, 0), (0, side - x.shape[-2]), (0, side - x.shape[-1])), mode="reflect")


def torch_times(args, arrays_file, threads):
    """Run this script's worker mode in --torch_python; returns {size key: (median, min)}."""
    cmd = [args.torch_python, os.path.abspath(__file__), "-c", args.config, "--torch", args.torch,
           "--torch_kwargs", args.torch_kwargs, "--torch_inputs", args.torch_inputs, "--repeat", str(args.repeat),
           "--warmup", str(args.warmup), "--torch_worker", arrays_file]
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if done.returncode:
        raise ConfigError(f"the PyTorch reference {args.torch} failed: {done.stderr.strip().splitlines()[-1:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def torch_worker(args):
    """Worker mode (the torch interpreter): time the reference on the saved arrays, print JSON."""
    import importlib
    import types

    import torch

    module, _, cls = args.torch.partition(":")
    kwargs = {k: types.SimpleNamespace(**v["__attrs__"]) if isinstance(v, dict) and "__attrs__" in v else v
              for k, v in json.loads(args.torch_kwargs).items()}
    net = getattr(importlib.import_module(module), cls)(**kwargs)
    net.eval()  # not chained: CTSDG's official train() override returns None
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    arrays = np.load(args.torch_worker)
    by_size = {}
    for key in arrays.files:  # "WxH/i": the i-th graph input at that size
        size, _, index = key.partition("/")
        by_size.setdefault(size, {})[int(index)] = torch.from_numpy(np.ascontiguousarray(arrays[key]))
    result = {}
    for size, parts in by_size.items():
        parts = [parts[i] for i in sorted(parts)]
        if args.torch_inputs.startswith("concat"):
            parts = [torch.cat(parts, dim=1)]
        with torch.no_grad():
            result[size] = median_seconds(lambda _: net(*parts), None, args.repeat, args.warmup)
    print(json.dumps(result))
    return 0


def main(argv=None):
    args = parse_args(argv)
    if args.torch_worker:
        return torch_worker(args)
    import paddle

    from ppir.inference import spec as io
    from ppir.inference.paths import choose_path, path_name
    from ppir.inference.predictor import open_graph
    from ppir.utils.tiling import tiled_forward

    def split_inputs(x, spec):
        return list(io.split_inputs(x, spec["inputs"]).values())

    sizes = args.size or [(256, 256)]
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="bench-deploy-") as tmp:
        folder = args.export_dir or os.path.join(tmp, "export")
        if not args.export_dir:
            export_model(args, folder)
        spec = io.load_spec(folder)
        multiple = int(spec["pad_multiple"] or 1)

        def default_path(width, height):  # what deploy/infer.py runs for this size without flags
            h, w = (-(-v // multiple) * multiple for v in (height, width))
            if args.tile:
                h, w = min(args.tile, h), min(args.tile, w)
            return path_name(*choose_path(folder, io.graph_record(spec), pixels=h * w)[:2])

        failed = (spec.get("export") or {}).get("failed_paths") or {}
        inputs = {s: deploy_input(spec, *s) for s in sizes}

        from ppir.config import load_config
        from ppir.models import build_model

        paddle.set_device("cpu")
        model = build_model(load_config(args.config, args.override))
        layer = model.export_module()
        layer.eval()
        base = padded(deploy_input(spec, 256, 256), multiple)
        flops_256 = conv_linear_flops(layer, split_inputs(base, spec))
        del model, layer

        defaults = {size: default_path(*size) for size in sizes}
        rows = {s: {} for s in sizes}
        threads = None
        for path in args.paths:
            if path in failed or (path == "onnxruntime" and not spec.get("onnx_file")):
                continue
            predictor = open_graph(folder, backend="onnxruntime") if path == "onnxruntime" else \
                open_graph(folder, enable_mkldnn=path == "paddle_onednn_on")
            threads = predictor.cpu_threads
            for size, x in inputs.items():
                run = (lambda a: tiled_forward(predictor.run_concat, a, tile=args.tile, multiple=multiple)) \
                    if args.tile else (lambda a: predictor.run_concat(padded(a, multiple)))
                rows[size][path] = median_seconds(run, x, args.repeat, args.warmup)
                print(f"  {size[0]}x{size[1]} {path}: {rows[size][path][0]:.3f} s", file=sys.stderr, flush=True)
        if args.torch:
            arrays_file = os.path.join(tmp, "arrays.npz")
            names = [item["name"] for item in spec["inputs"]]
            mode, _, chosen = args.torch_inputs.partition(":")
            keep = [names.index(n) for n in chosen.split(",")] if chosen else range(len(names))
            if mode not in ("separate", "concat") or any(n not in names for n in chosen.split(",") if chosen):
                raise ConfigError(f"--torch_inputs {args.torch_inputs!r}: expected separate, concat or "
                                  f"concat:NAME,... with names from {names}")
            arrays = {}
            for (w, h), x in inputs.items():
                x = padded(x, multiple)
                if args.torch_square:
                    x = padded_square(x)
                parts = split_inputs(x, spec)
                arrays.update({f"{w}x{h}/{j}": parts[i] for j, i in enumerate(keep)})
            np.savez(arrays_file, **arrays)
            for key, value in torch_times(args, arrays_file, threads).items():
                rows[tuple(int(v) for v in key.split("x"))]["torch"] = tuple(value)
    load_after = os.getloadavg()
    text = report(args, spec, rows, defaults, failed, flops_256, threads, load_before, load_after, argv)
    print(text)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            f.write(text)
    return 0


def report(args, spec, rows, defaults, failed, flops_256, threads, load_before, load_after, argv):
    command = " ".join(argv if argv is not None else sys.argv[1:])
    lines = [f"### {spec['model_name']} ({args.config})", "",
             f"Machine: {machine_info()}; {threads} Paddle/onnxruntime threads. Load average before "
             f"{', '.join(f'{v:.2f}' for v in load_before)}, after {', '.join(f'{v:.2f}' for v in load_after)}.",
             f"Command: `python benchmark/bench_deploy.py {command}`", ""]
    if failed:
        lines += [f"Not offered (failed the export check): {', '.join(failed)}", ""]
    lines += ["| input | path | median s | min s | vs fastest ppir path | vs PyTorch | GFLOP/s |",
              "|---|---|---|---|---|---|---|"]
    for (w, h), entries in rows.items():
        ours = {k: v for k, v in entries.items() if k != "torch"}
        fastest = min(v[0] for v in ours.values())
        multiple = int(spec["pad_multiple"] or 1)
        pixels = (-(-h // multiple) * multiple) * (-(-w // multiple) * multiple)
        flops = flops_256 * pixels / (256 * 256 if multiple <= 256 else multiple * multiple)
        for path, (med, low) in entries.items():
            label = LABELS[path] + (" (default)" if path == defaults[(w, h)] else "")
            torch_ratio = f"{med / entries['torch'][0]:.2f}" if "torch" in entries else "–"
            lines.append(f"| {w}x{h} | {label} | {med:.3f} | {low:.3f} | "
                         f"{'–' if path == 'torch' else f'{med / fastest:.2f}'} | {torch_ratio} | {flops / med / 1e9:.1f} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    run_cli(main)
