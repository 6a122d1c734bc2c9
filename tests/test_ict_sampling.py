"""ICT raster-order token sampling (ppir/models/ict_sampling.py)."""
import numpy as np
import paddle
import pytest

from ppir.models.archs.ict_arch import ICTTransformer
from ppir.models.ict_sampling import paddle_logits_fn, sample_tokens, top_k_logits

V = 512


class RecordingLogits:
    """Fake transformer: fixed logits per (position, token); records the masks and the positions
    asked for of every call."""

    def __init__(self, logits):
        self.logits, self.calls, self.positions = logits, [], []

    def __call__(self, tokens, masks, positions):
        self.calls.append(masks.copy())
        self.positions.append(list(positions))
        rows = self.logits[positions]
        return np.broadcast_to(rows, (len(tokens),) + rows.shape)


def flat_logits(t):
    return RecordingLogits(np.zeros((t, V), np.float32))


def test_same_seed_same_tokens_and_seeds_differ():
    """The same seed gives identical completions; another seed gives different ones."""
    tokens, masks = np.arange(16) % V, (np.arange(16) % 3 == 0).astype(np.float32)
    a = sample_tokens(flat_logits(16), tokens, masks, n_samples=4, seed=3)
    b = sample_tokens(flat_logits(16), tokens, masks, n_samples=4, seed=3)
    c = sample_tokens(flat_logits(16), tokens, masks, n_samples=4, seed=4)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_samples_of_one_batch_are_diverse():
    """The n_samples rows of one call are different completions of the same image."""
    tokens, masks = np.zeros(16, np.int64), np.ones(16, np.float32)
    out = sample_tokens(flat_logits(16), tokens, masks, n_samples=3, seed=0)
    assert out.shape == (3, 16) and len({tuple(r) for r in out}) == 3


def test_raster_order_one_forward_per_missing_position():
    """Known tokens never change; only missing positions are sampled, in raster order, with one
    forward per position that is missing in some row, each seeing the previous draws as known and
    asked for the logits at that position only."""
    tokens = np.arange(10) + 100
    masks = np.array([0, 1, 0, 0, 1, 1, 0, 0, 0, 1], np.float32)
    fake = flat_logits(10)
    out = sample_tokens(fake, tokens, masks, n_samples=2, seed=1)
    known = masks == 0
    assert (out[:, known] == tokens[known]).all()
    assert len(fake.calls) == int(masks.sum())
    missing = np.flatnonzero(masks)
    assert fake.positions == [[i] for i in missing]
    for step, call in enumerate(fake.calls):
        expected = masks.copy()
        expected[missing[:step]] = 0
        assert (call == expected).all()


def test_each_row_follows_its_own_mask():
    """With per-row masks (unlike the official mask[0, i]), a position known in one row is kept
    there while it is sampled in the other row, and each forward holds only the row sampled."""
    tokens = np.array([[7, 8, 9, 10], [7, 8, 9, 10]])
    masks = np.array([[0, 0, 1, 0], [0, 1, 0, 0]], np.float32)
    logits = np.full((4, V), -10.0, np.float32)
    logits[:, 3] = 10.0  # token 3 dominates at every position
    fake = RecordingLogits(logits)
    out = sample_tokens(fake, tokens, masks, top_k=1, seed=0)
    np.testing.assert_array_equal(out, [[7, 8, 3, 10], [7, 3, 9, 10]])
    np.testing.assert_array_equal(fake.calls[0], masks[1:])  # position 1: the second row only
    np.testing.assert_array_equal(fake.calls[1], [[0, 0, 1, 0]])


def test_top_k_is_respected():
    """Only the k highest logits can be drawn (logit -j for token j: tokens < k), and top_k=1 is
    greedy; the official rule keeps values tied with the k-th."""
    logits = np.tile(-np.arange(V, dtype=np.float32), (8, 1))
    tokens, masks = np.zeros(8, np.int64), np.ones(8, np.float32)
    out = sample_tokens(RecordingLogits(logits * 0.01), tokens, masks, n_samples=64,
                        top_k=40, seed=0)
    assert out.max() < 40 and len(np.unique(out)) > 20
    greedy = sample_tokens(RecordingLogits(logits), tokens, masks, n_samples=2, top_k=1, seed=0)
    assert (greedy == 0).all()
    tied = top_k_logits(np.array([[3.0, 1.0, 3.0, 2.0]]), 1)
    np.testing.assert_array_equal(np.isfinite(tied), [[True, False, True, False]])


def test_draws_follow_the_softmax():
    """Over many rows the frequencies match softmax(logits / temperature) (here 1/6, 2/6, 3/6 at
    temperature 1, and (1, 4, 9)/14 at temperature 0.5)."""
    logits = np.full((1, V), -np.inf, np.float32)
    logits[0, :3] = np.log([1.0, 2.0, 3.0])
    tokens, masks = np.zeros(1, np.int64), np.ones(1, np.float32)
    for temp, expected in ((1.0, np.array([1, 2, 3]) / 6), (0.5, np.array([1, 4, 9]) / 14)):
        out = sample_tokens(RecordingLogits(logits), tokens, masks, n_samples=6000,
                            temperature=temp, top_k=None, seed=2)
        freq = np.bincount(out[:, 0], minlength=3) / len(out)
        assert len(freq) == 3
        np.testing.assert_allclose(freq, expected, atol=0.02)


def test_with_ict_transformer():
    """Sampling with a small ICTTransformer through `paddle_logits_fn`: valid ids, known tokens
    kept, reproducible for a seed."""
    paddle.seed(0)
    net = ICTTransformer(block_size=16, n_layer=1, n_embd=32, n_head=2)
    tokens = np.arange(16) * 7 % V
    masks = (np.arange(16) >= 10).astype(np.float32)
    fn = paddle_logits_fn(net)
    a = sample_tokens(fn, tokens, masks, n_samples=2, seed=5)
    b = sample_tokens(fn, tokens, masks, n_samples=2, seed=5)
    np.testing.assert_array_equal(a, b)
    assert (a[:, :10] == tokens[:10]).all() and a.min() >= 0 and a.max() < V


def test_row_logits_sample_the_tokens_of_the_full_forward():
    """Sampling with the logits at the sampled position only (`logits_at`, what
    `paddle_logits_fn` runs) draws exactly the tokens of the loop that runs the full forward and
    reads that row, for a seed (3 layers, per-row masks, 2 samples)."""
    from ppir.models.ict_sampling import paddle_logits_fn

    paddle.seed(1)
    net = ICTTransformer(block_size=36, n_layer=3, n_embd=32, n_head=2)
    rows_fn = paddle_logits_fn(net)

    def full_fn(tokens, masks, positions):
        return rows_fn(tokens, masks)[:, positions]

    rng = np.random.default_rng(0)
    tokens = rng.integers(0, V, (2, 36))
    masks = (rng.random((2, 36)) < 0.5).astype(np.float32)
    ours = sample_tokens(rows_fn, tokens, masks, seed=9)
    np.testing.assert_array_equal(ours, sample_tokens(full_fn, tokens, masks, seed=9))
    assert (ours[masks == 0] == tokens[masks == 0]).all()


def test_bad_arguments():
    """Mismatched shapes, a logits function of the wrong shape and a non-positive temperature are
    refused."""
    from ppir.errors import DataError

    with pytest.raises(DataError, match="same shape"):
        sample_tokens(flat_logits(4), np.zeros(4), np.zeros(5))
    with pytest.raises(DataError, match="logits_fn returned"):
        sample_tokens(lambda tokens, masks, positions: np.zeros((1, 4, V)), np.zeros(4), np.ones(4))
    with pytest.raises(ValueError, match="temperature"):
        sample_tokens(flat_logits(4), np.zeros(4), np.ones(4), temperature=0)
