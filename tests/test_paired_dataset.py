"""Paired folders: layouts, pairing errors, crops and augmentation determinism."""
import os

import cv2
import numpy as np
import pytest

from ppir.data.image_io import read_image
from ppir.data.paired_dataset import PairedImageDataset
from ppir.data.transforms import Mixup, dihedral
from ppir.errors import DataError


def save(path, img):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    cv2.imwrite(str(path), img)


def make_pairs(root, names=("a.png", "b.png"), size=(40, 48), inp="input", tgt="groundtruth"):
    rng = np.random.default_rng(0)
    for n in names:
        save(os.path.join(root, inp, n), rng.integers(0, 256, size + (3,), dtype=np.uint8))
        save(os.path.join(root, tgt, n), rng.integers(0, 256, size + (3,), dtype=np.uint8))
    return str(root)


def test_flat_layout_pairs_by_name(tmp_path):
    ds = PairedImageDataset(make_pairs(tmp_path))
    assert len(ds) == 2
    sample = ds[1]
    assert sample["input"].shape == (3, 40, 48) and sample["input"].dtype == np.float32
    assert ds.name(1) == os.path.join("input", "b.png")


def test_scene_layout_is_read_directly(tmp_path):
    """GoPro as released: root/<scene>/{blur,sharp}/x.png."""
    for scene in ("GOPR0001", "GOPR0002"):
        make_pairs(tmp_path / scene, names=("0001.png",), inp="blur", tgt="sharp")
    ds = PairedImageDataset(str(tmp_path), input_dir="blur", target_dir="sharp")
    assert len(ds) == 2


def test_missing_partner_is_named(tmp_path):
    root = make_pairs(tmp_path)
    os.remove(os.path.join(root, "groundtruth", "b.png"))
    with pytest.raises(DataError, match=r"no target for input .*b\.png"):
        PairedImageDataset(root)


def test_missing_and_empty_folders_are_errors(tmp_path):
    with pytest.raises(DataError, match="not found"):
        PairedImageDataset(str(tmp_path / "nope"))
    os.makedirs(tmp_path / "empty" / "input")
    os.makedirs(tmp_path / "empty" / "groundtruth")
    with pytest.raises(DataError, match="no images"):
        PairedImageDataset(str(tmp_path / "empty"))


def test_size_mismatch_names_both_files(tmp_path):
    root = make_pairs(tmp_path)
    save(os.path.join(root, "groundtruth", "a.png"), np.zeros((20, 20, 3), np.uint8))
    ds = PairedImageDataset(root)
    with pytest.raises(DataError, match=r"size mismatch: .*input/a\.png is 48x40 but .*groundtruth/a\.png is 20x20"):
        ds[0]


def test_patch_larger_than_image_is_an_error(tmp_path):
    ds = PairedImageDataset(make_pairs(tmp_path))
    with pytest.raises(DataError, match="smaller than the training patch 64"):
        ds[(0, 64, 1)]


def test_crops_are_aligned_and_deterministic_by_seed(tmp_path):
    """Input and target get the same window and transform; the same seed gives the same sample."""
    root = tmp_path / "same"
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)
    save(os.path.join(root, "input", "a.png"), img)
    save(os.path.join(root, "groundtruth", "a.png"), img)
    ds = PairedImageDataset(str(root), geometric_augs=True)
    first, again = ds[(0, 16, 123)], ds[(0, 16, 123)]
    assert first["input"].shape == (3, 16, 16)
    np.testing.assert_array_equal(first["input"], first["target"])
    np.testing.assert_array_equal(first["input"], again["input"])
    assert any(not np.array_equal(first["input"], ds[(0, 16, s)]["input"]) for s in range(5))


def test_dihedral_gives_eight_distinct_variants():
    img = np.arange(12).reshape(3, 4)
    variants = {dihedral(img, m).tobytes() + bytes(dihedral(img, m).shape) for m in range(8)}
    assert len(variants) == 8


def test_mixup_with_identity_mixes_half_the_batches_consistently():
    """Mixup blends input and target with the same lambda and partner; identity leaves both alone."""
    mix = Mixup(beta=1.2, use_identity=True)
    x = np.random.default_rng(0).random((4, 3, 8, 8)).astype(np.float32)
    mixed = 0
    for seed in range(40):
        a, b = mix(x, x.copy(), np.random.default_rng(seed))
        np.testing.assert_array_equal(a, b)
        mixed += not np.array_equal(a, x)
    assert 10 < mixed < 30


def test_image_conversions_and_refusals(tmp_path):
    """Gray -> RGB, 16-bit scaled by 65535, opaque RGBA accepted, transparent RGBA and junk refused."""
    gray = tmp_path / "g.png"
    cv2.imwrite(str(gray), np.full((4, 5), 255, np.uint8))
    assert read_image(str(gray)).shape == (4, 5, 3)
    deep = tmp_path / "d.png"
    cv2.imwrite(str(deep), np.full((4, 5, 3), 65535, np.uint16))
    assert read_image(str(deep)).max() == 1.0
    rgba = np.full((4, 5, 4), 255, np.uint8)
    cv2.imwrite(str(tmp_path / "o.png"), rgba)
    assert read_image(str(tmp_path / "o.png")).shape == (4, 5, 3)
    rgba[0, 0, 3] = 0
    cv2.imwrite(str(tmp_path / "t.png"), rgba)
    with pytest.raises(DataError, match="transparent"):
        read_image(str(tmp_path / "t.png"))
    (tmp_path / "junk.png").write_bytes(b"not an image")
    with pytest.raises(DataError, match="cannot decode"):
        read_image(str(tmp_path / "junk.png"))
