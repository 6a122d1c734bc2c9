"""Tests for ppir/utils/tiling.py: padding to a multiple and tiled inference."""
import numpy as np
import pytest

from ppir.errors import ConfigError, DataError
from ppir.utils.tiling import _starts, crop_back, pad_to_multiple, tiled_forward


def _image(n=2, c=3, h=37, w=53, seed=0):
    return np.random.default_rng(seed).random((n, c, h, w), dtype=np.float32)


def _box3(x):
    """A local fn (3x3 mean, zero padding): receptive-field radius 1."""
    p = np.pad(x, [(0, 0), (0, 0), (1, 1), (1, 1)])
    h, w = x.shape[-2:]
    return sum(p[:, :, i:i + h, j:j + w] for i in range(3) for j in range(3)) / np.float32(9)


def test_pad_to_multiple_reflects_and_crops_back():
    """Padding goes to the bottom/right by reflection, and crop_back restores the exact input."""
    img = _image(h=5, w=6)
    padded, hw = pad_to_multiple(img, 4)
    assert padded.shape == (2, 3, 8, 8) and hw == (5, 6)
    np.testing.assert_array_equal(padded[:, :, 5, :6], img[:, :, 3, :])  # reflect, not edge
    np.testing.assert_array_equal(crop_back(padded, hw), img)
    same, hw = pad_to_multiple(img, 1)
    assert same is img and hw == (5, 6)


def test_pad_to_multiple_paddle_matches_numpy():
    """The paddle path pads the same way as the numpy path (deploy and eval agree)."""
    paddle = pytest.importorskip("paddle")
    img = _image(h=9, w=14)
    got, _ = pad_to_multiple(paddle.to_tensor(img), 8)
    np.testing.assert_array_equal(got.numpy(), pad_to_multiple(img, 8)[0])


def test_starts_cover_axis_and_last_tile_is_flush():
    """Tile origins step by the stride and the last tile ends exactly at the border."""
    assert _starts(100, 32, 24) == [0, 24, 48, 68]
    assert _starts(32, 32, 24) == [0]
    assert _starts(20, 32, 24) == [0]


@pytest.mark.parametrize("blend", ["feather", "crop", "uniform"])
def test_tiled_pointwise_fn_is_exact(blend):
    """For a pointwise fn every blending mode reproduces the untiled output bit for bit."""
    img = _image()
    fn = lambda x: np.tanh(2 * x - 1)  # noqa: E731
    full = fn(pad_to_multiple(img, 4)[0])[:, :, :37, :53]
    got = tiled_forward(fn, img, tile=16, overlap=4, multiple=4, blend=blend)
    assert got.dtype == np.float32 and got.shape == img.shape
    np.testing.assert_array_equal(got, full)


@pytest.mark.parametrize("blend,overlap", [("crop", 2), ("crop", 5), ("feather", 4), ("feather", 7)])
def test_tiled_local_fn_is_exact_when_the_dead_band_covers_its_radius(blend, overlap):
    """crop (radius <= overlap//2) and feather (radius <= overlap//4) give exactly the untiled
    result for a local fn, including the irregular overlap of the last, flush tile."""
    img = _image()
    full = crop_back(_box3(pad_to_multiple(img, 4)[0]), (37, 53))
    got = tiled_forward(_box3, img, tile=16, overlap=overlap, multiple=4, blend=blend)
    np.testing.assert_array_equal(got, full)


def test_uniform_blend_lets_tile_borders_through():
    """KAIR-style averaging keeps tile-border pixels, so a local fn is only approximated."""
    img = _image()
    full = crop_back(_box3(pad_to_multiple(img, 4)[0]), (37, 53))
    got = tiled_forward(_box3, img, tile=16, overlap=4, multiple=4, blend="uniform")
    assert 0 < np.abs(got - full).max() < 0.5


def test_feather_weights_sum_to_one_across_a_regular_overlap():
    """Two neighbours' feather profiles cross-fade: their sum over the overlap is exactly 1."""
    from ppir.utils.tiling import _axis_weights

    for overlap in (1, 2, 3, 8, 13):
        left = _axis_weights(20, overlap, "feather", False, True)[-overlap:]
        right = _axis_weights(20, overlap, "feather", True, False)[:overlap]
        np.testing.assert_allclose(left + right, 1.0, rtol=0, atol=1e-15)


def test_tiled_calls_fn_on_tiles_only_and_supports_upscale():
    """fn sees tile-sized inputs only (memory bound), and an integer-upscaling fn is stitched."""
    img = _image(n=1, h=40, w=24)
    seen = []

    def up2(x):
        seen.append(tuple(x.shape))
        return np.repeat(np.repeat(x, 2, axis=2), 2, axis=3)

    got = tiled_forward(up2, img, tile=16, overlap=8, blend="uniform")
    assert set(seen) == {(1, 3, 16, 16)} and len(seen) == 4 * 2
    np.testing.assert_array_equal(got, up2(img))


def test_tiled_paddle_tensor_roundtrip():
    """A paddle tensor in gives a paddle tensor out, equal to the untiled result."""
    paddle = pytest.importorskip("paddle")
    img = paddle.to_tensor(_image(n=1))
    got = tiled_forward(lambda t: t * 2.0, img, tile=16, overlap=4, multiple=4)
    assert isinstance(got, paddle.Tensor)
    np.testing.assert_array_equal(got.numpy(), img.numpy() * 2.0)


def test_tiled_rejects_bad_settings():
    """Impossible settings raise one-line ppir errors instead of producing a wrong image."""
    img = _image(n=1)
    with pytest.raises(ConfigError, match="multiple of 8"):
        tiled_forward(lambda x: x, img, tile=20, overlap=4, multiple=8)
    with pytest.raises(ConfigError, match="overlap"):
        tiled_forward(lambda x: x, img, tile=16, overlap=16)
    with pytest.raises(DataError, match="NCHW"):
        tiled_forward(lambda x: x, img[0], tile=16, overlap=4)
    with pytest.raises(DataError, match="returned shape"):
        tiled_forward(lambda x: x[:, :, :-1], img, tile=16, overlap=4)
