"""ICT data: the palette a config names, and the token grids its transformer trains on.

A palette is named by a config either as a file (the official `kmeans_centers.npy` format, or one
written by tools/ict_palette.py) or as a recipe computed at setup:

    palette: pretrained/kmeans_centers.npy
    palette: {images: demo, k: 64, size: 16, seed: 0}    # k-means of the demo training images

A recipe is deterministic (seeded k-means, ppir.data.palette.palette_from_images), so training,
evaluation and prediction that name the same recipe get the same colours; its colours are
rounded to integers as a palette file's are when loaded.

`ICTTokenDataset` wraps an inpainting dataset built at the prior size (the official transformer
data: random square crop, PIL BILINEAR straight to s x s, NEAREST mask with random flips; see
ppir/data/masks.py `ict_transformer`) and adds `tokens` (int64, s*s, the nearest palette colour of
each ground-truth pixel) and `token_mask` (float32, s*s, 1 = missing) to every sample.

`ICTPriorDataset` wraps the upsampler's inpainting dataset (random square crop, PIL BICUBIC to
256, the `ict_upsampler` mask recipe) and adds `prior`, the degraded ground truth the official
upsampler trains on (`Guided_Upsample/src/degradation.py` prior_degradation_2): PIL BILINEAR down
to s x s, each pixel replaced by one of its `prior_random_degree` nearest palette colours (drawn
from the sample's seed), PIL BICUBIC back up to the image size.
"""
import os

import numpy as np
from PIL import Image

from ppir.data.image_io import to_uint8
from ppir.data.palette import (image_to_tokens, load_palette, mask_to_tokens, palette_from_images,
                               quantize, tokens_to_image)
from ppir.errors import ConfigError
from ppir.registry import DATASETS, HOST_STEPS

__all__ = ["resolve_palette", "prior_tokens", "ict_tokens", "ICTTokenDataset", "upsample_prior",
           "degraded_tokens", "ICTPriorDataset"]

_RECIPE_KEYS = {"images", "k", "size", "seed", "max_pixels", "iters"}
_computed = {}


def resolve_palette(spec, where="palette"):
    """(K, 3) float32 0..255 colours from a file path, a recipe mapping or an array."""
    if isinstance(spec, np.ndarray):
        return spec.astype(np.float32)
    if isinstance(spec, str):
        return load_palette(spec)
    if not isinstance(spec, dict) or "images" not in spec:
        raise ConfigError(f"{where}: expected a palette file (.npy) or a recipe "
                          f"{{images: FOLDER|demo, k, size, seed}}, got {spec!r}")
    unknown = sorted(set(spec) - _RECIPE_KEYS)
    if unknown:
        raise ConfigError(f"{where}: unknown palette recipe keys {', '.join(unknown)} "
                          f"(allowed: {', '.join(sorted(_RECIPE_KEYS))})")
    recipe = dict(spec)
    folder = recipe.pop("images")
    if folder == "demo":
        from ppir.data.demo import ensure_demo

        folder = os.path.join(ensure_demo("inpaint"), "train")
    key = (os.path.realpath(folder), tuple(sorted(recipe.items())))
    if key not in _computed:
        from ppir.data.inpainting_dataset import list_image_tree

        paths = [os.path.join(folder, name) for name in list_image_tree(folder)]
        colors, _ = palette_from_images(paths, **recipe)
        _computed[key] = np.rint(colors).astype(np.float32)
    return _computed[key]


def prior_tokens(image, mask, palette, size):
    """(tokens int64 (s*s,), missing float32 (s*s,)) of one CHW [0, 1] image and its 1xHxW mask
    (1 = hole), by the official tokenisation (ppir.data.palette)."""
    image = np.asarray(image, np.float32).transpose(1, 2, 0)
    return (image_to_tokens(image, palette, size),
            mask_to_tokens(np.asarray(mask, np.float32)[0], size))


@HOST_STEPS.register("ict_tokens")
def ict_tokens(sample, palette, size, source="target"):
    """Add `tokens` (the s x s palette tokens of `sample[source]`, a 3xHxW [0, 1] image) and
    `token_mask` (the mask at s x s, 1 = missing), both flattened to s*s."""
    sample["tokens"], sample["token_mask"] = prior_tokens(sample[source], sample["mask"],
                                                          resolve_palette(palette), size)
    return sample


@DATASETS.register("ICTTokenDataset")
class ICTTokenDataset:
    """An inpainting dataset (`dataset`, built at `prior_size`) plus its palette tokens.

    Args:
        dataset: the inner dataset spec, e.g. {name: InpaintingDataset, size: 32, preprocess:
            random_crop_resize, interpolation: pil_bilinear, hflip: true, mask_recipe:
            ict_transformer, ...}.
        palette: a palette file or recipe (see the module docstring).
        prior_size: s, the side of the token grid.
    """

    def __init__(self, dataset, palette, prior_size=32):
        if not isinstance(dataset, dict):
            raise ConfigError(f"ICTTokenDataset.dataset: expected a dataset spec, got {dataset!r}")
        from ppir.data import build_dataset

        self.inner = build_dataset(dataset, "ICTTokenDataset.dataset")
        self.palette = resolve_palette(palette, "ICTTokenDataset.palette")
        self.prior_size = int(prior_size)

    def __len__(self):
        return len(self.inner)

    def __getitem__(self, key):
        return ict_tokens(self.inner[key], self.palette, self.prior_size)

    def __getattr__(self, name):  # name(), eval_item(), images ... of the inner dataset
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)


def upsample_prior(tokens, palette, size, hw):
    """s*s tokens -> the prior as a 3xHxW float32 [0, 1] image: the s x s palette image (uint8,
    as the official code saves it) resized with PIL BICUBIC, as the upsampler reads it."""
    small = Image.fromarray(tokens_to_image(tokens, palette, size))
    big = small.resize((int(hw[1]), int(hw[0])), resample=Image.BICUBIC)
    return np.asarray(big, np.float32).transpose(2, 0, 1) / 255.0


def degraded_tokens(image, palette, size, k=1, rng=None):
    """Tokens (s*s,) of a CHW [0, 1] image shrunk with PIL BILINEAR, each pixel mapped to one of
    its k nearest palette colours drawn uniformly by `rng` (k = 1: the nearest, no draw).

    The official code measures the distances to the unrounded [-1, 1] centres; here the palette is
    the rounded 0..255 one, which can only differ for a pixel equidistant within rounding."""
    small = Image.fromarray(to_uint8(np.asarray(image).transpose(1, 2, 0))).resize(
        (size, size), resample=Image.BILINEAR)
    pixels = np.asarray(small, np.float32).reshape(-1, 3)
    if k <= 1:
        return quantize(pixels, palette)
    dist = ((pixels[:, None, :] - palette[None, :, :]) ** 2).sum(-1)
    nearest = np.argpartition(dist, k, axis=1)[:, :k]
    return nearest[np.arange(len(pixels)), rng.integers(0, k, len(pixels))]


@DATASETS.register("ICTPriorDataset")
class ICTPriorDataset:
    """An inpainting dataset (`dataset`) plus `prior`, its degraded ground-truth prior
    (3xHxW [0, 1]), for training and evaluating the guided upsampler.

    Args:
        dataset: the inner dataset spec (the official: size 256, random_crop_resize,
            pil_bicubic, hflip, mask_recipe ict_upsampler).
        palette: a palette file or recipe (see the module docstring).
        prior_size: s.
        prior_random_degree: K of the nearest-K quantisation (official default 1).
    """

    def __init__(self, dataset, palette, prior_size=32, prior_random_degree=1):
        if not isinstance(dataset, dict):
            raise ConfigError(f"ICTPriorDataset.dataset: expected a dataset spec, got {dataset!r}")
        from ppir.data import build_dataset

        self.inner = build_dataset(dataset, "ICTPriorDataset.dataset")
        self.palette = resolve_palette(palette, "ICTPriorDataset.palette")
        self.prior_size, self.k = int(prior_size), int(prior_random_degree)

    def __len__(self):
        return len(self.inner)

    def __getitem__(self, key):
        sample = self.inner[key]
        # Training samples draw from their seed; evaluation ones from their index (reproducible).
        rng = np.random.default_rng([int(sample.get("seed", sample["index"])), 29])
        tokens = degraded_tokens(sample["target"], self.palette, self.prior_size, self.k, rng)
        sample["prior"] = upsample_prior(tokens, self.palette, self.prior_size,
                                         sample["target"].shape[1:])
        return sample

    def __getattr__(self, name):
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)
