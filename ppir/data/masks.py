"""Inpainting masks: reading, hole ratios and their bins, augmentation, and a seeded generator.

One convention inside ppir's data layer: a mask is float32 with **1 = hole** (pixel to fill) and
0 = known pixel. Mask files come in both polarities, so reading one always states which file
value is the hole (`hole_value`). Each model converts to its own convention explicitly in its
task code (CTSDG's network wants 1 = known; MISF and ICT want 1 = hole).

Training masks are resized and flipped the way each official code does it (`MASK_RECIPES`),
with every random choice drawn from the sample's numpy Generator, never from global RNGs.
"""
import os

import cv2
import numpy as np

from ppir.data.image_io import imread_unchanged, is_image_file
from ppir.data.transforms import INTERPOLATIONS, resize_uint8, square_crop_box
from ppir.errors import ConfigError, DataError

DEFAULT_BIN_EDGES = (0.0, 0.2, 0.4, 0.6)
HOLE_VALUES = ("white", "black")
CROPS = ("none", "center", "random")

# How each official code turns a training mask file into the network's mask. `threshold` is on
# [0, 1] and strict (`value > threshold` is white): on 8-bit files CTSDG's `>= 0.5` and ICT's
# `/255 > 0.5` both mean >= 128.
MASK_RECIPES = {
    # CTSDG datasets/dataset.py + transform.py: PIL Resize(NEAREST) to load_size, >= 0.5, then
    # `1 - mask` (the file's white is the hole); no crop, no flip.
    "ctsdg": dict(crop="none", interpolation="pil_nearest", threshold=0.5, hflip=False,
                  vflip=False),
    # MISF src/dataset.py load_mask: centre crop to a square, cv2.resize (bilinear), `> 0`
    # (MASK_THRESHOLD); its horizontal flip is shared with the image (the dataset's `hflip`).
    "misf": dict(crop="center", interpolation="cv2_linear", threshold=0.0, hflip=False,
                 vflip=False),
    # ICT Transformer/datas/dataset.py: convert('L'), PIL NEAREST resize, independent random
    # horizontal and vertical flips, `/255 > 0.5`.
    "ict_transformer": dict(crop="none", interpolation="pil_nearest", threshold=0.5, hflip=True,
                            vflip=True),
    # ICT Guided_Upsample/src/dataset_my.py: training takes a random square crop, PIL BICUBIC
    # resize, `> 0`, independent random horizontal and vertical flips; testing (mask_type 6)
    # squashes the whole mask (`resize(..., centerCrop=False)`).
    "ict_upsampler": dict(crop="random", interpolation="pil_bicubic", threshold=0.0, hflip=True,
                          vflip=True),
}


# ---------------------------------------------------------------------------------------------
# ratios and bins


def hole_ratio(mask):
    """Share of hole pixels (value > 0.5) of a 1 = hole mask, HxW or 1xHxW."""
    return float(np.mean(np.asarray(mask) > 0.5))


def check_bin_edges(edges, where="bin_edges"):
    """Strictly increasing ratios in [0, 1], at least two; returned as a tuple of floats."""
    try:
        edges = tuple(float(e) for e in edges)
    except (TypeError, ValueError):
        raise ConfigError(f"{where}: expected a list of ratios, got {edges!r}") from None
    if len(edges) < 2 or any(b <= a for a, b in zip(edges, edges[1:])) \
            or edges[0] < 0 or edges[-1] > 1:
        raise ConfigError(f"{where}: needs at least two strictly increasing ratios in [0, 1], "
                          f"got {list(edges)}")
    return edges


def bin_names(edges=DEFAULT_BIN_EDGES):
    """Names of the bins between consecutive edges: (0, .2, .4) -> ['0%-20%', '20%-40%']."""
    edges = check_bin_edges(edges)
    return [f"{_percent(a)}%-{_percent(b)}%" for a, b in zip(edges, edges[1:])]


def _percent(ratio):
    return f"{round(ratio * 100, 6):g}"


def ratio_bin(ratio, edges=DEFAULT_BIN_EDGES):
    """The bin name holding `ratio`, or None outside the edges.

    Bins are [lo, hi) except the last, which also holds its upper edge.
    """
    edges = check_bin_edges(edges)
    names = bin_names(edges)
    for k, (lo, hi) in enumerate(zip(edges, edges[1:])):
        if lo <= ratio < hi or (k == len(names) - 1 and ratio == hi):
            return names[k]
    return None


# ---------------------------------------------------------------------------------------------
# reading


def check_mask_options(hole_value="white", threshold=0.5, crop="none",
                       interpolation="pil_nearest"):
    if hole_value not in HOLE_VALUES:
        raise ConfigError(f"mask hole_value must be one of {', '.join(HOLE_VALUES)}, "
                          f"got {hole_value!r}")
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) \
            or not 0 <= threshold < 1:
        raise ConfigError(f"mask threshold must be a number in [0, 1), got {threshold!r}")
    if crop not in CROPS:
        raise ConfigError(f"mask crop must be one of {', '.join(CROPS)}, got {crop!r}")
    if interpolation not in INTERPOLATIONS:
        raise ConfigError(f"mask interpolation must be one of {', '.join(INTERPOLATIONS)}, "
                          f"got {interpolation!r}")


def read_mask_raw(path):
    """A mask file as uint8 HxWxC (C = 1 or 3), before thresholding; DataError naming the file."""
    data = imread_unchanged(path, "mask")
    if data.dtype == np.uint16:
        data = np.round(data / 257.0).astype(np.uint8)
    elif data.dtype != np.uint8:
        raise DataError(f"unsupported mask pixel type {data.dtype} (expected 8- or 16-bit): {path}")
    if data.ndim == 2:
        data = data[:, :, None]
    elif data.shape[2] == 4:
        if data[:, :, 3].min() < 255:
            raise DataError(f"mask has a transparent alpha channel; save it as grayscale: {path}")
        data = data[:, :, :3]
    elif data.shape[2] not in (1, 3):
        raise DataError(f"unsupported mask channel count {data.shape[2]}: {path}")
    return np.ascontiguousarray(data)


def binarize(raw, path, hole_value="white", threshold=0.5):
    """uint8 HxWxC -> float32 HxW with 1 = hole; a file whose channels disagree is refused."""
    white = raw > threshold * 255.0
    if white.shape[2] > 1:
        if not (white == white[:, :, :1]).all():
            raise DataError(f"mask is not single-channel after thresholding at {threshold} "
                            f"(its colour channels differ): {path}")
    white = white[:, :, 0]
    hole = white if hole_value == "white" else ~white
    return hole.astype(np.float32)


def mask_from_array(arr, hole_value="white", where="mask"):
    """An in-memory mask -> float32 HxW, 1 = hole. Accepted: bool (True = white), 0/1 integers,
    0/255 and 0/65535 (and anti-aliased gray levels, split at half range), float in [0, 1],
    gray, RGB with equal channels, RGBA with an opaque alpha. `hole_value` says which side is the
    hole. A 0/1 mask that also holds 255 (two encodings at once) is refused, naming `where`."""
    check_mask_options(hole_value, 0.5)
    arr = np.asarray(arr)
    if arr.ndim == 3 and arr.shape[2] == 4:
        opaque = np.iinfo(arr.dtype).max if arr.dtype.kind in "ui" else 1
        if arr[:, :, 3].min() < opaque:
            raise DataError(f"{where} has a transparent alpha channel; give a gray mask")
        arr = arr[:, :, :3]
    if arr.ndim == 3 and arr.shape[2] in (1, 3):
        if not (arr == arr[:, :, :1]).all():
            raise DataError(f"{where} is a colour image (its channels differ); give a gray mask")
        arr = arr[:, :, 0]
    if arr.ndim != 2:
        raise DataError(f"{where}: expected an HxW mask, got shape {list(arr.shape)}")
    if arr.dtype == bool:
        white = arr
    elif arr.dtype.kind == "f":
        if not np.isfinite(arr).all() or arr.min() < 0 or arr.max() > 1:
            raise DataError(f"{where}: a float mask must hold values in [0, 1]")
        white = arr > 0.5
    elif arr.dtype.kind in "ui":
        top = int(arr.max()) if arr.size else 0
        if top <= 1:
            white = arr == 1
        elif ((arr == 1).any() and top == np.iinfo(arr.dtype).max
              and np.isin(arr, (0, 1, top)).all()):
            raise DataError(f"{where} mixes 0/1 and 0/{top} encodings; give one of them")
        else:
            white = arr > (np.iinfo(arr.dtype).max // 2 if arr.dtype.itemsize > 1 else 127)
    else:
        raise DataError(f"{where}: unsupported mask type {arr.dtype}")
    hole = white if hole_value == "white" else ~white
    return hole.astype(np.float32)


def read_mask(path, hole_value="white", threshold=0.5, expect_hw=None):
    """Read a mask file as float32 HxW, 1 = hole.

    `hole_value` says which side of `threshold` (on [0, 1], strict) is the hole in the file;
    `expect_hw` (H, W) refuses a mask whose size differs from its image.
    """
    check_mask_options(hole_value, threshold)
    raw = read_mask_raw(path)
    if expect_hw is not None and tuple(raw.shape[:2]) != tuple(expect_hw):
        raise DataError(f"mask is {raw.shape[1]}x{raw.shape[0]} but its image is "
                        f"{expect_hw[1]}x{expect_hw[0]}: {path}")
    return binarize(raw, path, hole_value, threshold)


def list_masks(folder):
    """Sorted paths of the image files under `folder` (nested folders included)."""
    if not os.path.isdir(folder):
        raise DataError(f"mask folder not found: {folder}")
    paths = sorted(os.path.join(d, n) for d, _, names in os.walk(folder) for n in names
                   if is_image_file(n))
    if not paths:
        raise DataError(f"no mask images in folder: {folder}")
    return paths


# ---------------------------------------------------------------------------------------------
# resizing and augmentation


class MaskTransform:
    """Turn a mask file into a size x size float32 mask (1 = hole), as an official code does.

    Order: square crop -> resize (uint8) -> threshold -> polarity -> random flips. Randomness
    (crop position, flips) comes from the Generator passed per call; evaluation calls pass none:
    no flips, and a 'random' crop becomes none (ICT's test masks are squashed).
    """

    def __init__(self, size, recipe="ctsdg", hole_value="white", **overrides):
        if recipe not in MASK_RECIPES:
            raise ConfigError(f"unknown mask recipe {recipe!r}; known: "
                              f"{', '.join(sorted(MASK_RECIPES))}")
        unknown = sorted(set(overrides) - set(MASK_RECIPES[recipe]))
        if unknown:
            raise ConfigError(f"unknown mask option(s) {', '.join(unknown)}")
        opts = dict(MASK_RECIPES[recipe], **overrides)
        check_mask_options(hole_value, opts["threshold"], opts["crop"], opts["interpolation"])
        self.size = size
        self.hole_value = hole_value
        self.crop, self.interpolation = opts["crop"], opts["interpolation"]
        self.threshold, self.hflip, self.vflip = opts["threshold"], opts["hflip"], opts["vflip"]

    def __call__(self, path, rng=None):
        raw = read_mask_raw(path)
        if self.size:
            h, w = raw.shape[:2]
            if h != w and (self.crop == "center" or (self.crop == "random" and rng is not None)):
                top, left, side = square_crop_box(h, w, self.crop, rng)
                raw = raw[top:top + side, left:left + side]
            raw = resize_uint8(raw, self.size, self.interpolation)
        mask = binarize(raw, path, self.hole_value, self.threshold)
        if rng is not None:
            if self.hflip and rng.random() < 0.5:
                mask = mask[:, ::-1]
            if self.vflip and rng.random() < 0.5:
                mask = mask[::-1, :]
        return np.ascontiguousarray(mask)


# ---------------------------------------------------------------------------------------------
# generator


def generate_mask(size, rng, ratio_range=(0.0, 0.6), max_tries=50):
    """A free-form mask (1 = hole) of brush strokes and ellipses, hole ratio within ratio_range.

    Deterministic for the Generator's state. A target ratio is drawn uniformly in the range and
    shapes are added until it is reached; a shape that would overshoot the upper bound is dropped.
    `size` is an int (square) or (H, W).
    """
    h, w = (size, size) if np.isscalar(size) else size
    lo, hi = float(ratio_range[0]), float(ratio_range[1])
    if not 0 <= lo < hi <= 1:
        raise ConfigError(f"mask ratio_range must satisfy 0 <= lo < hi <= 1, got {ratio_range!r}")
    total = float(h * w)
    for _ in range(max_tries):
        canvas = np.zeros((h, w), np.uint8)
        holes = 0
        target = rng.uniform(lo, hi)
        misses = 0
        while holes / total < target and misses < 20:
            shape = _draw_shape(np.zeros_like(canvas), rng)
            merged = np.maximum(canvas, shape)
            count = int(np.count_nonzero(merged))
            if count / total > hi:
                misses += 1
                continue
            canvas, holes = merged, count
        if lo <= holes / total <= hi:
            return canvas.astype(np.float32)
    raise DataError(f"could not generate a {h}x{w} mask with hole ratio in [{lo}, {hi}] "
                    f"after {max_tries} tries")


def _draw_shape(layer, rng):
    """One stroke (a random walk drawn with a round brush) or one filled ellipse, on `layer`."""
    h, w = layer.shape
    scale = min(h, w)
    if rng.random() < 0.75:
        width = int(rng.integers(max(2, scale // 40), max(3, scale // 10) + 1))
        y, x = float(rng.uniform(0, h)), float(rng.uniform(0, w))
        angle = rng.uniform(0, 2 * np.pi)
        for _ in range(int(rng.integers(2, 7))):
            angle += rng.normal(0.0, 0.8)
            length = rng.uniform(0.05, 0.25) * scale
            ny = float(np.clip(y + length * np.sin(angle), 0, h - 1))
            nx = float(np.clip(x + length * np.cos(angle), 0, w - 1))
            cv2.line(layer, (int(x), int(y)), (int(nx), int(ny)), 1, width)
            cv2.circle(layer, (int(nx), int(ny)), width // 2, 1, -1)
            y, x = ny, nx
    else:
        axes = (int(rng.uniform(0.03, 0.18) * scale) + 1, int(rng.uniform(0.03, 0.18) * scale) + 1)
        center = (int(rng.uniform(0, w)), int(rng.uniform(0, h)))
        cv2.ellipse(layer, center, axes, float(rng.uniform(0, 180)), 0, 360, 1, -1)
    return layer
