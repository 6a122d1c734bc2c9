"""Tests for tools/sidd_make_patches.py and tools/sidd_extract_val_blocks.py on tiny synthetic
SIDD-shaped inputs (scene folders of PNG pairs; a .mat of uint8 blocks)."""
import importlib.util
import os
import sys

import cv2
import numpy as np
import pytest
import scipy.io

from ppir.errors import DataError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _load_tool(name):
    spec = importlib.util.spec_from_file_location(name, os.path.join(ROOT, "tools", f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # worker processes unpickle cut_pair by module name
    spec.loader.exec_module(module)
    return module


patches = _load_tool("sidd_make_patches")
blocks = _load_tool("sidd_extract_val_blocks")


def _make_scene(root, scene, prefix, pair, h, w, seed):
    rng = np.random.default_rng(seed)
    folder = os.path.join(root, scene)
    os.makedirs(folder, exist_ok=True)
    gt = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    noisy = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    cv2.imwrite(os.path.join(folder, f"{prefix}_GT_SRGB_{pair}.PNG"), gt)
    cv2.imwrite(os.path.join(folder, f"{prefix}_NOISY_SRGB_{pair}.PNG"), noisy)
    return noisy, gt


def test_patch_starts_follow_official_grid():
    """Corners step by patch-overlap below size-patch, then one patch flush with the border
    (no duplicate when the grid already ends there)."""
    assert patches.patch_starts(3000, 512, 384) == [0, 384, 768, 1152, 1536, 1920, 2304, 2488]
    assert patches.patch_starts(1280, 512, 384) == [0, 384, 768]
    assert patches.patch_starts(512, 512, 384) == [0]


def test_make_patches_cuts_pairs_with_matching_names(tmp_path):
    """Every pair is cut row-major into same-named input/groundtruth PNGs whose pixels are the
    exact source crops, serially and with worker processes."""
    src = tmp_path / "Data"
    noisy, gt = _make_scene(str(src), "0001_001_S6_00100_00060_3200_L", "0001", "010", 40, 52, 0)
    _make_scene(str(src), "0001_001_S6_00100_00060_3200_L", "0001", "011", 40, 52, 1)
    _make_scene(str(src), "0002_001_S6_00100_00020_3200_N", "0002", "010", 24, 24, 2)
    for workers in (1, 2):
        dst = tmp_path / f"out{workers}"
        assert patches.main(["--src", str(src), "--dst", str(dst), "--patch", "24",
                             "--overlap", "8", "--workers", str(workers)]) == 0
        inputs = sorted(os.listdir(dst / "input"))
        assert inputs == sorted(os.listdir(dst / "groundtruth"))
        # 40x52 with patch 24 / stride 16: rows [0, 16], cols [0, 16, 28] -> 6 per pair.
        assert len(inputs) == 6 + 6 + 1
        name = "0001_001_S6_00100_00060_3200_L_010_3.png"  # row 0, col 28
        np.testing.assert_array_equal(cv2.imread(str(dst / "input" / name)), noisy[0:24, 28:52])
        np.testing.assert_array_equal(cv2.imread(str(dst / "groundtruth" / name)), gt[0:24, 28:52])
        assert "0002_001_S6_00100_00020_3200_N_010_1.png" in inputs


def test_make_patches_errors(tmp_path):
    """A missing source folder, a NOISY image without its GT, an image smaller than the patch and
    an overlap >= patch are refused with a clear error."""
    from ppir.errors import ConfigError

    with pytest.raises(DataError, match="not found"):
        patches.make_patches(str(tmp_path / "missing"), str(tmp_path / "o"))
    src = tmp_path / "Data"
    _make_scene(str(src), "S1", "0001", "010", 16, 16, 0)
    with pytest.raises(DataError, match="smaller than --patch 24"):
        patches.make_patches(str(src), str(tmp_path / "o"), patch=24, overlap=8)
    with pytest.raises(ConfigError, match="overlap"):
        patches.make_patches(str(src), str(tmp_path / "o"), patch=8, overlap=8)
    os.remove(src / "S1" / "0001_GT_SRGB_010.PNG")
    with pytest.raises(DataError, match="0001_GT_SRGB_010.PNG not found"):
        patches.make_patches(str(src), str(tmp_path / "o"), patch=8, overlap=2)


def test_extract_val_blocks_writes_rgb_pngs(tmp_path):
    """Each [i, j] block of the .mat arrays becomes input/groundtruth `<i:04d>-<j:04d>.png`,
    stored so that reading back as RGB gives the .mat values exactly."""
    rng = np.random.default_rng(0)
    noisy = rng.integers(0, 256, (2, 3, 8, 8, 3), dtype=np.uint8)
    gt = rng.integers(0, 256, (2, 3, 8, 8, 3), dtype=np.uint8)
    scipy.io.savemat(tmp_path / "noisy.mat", {blocks.NOISY_KEY: noisy})
    scipy.io.savemat(tmp_path / "gt.mat", {blocks.GT_KEY: gt})
    dst = tmp_path / "val"
    assert blocks.main(["--noisy", str(tmp_path / "noisy.mat"), "--gt", str(tmp_path / "gt.mat"),
                        "--dst", str(dst)]) == 0
    names = sorted(os.listdir(dst / "input"))
    assert names == [f"{i:04d}-{j:04d}.png" for i in range(2) for j in range(3)]
    assert names == sorted(os.listdir(dst / "groundtruth"))
    back = cv2.cvtColor(cv2.imread(str(dst / "input" / "0001-0002.png")), cv2.COLOR_BGR2RGB)
    np.testing.assert_array_equal(back, noisy[1, 2])
    back = cv2.cvtColor(cv2.imread(str(dst / "groundtruth" / "0000-0001.png")), cv2.COLOR_BGR2RGB)
    np.testing.assert_array_equal(back, gt[0, 1])


def test_extract_val_blocks_errors(tmp_path):
    """A missing file, a wrong key, a wrong array layout and mismatched shapes are refused with
    an error naming the file and key."""
    good = np.zeros((1, 2, 4, 4, 3), np.uint8)
    scipy.io.savemat(tmp_path / "gt.mat", {blocks.GT_KEY: good})
    with pytest.raises(DataError, match="file not found"):
        blocks.extract(str(tmp_path / "none.mat"), str(tmp_path / "gt.mat"), str(tmp_path / "o"))
    scipy.io.savemat(tmp_path / "wrong_key.mat", {"other": good})
    with pytest.raises(DataError, match="key 'ValidationNoisyBlocksSrgb' not found.*other"):
        blocks.extract(str(tmp_path / "wrong_key.mat"), str(tmp_path / "gt.mat"),
                       str(tmp_path / "o"))
    scipy.io.savemat(tmp_path / "flat.mat", {blocks.NOISY_KEY: np.zeros((4, 4, 3), np.uint8)})
    with pytest.raises(DataError, match=r"must be uint8 \[images, blocks, H, W, 3\]"):
        blocks.extract(str(tmp_path / "flat.mat"), str(tmp_path / "gt.mat"), str(tmp_path / "o"))
    scipy.io.savemat(tmp_path / "small.mat", {blocks.NOISY_KEY: good[:, :1]})
    with pytest.raises(DataError, match="different shapes"):
        blocks.extract(str(tmp_path / "small.mat"), str(tmp_path / "gt.mat"), str(tmp_path / "o"))
