"""Per-sample and per-batch augmentations, each driven by an explicit numpy Generator.

Randomness never comes from global state: the sampler hands every sample its own seed, derived
from (run seed, iteration, position). That makes the data stream a pure function of the iteration,
so a resumed run sees exactly the batches an uninterrupted run would have seen.
"""
import cv2
import numpy as np

from ppir.errors import DataError

# Resize filters by library: PIL and cv2 give different pixels for the same filter name.
INTERPOLATIONS = ("pil_nearest", "pil_bilinear", "pil_bicubic", "cv2_nearest", "cv2_linear")


def paired_random_crop(inp, tgt, size, rng, names=("input", "target")):
    """Cut the same random `size` x `size` window from both HWC images."""
    h, w = inp.shape[:2]
    if h < size or w < size:
        raise DataError(f"{names[0]} is {h}x{w}, smaller than the training patch {size}")
    top = int(rng.integers(0, h - size + 1))
    left = int(rng.integers(0, w - size + 1))
    return (inp[top:top + size, left:left + size], tgt[top:top + size, left:left + size])


def dihedral(img, mode):
    """One of the 8 flip/rotation variants (mode 0 is the identity), as MIRNetV2's training uses."""
    if mode >= 4:
        img = img[:, ::-1]
    return np.rot90(img, k=mode % 4)


def random_dihedral(inp, tgt, rng):
    mode = int(rng.integers(0, 8))
    return dihedral(inp, mode), dihedral(tgt, mode)


def random_hflip(inp, tgt, rng):
    """Horizontal flip with probability 1/2 (MIMO-UNet's only augmentation besides the crop)."""
    if rng.random() < 0.5:
        return inp[:, ::-1], tgt[:, ::-1]
    return inp, tgt


def square_crop_box(h, w, crop, rng=None):
    """(top, left, side) of the square window `crop` ('center' or 'random') takes from HxW."""
    side = min(h, w)
    if crop == "random":
        top = int(rng.integers(0, h - side + 1))
        left = int(rng.integers(0, w - side + 1))
    else:
        top, left = (h - side) // 2, (w - side) // 2
    return top, left, side


def resize_uint8(img, size, interpolation):
    """Resize uint8 HxWxC to size x size with the named library and filter.

    PIL filters antialias when shrinking and place samples at pixel centres; cv2's do neither,
    so the two libraries give different pixels: each recipe names the one its official code used.
    """
    if img.shape[0] == size and img.shape[1] == size:
        return img
    if interpolation.startswith("pil_"):
        from PIL import Image

        resample = {"pil_nearest": Image.NEAREST, "pil_bilinear": Image.BILINEAR,
                    "pil_bicubic": Image.BICUBIC}[interpolation]
        pil = Image.fromarray(img[:, :, 0] if img.shape[2] == 1 else img)
        out = np.asarray(pil.resize((size, size), resample=resample))
    else:
        flag = {"cv2_nearest": cv2.INTER_NEAREST, "cv2_linear": cv2.INTER_LINEAR}[interpolation]
        out = cv2.resize(img, (size, size), interpolation=flag)
    return out.reshape(size, size, -1)


class Mixup:
    """MIRNetV2's batch mixup: lambda ~ Beta(beta, beta), partner = a random permutation of the batch.

    With `use_identity` the official code draws between {mixup, identity}, so mixup happens for
    half of the batches. Input and target are mixed with the same lambda and partner.
    """

    def __init__(self, beta=1.2, use_identity=True):
        self.beta = beta
        self.use_identity = use_identity

    def __call__(self, inp, tgt, rng):
        if self.use_identity and rng.integers(0, 2) == 1:
            return inp, tgt
        lam = np.float32(rng.beta(self.beta, self.beta))
        perm = rng.permutation(inp.shape[0])
        return lam * inp + (1 - lam) * inp[perm], lam * tgt + (1 - lam) * tgt[perm]
