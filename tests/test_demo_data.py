"""Embedded demo datasets: layouts, determinism, idempotence and degradation strength."""
import json
import os
import shutil

import cv2
import numpy as np
import pytest

from ppir.data import demo
from ppir.errors import DataError
from ppir.metrics import calculate_psnr

# Paired kinds: (held-out split, degraded dir, clean dir, train count, held-out count)
LAYOUTS = {
    "denoise": ("val", "input", "groundtruth", 24, 8),
    "deblur": ("test", "blur", "sharp", 24, 6),
}
# Documented in docs/data.md: mean and per-image PSNR (dB) of the degraded held-out inputs.
PSNR_MEAN_RANGE = {"denoise": (25.0, 31.0), "deblur": (23.0, 29.0)}
PSNR_IMAGE_RANGE = {"denoise": (23.0, 34.0), "deblur": (21.0, 33.0)}


@pytest.fixture(scope="module")
def builds(tmp_path_factory):
    """Per kind: seed 0 built twice into two folders, and seed 1 once."""
    base = tmp_path_factory.mktemp("demo")
    out = {}
    for kind in demo.KINDS:
        out[kind] = {
            "a": demo.make_demo(kind, base / kind / "a", seed=0),
            "b": demo.make_demo(kind, str(base / kind / "b"), seed=0),
            "seed1": demo.make_demo(kind, base / kind / "seed1", seed=1),
        }
    return out


def _files(root):
    found = {}
    for dirpath, _, names in os.walk(root):
        for name in names:
            path = os.path.join(dirpath, name)
            found[os.path.relpath(path, root)] = path
    return found


def _read_rgb(path):
    return cv2.imread(path, cv2.IMREAD_UNCHANGED)[..., ::-1].astype(np.float64) / 255.0


@pytest.mark.parametrize("kind", sorted(LAYOUTS))
def test_layout_matches_the_real_dataset(builds, kind):
    """denoise = SIDD patch layout (train|val)/(input|groundtruth); deblur = GoPro flattened
    layout (train|test)/(blur|sharp); same names on both sides; 128x128 RGB uint8 PNGs."""
    root = builds[kind]["a"]
    heldout, degraded, clean, n_train, n_heldout = LAYOUTS[kind]
    assert sorted(os.listdir(root)) == sorted([".complete", "manifest.json", "train", heldout])
    for split, count in (("train", n_train), (heldout, n_heldout)):
        assert sorted(os.listdir(os.path.join(root, split))) == sorted([degraded, clean])
        names = sorted(os.listdir(os.path.join(root, split, degraded)))
        assert names == sorted(os.listdir(os.path.join(root, split, clean)))
        assert len(names) == count and all(n.endswith(".png") for n in names)
        for sub in (degraded, clean):
            img = cv2.imread(os.path.join(root, split, sub, names[0]), cv2.IMREAD_UNCHANGED)
            assert img.shape == (demo.PATCH, demo.PATCH, 3) and img.dtype == np.uint8


@pytest.mark.parametrize("kind", demo.KINDS)
def test_same_seed_gives_identical_bytes(builds, kind):
    """Two builds with the same seed into two folders are byte-identical, file by file."""
    first, second = _files(builds[kind]["a"]), _files(builds[kind]["b"])
    assert sorted(first) == sorted(second)
    for rel in first:
        with open(first[rel], "rb") as f1, open(second[rel], "rb") as f2:
            assert f1.read() == f2.read(), rel


@pytest.mark.parametrize("kind", sorted(LAYOUTS))
def test_different_seed_gives_different_pairs(builds, kind):
    """Another seed changes the degraded images (and the crops)."""
    heldout, degraded = LAYOUTS[kind][:2]
    a = _files(os.path.join(builds[kind]["a"], heldout, degraded))
    b = _files(os.path.join(builds[kind]["seed1"], heldout, degraded))
    assert sorted(a) == sorted(b)  # names depend on the photo split only
    differ = 0
    for rel in a:
        with open(a[rel], "rb") as f1, open(b[rel], "rb") as f2:
            differ += f1.read() != f2.read()
    assert differ == len(a)


@pytest.mark.parametrize("kind", demo.KINDS)
def test_second_call_rewrites_nothing(builds, kind):
    """make_demo on a finished build with the same seed returns at once: no file is touched."""
    root = builds[kind]["a"]
    before = {rel: os.stat(p).st_mtime_ns for rel, p in _files(root).items()}
    assert demo.make_demo(kind, root, seed=0) == root
    assert demo.ensure_demo(kind, root) == root
    assert demo.main([kind, "--root", root]) == 0
    assert {rel: os.stat(p).st_mtime_ns for rel, p in _files(root).items()} == before


@pytest.mark.parametrize("kind", sorted(LAYOUTS))
def test_heldout_photos_are_not_in_train(builds, kind):
    """val/test crops come from photos never used for train (names and manifest agree)."""
    root = builds[kind]["a"]
    heldout = LAYOUTS[kind][0]
    with open(os.path.join(root, "manifest.json")) as f:
        files = json.load(f)["files"]
    train_photos = {e["photo"] for e in files["train"].values()}
    heldout_photos = {e["photo"] for e in files[heldout].values()}
    assert train_photos == set(demo.TRAIN_PHOTOS) and heldout_photos == set(demo.HELDOUT_PHOTOS)
    assert not train_photos & heldout_photos
    for split, entries in files.items():
        assert all(name.startswith(e["photo"] + "_") for name, e in entries.items())


@pytest.mark.parametrize("kind", sorted(LAYOUTS))
@pytest.mark.parametrize("which", ["a", "seed1"])
def test_degraded_psnr_in_documented_range(builds, kind, which):
    """Held-out degraded inputs score the PSNR docs/data.md states (room left to restore)."""
    root = builds[kind][which]
    heldout, degraded, clean = LAYOUTS[kind][:3]
    values = []
    for name in sorted(os.listdir(os.path.join(root, heldout, clean))):
        values.append(calculate_psnr(_read_rgb(os.path.join(root, heldout, degraded, name)),
                                     _read_rgb(os.path.join(root, heldout, clean, name))))
    low, high = PSNR_MEAN_RANGE[kind]
    assert low <= np.mean(values) <= high, values
    low, high = PSNR_IMAGE_RANGE[kind]
    assert all(low <= v <= high for v in values), values


def test_inpaint_layout_masks_and_pairs(builds):
    """inpaint = MISF layout: 24 train / 8 test photos crops (held-out photos only in test),
    24 white-hole training masks with ratios 5-60 %, 4 test masks inside each ratio bin, and a
    pair list giving every test image one mask per bin; another seed draws other masks; the
    demo dataset class reads it all."""
    from ppir.data import DATASETS
    from ppir.data.masks import hole_ratio, read_mask
    from ppir.data.pair_list import read_pairs

    root = builds["inpaint"]["a"]
    assert sorted(os.listdir(root)) == sorted([".complete", "manifest.json", "train", "test",
                                               "mask-train", "mask-test", "test_pairs.txt"])
    train, test = sorted(os.listdir(os.path.join(root, "train"))), sorted(os.listdir(
        os.path.join(root, "test")))
    assert len(train) == 24 and len(test) == 8
    assert {n.rsplit("_", 1)[0] for n in test} == set(demo.HELDOUT_PHOTOS)
    assert not {n.rsplit("_", 1)[0] for n in train} & set(demo.HELDOUT_PHOTOS)
    ratios = [hole_ratio(read_mask(p)) for p in _files(os.path.join(root, "mask-train")).values()]
    assert len(ratios) == 24 and min(ratios) >= 0.05 and max(ratios) <= 0.6
    for group, (lo, hi) in (("0%-20%", (0, .2)), ("20%-40%", (.2, .4)), ("40%-60%", (.4, .6))):
        files = _files(os.path.join(root, "mask-test", group))
        assert len(files) == 4
        assert all(lo <= hole_ratio(read_mask(p)) <= hi for p in files.values())
    pairs = read_pairs(os.path.join(root, "test_pairs.txt"))
    assert len(pairs) == 24 and sorted({(i, g) for i, _, g in pairs}) == sorted(
        (i, g) for i in test for g in ("0%-20%", "20%-40%", "40%-60%"))
    other = read_pairs(os.path.join(builds["inpaint"]["seed1"], "test_pairs.txt"))
    assert [m for _, m, _ in pairs] != [m for _, m, _ in other]
    ds = DATASETS.build({"name": "DemoInpaintingDataset", "split": "test", "root": root})
    assert len(ds) == 24 and ds[0]["target"].shape == (3, 128, 128)
    assert [ds[i]["group"] for i in range(len(ds))] == [g for *_, g in pairs]
    train_ds = DATASETS.build({"name": "DemoInpaintingDataset", "split": "train", "root": root,
                               "hflip": True})
    assert len(train_ds) == 24 and train_ds[(3, None, 7)]["mask"].shape == (1, 128, 128)


def test_blur_pairs_are_aligned(builds):
    """Blur kernels are centred on their centroid, so no shift matches the sharp image better."""
    root = builds["deblur"]["a"]
    for name in sorted(os.listdir(os.path.join(root, "test", "sharp"))):
        blur = _read_rgb(os.path.join(root, "test", "blur", name))
        sharp = _read_rgb(os.path.join(root, "test", "sharp", name))
        scores = {}
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                moved = np.roll(sharp, (dy, dx), axis=(0, 1))
                scores[(dy, dx)] = calculate_psnr(blur[4:-4, 4:-4], moved[4:-4, 4:-4])
        assert max(scores, key=scores.get) == (0, 0), (name, scores)


def test_noise_is_signal_dependent():
    """The noise grows with brightness in linear light (shot noise), as in a real raw image."""
    rng = np.random.default_rng(0)
    flat = np.concatenate([np.full((64, 64, 3), 0.2), np.full((64, 64, 3), 0.8)], axis=1)
    noisy, params = demo.add_raw_like_noise(flat, rng)
    assert params["shot_a"] > 0 and params["read_b"] > 0
    residual = noisy ** demo.GAMMA - flat ** demo.GAMMA
    assert residual[:, 64:].std() > 1.5 * residual[:, :64].std()


def test_rebuild_replaces_a_stale_build_but_never_foreign_files(builds, tmp_path):
    """A demo folder without a matching marker (here: seed 0 data, marker gone, seed 1 asked)
    is rebuilt in place, equal to a fresh seed-1 build; a folder that is not a demo dataset is
    refused with a DataError and left untouched."""
    root = tmp_path / "data"
    shutil.copytree(builds["deblur"]["a"], root)
    os.remove(root / ".complete")
    demo.make_demo("deblur", root, seed=1)
    with open(root / ".complete") as f:
        assert json.load(f)["seed"] == 1
    fresh = _files(builds["deblur"]["seed1"])
    rebuilt = _files(str(root))
    assert sorted(rebuilt) == sorted(fresh)
    for rel in fresh:
        with open(fresh[rel], "rb") as f1, open(rebuilt[rel], "rb") as f2:
            assert f1.read() == f2.read(), rel
    assert os.listdir(tmp_path) == ["data"]  # no temporary or old folders left behind

    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(DataError, match="not a ppir demo dataset"):
        demo.make_demo("denoise", foreign)
    assert (foreign / "notes.txt").read_text() == "keep me"


def test_default_root_and_bad_arguments(monkeypatch, tmp_path):
    """The cache root follows $PPIR_CACHE; unknown kinds and bad seeds are refused."""
    monkeypatch.setenv("PPIR_CACHE", str(tmp_path))
    assert demo.default_demo_root("denoise") == os.path.join(str(tmp_path), "demo", "denoise")
    monkeypatch.delenv("PPIR_CACHE")
    assert demo.default_demo_root("deblur").endswith(os.path.join(".cache", "ppir", "demo",
                                                                  "deblur"))
    with pytest.raises(DataError, match="unknown demo kind 'outpaint'"):
        demo.make_demo("outpaint", tmp_path / "x")
    with pytest.raises(DataError, match="seed must be an int"):
        demo.make_demo("denoise", tmp_path / "x", seed=-1)
