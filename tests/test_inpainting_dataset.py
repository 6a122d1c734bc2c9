"""Inpainting datasets: layouts, sample contract, per-seed determinism, pair lists and tools."""
import os

import cv2
import numpy as np
import pytest

from ppir.data import DATASETS
from ppir.data.inpainting_dataset import InpaintingDataset
from ppir.data.masks import hole_ratio
from ppir.data.pair_list import read_pairs
from ppir.errors import ConfigError, DataError
from tests.conftest import run_tool


def save(path, img):
    os.makedirs(os.path.dirname(str(path)), exist_ok=True)
    cv2.imwrite(str(path), img)


def blob_mask(h, w, ratio_rows):
    m = np.zeros((h, w), np.uint8)
    m[:int(round(h * ratio_rows))] = 255
    return m


@pytest.fixture()
def misf_root(tmp_path):
    """MISF layout: 3 train / 2 test images (non-square), flat train masks, binned test masks."""
    rng = np.random.default_rng(0)
    for split, n in (("train", 3), ("test", 2)):
        for k in range(n):
            save(tmp_path / split / f"{k}.png", rng.integers(0, 256, (40, 48, 3), dtype=np.uint8))
    for k, r in enumerate((0.1, 0.3, 0.5)):
        save(tmp_path / "mask-train" / f"m{k}.png", blob_mask(64, 64, r))
    for b, r in (("0%-20%", 0.1), ("20%-40%", 0.3), ("40%-60%", 0.5)):
        for k in range(2):
            save(tmp_path / "mask-test" / b / f"{k}.png", blob_mask(64, 64, r + 0.02 * k))
    return str(tmp_path)


def test_training_sample_contract_and_determinism(misf_root):
    """A training key (index, patch_size, seed) gives target/mask/input/index/seed with the agreed
    shapes, dtypes and convention (mask 1 = hole, input = target * (1 - mask)); the same seed
    gives the same sample, other seeds pick other masks."""
    ds = DATASETS.build({"name": "InpaintingDataset", "root": misf_root, "layout": "misf",
                         "split": "train", "size": 32, "preprocess": "center_crop_resize",
                         "interpolation": "cv2_linear", "mask_recipe": "misf", "hflip": True})
    assert len(ds) == 3 and ds.mask_source == "folder"
    s = ds[(1, None, 123)]
    assert set(s) == {"target", "mask", "input", "index", "seed"}
    assert s["target"].shape == (3, 32, 32) and s["target"].dtype == np.float32
    assert s["mask"].shape == (1, 32, 32) and s["mask"].dtype == np.float32
    assert set(np.unique(s["mask"])) <= {0.0, 1.0}
    np.testing.assert_array_equal(s["input"], s["target"] * (1 - s["mask"]))
    assert s["index"] == 1 and s["index"].dtype == np.int64 and s["seed"] == 123
    again = ds[(1, None, 123)]
    for key in ("target", "mask"):
        np.testing.assert_array_equal(s[key], again[key])
    ratios = {round(hole_ratio(ds[(1, None, seed)]["mask"]), 1) for seed in range(12)}
    assert len(ratios) == 3
    with pytest.raises(ConfigError, match="patch_size 64 differs"):
        ds[(1, 64, 0)]


def test_joint_hflip_flips_image_and_mask_together(misf_root):
    """MISF's flip: one coin for image and mask (a single-mask folder makes it observable)."""
    ds = InpaintingDataset(misf_root, "misf", "train", size=32, preprocess="center_crop_resize",
                           interpolation="cv2_linear", mask_recipe="misf", hflip=True,
                           mask_root=os.path.join(misf_root, "mask-test", "20%-40%"))
    ds.mask_files = ds.mask_files[:1]
    plain = ds[0]
    flips = set()
    for seed in range(10):
        s = ds[(0, None, seed)]
        flipped = np.array_equal(s["target"], plain["target"][:, :, ::-1])
        assert flipped or np.array_equal(s["target"], plain["target"])
        np.testing.assert_array_equal(s["mask"], plain["mask"][:, :, ::-1] if flipped
                                      else plain["mask"])
        flips.add(flipped)
    assert flips == {True, False}


def test_binned_test_split_groups_every_image_by_bin(misf_root):
    """The MISF test split pairs image i with mask i % n of every bin folder; samples carry the
    bin name as `group`, have no `seed`, and names start with the bin."""
    ds = InpaintingDataset(misf_root, "misf", "test", size=32, preprocess="center_crop_resize",
                           interpolation="cv2_linear", mask_recipe="misf")
    assert ds.mode == "eval" and ds.mask_source == "binned" and len(ds) == 6
    groups = [ds[i]["group"] for i in range(6)]
    assert groups == ["0%-20%"] * 2 + ["20%-40%"] * 2 + ["40%-60%"] * 2
    assert "seed" not in ds[0]
    assert ds.name(3) == os.path.join("20%-40%", "1.png")
    assert 0.2 <= hole_ratio(ds[3]["mask"]) < 0.4


def test_preprocess_recipes(tmp_path):
    """'resize' squashes with PIL bilinear (CTSDG), 'center_crop_resize' crops the centre square
    then cv2-resizes (MISF), 'random_crop_resize' crops a seeded random square (ICT) and the
    centre one when evaluating."""
    from PIL import Image

    img = np.random.default_rng(1).integers(0, 256, (30, 50, 3), dtype=np.uint8)
    save(tmp_path / "img" / "a.png", img[..., ::-1])
    save(tmp_path / "masks" / "m.png", blob_mask(30, 50, 0.3))
    common = dict(root=str(tmp_path), image_dir="img", mask_root=str(tmp_path / "masks"),
                  size=16, mode="eval")
    squash = InpaintingDataset(preprocess="resize", **common)[0]["target"]
    ref = np.asarray(Image.fromarray(img).resize((16, 16), Image.BILINEAR)) / np.float32(255)
    np.testing.assert_array_equal(squash, ref.transpose(2, 0, 1).astype(np.float32))
    centre = InpaintingDataset(preprocess="center_crop_resize", interpolation="cv2_linear",
                               **common)[0]["target"]
    ref = cv2.resize(img[:, 10:40], (16, 16)) / np.float32(255)
    np.testing.assert_array_equal(centre, ref.transpose(2, 0, 1).astype(np.float32))
    rand = InpaintingDataset(preprocess="random_crop_resize", **common)
    crops = {rand[(0, None, s)]["target"].tobytes() for s in range(6)}
    assert len(crops) > 1
    ref = np.asarray(Image.fromarray(img[:, 10:40]).resize((16, 16), Image.BILINEAR)) / 255.0
    np.testing.assert_array_equal(rand[0]["target"],
                                  ref.transpose(2, 0, 1).astype(np.float32))


def test_celeba_split_and_nested_folder(tmp_path):
    """CelebA reads list_eval_partition.txt (0/1/2 = train/val/test); a folder layout finds
    images in nested folders; a missing split file or folder is a DataError naming it."""
    for k in range(4):
        save(tmp_path / "img_align_celeba" / f"00000{k}.jpg", np.full((20, 18, 3), k, np.uint8))
        save(tmp_path / "nested" / f"s{k % 2}" / f"{k}.png", np.zeros((8, 8, 3), np.uint8))
    save(tmp_path / "masks" / "m.png", blob_mask(8, 8, 0.25))
    masks = str(tmp_path / "masks")
    with pytest.raises(DataError, match="list_eval_partition.txt"):
        InpaintingDataset(str(tmp_path), "celeba", "test", mask_root=masks)
    (tmp_path / "list_eval_partition.txt").write_text(
        "000000.jpg 0\n000001.jpg 0\n000002.jpg 1\n000003.jpg 2\n")
    test = InpaintingDataset(str(tmp_path), "celeba", "test", size=8, mask_root=masks)
    assert test.images == ["000003.jpg"] and test.mode == "eval"
    assert len(InpaintingDataset(str(tmp_path), "celeba", "train", mask_root=masks)) == 2
    nested = InpaintingDataset(str(tmp_path), image_dir="nested", size=8, mask_root=masks)
    assert nested.images == [os.path.join("s0", "0.png"), os.path.join("s0", "2.png"),
                             os.path.join("s1", "1.png"), os.path.join("s1", "3.png")]
    assert nested[1]["group"] == "20%-40%"
    with pytest.raises(DataError, match="image folder not found: .*nope"):
        InpaintingDataset(str(tmp_path), image_dir="nope", mask_root=masks)
    with pytest.raises(DataError, match="mask folder not found"):
        InpaintingDataset(str(tmp_path), image_dir="nested", mask_root=str(tmp_path / "x"))


def test_generated_masks(misf_root):
    """mask_source generate: training masks come from the sample seed within mask_ratio_range;
    evaluation gives every image one fixed mask per bin, inside that bin."""
    ds = InpaintingDataset(misf_root, "misf", "train", size=32, mask_source="generate",
                           mask_ratio_range=(0.1, 0.3))
    a, b = ds[(0, None, 5)]["mask"], ds[(0, None, 5)]["mask"]
    np.testing.assert_array_equal(a, b)
    assert 0.1 <= hole_ratio(a) <= 0.3
    ev = InpaintingDataset(misf_root, "misf", "test", size=32, mask_source="generate", seed=3)
    assert len(ev) == 6
    for i in range(6):
        s = ev[i]
        lo, hi = {"0%-20%": (0, .2), "20%-40%": (.2, .4), "40%-60%": (.4, .6)}[s["group"]]
        assert lo <= hole_ratio(s["mask"]) <= hi
    np.testing.assert_array_equal(ev[4]["mask"], ev[4]["mask"])


def test_pair_list_tool_and_dataset(misf_root, tmp_path):
    """tools/make_inpaint_pairs.py writes one seeded line per (image, bin); the same seed writes
    the same file; the dataset reads it back with its groups; bad lists fail in one line."""
    out = str(tmp_path / "pairs.txt")
    args = ["--root", misf_root, "--layout", "misf", "--split", "test", "--masks",
            os.path.join(misf_root, "mask-test"), "--out", out, "--seed", "4"]
    res = run_tool("tools/make_inpaint_pairs.py", *args)
    assert res.returncode == 0, res.stderr
    first = open(out).read()
    assert run_tool("tools/make_inpaint_pairs.py", *args).returncode == 0
    assert open(out).read() == first
    pairs = read_pairs(out)
    assert len(pairs) == 6 and {g for _, _, g in pairs} == {"0%-20%", "20%-40%", "40%-60%"}
    assert all(m.startswith(g + os.sep) for _, m, g in pairs)
    ds = InpaintingDataset(misf_root, "misf", "test", size=32, pairs=out)
    assert ds.mask_source == "pairs"
    assert [ds[i]["group"] for i in range(6)] == [g for *_, g in pairs]
    flat = str(tmp_path / "flat.txt")  # a flat folder is binned by each file's ratio
    res = run_tool("tools/make_inpaint_pairs.py", *args[:7], os.path.join(misf_root, "mask-train"),
                   "--out", flat, "--modulo")
    assert res.returncode == 0, res.stderr
    assert [(m, g) for _, m, g in read_pairs(flat)] == [
        ("m0.png", "0%-20%")] * 2 + [("m1.png", "20%-40%")] * 2 + [("m2.png", "40%-60%")] * 2
    empty = tmp_path / "empty.txt"
    empty.write_text("# nothing\n")
    with pytest.raises(DataError, match="pair list is empty"):
        InpaintingDataset(misf_root, "misf", "test", pairs=str(empty))
    bad = tmp_path / "bad.txt"
    bad.write_text("9.png 0%-20%/0.png 0%-20%\n")
    with pytest.raises(DataError, match="image 9.png is not in"):
        InpaintingDataset(misf_root, "misf", "test", pairs=str(bad))


def test_sort_masks_tool(misf_root, tmp_path):
    """tools/sort_masks_by_ratio.py copies masks into bin folders by hole ratio, leaves the source
    untouched and refuses an output folder inside the source (exit 2, one line)."""
    src = os.path.join(misf_root, "mask-train")
    before = sorted(os.listdir(src))
    out = tmp_path / "sorted"
    res = run_tool("tools/sort_masks_by_ratio.py", "--src", src, "--out", str(out))
    assert res.returncode == 0, res.stderr
    assert sorted(os.listdir(out)) == ["0%-20%", "20%-40%", "40%-60%"]
    assert os.listdir(out / "20%-40%") == ["m1.png"] and sorted(os.listdir(src)) == before
    res = run_tool("tools/sort_masks_by_ratio.py", "--src", src, "--out", os.path.join(src, "x"))
    assert res.returncode == 2 and "inside the source folder" in res.stderr
    assert not os.path.exists(os.path.join(src, "x"))
