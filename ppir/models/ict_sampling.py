"""ICT's iterative token sampling (stage 1 of inference), in numpy around any logits function.

The official `sample_mask` (raywzy/ICT `Transformer/utils/util.py`) visits the positions in raster
order; at each still-missing position i it runs a forward of the transformer on the current
tokens and mask, divides the logits at i by the temperature, keeps the `top_k` largest (ties with
the k-th value included), draws one token per sample from the softmax, writes it and marks i as
known. One forward per missing position; the `n_samples` rows of the batch give the diversity.

Differences from the official loop, on purpose:
* each row follows its own mask. The official code tests `mask[0, i]` and then writes position i
  of every row, which is only right because `inference.py` stacks one mask `n_samples` times;
  with per-row masks it would overwrite known tokens of the other rows. With identical rows (the
  official use) both give the same procedure;
* the draws come from a seeded `numpy.random.Generator` (inverse CDF, one uniform per row and
  step) instead of `torch.multinomial` on the device, so the same seed gives the same tokens on
  every machine and backend (dygraph, Paddle Inference, ONNX Runtime); the distribution sampled at
  each step is the official one;
* the forward is asked for the logits at position i only (`logits_fn(tokens, masks, [i])`), which
  lets the transformer skip the last block's work at every other position
  (ICTTransformer.logits_at); the logits read are the same.
"""
import numpy as np

from ppir.errors import DataError

__all__ = ["top_k_logits", "sample_tokens", "paddle_logits_fn"]


def top_k_logits(logits, k):
    """Set every logit below the k-th largest of its row to -inf (the official `top_k_logits`:
    values equal to the k-th largest are kept). logits: (N, V)."""
    logits = np.asarray(logits, np.float64)
    if k is None or k >= logits.shape[-1]:
        return logits
    kth = -np.partition(-logits, k - 1, axis=-1)[:, k - 1:k]
    return np.where(logits < kth, -np.inf, logits)


def _draw(logits, uniforms):
    """One index per row from softmax(logits) by inverse CDF; -inf entries are never drawn."""
    probs = np.exp(logits - logits.max(-1, keepdims=True))
    cdf = np.cumsum(probs, -1)
    picks = [np.searchsorted(row, u * row[-1], side="right") for row, u in zip(cdf, uniforms)]
    return np.minimum(np.array(picks, np.int64), logits.shape[-1] - 1)


def _batch(tokens, masks, n_samples):
    tokens, masks = np.asarray(tokens), np.asarray(masks)
    if tokens.shape != masks.shape or tokens.ndim not in (1, 2):
        raise DataError(f"tokens {list(tokens.shape)} and masks {list(masks.shape)} must have the "
                        f"same shape, (T,) or (B, T)")
    if tokens.ndim == 1:
        tokens = np.repeat(tokens[None], n_samples, 0)
        masks = np.repeat(masks[None], n_samples, 0)
    masks = (masks > 0.5).astype(np.float32)
    # As inference.py: missing ids are zeroed (they are ignored by the model anyway).
    tokens = tokens.astype(np.int64) * (1 - masks.astype(np.int64))
    return tokens, masks


def sample_tokens(logits_fn, tokens, masks, n_samples=1, top_k=40, temperature=1.0, seed=0,
                  on_step=None):
    """Complete the missing tokens (masks == 1) by ICT's raster-order sampling.

    logits_fn(tokens int64 (B, T), masks float32 (B, T), positions int64 (P,)) -> (B, P, V), the
    logits at `positions` (a numpy array or anything `np.asarray` accepts), e.g.
    `paddle_logits_fn(net)` or an exported graph (ppir.inference.ict).
    tokens/masks: (T,) for one image, repeated `n_samples` times, or (B, T) with a mask per row.
    `top_k=40` and `temperature=1.0` are the settings of the official `run.py`.
    `seed` (int or numpy Generator) fixes every draw. Returns int64 (B, T); known tokens are
    returned unchanged. Each forward holds the rows missing at the sampled position only.
    `on_step(done, total)` is called after each sampled position (progress).
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    tokens, masks = _batch(tokens, masks, n_samples)
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    todo = np.flatnonzero(masks.any(axis=0))
    for done, i in enumerate(todo, 1):
        rows = np.flatnonzero(masks[:, i])
        # Only the rows sampled at i are run: the rows of a batch never interact.
        every = rows.size == len(tokens)
        logits = np.asarray(logits_fn(tokens if every else tokens[rows],
                                      masks if every else masks[rows], np.array([i], np.int64)))
        if logits.ndim != 3 or logits.shape[:2] != (rows.size, 1):
            raise DataError(f"logits_fn returned shape {list(logits.shape)}, expected "
                            f"[{rows.size}, 1, vocab] (the logits at position {i})")
        step = top_k_logits(logits[:, 0].astype(np.float64) / temperature, top_k)
        tokens[rows, i] = _draw(step, rng.random(rows.size))
        masks[rows, i] = 0.0
        if on_step is not None:
            on_step(done, len(todo))
    return tokens


def paddle_logits_fn(net):
    """Wrap an ICTTransformer (dygraph) as a logits_fn: eval mode, no gradients, numpy out; the
    logits at `positions` (`net.logits_at`), or everywhere (`net.forward`) when None."""
    import paddle

    net.eval()

    def logits_fn(tokens, masks, positions=None):
        tokens, masks = paddle.to_tensor(tokens), paddle.to_tensor(masks)
        with paddle.no_grad():
            if positions is None:
                return net(tokens, masks=masks)[0].numpy()
            positions = paddle.to_tensor(np.asarray(positions, np.int64))
            return net.logits_at(tokens, masks, positions).numpy()

    return logits_fn
