"""ICT's exported logits graphs: the row graph that sampling runs (ICTRowLogits) equals the full
forward at the sampled rows on every CPU path (Paddle Inference with oneDNN on and off,
onnxruntime), sampling through it draws the eager sampler's tokens, and the export refuses a
graph that disagrees with dygraph."""
import os

import numpy as np
import paddle
import pytest

from ppir.inference.export import save_onnx, trace
from ppir.inference.ict import GraphLogits
from ppir.inference.predictor import create_predictor
from ppir.models.archs.ict_arch import ICTTransformer
from ppir.models.ict_model import ICTLogits, ICTRowLogits
from ppir.models.ict_sampling import paddle_logits_fn, sample_tokens

T = 36
PATHS = {"paddle_onednn_on": ("paddle", True), "paddle_onednn_off": ("paddle", False),
         "onnxruntime": ("onnxruntime", False)}


def graph(root, layer, name):
    trace(layer, layer.INPUTS, os.path.join(root, name, "inference"))
    record = {"model_file": f"{name}/inference.json", "params_file": f"{name}/inference.pdiparams",
              "onnx_file": f"{name}/inference.onnx"}
    save_onnx(*(os.path.join(root, record[k]) for k in ("model_file", "params_file", "onnx_file")))
    inputs = [{"name": n} for n, _, _ in layer.INPUTS]
    return {path: GraphLogits(create_predictor(root, record, inputs, backend=b, enable_mkldnn=o, cpu_threads=1))
            for path, (b, o) in PATHS.items()}


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("ict_logits"))
    paddle.seed(3)
    net = ICTTransformer(block_size=T, n_layer=3, n_embd=32, n_head=4, embd_pdrop=0.0,
                         resid_pdrop=0.0, attn_pdrop=0.0)
    net.eval()
    rng = np.random.default_rng(0)
    tokens = rng.integers(0, 512, (2, T)).astype(np.int64)
    masks = (rng.random((2, T)) < 0.5).astype(np.float32)
    return net, graph(root, ICTRowLogits(net), "rows"), graph(root, ICTLogits(net), "full"), tokens, masks


def test_row_graph_equals_the_full_forward_on_every_path(exported):
    """On each CPU path the row graph's logits at the asked positions (any order, any count)
    equal dygraph's full forward there within 1e-5 of the largest logit; a full-length graph
    (an export from before) is cut to the same rows."""
    net, rows, full, tokens, masks = exported
    reference = paddle_logits_fn(net)(tokens, masks)
    scale = np.abs(reference).max()
    for positions in (np.array([7]), np.array([T - 1, 0, 20])):
        for path in PATHS:
            for fn in (rows[path], full[path]):
                out = fn(tokens, masks, positions)
                assert out.shape == (2, len(positions), 512), path
                assert np.abs(out - reference[:, positions]).max() <= 1e-5 * scale, path
    assert rows["onnxruntime"].takes_positions and not full["onnxruntime"].takes_positions


def test_row_graph_samples_the_eager_tokens(exported):
    """Sampling through the exported row graph (oneDNN, onnxruntime) draws exactly the tokens of
    the eager loop that runs the full forward, for a seed; the same seed twice gives the same
    tokens and another seed others."""
    net, rows, _, tokens, masks = exported
    eager = paddle_logits_fn(net)

    def full_fn(t, m, positions):
        return eager(t, m)[:, positions]

    expected = sample_tokens(full_fn, tokens, masks, seed=4)
    for path in ("paddle_onednn_on", "onnxruntime"):
        fn = rows[path]
        np.testing.assert_array_equal(sample_tokens(fn, tokens, masks, seed=4), expected)
        np.testing.assert_array_equal(sample_tokens(fn, tokens, masks, seed=4), expected)
        assert not np.array_equal(sample_tokens(fn, tokens, masks, seed=5), expected)
