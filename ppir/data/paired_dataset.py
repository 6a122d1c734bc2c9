"""Paired image folders: a degraded input and its clean target under the same file name.

Two layouts are read without conversion:
* flat (SIDD patches, GoPro flattened): `root/<input_dir>/x.png` + `root/<target_dir>/x.png`;
* scene (GoPro as released): `root/<scene>/<input_dir>/x.png` + `root/<scene>/<target_dir>/x.png`.
"""
import os

import numpy as np

from ppir.data.image_io import list_images, read_image
from ppir.data.transforms import paired_random_crop, random_dihedral, random_hflip
from ppir.errors import DataError
from ppir.registry import DATASETS


def _pair_folder(in_dir, tgt_dir):
    inputs, targets = list_images(in_dir), list_images(tgt_dir)
    missing = sorted(set(inputs) - set(targets))
    if missing:
        raise DataError(f"no target for input {os.path.join(in_dir, missing[0])} "
                        f"(expected {os.path.join(tgt_dir, missing[0])}; {len(missing)} unpaired)")
    extra = sorted(set(targets) - set(inputs))
    if extra:
        raise DataError(f"no input for target {os.path.join(tgt_dir, extra[0])} "
                        f"(expected {os.path.join(in_dir, extra[0])}; {len(extra)} unpaired)")
    return [(os.path.join(in_dir, n), os.path.join(tgt_dir, n)) for n in inputs]


def find_pairs(root, input_dir, target_dir):
    """List (input_path, target_path) pairs in the flat or the scene layout."""
    if not os.path.isdir(root):
        raise DataError(f"dataset folder not found: {root}")
    flat_in, flat_tgt = os.path.join(root, input_dir), os.path.join(root, target_dir)
    if os.path.isdir(flat_in) or os.path.isdir(flat_tgt):
        return _pair_folder(flat_in, flat_tgt)
    scenes = sorted(d for d in os.listdir(root)
                    if os.path.isdir(os.path.join(root, d, input_dir)))
    if not scenes:
        raise DataError(f"{root} holds neither {input_dir}/ and {target_dir}/ nor "
                        f"<scene>/{input_dir}/ folders")
    pairs = []
    for scene in scenes:
        pairs += _pair_folder(os.path.join(root, scene, input_dir), os.path.join(root, scene, target_dir))
    return pairs


@DATASETS.register("PairedImageDataset")
class PairedImageDataset:
    """Pairs of RGB images in [0, 1], returned as CHW float32 arrays.

    Training samples are requested as `(index, patch_size, seed)` by the iteration sampler, which
    crops `patch_size` windows and augments with a generator seeded by `seed`. An integer index
    returns the whole image pair untouched (evaluation).
    """

    def __init__(self, root, input_dir="input", target_dir="groundtruth",
                 geometric_augs=False, hflip=False):
        self.root = root
        self.pairs = find_pairs(root, input_dir, target_dir)
        self.geometric_augs = geometric_augs
        self.hflip = hflip

    def __len__(self):
        return len(self.pairs)

    def name(self, index):
        return os.path.relpath(self.pairs[index][0], self.root)

    def load_pair(self, index):
        in_path, tgt_path = self.pairs[index]
        inp, tgt = read_image(in_path), read_image(tgt_path)
        if inp.shape != tgt.shape:
            raise DataError(f"size mismatch: {in_path} is {inp.shape[1]}x{inp.shape[0]} but "
                            f"{tgt_path} is {tgt.shape[1]}x{tgt.shape[0]}")
        return inp, tgt

    def __getitem__(self, key):
        if isinstance(key, (tuple, list)):
            index, patch_size, seed = key
        else:
            index, patch_size, seed = key, None, None
        inp, tgt = self.load_pair(index)
        if seed is not None:
            rng = np.random.default_rng(seed)
            if patch_size:
                inp, tgt = paired_random_crop(inp, tgt, patch_size, rng, self.pairs[index])
            if self.geometric_augs:
                inp, tgt = random_dihedral(inp, tgt, rng)
            if self.hflip:
                inp, tgt = random_hflip(inp, tgt, rng)
        sample = {
            "input": np.ascontiguousarray(inp.transpose(2, 0, 1)),
            "target": np.ascontiguousarray(tgt.transpose(2, 0, 1)),
            "index": np.int64(index),
        }
        if seed is not None:
            sample["seed"] = np.int64(seed % (1 << 62))
        return sample


@DATASETS.register("DemoPairedDataset")
class DemoPairedDataset(PairedImageDataset):
    """A split of the embedded demo data (ppir/data/demo.py), generated on first use.

    `root=None` uses the cache folder ($PPIR_CACHE/demo/<kind> or ~/.cache/ppir/demo/<kind>).
    """

    def __init__(self, kind, split, root=None, seed=0, input_dir=None, target_dir=None,
                 geometric_augs=False, hflip=False):
        from ppir.data.demo import PAIR_DIRS, ensure_demo

        default_in, default_tgt = PAIR_DIRS.get(kind, (None, None))
        root = ensure_demo(kind, root, seed)
        super().__init__(os.path.join(root, split), input_dir or default_in, target_dir or default_tgt,
                         geometric_augs=geometric_augs, hflip=hflip)
