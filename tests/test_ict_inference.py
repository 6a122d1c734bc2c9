"""ICT's exported logits graphs (ppir/models/ict_inference.py): the row graph that sampling runs
equals the full forward at the sampled rows on every CPU path (Paddle Inference with oneDNN on
and off, onnxruntime), and sampling through it draws the eager sampler's tokens."""
import numpy as np
import paddle
import pytest

from ppir.models.archs.ict_arch import ICTTransformer
from ppir.models.ict_inference import (LOGITS_PATHS, PredictorLogits, logits_predictor,
                                       measure_logits_paths, save_logits_graph, save_logits_onnx)
from ppir.models.ict_sampling import paddle_logits_fn, sample_tokens

T = 36


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp("ict_logits")
    paddle.seed(3)
    net = ICTTransformer(block_size=T, n_layer=3, n_embd=32, n_head=4, embd_pdrop=0.0,
                         resid_pdrop=0.0, attn_pdrop=0.0)
    net.eval()
    rows, full = str(root / "rows" / "inference"), str(root / "full" / "inference")
    save_logits_graph(net, rows)
    save_logits_graph(net, full, rows=False)
    onnx_file = save_logits_onnx(rows, rows + ".onnx")
    rng = np.random.default_rng(0)
    tokens = rng.integers(0, 512, (2, T)).astype(np.int64)
    masks = (rng.random((2, T)) < 0.5).astype(np.float32)
    return net, rows, full, onnx_file, tokens, masks


def test_row_graph_equals_the_full_forward_on_every_path(exported):
    """On each CPU path the row graph's logits at the asked positions (any order, any count)
    equal dygraph's full forward there within 1e-5 of the largest logit; a full-length graph
    (an export from before) is cut to the same rows by PredictorLogits."""
    net, rows, full, onnx_file, tokens, masks = exported
    reference = paddle_logits_fn(net)(tokens, masks)
    scale = np.abs(reference).max()
    for positions in (np.array([7]), np.array([T - 1, 0, 20])):
        for path in LOGITS_PATHS:
            out = logits_predictor(path, rows, onnx_file)(tokens, masks, positions)
            assert out.shape == (2, len(positions), 512), path
            assert np.abs(out - reference[:, positions]).max() <= 1e-5 * scale, path
        old = PredictorLogits(full)
        assert not old.takes_positions
        np.testing.assert_allclose(old(tokens, masks, positions), reference[:, positions],
                                   rtol=0, atol=1e-5 * scale)


def test_row_graph_samples_the_eager_tokens(exported):
    """Sampling through the exported row graph (oneDNN, onnxruntime) draws exactly the tokens of
    the eager loop that runs the full forward, for a seed; the same seed twice gives the same
    tokens and another seed others."""
    net, rows, _, onnx_file, tokens, masks = exported
    eager = paddle_logits_fn(net)

    def full_fn(t, m, positions):
        return eager(t, m)[:, positions]

    expected = sample_tokens(full_fn, tokens, masks, seed=4)
    for path in ("paddle_onednn_on", "onnxruntime"):
        fn = logits_predictor(path, rows, onnx_file)
        np.testing.assert_array_equal(sample_tokens(fn, tokens, masks, seed=4), expected)
        np.testing.assert_array_equal(sample_tokens(fn, tokens, masks, seed=4), expected)
        assert not np.array_equal(sample_tokens(fn, tokens, masks, seed=5), expected)


def test_measure_refuses_a_disagreeing_path_and_times_the_others(exported):
    """Each path is checked before it is timed: with an impossible tolerance every path is
    refused with its difference and nothing is timed; otherwise every path gets a positive
    median time per forward."""
    net, rows, _, onnx_file, tokens, masks = exported
    checks, failed, timings = measure_logits_paths(net, rows, tokens, masks, onnx_file, runs=1)
    assert set(checks) == set(timings) == set(LOGITS_PATHS) and not failed
    assert all(v > 0 for v in timings.values())
    checks, failed, timings = measure_logits_paths(net, rows, tokens, masks, None, atol=-1.0)
    assert set(failed) == {"paddle_onednn_on", "paddle_onednn_off"} and not timings
    assert "max abs logits diff" in failed["paddle_onednn_on"]
