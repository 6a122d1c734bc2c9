"""Tests for ppir/utils/ensemble.py: the x8 flip/rotation self-ensemble."""
import numpy as np
import pytest

from ppir.utils.ensemble import NUM_TRANSFORMS, ensemble_forward, inverse_transform, transform


def _image(h=6, w=10, seed=0):
    return np.random.default_rng(seed).random((2, 3, h, w), dtype=np.float32)


def test_transforms_are_distinct_and_inverted():
    """The 8 transforms are the 8 distinct dihedral maps and each inverse undoes its transform."""
    img = _image(5, 5)
    seen = set()
    for k in range(NUM_TRANSFORMS):
        t = transform(img, k)
        seen.add(t.tobytes())
        np.testing.assert_array_equal(inverse_transform(t, k), img)
    assert len(seen) == NUM_TRANSFORMS


def test_rotations_swap_height_and_width():
    """Odd rotations hand fn a W x H image (why callers must pad both sides to the multiple)."""
    img = _image(6, 10)
    assert transform(img, 1).shape == (2, 3, 10, 6)
    assert transform(img, 4).shape == (2, 3, 6, 10)


def test_ensemble_of_identity_is_identity():
    """Averaging the back-transformed outputs of the identity returns the input exactly."""
    img = _image()
    np.testing.assert_array_equal(ensemble_forward(lambda x: x, img), img)


def test_ensemble_of_equivariant_fn_equals_fn():
    """For a flip/rotation-equivariant fn (pointwise), the ensemble equals a single pass."""
    img = _image()
    fn = lambda x: x * x - 0.5  # noqa: E731
    np.testing.assert_allclose(ensemble_forward(fn, img), fn(img), rtol=0, atol=1e-7)


def test_ensemble_averages_a_non_equivariant_fn():
    """A position-dependent fn is averaged over orientations (known closed form)."""
    img = np.zeros((1, 1, 4, 4), dtype=np.float32)
    ramp = np.arange(4, dtype=np.float32)[None, None, None, :]
    got = ensemble_forward(lambda x: x + ramp[..., : x.shape[3]], img)
    np.testing.assert_allclose(got, np.full_like(img, 1.5), atol=1e-7)


def test_paddle_tensors_match_numpy():
    """The paddle path gives the same transforms and result as the numpy path."""
    paddle = pytest.importorskip("paddle")
    img = _image()
    for k in range(NUM_TRANSFORMS):
        np.testing.assert_array_equal(transform(paddle.to_tensor(img), k).numpy(), transform(img, k))
    out = ensemble_forward(lambda t: t * 3.0, paddle.to_tensor(img))
    assert isinstance(out, paddle.Tensor)
    np.testing.assert_allclose(out.numpy(), img * 3.0, rtol=1e-6)
