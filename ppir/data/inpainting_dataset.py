"""Inpainting datasets: images from a folder, CelebA or the MISF layout, with masks (1 = hole).

Image layouts (`layout`):
* ``folder`` -- every image under `root` (or `root/image_dir`), nested folders included
  (Places2, Paris StreetView);
* ``celeba`` -- `root/img_align_celeba/*.jpg` and `root/list_eval_partition.txt`, whose split
  column is 0 = train, 1 = val, 2 = test;
* ``misf`` -- `root/{train,valid,test}/` with masks in `root/mask-{train,valid,test}/`, the test
  masks sorted into ratio folders `0%-20%`, `20%-40%`, `40%-60%` (MISF's prepared CelebA).

Mask sources (`mask_source`): ``folder`` (training: a random file per sample; evaluation: file
`i % n`, grouped by its hole ratio), ``binned`` (sub-folders named by the ratio bins; evaluation
pairs image i with file `i % n` of every bin, as MISF's per-bin test runs do), ``generate`` (the
seeded free-form generator) and ``pairs`` (an `image mask group` list written by
tools/make_inpaint_pairs.py, the reproducible test protocol).

A sample is ``{target, mask, input, index}`` (+ ``seed`` for training keys, ``group`` for
evaluation): target 3xHxW float32 RGB in [0, 1], mask 1xHxW float32 with 1 = hole,
input = target * (1 - mask). Training keys are `(index, patch_size, seed)`; every random choice
(crop, flip, mask file, mask flips, generated mask) comes from `np.random.default_rng(seed)`.
"""
import os

import numpy as np

from ppir.data.image_io import is_image_file, read_image, to_uint8
from ppir.data.masks import (DEFAULT_BIN_EDGES, MaskTransform, bin_names, check_bin_edges,
                             generate_mask, list_masks, ratio_bin, read_mask)
from ppir.data.host_steps import run_host_steps
from ppir.data.pair_list import read_fields, read_pairs
from ppir.data.transforms import INTERPOLATIONS, resize_uint8, square_crop_box
from ppir.errors import ConfigError, DataError
from ppir.registry import DATASETS

LAYOUTS = ("folder", "celeba", "misf")
PREPROCESS = ("resize", "center_crop_resize", "random_crop_resize", "none")
MASK_SOURCES = ("folder", "binned", "generate", "pairs")
CELEBA_SPLITS = {"train": "0", "val": "1", "test": "2"}
MISF_SPLITS = {"train": "train", "val": "valid", "valid": "valid", "test": "test"}
OTHER_GROUP = "other"


def list_image_tree(folder):
    """Sorted paths, relative to `folder`, of every image below it."""
    if not os.path.isdir(folder):
        raise DataError(f"image folder not found: {folder}")
    names = sorted(os.path.relpath(os.path.join(d, n), folder)
                   for d, _, files in os.walk(folder) for n in files if is_image_file(n))
    if not names:
        raise DataError(f"no images in folder: {folder}")
    return names


def celeba_split(root, split):
    """(image folder, names) of a CelebA split from list_eval_partition.txt."""
    if split not in CELEBA_SPLITS:
        raise ConfigError(f"CelebA split must be one of {', '.join(CELEBA_SPLITS)}, got {split!r}")
    folder = os.path.join(root, "img_align_celeba")
    listing = os.path.join(root, "list_eval_partition.txt")
    if not os.path.isdir(folder):
        raise DataError(f"image folder not found: {folder}")
    names = [name for name, part in read_fields(listing, ("name", "split"), "split file")
             if part == CELEBA_SPLITS[split]]
    if not names:
        raise DataError(f"{listing}: no image in split {split} ({CELEBA_SPLITS[split]})")
    return folder, names


def find_images(root, layout="folder", split=None, image_dir=None):
    """(image folder, sorted names relative to it) of one split of a dataset layout."""
    _check_choice("layout", layout, LAYOUTS)
    if layout == "celeba":
        return celeba_split(root, split)
    if layout == "misf":
        if split not in MISF_SPLITS:
            raise ConfigError(f"MISF layout split must be one of {', '.join(MISF_SPLITS)}, "
                              f"got {split!r}")
        folder = os.path.join(root, MISF_SPLITS[split])
    else:
        folder = os.path.join(root, image_dir) if image_dir else root
    return folder, list_image_tree(folder)


def preprocess_image(img, size, preprocess, interpolation, rng=None):
    """uint8 HxWx3 -> size x size per a recipe: squash (CTSDG), centre crop (MISF) or random
    square crop (ICT training; centre crop when `rng` is None)."""
    if preprocess == "none" or not size:
        return img
    if preprocess != "resize":
        crop = "random" if preprocess == "random_crop_resize" and rng is not None else "center"
        top, left, side = square_crop_box(img.shape[0], img.shape[1], crop, rng)
        img = img[top:top + side, left:left + side]
    return resize_uint8(img, size, interpolation)


@DATASETS.register("InpaintingDataset")
class InpaintingDataset:
    """Images and 1 = hole masks for training or evaluating an inpainting network.

    Args:
        root: dataset folder (layout below).
        layout: 'folder', 'celeba' or 'misf'.
        split: CelebA 'train'/'val'/'test'; MISF 'train'/'valid' ('val')/'test'.
        image_dir: for 'folder', a sub-folder of root holding the images.
        mode: 'train' (len = images; random masks) or 'eval' (len = evaluation pairs); default
            'train' for split train or none, else 'eval'.
        size: output side in pixels (0 with preprocess 'none' keeps the image size).
        preprocess: 'resize' (squash; CTSDG), 'center_crop_resize' (MISF),
            'random_crop_resize' (ICT; centre crop in evaluation) or 'none'.
        interpolation: the image resize filter, 'pil_bilinear' (CTSDG, ICT transformer),
            'cv2_linear' (MISF), 'pil_bicubic' (ICT upsampler), ...
        hflip: training: flip image and mask together with probability 1/2 (MISF).
        mask_source: 'folder', 'binned', 'generate' or 'pairs' (default: 'pairs' if `pairs` is
            given, 'binned' if mask_root holds every bin folder, else 'folder').
        mask_root: mask folder (default for 'misf': root/mask-<split>).
        pairs: an `image mask group` list; images relative to the image folder, masks to
            mask_root (a relative list path is looked up in the working folder, then in root).
        mask_recipe: how mask files are cropped, resized, thresholded and flipped: 'ctsdg',
            'misf', 'ict_transformer', 'ict_upsampler' (ppir/data/masks.py MASK_RECIPES).
        mask_hole_value: 'white' or 'black', the hole colour in the mask files.
        mask_options: overrides of the recipe (crop, interpolation, threshold, hflip, vflip).
        resize_masks: resize evaluation masks to `size` with the recipe (the official codes do);
            false refuses masks whose size differs from the image.
        bin_edges: hole-ratio bin edges (evaluation groups, binned folders, generator bins).
        mask_ratio_range: training ratio range of generated masks.
        seed: seed of generated evaluation masks.
        host_steps: `[{name: ..., **params}]` host steps (ppir/data/host_steps.py) run on every
            sample, e.g. CTSDG's `ctsdg_edges`.
    """

    def __init__(self, root, layout="folder", split=None, image_dir=None, mode=None, size=256,
                 preprocess="resize", interpolation="pil_bilinear", hflip=False,
                 mask_source=None, mask_root=None, pairs=None, mask_recipe="ctsdg",
                 mask_hole_value="white", mask_options=None, resize_masks=True,
                 bin_edges=DEFAULT_BIN_EDGES, mask_ratio_range=(0.0, 0.6), seed=0, host_steps=None):
        _check_choice("preprocess", preprocess, PREPROCESS)
        _check_choice("interpolation", interpolation, INTERPOLATIONS)
        if mode is None:
            mode = "train" if split in (None, "train") else "eval"
        _check_choice("mode", mode, ("train", "eval"))
        if not os.path.isdir(root):
            raise DataError(f"dataset folder not found: {root}")
        self.root, self.mode, self.size = root, mode, int(size or 0)
        self.preprocess, self.interpolation, self.hflip = preprocess, interpolation, bool(hflip)
        self.bin_edges = check_bin_edges(bin_edges)
        self.bins = bin_names(self.bin_edges)
        self.mask_ratio_range = tuple(mask_ratio_range)
        self.seed = int(seed)
        self.resize_masks = bool(resize_masks)
        self.host_steps = list(host_steps or ())
        self.image_folder, self.images = find_images(root, layout, split, image_dir)
        if layout == "misf" and mask_root is None:
            mask_root = os.path.join(root, "mask-" + MISF_SPLITS[split])
        self.mask_root = mask_root
        self.mask_transform = MaskTransform(self.size if resize_masks else 0, mask_recipe,
                                            mask_hole_value, **(mask_options or {}))
        self.mask_hole_value = mask_hole_value
        self.mask_source = self._find_masks(mask_source, pairs)

    # -- discovery ------------------------------------------------------------------------------

    def _find_masks(self, source, pairs):
        if source is None:
            if pairs is not None:
                source = "pairs"
            elif self.mask_root and all(os.path.isdir(os.path.join(self.mask_root, b))
                                        for b in self.bins):
                source = "binned"
            else:
                source = "folder"
        _check_choice("mask_source", source, MASK_SOURCES)
        if source != "generate" and not self.mask_root:
            raise ConfigError(f"mask_source {source}: set mask_root (or use mask_source: generate)")
        self.mask_files, self.pairs = [], []
        if source == "pairs":
            if pairs is None:
                raise ConfigError("mask_source pairs: set pairs to an 'image mask group' list")
            self.pairs = self._load_pairs(pairs)
        elif source == "binned":
            self.binned = {b: list_masks(os.path.join(self.mask_root, b)) for b in self.bins}
            self.mask_files = [p for b in self.bins for p in self.binned[b]]
        elif source == "folder":
            self.mask_files = list_masks(self.mask_root)
        return source

    def _load_pairs(self, path):
        if not os.path.isabs(path) and not os.path.isfile(path):
            path = os.path.join(self.root, path)
        pairs = read_pairs(path)
        known = set(self.images)
        for image, mask, _ in pairs:
            if os.path.normpath(image) not in known:
                raise DataError(f"{path}: image {image} is not in {self.image_folder}")
            if not os.path.isfile(os.path.join(self.mask_root, mask)):
                raise DataError(f"{path}: mask not found: {os.path.join(self.mask_root, mask)}")
        index = {name: i for i, name in enumerate(self.images)}
        return [(index[os.path.normpath(img)], os.path.join(self.mask_root, m), g)
                for img, m, g in pairs]

    # -- indexing -------------------------------------------------------------------------------

    def __len__(self):
        if self.mode == "train":
            return len(self.images)
        if self.mask_source == "pairs":
            return len(self.pairs)
        if self.mask_source in ("binned", "generate"):
            return len(self.images) * len(self.bins)
        return len(self.images)

    def eval_item(self, index):
        """(image index, mask file or None, group) of evaluation item `index`."""
        if index < 0 or index >= len(self):
            raise IndexError(f"index {index} out of range for {len(self)} items")
        if self.mode == "train":
            return index, self._modulo_mask(index), None
        if self.mask_source == "pairs":
            return self.pairs[index]
        if self.mask_source in ("binned", "generate"):
            b, i = divmod(index, len(self.images))
            group = self.bins[b]
            files = self.binned[group] if self.mask_source == "binned" else None
            return i, files[i % len(files)] if files else None, group
        return index, self._modulo_mask(index), None

    def _modulo_mask(self, index):
        return self.mask_files[index % len(self.mask_files)] if self.mask_files else None

    def name(self, index):
        """Output file name of evaluation item `index` (its bin folder first when binned)."""
        i, _, group = self.eval_item(index)
        if self.mode == "eval" and self.mask_source in ("binned", "generate", "pairs"):
            return os.path.join(group, self.images[i])
        return self.images[i]

    def __getitem__(self, key):
        if isinstance(key, (tuple, list)):
            index, patch_size, seed = key
            if patch_size and int(patch_size) != self.size:
                raise ConfigError(f"training patch_size {patch_size} differs from the inpainting "
                                  f"dataset size {self.size}; set Train.patch_size to null")
        else:
            index, seed = key, None
        rng = None if seed is None else np.random.default_rng(seed)
        if rng is not None and self.mode == "train":
            image_index, group = index, None
        else:
            image_index, mask_file, group = self.eval_item(index)
        image = self._load_image(image_index, rng)
        h, w = image.shape[:2]
        if rng is not None and self.mode == "train":
            mask = self._train_mask(rng, (h, w))
        else:
            mask = self._eval_mask(index, mask_file, group, (h, w))
            if group is None:
                group = ratio_bin(float(mask.mean()), self.bin_edges) or OTHER_GROUP
        if rng is not None and self.hflip and rng.random() < 0.5:
            image, mask = image[:, ::-1], mask[:, ::-1]
        sample = self._sample(image, mask, index, seed, group)
        return run_host_steps(sample, self.host_steps) if self.host_steps else sample

    # -- loading --------------------------------------------------------------------------------

    def _load_image(self, index, rng):
        path = os.path.join(self.image_folder, self.images[index])
        # Official pipelines resize the 8-bit image (PIL or cv2), then divide by 255.
        img = preprocess_image(to_uint8(read_image(path)), self.size, self.preprocess,
                               self.interpolation, rng)
        return img.astype(np.float32) / 255.0

    def _train_mask(self, rng, hw):
        if self.mask_source == "generate":
            return generate_mask(hw, rng, self.mask_ratio_range)
        files = self.mask_files or [p for _, p, _ in self.pairs]
        path = files[int(rng.integers(0, len(files)))]
        return self._fit(self.mask_transform(path, rng), hw, path)

    def _eval_mask(self, index, mask_file, group, hw):
        if mask_file is None:
            b = self.bins.index(group) if group in self.bins else 0
            rng = np.random.default_rng([self.seed, index, b])
            return generate_mask(hw, rng, self.bin_edges[b:b + 2])
        if not self.resize_masks:
            return read_mask(mask_file, self.mask_hole_value, self.mask_transform.threshold,
                             expect_hw=hw)
        return self._fit(self.mask_transform(mask_file), hw, mask_file)

    @staticmethod
    def _fit(mask, hw, path):
        if mask.shape != tuple(hw):
            raise DataError(f"mask is {mask.shape[1]}x{mask.shape[0]} but its image is "
                            f"{hw[1]}x{hw[0]}: {path}")
        return mask

    @staticmethod
    def _sample(image, mask, index, seed, group):
        target = np.ascontiguousarray(image.transpose(2, 0, 1))
        mask = np.ascontiguousarray(mask[None], dtype=np.float32)
        sample = {"target": target, "mask": mask, "input": target * (1.0 - mask),
                  "index": np.int64(index)}
        if seed is not None:
            sample["seed"] = np.int64(seed % (1 << 62))
        if group is not None:
            sample["group"] = group
        return sample


@DATASETS.register("DemoInpaintingDataset")
class DemoInpaintingDataset(InpaintingDataset):
    """A split of the embedded inpainting demo data (ppir/data/demo.py), built on first use.

    `root=None` uses the cache folder; `split` 'train' or 'test'; the test split reads the
    committed-style pair list `test_pairs.txt` unless `mask_source` says otherwise. Other
    keywords are InpaintingDataset's (the demo images are 128x128, hence `size=128`).
    """

    def __init__(self, split, root=None, seed=0, size=128, pairs=None, mask_source=None,
                 **kwargs):
        from ppir.data.demo import INPAINT_PAIRS, ensure_demo

        root = ensure_demo("inpaint", root, seed)
        if split == "test" and pairs is None and mask_source in (None, "pairs"):
            pairs = os.path.join(root, INPAINT_PAIRS)
        super().__init__(root, "misf", split, size=size, pairs=pairs, mask_source=mask_source,
                         **kwargs)


def _check_choice(key, value, choices):
    if value not in choices:
        raise ConfigError(f"{key} must be one of {', '.join(choices)}, got {value!r}")
