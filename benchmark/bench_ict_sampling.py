"""CPU cost of ICT's token sampling (stage 1): seconds per transformer forward and per completed
image, Paddle eager against the exported logits graph through Paddle Inference.

    python benchmark/bench_ict_sampling.py                         # Places2_Nature, 32x32, batch 1
    python benchmark/bench_ict_sampling.py --n_layer 2 --n_embd 64 --full   # tiny: sample a whole image

The transformer has the Places2_Nature release shape (35 layers x 512, 8 heads, 32 x 32 tokens,
111,383,040 parameters) with seeded random weights (no official weights ship here); the speed of
a forward does not depend on the weights. The hole is a centred square plus a band, 410 of the
1024 positions (40 %), so an image takes 410 forwards. Each path runs --warmup untimed and
--repeat timed forwards; the table gives the median and minimum seconds per forward, the
seconds per 40 %-hole image (forwards x median; with --full, a whole image is also sampled and
timed, the sampled tokens of the paths compared), and the max abs logits difference from eager.
The machine is shared: the 1-minute load average before and after is printed with the results.
"""
import argparse
import json
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np

import ppir  # noqa: F401  (sets GLOG/OMP/MKL defaults before paddle is imported)
from ppir.errors import run_cli


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n_layer", type=int, default=35)
    parser.add_argument("--n_embd", type=int, default=512)
    parser.add_argument("--n_head", type=int, default=8)
    parser.add_argument("--size", type=int, default=32, help="prior side s (block_size = s * s)")
    parser.add_argument("--hole", type=float, default=0.4, help="fraction of missing tokens")
    parser.add_argument("--threads", type=int, default=1,
                        help="Paddle Inference math threads (eager follows OMP_NUM_THREADS)")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--paths", nargs="+", default=["eager", "pi_onednn", "pi_plain"],
                        choices=["eager", "pi_onednn", "pi_plain"])
    parser.add_argument("--full", action="store_true", help="also sample a whole image per path")
    parser.add_argument("--json", help="write the results here")
    return parser.parse_args(argv)


def hole_mask(size, fraction):
    """A centred square hole grown row-major until `fraction` of the grid is missing."""
    n = int(round(fraction * size * size))
    side = int(np.floor(np.sqrt(n)))
    grid = np.zeros((size, size), np.float32)
    top = (size - side) // 2
    grid[top:top + side, top:top + side] = 1
    extra = n - side * side
    rows, cols = np.nonzero(grid == 0)
    below = [(r, c) for r, c in zip(rows, cols) if r >= top + side][:extra]
    for r, c in below:
        grid[r, c] = 1
    return grid.reshape(-1)


def time_forwards(fn, tokens, masks, warmup, repeat):
    for _ in range(warmup):
        fn(tokens, masks)
    seconds = []
    for _ in range(repeat):
        tic = time.perf_counter()
        out = fn(tokens, masks)
        seconds.append(time.perf_counter() - tic)
    return seconds, np.asarray(out)


def main(argv=None):
    args = parse_args(argv)
    import paddle

    from ppir.models.archs.ict_arch import ICTTransformer
    from ppir.models.ict_inference import PredictorLogits, save_logits_graph
    from ppir.models.ict_sampling import paddle_logits_fn, sample_tokens

    paddle.set_device("cpu")
    load_before = os.getloadavg()[0]
    paddle.seed(0)
    net = ICTTransformer(vocab_size=512, block_size=args.size ** 2, n_layer=args.n_layer,
                         n_head=args.n_head, n_embd=args.n_embd, embd_pdrop=0.0, resid_pdrop=0.0,
                         attn_pdrop=0.0)
    net.eval()
    n_params = sum(int(p.size) for p in net.parameters())
    rng = np.random.default_rng(0)
    masks = hole_mask(args.size, args.hole)[None]
    tokens = rng.integers(0, 512, masks.shape).astype(np.int64) * (1 - masks.astype(np.int64))
    forwards = int(masks.sum())
    fns = {}
    with tempfile.TemporaryDirectory() as tmp:
        if "eager" in args.paths:
            fns["eager"] = paddle_logits_fn(net)
        if any(p.startswith("pi_") for p in args.paths):
            prefix = os.path.join(tmp, "logits")
            save_logits_graph(net, prefix)
            if "pi_onednn" in args.paths:
                fns["pi_onednn"] = PredictorLogits(prefix, threads=args.threads, onednn=True)
            if "pi_plain" in args.paths:
                fns["pi_plain"] = PredictorLogits(prefix, threads=args.threads, onednn=False)
        results, reference, sampled = {}, None, {}
        for name, fn in fns.items():
            seconds, logits = time_forwards(fn, tokens, masks, args.warmup, args.repeat)
            if reference is None:
                reference = logits.astype(np.float64)
            row = {"median_s": statistics.median(seconds), "min_s": min(seconds),
                   "max_abs_diff": float(np.abs(logits - reference).max())}
            row["image_s_estimate"] = row["median_s"] * forwards
            if args.full:
                tic = time.perf_counter()
                sampled[name] = sample_tokens(fn, tokens[0], masks[0], 1, seed=0)
                row["image_s"] = time.perf_counter() - tic
                row["same_tokens_as_first"] = bool((sampled[name] == next(iter(sampled.values()))).all())
            results[name] = row
            print(f"{name}: {row}", flush=True)
    report = {"config": {"n_layer": args.n_layer, "n_embd": args.n_embd, "n_head": args.n_head,
                         "size": args.size, "params": n_params, "forwards_per_image": forwards,
                         "threads": args.threads, "paddle": paddle.__version__},
              "load_average_1min": [load_before, os.getloadavg()[0]], "cpus": os.cpu_count(),
              "results": results}
    print(json.dumps(report, indent=1))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1)
    return 0


if __name__ == "__main__":
    run_cli(main)
