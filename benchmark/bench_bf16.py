r"""bf16 against fp32 on a real noisy photo: what oneDNN's bf16 kernels (Paddle Inference
`Config.enable_mkldnn_bfloat16`) gain in time and lose in PSNR for an exported restoration model.

    python tools/train.py -c configs/demo/mirnetv2_demo.yml -o Global.output_dir=out/demo
    python tools/export.py -c configs/demo/mirnetv2_demo.yml --onnx --save_dir out/demo_export \
        -o Global.pretrained_model=out/demo/best_model
    python benchmark/bench_bf16.py --model_dir out/demo_export --size 600x512 --repeat 5

Each path is a `ppir.load` model run on the photo (host steps, padding and cropping included).
The input is scikit-image's astronaut photo (centre crop of --size) with the demo data's
camera-like noise (`ppir.data.demo.add_raw_like_noise`, --seed), so a trained demo denoiser
sees the kind of noise it learnt. Paths: `deploy/infer.py`'s default for this size (the export's
fastest fp32 path; always run, as the reference), Paddle Inference with oneDNN in fp32, and with
oneDNN in bf16 (needs a CPU with AVX512-BF16 or AMX; refused elsewhere). Each path runs --warmup untimed forwards, then
--repeat timed rounds visit every path in turn, so a load change on a shared machine hits every
path alike. The report gives the median and minimum seconds per path, the ratio to the default,
the PSNR of the output (rounded to 8 bits, as saved) against the clean photo, and each path's
largest difference from the default path's output.
"""
import argparse
import json
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # for `benchmark`

import numpy as np

import ppir  # (thread and log defaults before paddle is imported)
from benchmark.common import machine_info, photo
from ppir.errors import ConfigError, run_cli


PATHS = ("default", "onednn_fp32", "onednn_bf16")


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model_dir", required=True, help="a tools/export.py folder (restoration model)")
    parser.add_argument("--size", default="600x512", help="WxH crop of the photo")
    parser.add_argument("--seed", type=int, default=0, help="noise seed")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--paths", nargs="+", default=list(PATHS), choices=PATHS,
                        help="default: deploy/infer.py's fp32 path for this size; onednn_fp32, "
                             "onednn_bf16: Paddle Inference with oneDNN in fp32 / bf16")
    parser.add_argument("--json", help="also write the results here")
    return parser.parse_args(argv)


def noisy_photo(width, height, seed):
    """(clean, noisy) HWC float32 in [0, 1]; the noisy one rounded to 8 bits as a saved photo."""
    from ppir.data.demo import add_raw_like_noise

    clean = photo(width, height)
    noisy, _ = add_raw_like_noise(clean.astype(np.float64), np.random.default_rng(seed))
    return clean, (np.round(noisy * 255) / 255).astype(np.float32)


def load_models(model_dir, paths):
    """{name: ppir model}: deploy/infer.py's default fp32 path (always, first: the reference), and
    oneDNN fp32 and oneDNN bf16 when in `paths`."""
    from ppir.inference.predictor import cpu_has_bf16

    if "onednn_bf16" in paths and not cpu_has_bf16():
        raise ConfigError("this CPU has neither AVX512-BF16 nor AMX: oneDNN would run fp32 "
                          "kernels, so there is no bf16 to measure")
    models = {"default": ppir.load(model_dir)}
    if "onednn_fp32" in paths:
        models["onednn_fp32"] = ppir.load(model_dir, enable_mkldnn=True)
    if "onednn_bf16" in paths:
        models["onednn_bf16"] = ppir.load(model_dir, precision="bf16")
    return models


def main(argv=None):
    args = parse_args(argv)
    from ppir.inference.spec import load_spec, needs_mask
    from ppir.metrics.psnr_ssim import calculate_psnr

    width, height = (int(v) for v in args.size.lower().split("x"))
    spec = load_spec(args.model_dir)
    if needs_mask(spec):
        raise ConfigError(f"{args.model_dir}: bench_bf16.py measures restoration models (no mask input)")
    clean, noisy = noisy_photo(width, height, args.seed)
    load_before = os.getloadavg()
    models = load_models(args.model_dir, args.paths)
    outs, seconds, labels = {}, {name: [] for name in models}, {}
    for name, model in models.items():
        for _ in range(args.warmup):
            outs[name] = model.run([noisy], [None])[0]
    for _ in range(args.repeat):
        for name, model in models.items():
            tic = time.perf_counter()
            outs[name] = model.run([noisy], [None])[0]
            seconds[name].append(time.perf_counter() - tic)
            labels[name] = model.last_run["path"]
    load_after = os.getloadavg()

    base = statistics.median(seconds["default"])
    rows = [{"path": "noisy input", "psnr": calculate_psnr(noisy, clean, quantize=True)}]
    for name in models:
        med = statistics.median(seconds[name])
        rows.append({"path": f"{name}: {labels[name]}", "median_s": round(med, 4), "min_s": round(min(seconds[name]), 4),
                     "vs_default": round(med / base, 3),
                     "psnr": calculate_psnr(outs[name], clean, quantize=True),
                     "max_abs_diff_vs_default": float(f"{np.abs(outs[name] - outs['default']).max():.3g}")})
    lines = [f"Machine: {machine_info()}. Load average before {', '.join(f'{v:.2f}' for v in load_before)}, "
             f"after {', '.join(f'{v:.2f}' for v in load_after)}.",
             f"{args.model_dir} ({spec['model_name']}), astronaut {width}x{height}, noise seed {args.seed}, "
             f"{args.repeat} interleaved rounds", "",
             "| path | median s | min s | vs default | PSNR vs clean, dB | max abs diff vs default |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        if "median_s" not in r:
            lines.append(f"| {r['path']} | – | – | – | {r['psnr']:.3f} | – |")
            continue
        lines.append(f"| {r['path']} | {r['median_s']:.3f} | {r['min_s']:.3f} | {r['vs_default']:.2f} | "
                     f"{r['psnr']:.3f} | {r['max_abs_diff_vs_default']:.3g} |")
    print("\n".join(lines))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({"rows": rows, "load_average": [load_before, load_after],
                       "machine": machine_info()}, f, indent=1)
    return 0


if __name__ == "__main__":
    run_cli(main)
