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
through every path: Paddle eager, Paddle Inference with oneDNN (`pi_onednn`), with oneDNN's bf16
kernels (`pi_bf16`, CPUs with AVX512-BF16 or AMX only) and without oneDNN (`pi_plain`),
onnxruntime on the paddle2onnx conversion (`ort`, all graph optimisations), at each --threads
count (eager runs once, with the process's MKL threads). Each runs --warmup untimed forwards,
then --repeat timed rounds that visit every path in turn (so a load change on a shared machine
hits every path alike); a row gives the median and minimum seconds per forward, seconds per
40 %-hole image (forwards x median) and the largest logits difference, relative to the largest
logit, from eager's full forward at the sampled position. With --image a whole image is also
sampled end to end on each path and graph (wall seconds, and the share of sampled tokens equal
to the first path's, same seed). --agreement N measures how far each path moves the sampling
distribution from the first path's at every N-th missing position, both fed the same tokens
(the hole before that position filled from the first path's sampled image when --image ran,
else with random tokens): the top-k set overlap, the total variation distance between the two
top-k softmax distributions and the probability that one uniform draws the same token from
both. The 1-minute load average before and after is printed.
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
from ppir.errors import ConfigError, run_cli
from ppir.utils.paths import check_output_file, write_output_file

PATHS = ("eager", "pi_onednn", "pi_bf16", "pi_plain", "ort")
GRAPHS = ("full", "rows")
PREDICTOR_OPTIONS = {
    "pi_onednn": dict(backend="paddle", enable_mkldnn=True),
    "pi_bf16": dict(backend="paddle", enable_mkldnn=True, precision="bf16"),
    "pi_plain": dict(backend="paddle", enable_mkldnn=False),
    "ort": dict(backend="onnxruntime", enable_mkldnn=False)}


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
    parser.add_argument("--agreement", type=int, default=0, metavar="N",
                        help="compare each path's sampling distribution with the first path's "
                             "at every N-th missing position (0: off)")
    parser.add_argument("--json", help="write the results here")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --json file ppir did not write")
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


def time_rounds(fns, feeds, warmup, repeat):
    """{key: (seconds per timed forward, last output)}; the timed forwards go round the paths."""
    outs = {}
    for key, fn in fns.items():
        for _ in range(warmup):
            outs[key] = fn(*feeds)
    seconds = {key: [] for key in fns}
    for _ in range(repeat):
        for key, fn in fns.items():
            tic = time.perf_counter()
            outs[key] = fn(*feeds)
            seconds[key].append(time.perf_counter() - tic)
    return {key: (seconds[key], np.asarray(outs[key])) for key in fns}


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
            for path in args.paths:  # in the order given: the first is --agreement's reference
                if path in PREDICTOR_OPTIONS:
                    fns[(path, graph, threads)] = GraphLogits(create_predictor(
                        tmp, record, inputs, cpu_threads=threads, **PREDICTOR_OPTIONS[path]))
    return fns


def distribution_agreement(reference, other, tokens, masks, filled, stride, top_k=40):
    """How far `other` moves ICT's sampling distribution from `reference`'s (logits_fns) at every
    `stride`-th missing position, the hole before it filled from `filled` (a completed token
    grid), the rest still missing: the mean and smallest top-k set overlap (fraction of the k),
    the mean and largest total variation distance between the two top-k softmax distributions,
    and the mean probability that one uniform draws the same token from both (the per-step
    agreement of same-seed samples)."""
    from ppir.models.ict_sampling import top_k_logits

    missing = np.flatnonzero(masks)
    uniforms = (np.arange(2000) + 0.5) / 2000
    overlap, tv, same = [], [], []
    for i in missing[::stride]:
        step_tokens, step_masks = tokens.copy(), masks.astype(np.float32)
        before = missing[missing < i]
        step_tokens[before], step_masks[before] = filled[before], 0
        feeds = (step_tokens[None], step_masks[None], np.array([i], np.int64))
        a, b = (top_k_logits(np.asarray(fn(*feeds))[:, 0].astype(np.float64), top_k)[0]
                for fn in (reference, other))
        keep_a, keep_b = np.isfinite(a), np.isfinite(b)
        overlap.append((keep_a & keep_b).sum() / keep_a.sum())
        pa, pb = (np.exp(x - x.max()) / np.exp(x - x.max()).sum() for x in (a, b))
        tv.append(0.5 * np.abs(pa - pb).sum())
        ca, cb = np.cumsum(pa), np.cumsum(pb)
        same.append(np.mean(np.searchsorted(ca, uniforms * ca[-1], side="right")
                            == np.searchsorted(cb, uniforms * cb[-1], side="right")))
    return {"positions": len(overlap), "topk_overlap": round(float(np.mean(overlap)), 4),
            "topk_overlap_min": round(float(np.min(overlap)), 4),
            "tv_mean": round(float(np.mean(tv)), 4), "tv_max": round(float(np.max(tv)), 4),
            "same_draw": round(float(np.mean(same)), 4)}


def main(argv=None):
    args = parse_args(argv)
    if args.json:  # before any work: never onto what is read, never over a stranger's file
        check_output_file(args.json, "--json", [], args.overwrite)
    import paddle

    from ppir.inference.predictor import cpu_has_bf16
    from ppir.models.archs.ict_arch import ICTTransformer
    from ppir.models.ict_sampling import paddle_logits_fn, sample_tokens

    paddle.set_device("cpu")
    if "pi_bf16" in args.paths and not cpu_has_bf16():
        raise ConfigError("--paths pi_bf16 needs a CPU with AVX512-BF16 or AMX; on this one "
                          "oneDNN would silently run fp32")
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
    results, first_tokens, first_fn = [], None, None
    with tempfile.TemporaryDirectory() as tmp:
        fns = build_paths(net, args, tmp)
        timed = time_rounds(fns, (tokens, masks, positions), args.warmup, args.repeat)
        for (path, graph, threads), fn in fns.items():
            seconds, logits = timed[(path, graph, threads)]
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
                hole = masks[0] > 0
                equal = sampled[0][hole] == first_tokens[0][hole]
                row["same_tokens_as_first"] = round(float(equal.mean()), 4)
                row["first_different_token"] = int(np.argmin(equal)) if not equal.all() else None
            if args.agreement:
                if first_fn is None:
                    first_fn = fn
                else:
                    # The first path's sampled image when --image ran, else random tokens.
                    filled = first_tokens[0] if first_tokens is not None else \
                        rng.integers(0, 512, masks.shape[1])
                    row["agreement_with_first"] = distribution_agreement(
                        first_fn, fn, tokens[0], masks[0], filled, args.agreement)
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
        image = (f"{r['image_s']} s, {r['same_tokens_as_first']:.1%} of tokens as the first"
                 if "image_s" in r else "")
        print(f"{r['path']:10} {r['graph']:5} {str(r['threads'] or '-'):>3} {r['median_s']:10.4f} "
              f"{r['min_s']:8.4f} {r['image_s_estimate']:9.1f} {r['rel_diff']:9.2g}  {image}")
    print(f"load average (1 min) before {load_before:.2f}, after {os.getloadavg()[0]:.2f}")
    if args.json:
        write_output_file(args.json, json.dumps(report, indent=1) + "\n", "--json")
    return 0


if __name__ == "__main__":
    run_cli(main)
