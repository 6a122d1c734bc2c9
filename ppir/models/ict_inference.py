"""The transformer's logits graph outside dygraph: export it, and run it with Paddle Inference.

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
"""
import os

import numpy as np
import paddle
import paddle.nn as nn

from ppir.errors import ExportError

__all__ = ["ICTLogits", "save_logits_graph", "PredictorLogits"]


class ICTLogits(nn.Layer):
    """tokens int64 [B, T], masks float32 [B, T] (1 = missing) -> logits [B, T, V]."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, tokens, masks):
        return self.net(tokens, None, masks)[0]


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
        self.predictor = inference.create_predictor(config)
        names = self.predictor.get_input_names()
        self._tokens = self.predictor.get_input_handle(names[0])
        self._masks = self.predictor.get_input_handle(names[1])
        self._out = self.predictor.get_output_handle(self.predictor.get_output_names()[0])

    def __call__(self, tokens, masks):
        self._tokens.copy_from_cpu(np.ascontiguousarray(tokens, np.int64))
        self._masks.copy_from_cpu(np.ascontiguousarray(masks, np.float32))
        self.predictor.run()
        return self._out.copy_to_cpu()
