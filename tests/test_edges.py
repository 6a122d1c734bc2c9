"""Tests for ppir/data/edges.py: CTSDG's Canny edge and gray inputs.

`ctsdg_edges.npz` was made in scratch with the official `utils/canny.py image_to_edge` of
xiefan-guo/ctsdg (torchvision 0.29.1, scikit-image 0.26) applied, as the official dataset does,
to the ToTensor + Normalize([-1, 1]) tensor of a 64x64 crop of skimage's astronaut photo
(`image_u8`): the edge map (bit-packed), the gray image, and `ramp_wrapped`, the bytes the
official ToPILImage makes of the intensities 0..255.
"""
import os

import numpy as np
import pytest
from skimage.color import rgb2gray
from skimage.feature import canny

from ppir.data.edges import canny_and_gray, official_uint8
from ppir.errors import DataError

FIXTURE = os.path.join(os.path.dirname(__file__), "fixtures", "ctsdg_edges.npz")


@pytest.fixture(scope="module")
def official():
    return dict(np.load(FIXTURE))


def test_wrapped_bytes_match_official_to_pil_image(official):
    """All 256 intensities fold exactly as the official ToPILImage on the [-1, 1] tensor does
    (e.g. 0, 64, 127, 128, 191 -> 1, 130, 0, 1, 127)."""
    got = official_uint8(np.arange(256, dtype=np.uint8))
    np.testing.assert_array_equal(got, official["ramp_wrapped"])
    assert list(got[[0, 64, 127, 128, 191]]) == [1, 130, 0, 1, 127]
    # float32 uint8/255 input (what ToTensor gives) folds the same way
    np.testing.assert_array_equal(
        official_uint8(np.arange(256, dtype=np.float32) / np.float32(255)), got)


def test_canny_and_gray_bit_exact_with_official(official):
    """Default (official_wrap=True) edge and gray equal the official pipeline's bit for bit,
    from uint8 and from float32 uint8/255 input alike."""
    image = official["image_u8"]
    want_edge = np.unpackbits(official["edge_bits"])[:64 * 64].reshape(64, 64).astype(np.float32)
    for inp in (image, image.astype(np.float32) / np.float32(255)):
        edge, gray = canny_and_gray(inp, sigma=2.0)
        assert edge.dtype == np.float32 and gray.dtype == np.float32
        np.testing.assert_array_equal(edge, want_edge)
        np.testing.assert_array_equal(gray, official["gray"])
    assert int(want_edge.sum()) == int(official["edge_sum"])


def test_unwrapped_option_uses_the_image_itself(official):
    """official_wrap=False gives Canny and gray of the image's own bytes, which differ from the
    official folded signal."""
    image = official["image_u8"]
    gray_plain = rgb2gray(image)
    for inp in (image, image.astype(np.float32) / 255):
        edge, gray = canny_and_gray(inp, sigma=2.0, official_wrap=False)
        np.testing.assert_array_equal(gray, gray_plain.astype(np.float32))
        np.testing.assert_array_equal(edge, canny(gray_plain, sigma=2.0).astype(np.float32))
    assert not np.array_equal(gray, official["gray"])


def test_rejects_non_rgb():
    """A gray or RGBA array raises DataError naming the shape."""
    with pytest.raises(DataError, match=r"\(8, 8\)"):
        canny_and_gray(np.zeros((8, 8), np.uint8))
    with pytest.raises(DataError, match=r"\(8, 8, 4\)"):
        canny_and_gray(np.zeros((8, 8, 4), np.uint8))


def _chw(image_u8):
    return np.ascontiguousarray(image_u8.transpose(2, 0, 1)).astype(np.float32) / np.float32(255)


def test_host_step_adds_official_edge_and_gray_of_the_chosen_source(official):
    """The registered `ctsdg_edges` host step adds `edge` = [edge, gray] (2xHxW) of `target` by
    default, bit-equal to the official pipeline; `source: input` uses the masked input instead
    (what deployment has), and `official_wrap: false` switches the folding off."""
    from ppir.data.host_steps import run_host_steps

    target = _chw(official["image_u8"])
    mask = np.zeros((1, 64, 64), np.float32)
    mask[:, 16:40, 20:44] = 1.0
    sample = {"target": target, "mask": mask, "input": target * (1 - mask)}
    out = run_host_steps(sample, [{"name": "ctsdg_edges"}])
    assert "edge" not in sample and out["edge"].shape == (2, 64, 64)
    want_edge = np.unpackbits(official["edge_bits"])[:64 * 64].reshape(64, 64).astype(np.float32)
    np.testing.assert_array_equal(out["edge"][0], want_edge)
    np.testing.assert_array_equal(out["edge"][1], official["gray"])

    deployed = run_host_steps(sample, [{"name": "ctsdg_edges", "source": "input"}])
    want = canny_and_gray(sample["input"].transpose(1, 2, 0))
    np.testing.assert_array_equal(deployed["edge"], np.stack(want))
    assert not np.array_equal(deployed["edge"], out["edge"])

    plain = run_host_steps(sample, [{"name": "ctsdg_edges", "official_wrap": False}])
    np.testing.assert_array_equal(plain["edge"][1], rgb2gray(official["image_u8"]).astype(np.float32))


def test_host_step_names_a_missing_source():
    """A sample without the source image is a DataError naming it (deploy has no `target`)."""
    from ppir.data.host_steps import run_host_steps

    with pytest.raises(DataError, match="no 'target'"):
        run_host_steps({"input": np.zeros((3, 8, 8), np.float32)}, [{"name": "ctsdg_edges"}])


def test_inpainting_dataset_runs_host_steps():
    """`host_steps` on an inpainting dataset adds the step's arrays to every sample, training
    (from the ground truth) and evaluation alike."""
    from ppir.data.inpainting_dataset import DemoInpaintingDataset

    steps = [{"name": "ctsdg_edges"}]
    train = DemoInpaintingDataset("train", host_steps=steps)
    sample = train[(0, None, 7)]
    np.testing.assert_array_equal(sample["edge"], np.stack(canny_and_gray(sample["target"].transpose(1, 2, 0))))
    test = DemoInpaintingDataset("test", host_steps=[{"name": "ctsdg_edges", "source": "input"}])
    sample = test[0]
    np.testing.assert_array_equal(sample["edge"], np.stack(canny_and_gray(sample["input"].transpose(1, 2, 0))))
