"""The export pipeline: trace every graph a task model declares, prove each CPU path right
against dygraph, time the ones that are, and commit the folder atomically.

    spec = export_model(model, save_dir, cfg=cfg, onnx=True)

For each graph of `model.export_graphs()` (one for most models, two for ICT):
1. dygraph references on the graph's check inputs (a square and a non-square image by default);
2. trace (`paddle.jit.to_static`, full graph, dynamic shapes) and save;
3. run the saved graph with Paddle Inference, oneDNN on and off, and (with `onnx`) onnxruntime on
   the paddle2onnx conversion; a path beyond `atol` of dygraph is recorded as failed and never
   offered (the export fails only when no Paddle path agrees);
4. time the verified paths (the model's `tune_sizes`; a path 2x slower than the fastest at one size
   is not timed at the next) and record the fastest per size as the default.
Everything is written into a staging folder inside `save_dir` and moved in at the end,
inference.yml last: a folder holding an inference.yml always holds a complete, verified export.
Each step is printed as it happens (`log`).
"""
import contextlib
import os
import shutil
import sys
import tempfile
import time

import numpy as np
import yaml

from ppir.errors import ExportError
from ppir.inference import host
from ppir.inference import spec as specs
from ppir.inference.paths import PATHS
from ppir.inference.predictor import create_predictor, default_cpu_threads, short_reason
from ppir.utils.paths import describe_os_error, refuse_overlap

CHECK_SIZES = ((64, 64), (48, 80))  # (H, W), rounded up to the model's pad multiple
DEFAULT_ATOL = 1e-5
TUNE_RUNS = 3
LARGE_SIZE_RUNS = 1  # after one warm-up: a 1280x720 run of a full-width model takes seconds
CANDIDATE_FACTOR = 2.0  # at a larger size, time only paths within this factor of the fastest so far
ONNX_OPSET = 13


def say(message):
    print(message, flush=True)


# ---- inputs ----------------------------------------------------------------------------------

def image_check_inputs(spec, seed=0, sizes=None):
    """Deterministic model inputs, one square and one non-square size, built by the same host code
    a deployment runs (`host.graph_inputs`): a smooth random image in [0, 1] and, for models that
    take a mask, a realistic free-form hole mask (strokes and ellipses, 20-50 % holes; salt noise
    would not exercise a partial convolution the way real holes do). Each is the graph inputs
    concatenated along channels, 1xCxHxW."""
    import cv2

    from ppir.data.masks import generate_mask

    rng = np.random.default_rng(seed)
    multiple = int(spec["pad_multiple"] or 1)
    shapes = []
    for h, w in sizes or CHECK_SIZES:
        h, w = -(-h // multiple) * multiple, -(-w // multiple) * multiple
        if shapes and h == w:  # a large multiple rounds both sizes alike: keep one non-square check
            w += multiple
        shapes.append((h, w))
    inputs = []
    for h, w in shapes:
        coarse = rng.random((max(h // 8, 2), max(w // 8, 2), 3)).astype(np.float32)
        img = cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC).clip(0.0, 1.0)
        mask = generate_mask((h, w), rng, (0.2, 0.5)) if specs.needs_mask(spec) else None
        inputs.append(host.graph_inputs(host.host_sample(img, mask), spec)[None])
    return inputs


# ---- one graph -------------------------------------------------------------------------------

def _dygraph(layer, inputs, feeds):
    import paddle

    with paddle.no_grad():
        out = layer(*[paddle.to_tensor(feeds[name]) for name, _, _ in inputs])
    return (out[0] if isinstance(out, (tuple, list)) else out).numpy().astype(np.float64)


def trace(layer, inputs, prefix):
    """Save `layer` as a static graph at `prefix` (.json + .pdiparams; dynamic dims as None)."""
    import paddle
    from paddle.static import InputSpec

    spec = [InputSpec(shape, dtype, name) for name, shape, dtype in inputs]
    paddle.jit.save(paddle.jit.to_static(layer, input_spec=spec, full_graph=True), prefix)


def save_onnx(model_file, params_file, path, opset=ONNX_OPSET):
    """paddle2onnx the static model into `path`; returns the opset actually written."""
    import onnx
    import paddle2onnx

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
        raise ExportError(f"paddle2onnx wrote no {os.path.basename(path)} for {model_file} (see its log above)")
    model = onnx.load(path, load_external_data=False)
    return max(op.version for op in model.opset_import if op.domain in ("", "ai.onnx"))


def max_diff(predictor, feeds_list, references, what):
    """Max abs diff of a predictor against the dygraph references (NaN counts as infinite)."""
    worst = 0.0
    for feeds, ref in zip(feeds_list, references):
        try:
            out = predictor.run(feeds)
        except Exception as exc:  # e.g. a node onnxruntime cannot run
            raise ExportError(f"{what} cannot run the graph ({short_reason(exc)})") from None
        if out.shape != ref.shape:
            raise ExportError(f"{what}: output shape {list(out.shape)} != dygraph {list(ref.shape)}")
        diff = float(np.abs(out.astype(np.float64) - ref).max())
        worst = max(worst, diff if np.isfinite(diff) else float("inf"))
    return worst


def time_paths(predictors, feeds, runs=TUNE_RUNS, warmup=1):
    """Median milliseconds of each predictor on `feeds` after `warmup` untimed runs (oneDNN builds
    its primitives on the first run of a shape)."""
    timings = {}
    for name, predictor in predictors.items():
        for _ in range(warmup):
            predictor.run(feeds)
        samples = []
        for _ in range(runs):
            start = time.perf_counter()
            predictor.run(feeds)
            samples.append((time.perf_counter() - start) * 1000.0)
        timings[name] = round(float(np.median(samples)), 2)
    return timings


def tune_paths(predictors, tune_feeds, log=say):
    """Time the verified CPU paths on each (size, feeds), smallest first. A path more than
    CANDIDATE_FACTOR slower than the fastest at one size is not timed at the next, which keeps a
    full-width export's tuning to a few large runs. Returns one entry per size."""
    candidates, entries = dict(predictors), []
    for i, (size, feeds) in enumerate(tune_feeds):
        log(f"  timing {size[1]}x{size[0]} on {', '.join(candidates)} ...")
        # Small inputs are cheap: two warm-ups and three runs steady the choice between close paths.
        timings = time_paths(candidates, feeds, *((TUNE_RUNS, 2) if i == 0 else (LARGE_SIZE_RUNS, 1)))
        best = min(timings.values())
        fastest = min(timings, key=timings.get)
        log(f"  {size[1]}x{size[0]}: " + ", ".join(f"{k} {v:.1f} ms" for k, v in timings.items())
            + f"; fastest {fastest}")
        entries.append({"size": [int(v) for v in size], "median_ms": timings, "fastest": fastest})
        candidates = {k: v for k, v in candidates.items() if timings[k] <= CANDIDATE_FACTOR * best}
    return entries


def build_graph(name, graph, stage_dir, atol, onnx, opset, tune, log=say):
    """Trace, check and time one graph into `stage_dir/graph.subdir`; returns its record (files
    relative to the export folder, checks, failed paths, timings, default paths)."""
    atol = next(a for a in (atol, graph.atol, DEFAULT_ATOL) if a is not None)
    graph.layer.eval()
    references = [_dygraph(graph.layer, graph.inputs, feeds) for feeds in graph.check_feeds]
    folder = os.path.join(stage_dir, graph.subdir)
    os.makedirs(folder, exist_ok=True)
    log(f"{name}: tracing the static graph")
    trace(graph.layer, graph.inputs, os.path.join(folder, "inference"))
    model_file, params_file = specs.paddle_model_files(folder)
    rel = lambda path: os.path.relpath(path, stage_dir).replace(os.sep, "/")  # noqa: E731
    record = {"model_file": rel(model_file), "params_file": rel(params_file), "onnx_file": None,
              "graph_inputs": [n for n, _, _ in graph.inputs]}
    io_inputs = [{"name": n, "channels": (s[1] if len(s) > 1 else None)} for n, s, _ in graph.inputs]
    shapes = " and ".join("x".join(str(d) for d in next(iter(f.values())).shape) for f in graph.check_feeds)
    opened = lambda backend, onednn: create_predictor(  # noqa: E731
        stage_dir, record, io_inputs, backend=backend, enable_mkldnn=onednn)
    checks, predictors, failed = {}, {}, {}
    for path in ("paddle_onednn_on", "paddle_onednn_off"):
        predictor = opened("paddle", PATHS[path]["enable_mkldnn"])
        what = f"Paddle Inference (CPU, oneDNN {path.rsplit('_', 1)[1]})"
        try:
            diff = max_diff(predictor, graph.check_feeds, references, what)
        except ExportError as exc:
            diff, reason = None, str(exc)
        else:
            reason = None if diff <= atol else f"{what} differs from dygraph: max abs diff {diff:.3g} > {atol:g}"
        log(f"  checking {what}: " + (f"max abs diff {diff:.3g} on {shapes} (atol {atol:g})"
                                        if diff is not None else reason))
        if reason:
            failed[path] = reason
            print(f"warning: {reason}; this path will be refused", file=sys.stderr, flush=True)
        else:
            checks[path], predictors[path] = diff, predictor
    if not predictors:
        raise ExportError(f"{next(iter(failed.values()))}; the export was not written")
    record["output_name"] = predictors[next(iter(predictors))].output_name
    opset_written = None
    if onnx and graph.onnx:
        log(f"{name}: converting to ONNX (paddle2onnx)")
        onnx_file = os.path.join(folder, specs.ONNX_FILE)
        opset_written = save_onnx(model_file, params_file, onnx_file, opset)
        record["onnx_file"] = rel(onnx_file)
        predictor = opened("onnxruntime", False)
        diff = max_diff(predictor, graph.check_feeds, references, "onnxruntime")
        log(f"  checking onnxruntime: max abs diff {diff:.3g} (atol {atol:g})")
        if not diff <= atol:
            raise ExportError(f"onnxruntime differs from dygraph: max abs diff {diff:.3g} > {atol:g}; "
                              f"export without --onnx")
        checks["onnxruntime"], predictors["onnxruntime"] = diff, predictor
    record["max_abs_diff"] = {k: float(f"{v:.3g}") for k, v in checks.items()}
    record["check_atol"] = atol
    record["onnx_opset"] = opset_written
    if failed:
        record["failed_paths"] = failed
    if tune and graph.tune_feeds:
        timings = tune_paths(predictors, graph.tune_feeds, log)
        record["default_path"] = dict(PATHS[timings[0]["fastest"]])
        if len(timings) > 1:
            record["default_path_by_size"] = [{"size": list(t["size"]), **PATHS[t["fastest"]]} for t in timings]
        record["cpu_paths"] = {"threads": default_cpu_threads(), "timings": timings}
    elif failed:  # untimed: the first path that agrees with dygraph
        record["default_path"] = dict(PATHS[next(iter(predictors))])
    return record


# ---- the folder ------------------------------------------------------------------------------

def check_save_dir(save_dir, reads):
    """Before any work: `save_dir` must be a folder (or not exist yet), and no export file may
    replace a file the export reads (`reads`: (path, label) pairs; symlinks and `..` included)."""
    writes = [(save_dir, "--save_dir")] + [(os.path.join(save_dir, n), "export file") for n in specs.EXPORT_FILES]
    removes = [(os.path.join(save_dir, n), "--save_dir") for n in specs.CACHE_DIRS]  # stale TensorRT engines
    refuse_overlap(writes, reads, removes)
    if os.path.exists(save_dir) and not os.path.isdir(save_dir):
        raise ExportError(f"--save_dir {save_dir} is a file, not a folder")


def _previous_entries(save_dir):
    """Entries a previous export left in save_dir (it may also hold checkpoints and logs)."""
    entries = set(specs.EXPORT_FILES) | set(specs.CACHE_DIRS)
    try:
        with open(os.path.join(save_dir, specs.SPEC_FILE), encoding="utf-8") as f:
            old = yaml.safe_load(f) or {}
        for stage in (old.get("stages") or {}).values():
            entries |= {str(stage.get(k)).split("/")[0] for k in ("model_file", "params_file", "palette_file")
                        if isinstance(stage, dict) and stage.get(k)}
    except (OSError, yaml.YAMLError, AttributeError):
        pass
    return entries


def commit(stage_dir, save_dir):
    """Move every entry of stage_dir into save_dir, removing what a previous export left there;
    inference.yml is removed first and written last."""
    spec_path = os.path.join(save_dir, specs.SPEC_FILE)
    stale = _previous_entries(save_dir)
    if os.path.exists(spec_path):
        os.remove(spec_path)
    for name in sorted(stale | set(os.listdir(stage_dir))):
        if name == specs.SPEC_FILE or name.startswith(".export-"):
            continue
        dst = os.path.join(save_dir, name)
        if os.path.isdir(dst) and not os.path.islink(dst):
            shutil.rmtree(dst)
        elif os.path.lexists(dst):
            os.remove(dst)
        if os.path.lexists(os.path.join(stage_dir, name)):
            os.replace(os.path.join(stage_dir, name), dst)
    os.replace(os.path.join(stage_dir, specs.SPEC_FILE), spec_path)


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


def _single_graph_spec(spec, record):
    """A single-graph export keeps its record at the top level (checks under `export`)."""
    spec.update({k: record[k] for k in ("model_file", "params_file", "onnx_file", "output_name")})
    for key in ("default_path", "default_path_by_size"):
        if key in record:
            spec[key] = record[key]
    export = spec.setdefault("export", {})
    export.update(onnx_opset=record["onnx_opset"], check_atol=record["check_atol"],
                  max_abs_diff=record["max_abs_diff"])
    if "cpu_paths" in record:
        export["cpu_paths"] = record["cpu_paths"]
    if record.get("failed_paths"):
        export["failed_paths"] = record["failed_paths"]
    return spec


def export_model(model, save_dir, cfg=None, atol=None, onnx=False, opset=ONNX_OPSET, tune=True,
                 tune_sizes=None, log=say):
    """Export every graph of `model` (a ppir task model with its weights loaded) into `save_dir`;
    returns the inference.yml written. `cfg` (the resolved training config) adds the network,
    the suggested tile, the metrics and where the weights came from."""
    import paddle

    model.set_train(False)
    graphs = model.export_graphs()
    io_spec = None
    for graph in graphs.values():
        if graph.check_feeds is None or graph.tune_feeds is None:
            io_spec = io_spec or model.io_spec()
        if graph.check_feeds is None:
            graph.check_feeds = [specs.split_inputs(x, io_spec["inputs"]) for x in image_check_inputs(io_spec)]
        if graph.tune_feeds is None:
            xs = [image_check_inputs(io_spec, sizes=(size,))[0] for size in tune_sizes or model.tune_sizes]
            graph.tune_feeds = [(list(x.shape[2:]), specs.split_inputs(x, io_spec["inputs"])) for x in xs]
    with staging_dir(save_dir) as stage_dir:
        spec = model.deploy_spec(stage_dir)
        records = {name: build_graph(name, graph, stage_dir, atol, onnx, opset, tune, log)
                   for name, graph in graphs.items()}
        if "stages" in spec:
            for name, record in records.items():
                spec["stages"].setdefault(name, {}).update(record)
        else:
            (record,) = records.values()
            spec = _single_graph_spec(spec, record)
        _describe_origin(spec, cfg)
        spec = {"model_name": spec.pop("model_name"), **spec}
        spec.setdefault("export", {})["paddle_version"] = paddle.__version__
        with open(os.path.join(stage_dir, specs.SPEC_FILE), "w", encoding="utf-8") as f:
            f.write("# Written by tools/export.py; ppir.load / deploy/infer.py read only this folder.\n")
            yaml.safe_dump(spec, f, sort_keys=False, default_flow_style=None)
        written = sorted(os.listdir(stage_dir))
        commit(stage_dir, save_dir)
    log(f"exported {spec['model_name']} to {save_dir}: {', '.join(written)}")
    return spec


def _describe_origin(spec, cfg):
    """The config-derived keys of inference.yml (network, tile, metrics, weights, config)."""
    if not cfg:
        spec.setdefault("model_name", "model")
        return
    model_cfg = cfg.get("Model") or {}
    network = model_cfg.get("network") or next(iter((model_cfg.get("networks") or {"": {"name": "model"}}).values()))
    spec.setdefault("model_name", network["name"])
    if "stages" not in spec:
        spec.setdefault("network", {k: v for k, v in network.items() if k != "name"})
    export_cfg = cfg.get("Export") or {}
    spec.setdefault("tile", export_cfg.get("tile"))
    spec.setdefault("tile_overlap", export_cfg.get("tile_overlap", 32))
    spec.setdefault("metrics", (cfg.get("Eval") or {}).get("metrics") or [{"name": "PSNR"}, {"name": "SSIM"}])
    export = spec.setdefault("export", {})
    export["config"] = cfg.get("_config_path")
    export["weights"] = (cfg.get("Global") or {}).get("pretrained_model")
