"""CPU cost of ICT's token sampling (stage 1): seconds per transformer forward and per completed
image, for each way of running the forward.

    python benchmark/bench_ict_sampling.py                   # Places2_Nature, 32x32, batch 1
    python benchmark/bench_ict_sampling.py --n_layer 4 --image   # reduced: also sample an image

The transformer has the Places2_Nature release shape by default (35 layers x 512, 8 heads,
32 x 32 tokens, 111,383,040 parameters) with seeded random weights (no official weights ship
here); the speed of a forward does not depend on the weights. The hole is a centred square plus a
band, 410 of the 1024 positions (40 %), so an image takes 410 forwards.

Two graphs are timed: `full` (logits at every position, the graph before) and `rows` (the logits
at the one sampled position, `ICTTransformer.logits_at`, the graph sampling uses now), each
through every path: Paddle eager, Paddle Inference with oneDNN (`pi_onednn`) and without
(`pi_plain`), onnxruntime on the paddle2onnx conversion (`ort`, all graph optimisations), at
each --threads count (eager runs once, with the process's MKL threads). Each runs --warmup
untimed and --repeat timed forwards; a row gives the median and minimum seconds per forward,
seconds per 40 %-hole image (forwards x median) and the largest logits difference, relative to
the largest logit, from eager's full forward at the sampled position. With --image a whole
image is also sampled end to end on each path and graph (wall seconds, and whether the tokens
equal those of the first one). The machine is shared: the 1-minute load average before
and after is printed with the results.
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

PATHS = ("eager", "pi_onednn", "pi_plain", "ort")
GRAPHS = ("full", "rows")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n_layer", type=int, default=35)
    parser.add_argument("--n_embd", type=int, default=512)
    parser.add_argument("--n_head", type=int, default=8)
    parser.add_argument("--size", type=int, default=32, help="prior side s (block_size = s * s)")
    parser.add_argument("--hole", type=float, default=0.4, help="fraction of missing tokens")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2],
                        help="math threads of the Paddle Inference and onnxruntime paths")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--paths", nargs="+", default=list(PATHS), choices=PATHS)
    parser.add_argument("--graphs", nargs="+", default=list(GRAPHS), choices=GRAPHS)
    parser.add_argument("--image", action="store_true",
                        help="also sample a whole image on each path and graph, end to end")
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


def time_forwards(fn, feeds, warmup, repeat):
    for _ in range(warmup):
        fn(*feeds)
    seconds = []
    for _ in range(repeat):
        tic = time.perf_counter()
        out = fn(*feeds)
        seconds.append(time.perf_counter() - tic)
    return seconds, np.asarray(out)


def build_paths(net, args, tmp):
    """{(path, graph, threads): logits_fn(tokens, masks, positions)} for the requested ones."""
    from ppir.inference.export import save_onnx, trace
    from ppir.inference.ict import GraphLogits
    from ppir.inference.predictor import create_predictor
    from ppir.models.ict_model import ICTLogits, ICTRowLogits
    from ppir.models.ict_sampling import paddle_logits_fn

    fns = {}
    eager = paddle_logits_fn(net)
    for graph in args.graphs:
        if "eager" in args.paths:
            # The full forward, cut to the sampled row afterwards, is the loop before logits_at.
            fns[("eager", graph, None)] = eager if graph == "rows" else \
                (lambda t, m, p: eager(t, m)[:, p])
        layer = (ICTRowLogits if graph == "rows" else ICTLogits)(net)
        record = {"model_file": f"{graph}/inference.json", "params_file": f"{graph}/inference.pdiparams",
                  "onnx_file": f"{graph}/inference.onnx"}
        if set(args.paths) - {"eager"}:
            trace(layer, layer.INPUTS, os.path.join(tmp, graph, "inference"))
        if "ort" in args.paths:
            save_onnx(*(os.path.join(tmp, record[k]) for k in ("model_file", "params_file", "onnx_file")))
        inputs = [{"name": name} for name, _, _ in layer.INPUTS]
        for threads in args.threads:
            for path, backend, onednn in (("pi_onednn", "paddle", True), ("pi_plain", "paddle", False),
                                          ("ort", "onnxruntime", False)):
                if path in args.paths:
                    fns[(path, graph, threads)] = GraphLogits(create_predictor(
                        tmp, record, inputs, backend=backend, enable_mkldnn=onednn, cpu_threads=threads))
    return fns


def main(argv=None):
    args = parse_args(argv)
    import paddle

    from ppir.models.archs.ict_arch import ICTTransformer
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
    positions = np.flatnonzero(masks[0])[:1]  # the first sampled position
    reference = paddle_logits_fn(net)(tokens, masks)[:, positions].astype(np.float64)
    scale = float(np.abs(reference).max())
    results, first_tokens = [], None
    with tempfile.TemporaryDirectory() as tmp:
        for (path, graph, threads), fn in build_paths(net, args, tmp).items():
            seconds, logits = time_forwards(fn, (tokens, masks, positions), args.warmup,
                                            args.repeat)
            row = {"path": path, "graph": graph, "threads": threads,
                   "median_s": round(statistics.median(seconds), 4),
                   "min_s": round(min(seconds), 4),
                   "rel_diff": float(f"{np.abs(logits - reference).max() / scale:.3g}")}
            row["image_s_estimate"] = round(row["median_s"] * forwards, 1)
            if args.image:
                tic = time.perf_counter()
                sampled = sample_tokens(fn, tokens[0], masks[0], 1, seed=0)
                row["image_s"] = round(time.perf_counter() - tic, 2)
                first_tokens = sampled if first_tokens is None else first_tokens
                row["same_tokens_as_first"] = bool((sampled == first_tokens).all())
            results.append(row)
            print(json.dumps(row), flush=True)
    report = {"config": {"n_layer": args.n_layer, "n_embd": args.n_embd, "n_head": args.n_head,
                         "size": args.size, "params": n_params, "forwards_per_image": forwards,
                         "paddle": paddle.__version__,
                         "mkl_threads_eager": os.environ.get("MKL_NUM_THREADS")},
              "load_average_1min": [load_before, os.getloadavg()[0]], "cpus": os.cpu_count(),
              "results": results}
    print(f"{'path':10} {'graph':5} {'thr':>3} {'s/forward':>10} {'min':>8} {'s/image':>9} "
          f"{'rel diff':>9}  image (end to end)")
    for r in results:
        image = (f"{r['image_s']} s, same tokens {r['same_tokens_as_first']}"
                 if "image_s" in r else "")
        print(f"{r['path']:10} {r['graph']:5} {str(r['threads'] or '-'):>3} {r['median_s']:10.4f} "
              f"{r['min_s']:8.4f} {r['image_s_estimate']:9.1f} {r['rel_diff']:9.2g}  {image}")
    print(f"load average (1 min) before {load_before:.2f}, after {os.getloadavg()[0]:.2f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1)
    return 0


if __name__ == "__main__":
    run_cli(main)
