"""ICT's colour palette and token grid: image <-> s x s palette tokens, mask -> missing positions.

The official code (raywzy/ICT `Transformer/inference.py`, `Transformer/datas/dataset.py`) reads
`kmeans_centers.npy`, the 512 k-means colours of OpenAI's iGPT stored as (K, 3) float32 in
[-1, 1], and uses them as `rint(127.5 * (C + 1))` in 0..255. Then:

* an image (PIL RGB) is resized to s x s with PIL BILINEAR (which low-pass filters when
  downsampling, unlike cv2's INTER_LINEAR) and each pixel becomes the index of the nearest palette
  colour (squared RGB distance in 0..255, first index on ties);
* a mask (PIL "L") is resized with PIL NEAREST and `value / 255 > 0.5` marks a missing position
  (1 = missing, the ICT convention);
* tokens come back as `C[tokens]` reshaped to s x s x 3 and cast to uint8.

The functions below reproduce these steps exactly (all distances are integers, exact in
float32, so the argmin agrees with the official torch code bit for bit). `kmeans_palette` builds a
palette in the same format from one's own pixels, for training from scratch.
"""
import os

import numpy as np
from PIL import Image

from ppir.data.image_io import to_uint8
from ppir.errors import DataError

__all__ = ["load_palette", "palette_to_file_format", "quantize", "image_to_tokens",
           "mask_to_tokens", "tokens_to_image", "kmeans_palette", "palette_from_images"]


def load_palette(path):
    """Read an official-format palette (.npy, (K, 3) floats in [-1, 1]) as float32 0..255 colours,
    `rint(127.5 * (C + 1))` as the official code uses them."""
    if not os.path.isfile(path):
        raise DataError(f"palette file not found: {path}")
    try:
        centers = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise DataError(f"{path}: not a .npy array ({exc})") from None
    if centers.ndim != 2 or centers.shape[1] != 3 or centers.shape[0] < 1 \
            or centers.dtype.kind != "f":
        raise DataError(f"{path}: expected a (K, 3) float array of palette colours, got "
                        f"{centers.dtype} {list(centers.shape)}")
    if not np.isfinite(centers).all() or centers.min() < -1 or centers.max() > 1:
        raise DataError(f"{path}: palette values must lie in [-1, 1] (the iGPT "
                        f"kmeans_centers.npy format), got [{centers.min()}, {centers.max()}]")
    # float32 throughout, as in the official code (np.rint of a float32 array).
    return np.rint(127.5 * (centers.astype(np.float32) + 1.0)).astype(np.float32)


def palette_to_file_format(colors):
    """0..255 colours -> the (K, 3) float32 [-1, 1] array stored in kmeans_centers.npy."""
    return (np.asarray(colors, np.float32) / 127.5 - 1.0).astype(np.float32)


def quantize(pixels, palette):
    """Index of the nearest palette colour for each RGB pixel (..., 3) in 0..255 -> int64 (...)."""
    pixels = np.asarray(pixels, np.float32)
    flat = pixels.reshape(-1, 3)
    out = np.empty(len(flat), np.int64)
    step = 4096  # bounds the (step, K, 3) temporary
    for start in range(0, len(flat), step):
        chunk = flat[start:start + step]
        dist = ((chunk[:, None, :] - palette[None, :, :]) ** 2).sum(-1)
        out[start:start + step] = dist.argmin(1)
    return out.reshape(pixels.shape[:-1])


def _to_pil(image, mode, what):
    if isinstance(image, Image.Image):
        return image.convert(mode)
    arr = np.asarray(image)
    if arr.dtype.kind == "f":  # ppir's float [0, 1] images (ppir.data.image_io)
        arr = to_uint8(arr)
    if arr.dtype != np.uint8 or arr.ndim not in (2, 3) or \
            (arr.ndim == 3 and arr.shape[2] not in (1, 3)):
        raise DataError(f"{what}: expected an HxW or HxWx3 uint8 (or float [0, 1]) array, got "
                        f"{arr.dtype} {list(arr.shape)}")
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    return Image.fromarray(arr).convert(mode)


def image_to_tokens(image, palette, size):
    """An RGB image (PIL image, HxWx3 uint8, or float in [0, 1]) -> int64 tokens (size*size,),
    through PIL BILINEAR resizing to size x size and the nearest palette colour."""
    small = _to_pil(image, "RGB", "image").resize((size, size), resample=Image.BILINEAR)
    return quantize(np.asarray(small), palette).reshape(-1)


def mask_to_tokens(mask, size):
    """A mask (PIL image or HxW[x3] array, 255 / 1.0 = hole) -> float32 (size*size,) with
    1 = missing, through PIL "L" conversion, NEAREST resizing and `value / 255 > 0.5`."""
    small = _to_pil(mask, "L", "mask").resize((size, size), resample=Image.NEAREST)
    return (np.asarray(small) / 255.0 > 0.5).astype(np.float32).reshape(-1)


def tokens_to_image(tokens, palette, size):
    """int tokens (size*size,) or (size, size) -> size x size x 3 uint8 RGB image."""
    tokens = np.asarray(tokens)
    if tokens.size != size * size:
        raise DataError(f"expected {size * size} tokens for a {size}x{size} grid, got "
                        f"{tokens.size}")
    if tokens.min() < 0 or tokens.max() >= len(palette):
        raise DataError(f"token ids must lie in [0, {len(palette)}), got "
                        f"[{tokens.min()}, {tokens.max()}]")
    return palette[tokens.reshape(-1)].reshape(size, size, 3).astype(np.uint8)


def kmeans_palette(pixels, k=512, seed=0, iters=20):
    """k-means colours of RGB pixels (N, 3) in 0..255 -> (k, 3) float32 0..255, sorted
    lexicographically by (R, G, B) so that token ids do not depend on the cluster labelling.

    Seeded k-means++ initialisation, then Lloyd iterations; an emptied cluster is re-seeded on
    the pixel farthest from its centre. Deterministic for a given (pixels, k, seed, iters).
    """
    pixels = np.asarray(pixels, np.float64).reshape(-1, 3)
    if len(pixels) < k:
        raise DataError(f"k-means needs at least k={k} pixels, got {len(pixels)}")
    rng = np.random.default_rng(seed)
    centers = np.empty((k, 3))
    centers[0] = pixels[rng.integers(len(pixels))]
    nearest = ((pixels - centers[0]) ** 2).sum(1)
    for i in range(1, k):
        total = nearest.sum()
        j = rng.choice(len(pixels), p=nearest / total) if total > 0 else rng.integers(len(pixels))
        centers[i] = pixels[j]
        nearest = np.minimum(nearest, ((pixels - centers[i]) ** 2).sum(1))
    for _ in range(iters):
        labels = quantize(pixels, centers.astype(np.float32))
        dist = ((pixels - centers[labels]) ** 2).sum(1)
        counts = np.bincount(labels, minlength=k)
        sums = np.zeros((k, 3))
        np.add.at(sums, labels, pixels)
        for c in np.flatnonzero(counts == 0):
            far = int(dist.argmax())
            sums[c], counts[c], dist[far] = pixels[far], 1, 0.0
        centers = sums / counts[:, None]
    order = np.lexsort(centers.T[::-1])
    return centers[order].astype(np.float32)


def palette_from_images(paths, k=512, size=32, max_pixels=1_000_000, seed=0, iters=20):
    """k-means palette (k, 3) float32 0..255 of the pixels of `paths` resized to size x size with
    PIL BILINEAR (as the tokeniser sees them; size 0 keeps full resolution), at most `max_pixels`
    of them drawn with `seed`. Deterministic for given arguments."""
    from ppir.data.image_io import read_image

    pixels = []
    for path in paths:
        img = Image.fromarray(to_uint8(read_image(path)))
        if size:
            img = img.resize((size, size), resample=Image.BILINEAR)
        pixels.append(np.asarray(img).reshape(-1, 3))
    pixels = np.concatenate(pixels)
    if len(pixels) > max_pixels:
        rng = np.random.default_rng(seed)
        pixels = pixels[np.sort(rng.choice(len(pixels), max_pixels, replace=False))]
    return kmeans_palette(pixels, k=k, seed=seed, iters=iters), len(pixels)
