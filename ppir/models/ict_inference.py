"""ICT outside dygraph: the exported graphs of both stages, Paddle Inference predictors, and the
host-side completion loop that tools/ict_inpaint.py and deploy/infer.py share.

Sampling (ppir.models.ict_sampling.sample_tokens) runs one transformer forward per missing token
(about 410 for a 40 % hole at 32 x 32), so the forward is the user's wait. The fast path:

* `ICTLogits` is the exported graph: int64 tokens [B, T] and float32 masks [B, T] (1 = missing)
  in, logits [B, T, V] out; the sampling loop stays in shared numpy code;
* `save_logits_graph` writes it with `paddle.jit.save` (dynamic batch and length);
* `PredictorLogits` runs it with Paddle Inference (CPU: oneDNN fp32 with the IR passes that fuse
  the projections, layer norms and attention; GPU: plain CUDA). Every step has the same shapes, so
  the predictor's prepared kernels and buffers are reused from one step to the next.

Every step changes one token and, through bidirectional attention, every activation of every
layer after the first, so no exact caching of activations between steps is possible. bf16 is
not offered: it changes the logits, hence the sampled distribution.

`complete` is the whole inference in numpy around two callables (dygraph or predictors):
tokenise, sample `n_samples` token grids, upsample each prior into the image. `export_ict` (behind
tools/export.py and tools/ict_export.py) writes one folder for deploy/infer.py: `transformer/` (logits graph), `upsampler/` (ICTUpsample graph),
`palette.npy` and an inference.yml (`task: ict`) naming both stages.
"""
import os

import numpy as np
import paddle
import paddle.nn as nn

from ppir.errors import ExportError

__all__ = ["ICTLogits", "save_logits_graph", "PredictorLogits", "complete", "UpsamplerPredictor",
           "export_ict", "ICT_TASK"]

ICT_TASK = "ict"


class ICTLogits(nn.Layer):
    """tokens int64 [B, T], masks float32 [B, T] (1 = missing) -> logits [B, T, V]."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, tokens, masks):
        return self.net(tokens, None, masks)[0]


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


def save_logits_graph(net, prefix):
    """Export `ICTLogits(net)` (eval mode) to `prefix` + .json/.pdmodel and .pdiparams; returns
    (model_file, params_file)."""
    from paddle.static import InputSpec

    layer = ICTLogits(net)
    layer.eval()
    spec = [InputSpec([None, None], "int64", "tokens"), InputSpec([None, None], "float32", "masks")]
    paddle.jit.save(paddle.jit.to_static(layer, input_spec=spec, full_graph=True), prefix)
    return model_files(prefix)


def model_files(prefix):
    for ext in (".json", ".pdmodel"):
        if os.path.isfile(prefix + ext):
            return prefix + ext, prefix + ".pdiparams"
    raise ExportError(f"no exported model at {prefix}(.json|.pdmodel)")


class PredictorLogits:
    """A Paddle Inference predictor of an exported logits graph, as a `sample_tokens` logits_fn.

    device 'cpu' (oneDNN unless `onednn=False`, `threads` math threads) or 'gpu'.
    """

    def __init__(self, prefix, device="cpu", threads=1, onednn=True):
        self.predictor = _create_predictor(prefix, device, threads, onednn)
        names = self.predictor.get_input_names()
        self._tokens = self.predictor.get_input_handle(names[0])
        self._masks = self.predictor.get_input_handle(names[1])
        self._out = self.predictor.get_output_handle(self.predictor.get_output_names()[0])

    def __call__(self, tokens, masks):
        self._tokens.copy_from_cpu(np.ascontiguousarray(tokens, np.int64))
        self._masks.copy_from_cpu(np.ascontiguousarray(masks, np.float32))
        self.predictor.run()
        return self._out.copy_to_cpu()


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


def export_ict(model, save_dir, atol=1e-4):
    """Export both stages of an ICTModel (ppir.models.ict_model) to `save_dir` for
    deploy/infer.py; each graph is checked against dygraph on seeded inputs (logits for the
    transformer, the composite for the upsampler) before inference.yml is written. The default
    sampling of the export is the model's `n_samples` and its transformer's `sample_seed`.
    Returns the spec."""
    import yaml

    from ppir.data.palette import palette_to_file_format
    from ppir.utils import inference_io as io

    transformer, upsampler = model.transformer, model.upsampler
    seed = transformer.sample_seed
    os.makedirs(save_dir, exist_ok=True)
    model.set_train(False)
    t_prefix = os.path.join(save_dir, "transformer", "inference")
    u_prefix = os.path.join(save_dir, "upsampler", "inference")
    save_logits_graph(transformer.net, t_prefix)
    save_upsampler_graph(upsampler.networks["generator"], u_prefix)
    rng = np.random.default_rng(seed)
    t = transformer.prior_size ** 2
    tokens = rng.integers(0, len(transformer.palette), (2, t)).astype(np.int64)
    masks = (rng.random((2, t)) < 0.4).astype(np.float32)
    checks = {"transformer_logits": _max_diff(PredictorLogits(t_prefix)(tokens, masks),
                                              _dygraph_logits(transformer.net, tokens, masks))}
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
    spec = {
        "task": ICT_TASK, "model_name": "ICT", "layout": "NCHW", "color_order": "RGB",
        "pad_multiple": UpsamplerPredictor.multiple, "pad_mode": "reflect",
        "inputs": model.io_spec()["inputs"],
        "host_steps": [],
        "output": {"channels": 3, "value_range": [0.0, 1.0], "composite": True},
        "stages": {
            "transformer": {"model_file": t_files[0], "params_file": t_files[1],
                            "palette_file": "palette.npy", "prior_size": transformer.prior_size,
                            "top_k": transformer.top_k, "temperature": transformer.temperature},
            "upsampler": {"model_file": u_files[0], "params_file": u_files[1]},
        },
        "sampling": {"n_samples": model.n_samples, "seed": int(seed)},
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
