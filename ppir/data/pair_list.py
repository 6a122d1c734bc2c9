"""Whitespace-separated list files: CelebA's split file and the `image mask group` pair lists
of the reproducible inpainting test protocol (written by tools/make_inpaint_pairs.py and by the
demo data, read by InpaintingDataset's `mask_source: pairs`)."""
import os

import numpy as np

from ppir.errors import DataError


def read_fields(path, columns, what):
    """Tuples of len(columns) whitespace-separated fields, one per line; blank lines and `#`
    comments are skipped; a line with another field count is a DataError naming the line."""
    if not os.path.isfile(path):
        raise DataError(f"{what} not found: {path}")
    rows = []
    with open(path) as f:
        for lineno, line in enumerate(f, 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            fields = tuple(line.split())
            if len(fields) != len(columns):
                raise DataError(f"{path}:{lineno}: expected '{' '.join(columns)}', got {line!r}")
            rows.append(fields)
    return rows


def read_pairs(path):
    """Lines `image mask group` (blank lines and `#` comments skipped) -> list of 3-tuples."""
    pairs = read_fields(path, ("image", "mask", "group"), "pair list")
    if not pairs:
        raise DataError(f"pair list is empty: {path}")
    return pairs


def make_pairs(images, binned, seed=0, modulo=False):
    """[(image, mask, group)], bins in order, images in order within a bin."""
    rng = np.random.default_rng(seed)
    pairs = []
    for group, masks in binned.items():
        for i, image in enumerate(images):
            mask = masks[i % len(masks)] if modulo else masks[int(rng.integers(0, len(masks)))]
            pairs.append((image, mask, group))
    return pairs


def write_pairs(path, pairs, header=()):
    """Write `image mask group` lines (paths must not contain whitespace)."""
    for triple in pairs:
        if any(len(str(x).split()) != 1 for x in triple):
            raise DataError(f"cannot write pair {triple!r}: names must be non-empty and hold "
                            "no whitespace")
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    with open(path, "w") as f:
        for line in header:
            f.write(f"# {line}\n")
        for image, mask, group in pairs:
            f.write(f"{image} {mask} {group}\n")
