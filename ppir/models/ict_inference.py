"""ICT outside dygraph: the exported graphs of both stages, their predictors (Paddle Inference,
onnxruntime), and the host-side completion loop that tools/ict_inpaint.py and deploy/infer.py
share.

Sampling (ppir.models.ict_sampling.sample_tokens) runs one transformer forward per missing token
(about 410 for a 40 % hole at 32 x 32) and reads the logits at that one position, so the
forward is the user's wait. The fast path:

* `ICTRowLogits` is the exported graph: int64 tokens [B, T], float32 masks [B, T] (1 = missing)
  and int64 positions [P] in, the logits at those positions [B, P, V] out
  (`ICTTransformer.logits_at`: the last block's query, attention, projection and MLP, the final
  LayerNorm and the head run at those positions only); `ICTLogits` is the full-length graph;
* `save_logits_graph` writes it with `paddle.jit.save` (dynamic batch, length and positions),
  `save_logits_onnx` converts it with paddle2onnx;
* `PredictorLogits` runs it with Paddle Inference (CPU: oneDNN or not; GPU: plain CUDA),
  `OnnxLogits` with onnxruntime (CPU, all graph optimisations). Every step has the same shapes,
  so prepared kernels and buffers are reused from one step to the next;
* `measure_logits_paths` checks every CPU path against dygraph and times one sampling step on
  each; the export records the fastest as the default of deploy/infer.py.

Every step changes one token and, through bidirectional attention, every activation of every
layer after the first, so no activation can be reused from step to step beyond the first
layer's projections of the unchanged positions (~0.5 % of a forward, not worth carrying state
through the graph). bf16 is not offered: it changes the logits, hence the sampled distribution.

`complete` is the whole inference in numpy around two callables (dygraph or predictors):
tokenise, sample `n_samples` token grids, upsample each prior into the image. `export_ict` (behind
tools/export.py and tools/ict_export.py) writes one folder for deploy/infer.py: `transformer/`
(row logits graph, optionally `inference.onnx`), `upsampler/` (ICTUpsample graph), `palette.npy`
and an inference.yml (`task: ict`) naming both stages and the transformer's measured
`default_path`.
"""
import os
import time

import numpy as np
import paddle
import paddle.nn as nn

from ppir.errors import ExportError

__all__ = ["ICTLogits", "ICTRowLogits", "save_logits_graph", "PredictorLogits", "OnnxLogits",
           "save_logits_onnx", "LOGITS_PATHS", "logits_predictor", "measure_logits_paths",
           "complete", "UpsamplerPredictor", "export_ict", "ICT_TASK"]

ICT_TASK = "ict"


class ICTLogits(nn.Layer):
    """tokens int64 [B, T], masks float32 [B, T] (1 = missing) -> logits [B, T, V]."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, tokens, masks):
        return self.net(tokens, None, masks)[0]


class ICTRowLogits(nn.Layer):
    """tokens int64 [B, T], masks float32 [B, T], positions int64 [P] -> logits [B, P, V]: the
    logits at `positions` only (ICTTransformer.logits_at), the rows sampling reads."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, tokens, masks, positions):
        return self.net.logits_at(tokens, masks, positions)


def _create_predictor(prefix, device, threads, onednn):
    from paddle import inference

    model_file, params_file = model_files(prefix)
    config = inference.Config(model_file, params_file)
    if device == "gpu":
        config.enable_use_gpu(256, 0)
    else:
        config.disable_gpu()
        config.set_cpu_math_library_num_threads(int(threads))
        if onednn:
            config.enable_mkldnn()
        else:
            config.disable_mkldnn()
    config.switch_ir_optim(True)
    # No enable_memory_optim(): it fails for PIR models on Paddle 3.x (see deploy/infer.py).
    config.disable_glog_info()
    return inference.create_predictor(config)


def save_logits_graph(net, prefix, rows=True):
    """Export the logits graph of `net` (eval mode) to `prefix` + .json/.pdmodel and .pdiparams
    (dynamic batch and length); returns (model_file, params_file). `rows=True`: `ICTRowLogits`
    (tokens, masks, positions), the sampling graph; False: `ICTLogits` (every position)."""
    from paddle.static import InputSpec

    layer = (ICTRowLogits if rows else ICTLogits)(net)
    layer.eval()
    spec = [InputSpec([None, None], "int64", "tokens"), InputSpec([None, None], "float32", "masks")]
    if rows:
        spec.append(InputSpec([None], "int64", "positions"))
    paddle.jit.save(paddle.jit.to_static(layer, input_spec=spec, full_graph=True), prefix)
    return model_files(prefix)


def model_files(prefix):
    for ext in (".json", ".pdmodel"):
        if os.path.isfile(prefix + ext):
            return prefix + ext, prefix + ".pdiparams"
    raise ExportError(f"no exported model at {prefix}(.json|.pdmodel)")


def _feeds(tokens, masks, positions, takes_positions):
    feeds = [np.ascontiguousarray(tokens, np.int64), np.ascontiguousarray(masks, np.float32)]
    if takes_positions:
        if positions is None:
            positions = np.arange(feeds[0].shape[1])
        feeds.append(np.ascontiguousarray(positions, np.int64).reshape(-1))
    return feeds


def _rows(logits, positions, takes_positions):
    """A full-length graph's logits cut to `positions` (an export from before the row graph)."""
    if takes_positions or positions is None:
        return logits
    return logits[:, np.asarray(positions, np.int64).reshape(-1)]


class PredictorLogits:
    """A Paddle Inference predictor of an exported logits graph, as a `sample_tokens` logits_fn:
    (tokens, masks, positions=None) -> logits at `positions` (all when None).

    The graph is the row graph (`save_logits_graph(rows=True)`) or a full-length one (the
    logits are then cut to `positions` here). device 'cpu' (oneDNN unless `onednn=False`,
    `threads` math threads) or 'gpu'.
    """

    def __init__(self, prefix, device="cpu", threads=1, onednn=True):
        self.predictor = _create_predictor(prefix, device, threads, onednn)
        names = self.predictor.get_input_names()
        self.takes_positions = "positions" in names
        order = ["tokens", "masks"] + (["positions"] if self.takes_positions else [])
        self._inputs = [self.predictor.get_input_handle(n) for n in
                        (order if set(order) == set(names) else names)]
        self._out = self.predictor.get_output_handle(self.predictor.get_output_names()[0])

    def __call__(self, tokens, masks, positions=None):
        for handle, x in zip(self._inputs, _feeds(tokens, masks, positions, self.takes_positions)):
            handle.reshape(list(x.shape))
            handle.copy_from_cpu(x)
        self.predictor.run()
        return _rows(self._out.copy_to_cpu(), positions, self.takes_positions)


class OnnxLogits:
    """The logits graph converted by paddle2onnx (`save_logits_onnx`) through onnxruntime on
    CPU (all graph optimisations), with the interface of `PredictorLogits`."""

    def __init__(self, onnx_file, threads=1):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = int(threads)
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3  # paddle2onnx leaves unused initializers; ORT warns per tensor
        self.session = ort.InferenceSession(onnx_file, options, providers=["CPUExecutionProvider"])
        self._names = [i.name for i in self.session.get_inputs()]
        self.takes_positions = "positions" in self._names

    def __call__(self, tokens, masks, positions=None):
        feeds = dict(zip(["tokens", "masks", "positions"],
                         _feeds(tokens, masks, positions, self.takes_positions)))
        return _rows(self.session.run(None, feeds)[0], positions, self.takes_positions)


def save_logits_onnx(prefix, onnx_file, opset=13):
    """paddle2onnx the exported logits graph at `prefix` into `onnx_file`."""
    import paddle2onnx

    model_file, params_file = model_files(prefix)
    try:
        # optimize_tool="None" as in tools/export.py (the default pip-installs packages at run
        # time); onnxruntime runs its own graph optimisations.
        paddle2onnx.export(model_file, params_file, onnx_file, opset_version=opset,
                           auto_upgrade_opset=True, enable_onnx_checker=True, optimize_tool="None")
    except Exception as exc:  # paddle2onnx raises assorted types
        raise ExportError(f"paddle2onnx failed on {model_file}: {type(exc).__name__}: {exc}") from None
    if not os.path.isfile(onnx_file):
        raise ExportError(f"paddle2onnx wrote no {onnx_file} for {model_file}")
    return onnx_file


def save_upsampler_graph(generator, prefix):
    """Export `ICTUpsample(generator)` (image, mask, prior -> composite; dynamic sizes)."""
    from paddle.static import InputSpec

    from ppir.models.ict_model import ICTUpsample

    layer = ICTUpsample(generator)
    layer.eval()
    spec = [InputSpec([None, 3, None, None], "float32", "image"),
            InputSpec([None, 1, None, None], "float32", "mask"),
            InputSpec([None, 3, None, None], "float32", "prior")]
    paddle.jit.save(paddle.jit.to_static(layer, input_spec=spec, full_graph=True), prefix)
    return model_files(prefix)


class UpsamplerPredictor:
    """The exported upsampler through Paddle Inference: (image CHW, mask 1xHxW, prior CHW) numpy
    -> composite CHW, reflect-padded to a multiple of 4 and cropped back."""

    multiple = 4

    def __init__(self, prefix, device="cpu", threads=1, onednn=True):
        self.predictor = _create_predictor(prefix, device, threads, onednn)
        self.handles = [self.predictor.get_input_handle(n) for n in self.predictor.get_input_names()]
        self._out = self.predictor.get_output_handle(self.predictor.get_output_names()[0])

    def __call__(self, image, mask, prior):
        h, w = image.shape[1:]
        pad = ((0, 0), (0, -h % self.multiple), (0, -w % self.multiple))
        for handle, x in zip(self.handles, (image, mask, prior)):
            handle.copy_from_cpu(np.ascontiguousarray(np.pad(x, pad, mode="reflect")[None], np.float32))
        self.predictor.run()
        return self._out.copy_to_cpu()[0, :, :h, :w]


def complete(image, mask, palette, prior_size, logits_fn, upsample_fn, n_samples=1, top_k=40,
             temperature=1.0, seed=0):
    """ICT inference on one image: [(prior s x s x 3 uint8, completion CHW [0, 1])] per sample.

    image CHW [0, 1] (hole pixels are ignored), mask 1xHxW (1 = hole); logits_fn as in
    `sample_tokens`; upsample_fn(image, mask, prior) -> composite CHW, all numpy.
    """
    from ppir.data.ict_data import prior_tokens, upsample_prior
    from ppir.data.palette import tokens_to_image
    from ppir.models.ict_sampling import sample_tokens

    image = np.asarray(image, np.float32)
    mask = np.asarray(mask, np.float32)
    tokens, missing = prior_tokens(image, mask, palette, prior_size)
    sampled = sample_tokens(logits_fn, tokens, missing, n_samples, top_k, temperature, seed)
    known = image * (1 - mask)
    return [(tokens_to_image(row, palette, prior_size),
             np.asarray(upsample_fn(known, mask, upsample_prior(row, palette, prior_size,
                                                                image.shape[1:]))))
            for row in sampled]


# The fp32 CPU paths of the exported logits graph: (backend, oneDNN), named as tools/export.py
# names the paths of the other models.
LOGITS_PATHS = {"paddle_onednn_on": ("paddle", True), "paddle_onednn_off": ("paddle", False),
                "onnxruntime": ("onnxruntime", False)}


def logits_predictor(path, prefix, onnx_file=None, threads=1):
    """The logits_fn of one of LOGITS_PATHS on CPU."""
    backend, onednn = LOGITS_PATHS[path]
    if backend == "onnxruntime":
        if not onnx_file or not os.path.isfile(onnx_file):
            raise ExportError(f"no ONNX logits graph {onnx_file}: export with --onnx")
        return OnnxLogits(onnx_file, threads)
    return PredictorLogits(prefix, "cpu", threads, onednn)


def measure_logits_paths(net, prefix, tokens, masks, onnx_file=None, threads=1, atol=1e-4,
                         runs=3, tune=True, batch=None):
    """Check each CPU path of the exported logits graph at `prefix` (and `onnx_file`) against
    dygraph's full forward at the missing positions of the first row, then time one sampling
    step (the first `batch` rows, default all; the first missing position) on the paths that
    agree: one warm-up, the median of `runs`. Returns ({path: max abs diff}, {path: why
    refused}, {path: median s})."""
    positions = np.flatnonzero(masks[0]) if masks[0].any() else np.zeros(1, np.int64)
    reference = _dygraph_logits(net, tokens, masks)[:, positions]
    checks, failed, fns = {}, {}, {}
    for path in LOGITS_PATHS:
        if path == "onnxruntime" and onnx_file is None:
            continue
        fn = logits_predictor(path, prefix, onnx_file, threads)
        checks[path] = _max_diff(fn(tokens, masks, positions), reference)
        if checks[path] <= atol:
            fns[path] = fn
        else:  # also NaN
            failed[path] = f"max abs logits diff {checks[path]:.3g} > {atol:g}"
    timings = {}
    for path, fn in fns.items() if tune else ():
        step = (tokens[:batch], masks[:batch], positions[:1])
        fn(*step)  # oneDNN builds its primitives, onnxruntime its buffers, on the first run
        seconds = []
        for _ in range(runs):
            tic = time.perf_counter()
            fn(*step)
            seconds.append(time.perf_counter() - tic)
        timings[path] = round(float(np.median(seconds)), 4)
    return checks, failed, timings


def _cpu_threads():
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


def export_ict(model, save_dir, atol=1e-4, onnx=False, tune=True, threads=None):
    """Export both stages of an ICTModel (ppir.models.ict_model) to `save_dir` for
    deploy/infer.py; each graph is checked against dygraph on seeded inputs (logits for the
    transformer on every CPU path, the composite for the upsampler) before inference.yml is
    written. The default sampling is the model's `n_samples` and its transformer's
    `sample_seed`. `onnx`: also the transformer's logits graph as ONNX. `tune`: time the
    transformer's CPU paths (`threads`, default all cores) and record the fastest as its
    `default_path`, the one deploy/infer.py runs. Returns the spec."""
    import yaml

    from ppir.data.palette import palette_to_file_format
    from ppir.utils import inference_io as io

    transformer, upsampler = model.transformer, model.upsampler
    seed, n_samples = transformer.sample_seed, model.n_samples
    os.makedirs(save_dir, exist_ok=True)
    model.set_train(False)
    t_prefix = os.path.join(save_dir, "transformer", "inference")
    u_prefix = os.path.join(save_dir, "upsampler", "inference")
    save_logits_graph(transformer.net, t_prefix)
    save_upsampler_graph(upsampler.networks["generator"], u_prefix)
    onnx_file = save_logits_onnx(t_prefix, t_prefix + ".onnx") if onnx else None
    rng = np.random.default_rng(seed)
    t = transformer.prior_size ** 2
    tokens = rng.integers(0, len(transformer.palette), (max(2, n_samples), t)).astype(np.int64)
    masks = (rng.random(tokens.shape) < 0.4).astype(np.float32)
    threads = int(threads or _cpu_threads())
    path_checks, failed, timings = measure_logits_paths(
        transformer.net, t_prefix, tokens, masks, onnx_file, threads, atol, tune=tune,
        batch=n_samples)
    if not set(path_checks) - set(failed):
        raise ExportError(f"ICT export: the transformer's logits differ from dygraph on every "
                          f"path: {failed}")
    checks = {f"transformer_logits_{k}": v for k, v in path_checks.items() if k not in failed}
    image = rng.random((3, 36, 44)).astype(np.float32)
    mask = np.zeros((1, 36, 44), np.float32)
    mask[:, 8:28, 10:30] = 1
    prior = rng.random((3, 36, 44)).astype(np.float32)
    with paddle.no_grad():
        ref = upsampler.predict({k: paddle.to_tensor(v[None]) for k, v in
                                 (("input", image), ("mask", mask), ("prior", prior))}).numpy()[0]
    checks["upsampler_output"] = _max_diff(UpsamplerPredictor(u_prefix)(image, mask, prior), ref)
    for what, diff in checks.items():
        if not diff <= atol:
            raise ExportError(f"ICT export: {what} differs from dygraph by {diff:.3g} > {atol:g}")
    np.save(os.path.join(save_dir, "palette.npy"), palette_to_file_format(transformer.palette))
    t_files = [os.path.relpath(f, save_dir) for f in model_files(t_prefix)]
    u_files = [os.path.relpath(f, save_dir) for f in model_files(u_prefix)]
    passing = [k for k in path_checks if k not in failed]
    fastest = min(timings, key=timings.get) if timings else passing[0]
    backend, onednn = LOGITS_PATHS[fastest]
    stage = {"model_file": t_files[0], "params_file": t_files[1],
             "onnx_file": os.path.relpath(onnx_file, save_dir) if onnx_file else None,
             "palette_file": "palette.npy", "prior_size": transformer.prior_size,
             "top_k": transformer.top_k, "temperature": transformer.temperature,
             "default_path": {"backend": backend, "enable_mkldnn": onednn}}
    if timings:
        stage["cpu_paths"] = {"threads": threads, "batch": int(n_samples), "tokens": t,
                              "median_s_per_forward": timings}
    if failed:
        stage["failed_paths"] = failed
    spec = {
        "task": ICT_TASK, "model_name": "ICT", "layout": "NCHW", "color_order": "RGB",
        "pad_multiple": UpsamplerPredictor.multiple, "pad_mode": "reflect",
        "inputs": model.io_spec()["inputs"],
        "host_steps": [],
        "output": {"channels": 3, "value_range": [0.0, 1.0], "composite": True},
        "stages": {
            "transformer": stage,
            "upsampler": {"model_file": u_files[0], "params_file": u_files[1]},
        },
        "sampling": {"n_samples": int(n_samples), "seed": int(seed)},
        "export_checks": {k: float(v) for k, v in checks.items()},
    }
    with open(os.path.join(save_dir, io.SPEC_FILE), "w") as f:
        yaml.safe_dump(spec, f, sort_keys=False)
    return spec


def _dygraph_logits(net, tokens, masks):
    with paddle.no_grad():
        return net(paddle.to_tensor(tokens), masks=paddle.to_tensor(masks))[0].numpy()


def _max_diff(a, b):
    return float(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64)).max())
