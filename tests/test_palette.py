"""ICT palette and token grid (ppir/data/palette.py) against the official tokenisation.

tests/fixtures/ict_tokens.npz was produced in scratch by the official steps of raywzy/ICT
`Transformer/inference.py` (PIL BILINEAR / NEAREST resizes, torch argmin over the palette,
`C[tokens].view(s, s, 3).numpy().astype(np.uint8)`) on two small images and masks: one
downsampled 70x53 -> 16x16, one upsampled 24x20 -> 48x48. The palette is a seeded (512, 3) array in
the official kmeans_centers.npy format with two colours duplicated at indices 509 and 510, so the
first-index tie-break is pinned too.
"""
import os
import subprocess
import sys

import numpy as np
import pytest

from ppir.data.palette import (image_to_tokens, kmeans_palette, load_palette, mask_to_tokens,
                               palette_to_file_format, quantize, tokens_to_image)
from ppir.errors import DataError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURE = os.path.join(ROOT, "tests", "fixtures", "ict_tokens.npz")


@pytest.fixture(scope="module")
def fx():
    return np.load(FIXTURE)


@pytest.fixture(scope="module")
def palette(fx, tmp_path_factory):
    path = tmp_path_factory.mktemp("palette") / "kmeans_centers.npy"
    np.save(path, fx["palette_file"])
    return load_palette(str(path))


def test_load_palette_is_official_rint(fx, palette):
    """The .npy file in [-1, 1] is used as rint(127.5 (C + 1)) in 0..255 float32, and
    `palette_to_file_format` maps those colours back to values that reload identically."""
    assert palette.dtype == np.float32 and palette.shape == (512, 3)
    np.testing.assert_array_equal(palette, np.rint(127.5 * (fx["palette_file"] + 1.0)))
    back = palette_to_file_format(palette)
    np.testing.assert_array_equal(np.rint(127.5 * (back + 1.0)), palette)


@pytest.mark.parametrize("tag", ["down", "up"])
def test_tokens_match_official(fx, palette, tag):
    """Image tokens, mask positions (1 = missing) and the tokens -> uint8 image are identical to
    the official code, ties going to the first palette index as torch's argmin does."""
    s = int(fx[f"{tag}_size"])
    tokens = image_to_tokens(fx[f"{tag}_image"], palette, s)
    np.testing.assert_array_equal(tokens, fx[f"{tag}_tokens"])
    np.testing.assert_array_equal(mask_to_tokens(fx[f"{tag}_mask"], s), fx[f"{tag}_masks"])
    np.testing.assert_array_equal(tokens_to_image(tokens, palette, s), fx[f"{tag}_back"])
    duplicated = {250: 509, 297: 510}
    for low, high in duplicated.items():
        assert np.array_equal(palette[low], palette[high])
        assert high not in tokens


def test_tie_break_pinned_by_fixture(fx, palette):
    """The fixture really exercises the tie: the downsampled image uses colour 250, whose copy sits
    at 509, and the upsampled one uses 297 (copy at 510)."""
    assert 250 in fx["down_tokens"] and 297 in fx["up_tokens"]


def test_float_images_are_read_as_uint8(fx, palette):
    """A float [0, 1] image (ppir.data.image_io) gives the same tokens as its uint8 source."""
    img = fx["down_image"]
    np.testing.assert_array_equal(image_to_tokens(img.astype(np.float32) / 255.0, palette, 16),
                                  fx["down_tokens"])


def test_bad_inputs_are_data_errors(tmp_path, palette):
    """Wrong palette shape or range, bad image arrays and out-of-range tokens are DataErrors."""
    bad = tmp_path / "bad.npy"
    np.save(bad, np.zeros((512, 4), np.float32))
    with pytest.raises(DataError, match=r"\(K, 3\)"):
        load_palette(str(bad))
    np.save(bad, np.full((8, 3), 2.0, np.float32))
    with pytest.raises(DataError, match=r"\[-1, 1\]"):
        load_palette(str(bad))
    with pytest.raises(DataError, match="not found"):
        load_palette(str(tmp_path / "missing.npy"))
    with pytest.raises(DataError, match="image"):
        image_to_tokens(np.zeros((4, 4, 2), np.uint8), palette, 2)
    with pytest.raises(DataError, match="token ids"):
        tokens_to_image(np.full(4, 512), palette, 2)
    with pytest.raises(DataError, match="4 tokens"):
        tokens_to_image(np.zeros(5, np.int64), palette, 2)


def test_kmeans_recovers_separated_colours_deterministically():
    """On pixels drawn around 4 well-separated colours, k-means with k=4 returns those colours
    (sorted), identically for the same seed; `quantize` then labels every pixel correctly."""
    rng = np.random.default_rng(0)
    true = np.array([[20, 30, 40], [200, 10, 10], [10, 220, 60], [240, 240, 240]], np.float64)
    labels = rng.integers(0, 4, 2000)
    pixels = np.clip(true[labels] + rng.normal(0, 3, (2000, 3)), 0, 255)
    a = kmeans_palette(pixels, k=4, seed=1, iters=10)
    b = kmeans_palette(pixels, k=4, seed=1, iters=10)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(a, true[np.lexsort(true.T[::-1])], atol=1.0)
    order = np.lexsort(true.T[::-1])
    np.testing.assert_array_equal(quantize(pixels, a), np.argsort(order)[labels])
    with pytest.raises(DataError, match="at least"):
        kmeans_palette(pixels[:3], k=4)


def test_palette_tool_writes_official_format(tmp_path):
    """tools/ict_palette.py builds a palette from an image folder and writes a (K, 3) float32
    [-1, 1] .npy that `load_palette` accepts; the same seed gives the same file."""
    import cv2

    rng = np.random.default_rng(3)
    folder = tmp_path / "images"
    folder.mkdir()
    for i in range(3):
        cv2.imwrite(str(folder / f"{i}.png"), rng.integers(0, 256, (40, 30, 3), dtype=np.uint8))
    outs = []
    for name in ("a.npy", "b.npy"):
        cmd = [sys.executable, os.path.join(ROOT, "tools", "ict_palette.py"), "--images",
               str(folder), "--out", str(tmp_path / name), "--k", "8", "--size", "16",
               "--seed", "5", "--iters", "3"]
        subprocess.run(cmd, check=True, capture_output=True, cwd=ROOT)
        outs.append(np.load(tmp_path / name))
    assert outs[0].shape == (8, 3) and outs[0].dtype == np.float32
    assert outs[0].min() >= -1 and outs[0].max() <= 1
    np.testing.assert_array_equal(outs[0], outs[1])
    assert load_palette(str(tmp_path / "a.npy")).shape == (8, 3)
