"""Export a trained network as a static inference model, and prove the export right.

    python tools/export.py -c configs/mirnetv2_sidd.yml -o Global.pretrained_model=W --save_dir DIR
    python tools/export.py -c CFG -o Global.pretrained_model=W --save_dir DIR --onnx [--opset 13]

Writes DIR/inference.json + inference.pdiparams (Paddle 3 PIR format), DIR/inference.yml (what
deploy/infer.py needs: channels, value range, pad multiple, mask, suggested tile, metrics) and,
with --onnx, DIR/inference.onnx. Before anything lands in DIR, the saved model is run with Paddle
Inference through deploy/infer.py's Predictor (oneDNN on and off) and, with --onnx, with
onnxruntime, on a square and a non-square input; every output must match the dygraph network to
--atol (max abs diff), else the export fails with exit code 2 and DIR is left as it was.

A model whose deployment is several graphs (ICTModel: the transformer's logits graph and the
upsampler) writes its own folder layout through `model.export_stages(dir, atol)` (each graph
checked against dygraph there); it is committed into DIR the same way.

DIR may already hold other files (TIPC exports next to the checkpoints); only the export files are
replaced. inference.yml is removed first and written last, so a directory holding an
inference.yml always holds a complete, verified export.
"""
import argparse
import contextlib
import os
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # for `deploy`

import numpy as np
import yaml

import ppir  # noqa: F401  (sets GLOG/OMP defaults before paddle is imported)
from ppir.config import add_config_arguments, config_from_args
from ppir.errors import CheckpointError, ExportError, run_cli
from ppir.utils import inference_io as io
from ppir.utils.paths import describe_os_error, refuse_overlap

CHECK_SIZES = ((64, 64), (48, 80))  # (H, W), rounded up to the model's pad multiple
DEFAULT_ATOL = 1e-5


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_arguments(parser)
    parser.add_argument("--save_dir", required=True, help="directory for the exported files")
    parser.add_argument("--onnx", action="store_true", help="also write inference.onnx (paddle2onnx)")
    parser.add_argument("--opset", type=int, default=13, help="ONNX opset (default 13)")
    parser.add_argument("--atol", type=float, default=None,
                        help=f"max abs difference allowed against dygraph (default {DEFAULT_ATOL}; "
                             f"a multi-graph export: the model's own)")
    parser.add_argument("--tune_sizes", default=None, metavar="WxH,...",
                        help="input sizes the CPU paths are timed on (default: the model's, 256x256,1280x720 "
                             "for restoration and 256x256,512x512 for inpainting)")
    parser.add_argument("--no_tune", action="store_true",
                        help="skip timing the CPU paths (deploy/infer.py then defaults to oneDNN)")
    parser.add_argument("--allow_random", action="store_true",
                        help="export untrained (seeded random) weights when Global.pretrained_model is unset")
    args = parser.parse_args(argv)
    if args.tune_sizes is not None:
        args.tune_sizes = parse_sizes(args.tune_sizes)
    return args


def parse_sizes(text):
    """'256x256,1280x720' -> [(256, 256), (720, 1280)] as (H, W), sorted by pixel count."""
    sizes = []
    for item in str(text).split(","):
        try:
            w, h = (int(v) for v in item.strip().lower().split("x"))
        except ValueError:
            raise ExportError(f"--tune_sizes {text!r}: expected WxH[,WxH...], e.g. 256x256,1280x720") from None
        if w < 1 or h < 1:
            raise ExportError(f"--tune_sizes {text!r}: sizes must be positive")
        sizes.append((h, w))
    return sorted(sizes, key=lambda hw: hw[0] * hw[1])


def check_inputs(spec, seed=0, sizes=None):
    """Deterministic model inputs, one square and one non-square size, built by the same host code
    deploy/infer.py runs (`graph_inputs`): a smooth random image in [0, 1] and, for models that take
    a mask, a realistic free-form hole mask (strokes and ellipses, 20-50 % holes; salt noise would
    not exercise a partial convolution the way real holes do). Each is the graph inputs
    concatenated along channels, 1xCxHxW."""
    import cv2

    from ppir.data.masks import generate_mask

    rng = np.random.default_rng(seed)
    multiple = int(spec["pad_multiple"] or 1)
    inputs = []
    shapes = []
    for h, w in sizes or CHECK_SIZES:
        h, w = -(-h // multiple) * multiple, -(-w // multiple) * multiple
        if shapes and h == w:  # a large multiple rounds both sizes alike: keep one non-square check
            w += multiple
        shapes.append((h, w))
    for h, w in shapes:
        coarse = rng.random((max(h // 8, 2), max(w // 8, 2), 3)).astype(np.float32)
        img = cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC).clip(0.0, 1.0)
        mask = generate_mask((h, w), rng, (0.2, 0.5)) if io.needs_mask(spec) else None
        inputs.append(io.graph_inputs(io.host_sample(img, mask), spec)[None])
    return inputs


# The (H, W) inputs the CPU paths are timed on come from the task model (`tune_sizes`). The
# fastest path can change with the size: the demo-width MIRNetV2 runs 1280x720 2x faster with
# onnxruntime than with oneDNN (docs/benchmark.md), so deploy/infer.py picks the timing nearest
# to the image it runs.
TUNE_RUNS = 3
LARGE_SIZE_RUNS = 1  # after one warm-up: a 1280x720 run of a full-width model takes seconds
CANDIDATE_FACTOR = 2.0  # at a larger size, time only paths within this factor of the fastest so far


def time_paths(predictors, x, runs=TUNE_RUNS, warmup=1):
    """Median milliseconds of each predictor on `x` after `warmup` untimed runs (oneDNN builds
    its primitives on the first run of a shape)."""
    import time

    timings = {}
    for name, predictor in predictors.items():
        for _ in range(warmup):
            predictor.run(x)
        samples = []
        for _ in range(runs):
            start = time.perf_counter()
            predictor.run(x)
            samples.append((time.perf_counter() - start) * 1000.0)
        timings[name] = round(float(np.median(samples)), 2)
    return timings


# The verified fp32 CPU paths, by the name their timing is recorded under.
PATHS = {"paddle_onednn_on": {"backend": "paddle", "enable_mkldnn": True},
         "paddle_onednn_off": {"backend": "paddle", "enable_mkldnn": False},
         "onnxruntime": {"backend": "onnxruntime", "enable_mkldnn": False}}


def fastest_path(timings):
    """The default deploy/infer.py path: the fastest measured one."""
    name = min(timings, key=timings.get)
    return dict(PATHS[name], measured=name)


def tune_paths(predictors, spec, sizes):
    """Time the verified CPU paths at each size (smallest first). A path more than
    CANDIDATE_FACTOR slower than the fastest at one size is not timed at the next, which keeps a
    full-width export's tuning to a few large runs. Returns one entry per size."""
    candidates, entries = dict(predictors), []
    for i, size in enumerate(sizes):
        x = check_inputs(spec, sizes=(size,))[0]
        # Small inputs are cheap: two warm-ups and three runs steady the choice between close paths.
        timings = time_paths(candidates, x, *((TUNE_RUNS, 2) if i == 0 else (LARGE_SIZE_RUNS, 1)))
        best = min(timings.values())
        entries.append({"size": list(x.shape[2:]), "median_ms": timings, "fastest": fastest_path(timings)["measured"]})
        candidates = {k: v for k, v in candidates.items() if timings[k] <= CANDIDATE_FACTOR * best}
    return entries


def split_inputs(x, spec):
    """The per-input parts (graph order) of a channel-concatenated array."""
    parts, start = [], 0
    for item in spec["inputs"]:
        parts.append(x[:, start:start + int(item["channels"])])
        start += int(item["channels"])
    return parts


def compare(run, inputs, references, atol, what):
    """Max abs diff of `run` against the dygraph references; ExportError beyond `atol`."""
    worst = 0.0
    for x, ref in zip(inputs, references):
        out = run(x)
        if out.shape != ref.shape:
            raise ExportError(f"{what}: output shape {list(out.shape)} != dygraph {list(ref.shape)} "
                              f"for input {list(x.shape)}")
        diff = float(np.abs(out.astype(np.float64) - ref).max())
        if not diff <= atol:  # also catches NaN
            raise ExportError(f"{what} differs from dygraph: max abs diff {diff:.3g} > {atol:g} "
                              f"on input {list(x.shape)}")
        worst = max(worst, diff)
    return worst


def save_static(layer, spec, prefix):
    import paddle
    from paddle.static import InputSpec

    input_spec = [InputSpec([None, int(item["channels"]), None, None], item.get("dtype", "float32"), item["name"])
                  for item in spec["inputs"]]
    static = paddle.jit.to_static(layer, input_spec=input_spec, full_graph=True)
    paddle.jit.save(static, prefix)


def save_onnx(tmp_dir, model_file, params_file, opset):
    """paddle2onnx the static model; returns the opset actually written."""
    import onnx
    import paddle2onnx

    path = os.path.join(tmp_dir, io.ONNX_FILE)
    try:
        # optimize_tool="None": the default ("polygraphy") sets POLYGRAPHY_AUTOINSTALL_DEPS=1 and
        # pip-installs onnx_graphsurgeon and sympy at run time (paddle2onnx 2.1.0), and its
        # "onnxoptimizer" option names a pass that does not exist (eliminate_nop_cast), so it
        # silently falls back to the raw model anyway. onnxruntime folds constants itself.
        paddle2onnx.export(model_file, params_file, path, opset_version=opset, auto_upgrade_opset=True,
                           enable_onnx_checker=True, optimize_tool="None")
    except Exception as exc:  # paddle2onnx raises assorted types, some after logging
        raise ExportError(f"paddle2onnx failed on {model_file}: {exc.__class__.__name__}: {exc}") from None
    if not os.path.isfile(path):
        raise ExportError(f"paddle2onnx wrote no {io.ONNX_FILE} for {model_file} (see its log above)")
    model = onnx.load(path, load_external_data=False)
    return max(op.version for op in model.opset_import if op.domain in ("", "ai.onnx"))


def build_spec(cfg, model, args, output_name, checks, opset):
    import paddle

    network = cfg["Model"].get("network") or next(iter(cfg["Model"]["networks"].values()))
    spec = {
        "model_name": network["name"],
        "network": {k: v for k, v in network.items() if k != "name"},
        "model_file": "inference.json",
        "params_file": io.PARAMS_FILE,
        "onnx_file": io.ONNX_FILE if args.onnx else None,
        "output_name": output_name,
    }
    spec.update(model.io_spec())
    export_cfg = cfg.get("Export") or {}
    spec["tile"] = export_cfg.get("tile")
    spec["tile_overlap"] = export_cfg.get("tile_overlap", 32)
    spec["metrics"] = (cfg.get("Eval") or {}).get("metrics") or [{"name": "PSNR"}, {"name": "SSIM"}]
    spec["export"] = {
        "config": cfg.get("_config_path"),
        "weights": cfg["Global"]["pretrained_model"],
        "paddle_version": paddle.__version__,
        "onnx_opset": opset,
        "check_atol": args.atol,
        "max_abs_diff": checks,
    }
    return spec


def check_save_dir(save_dir, weights, config):
    """Before any work: --save_dir must be a folder (or not exist yet), and no export file may
    replace the weights or the config the export reads (also through a symlink or `..`)."""
    from ppir.engine.checkpoint import WEIGHTS

    if weights and os.path.isdir(weights):  # a checkpoint dir: only its weights file is read
        weights = os.path.join(weights, WEIGHTS)
    writes = [(save_dir, "--save_dir")] + [(os.path.join(save_dir, n), "export file") for n in io.EXPORT_FILES]
    removes = [(os.path.join(save_dir, n), "--save_dir") for n in io.CACHE_DIRS]  # stale TensorRT engines
    refuse_overlap(writes, [(weights, "Global.pretrained_model"), (config, "-c")], removes)
    if os.path.exists(save_dir) and not os.path.isdir(save_dir):
        raise ExportError(f"--save_dir {save_dir} is a file, not a folder")


def commit(tmp_dir, save_dir):
    """Move the verified files from tmp_dir into save_dir; inference.yml goes last."""
    spec_path = os.path.join(save_dir, io.SPEC_FILE)
    if os.path.exists(spec_path):
        os.remove(spec_path)
    for name in io.EXPORT_FILES:
        if name == io.SPEC_FILE:
            continue
        src, dst = os.path.join(tmp_dir, name), os.path.join(save_dir, name)
        if os.path.exists(src):
            os.replace(src, dst)
        elif os.path.exists(dst):  # stale: an old ONNX file or TensorRT shapes of the old model
            os.remove(dst)
    for name in io.CACHE_DIRS:  # TensorRT engines built from the old weights
        shutil.rmtree(os.path.join(save_dir, name), ignore_errors=True)
    os.replace(os.path.join(tmp_dir, io.SPEC_FILE), spec_path)


def commit_tree(tmp_dir, save_dir):
    """Move every entry of tmp_dir (files and folders of a multi-graph export) into save_dir,
    replacing what is there under the same names; inference.yml goes last."""
    spec_path = os.path.join(save_dir, io.SPEC_FILE)
    if os.path.exists(spec_path):
        os.remove(spec_path)
    for name in sorted(os.listdir(tmp_dir)):
        if name == io.SPEC_FILE:
            continue
        dst = os.path.join(save_dir, name)
        if os.path.isdir(dst) and not os.path.islink(dst):
            shutil.rmtree(dst)
        elif os.path.lexists(dst):
            os.remove(dst)
        os.replace(os.path.join(tmp_dir, name), dst)
    os.replace(os.path.join(tmp_dir, io.SPEC_FILE), spec_path)


@contextlib.contextmanager
def staging_dir(save_dir):
    """A temporary folder inside save_dir (made if needed) where the export is written and
    verified; removed afterwards, with save_dir itself when this made it and nothing landed."""
    created = not os.path.isdir(save_dir)
    try:
        os.makedirs(save_dir, exist_ok=True)
        tmp_dir = tempfile.mkdtemp(prefix=".export-", dir=save_dir)
    except OSError as exc:
        if created and os.path.isdir(save_dir) and not os.listdir(save_dir):
            os.rmdir(save_dir)
        raise ExportError(f"cannot write to --save_dir {save_dir}: {describe_os_error(exc)}") from None
    try:
        yield tmp_dir
    except OSError as exc:  # a full disk or a folder that turned read-only
        raise ExportError(f"cannot write the export to {save_dir}: {describe_os_error(exc)}") from None
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)
        if created and not os.listdir(save_dir):
            os.rmdir(save_dir)


def export_stages(model, save_dir, atol=None, onnx=False, tune=True):
    """The export of a multi-graph model (`model.export_stages`), committed into save_dir."""
    with staging_dir(save_dir) as tmp_dir:
        spec = model.export_stages(tmp_dir, atol, onnx=onnx, tune=tune)
        written = sorted(os.listdir(tmp_dir))
        commit_tree(tmp_dir, save_dir)
    checks = ", ".join(f"{k} max abs diff {v:.2g}" for k, v in spec["export_checks"].items())
    print(f"exported {spec['model_name']} to {save_dir}: {', '.join(written)} ({checks})")
    for name, stage in spec.get("stages", {}).items():
        if "cpu_paths" in stage:
            times = ", ".join(f"{k} {v:.4f} s" for k, v in stage["cpu_paths"]["median_s_per_forward"].items())
            print(f"{name} CPU paths, {stage['cpu_paths']['threads']} thread(s), per forward: {times}; "
                  f"deploy/infer.py default: {stage['default_path']}")
    return spec


def main(argv=None):
    args = parse_args(argv)
    cfg = config_from_args(args)
    weights = cfg["Global"]["pretrained_model"]
    if not weights and not args.allow_random:
        raise CheckpointError("no weights to export: pass -o Global.pretrained_model=PATH "
                              "(or --allow_random to export untrained weights)")
    check_save_dir(args.save_dir, weights, args.config)
    import paddle

    from deploy.infer import Predictor, short_reason
    from ppir.engine.checkpoint import load_pretrained
    from ppir.models import build_model

    paddle.set_device("cpu")
    paddle.seed(int(cfg["Global"].get("seed") or 0))
    model = build_model(cfg)
    if weights:
        loaded = load_pretrained(model, weights)
        missing = [n for n in getattr(model, "export_networks", (model.primary,)) if n not in loaded]
        if missing:
            raise CheckpointError(f"Global.pretrained_model {weights} has no weights for "
                                  f"{', '.join(missing)} (the export needs them): pass a checkpoint "
                                  f"dir holding them or a mapping {{network: file}}")
    else:
        print("warning: Global.pretrained_model is not set; exporting random weights", file=sys.stderr)
    if hasattr(model, "export_stages"):
        export_stages(model, args.save_dir, args.atol, onnx=args.onnx, tune=not args.no_tune)
        return 0
    if args.atol is None:
        args.atol = DEFAULT_ATOL
    layer = model.export_module()
    layer.eval()
    io_spec = model.io_spec()
    inputs = check_inputs(io_spec)
    with paddle.no_grad():  # before to_static, which replaces the layer's forward
        references = [layer(*[paddle.to_tensor(part) for part in split_inputs(x, io_spec)]).numpy().astype(np.float64)
                      for x in inputs]

    save_dir = args.save_dir
    with staging_dir(save_dir) as tmp_dir:
        save_static(layer, io_spec, os.path.join(tmp_dir, "inference"))
        model_file, params_file = io.paddle_model_files(tmp_dir)
        # A provisional spec lets the deploy Predictor load the temp dir exactly as users will.
        draft = {**build_spec(cfg, model, args, None, {}, None), "onnx_file": None}
        with open(os.path.join(tmp_dir, io.SPEC_FILE), "w", encoding="utf-8") as f:
            yaml.safe_dump(draft, f, sort_keys=False)
        # A CPU path that disagrees with dygraph is recorded and never offered (deploy/infer.py
        # refuses it by name); the export fails only when no Paddle Inference path agrees.
        checks, predictors, failed = {}, {}, {}
        for onednn in (True, False):
            predictor = Predictor(tmp_dir, device="cpu", enable_mkldnn=onednn)
            what = f"Paddle Inference (CPU, oneDNN {'on' if onednn else 'off'})"
            path = f"paddle_onednn_{'on' if onednn else 'off'}"
            try:
                checks[f"paddle_inference_onednn_{'on' if onednn else 'off'}"] = compare(
                    predictor.run, inputs, references, args.atol, what)
                predictors[path] = predictor
            except ExportError as exc:
                failed[path] = str(exc)
                print(f"warning: {exc}; deploy/infer.py will refuse this path", file=sys.stderr)
        if not predictors:
            raise ExportError(f"{next(iter(failed.values()))}; the export was not written")
        output_name = predictor.predictor.get_output_names()[0]
        opset = None
        if args.onnx:
            opset = save_onnx(tmp_dir, model_file, params_file, args.opset)
            with open(os.path.join(tmp_dir, io.SPEC_FILE), "w", encoding="utf-8") as f:
                yaml.safe_dump({**draft, "onnx_file": io.ONNX_FILE}, f, sort_keys=False)
            try:
                predictor = Predictor(tmp_dir, backend="onnxruntime")
                checks["onnxruntime"] = compare(predictor.run, inputs, references, args.atol, "onnxruntime")
            except ExportError:
                raise
            except Exception as exc:  # e.g. MISF: a Tile node paddle2onnx 2.1 writes fails in onnxruntime
                raise ExportError(f"onnxruntime cannot run the paddle2onnx model ({short_reason(exc)}); "
                                  f"export without --onnx") from None
            predictors["onnxruntime"] = predictor
        tuning = None if args.no_tune else tune_paths(predictors, io_spec, args.tune_sizes or model.tune_sizes)
        spec = build_spec(cfg, model, args, output_name, {k: float(f"{v:.3g}") for k, v in checks.items()},
                          opset)
        if tuning:
            spec["default_path"] = dict(PATHS[tuning[0]["fastest"]])
            spec["default_path_by_size"] = [{"size": t["size"], **PATHS[t["fastest"]]} for t in tuning]
            spec["export"]["cpu_paths"] = {"threads": next(iter(predictors.values())).cpu_threads,
                                           "timings": tuning}
        elif failed:  # untimed: the first path that agrees with dygraph
            spec["default_path"] = dict(PATHS[next(iter(predictors))])
        if failed:
            spec["export"]["failed_paths"] = failed
        with open(os.path.join(tmp_dir, io.SPEC_FILE), "w", encoding="utf-8") as f:
            f.write("# Written by tools/export.py; deploy/infer.py reads only this directory.\n")
            yaml.safe_dump(spec, f, sort_keys=False, default_flow_style=None)
        commit(tmp_dir, save_dir)

    files = [n for n in io.EXPORT_FILES if os.path.exists(os.path.join(save_dir, n))]
    print(f"exported {spec['model_name']} to {save_dir}: {', '.join(files)}")
    sizes = " and ".join("x".join(str(d) for d in x.shape) for x in inputs)
    for name, diff in checks.items():
        print(f"check {name}: max abs diff {diff:.3g} vs dygraph on {sizes} (atol {args.atol:g})")
    for entry in (spec["export"].get("cpu_paths") or {}).get("timings", []):
        times = ", ".join(f"{k} {v:.1f} ms" for k, v in entry["median_ms"].items())
        print(f"CPU paths at {entry['size'][1]}x{entry['size'][0]} ({spec['export']['cpu_paths']['threads']} "
              f"threads): {times}; fastest {entry['fastest']}")
    if "default_path_by_size" in spec:
        print("deploy/infer.py default: the fastest path at the measured size nearest to each image")
    if "default_path" in spec and "cpu_paths" not in spec["export"]:  # --no_tune with a failed path
        print(f"deploy/infer.py default (untimed): {spec['default_path']}")
    return 0


if __name__ == "__main__":
    run_cli(main)
