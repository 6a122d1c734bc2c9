"""Canny edge and gray inputs of CTSDG's structure stream, as the official data pipeline makes them.

The official dataset (xiefan-guo/ctsdg `datasets/dataset.py`, `utils/canny.py`) calls
`image_to_edge` on the image tensor *after* `Normalize((0.5,)*3, (0.5,)*3)`, i.e. in [-1, 1].
`ToPILImage` turns that float tensor into bytes with `x * 255` cast to uint8, so negative values
wrap modulo 256 (intensities 0, 64, 127, 128, 191 become 1, 130, 0, 1, 127). The gray image is
`skimage.color.rgb2gray` of those bytes and the edge map `skimage.feature.canny(gray, sigma)`.
The released weights were trained on this folded signal, so `official_wrap=True` (default)
reproduces it bit for bit; `official_wrap=False` gives the edges of the image itself.

The float -> uint8 cast of a negative value is undefined behaviour in C; on x86, where the
official models were trained, it truncates toward zero and wraps. It is written out explicitly
here so the result does not depend on the platform.
"""
import numpy as np
from skimage.color import rgb2gray
from skimage.feature import canny

from ppir.errors import DataError
from ppir.registry import HOST_STEPS


def _as_unit_float32(image):
    if image.dtype == np.uint8:
        return image.astype(np.float32) / np.float32(255)  # torchvision ToTensor
    return image.astype(np.float32, copy=False)


def official_uint8(image01):
    """The bytes the official `ToPILImage` sees: `(x - 0.5) / 0.5` in float32, times 255,
    truncated toward zero, modulo 256. `image01` is uint8 or float in [0, 1]."""
    x = _as_unit_float32(np.asarray(image01))
    folded = (x - np.float32(0.5)) / np.float32(0.5)
    scaled = np.trunc(folded * np.float32(255))
    return np.mod(scaled.astype(np.int64), 256).astype(np.uint8)


def canny_and_gray(image01_hwc, sigma=2.0, official_wrap=True):
    """Edge map and gray image (both HxW float32; edge in {0, 1}, gray in [0, 1]) of an RGB
    image given as HxWx3 uint8 or float in [0, 1].

    For a bit-exact match with the official pipeline pass the uint8 image (or float32
    `uint8 / 255`) after the official bilinear resize. `official_wrap=False` skips the
    [-1, 1] folding and works on the image's own bytes.
    """
    image = np.asarray(image01_hwc)
    if image.ndim != 3 or image.shape[2] != 3:
        raise DataError(f"canny_and_gray expects an HxWx3 RGB image, got shape {image.shape}")
    if official_wrap:
        data = official_uint8(image)
    elif image.dtype == np.uint8:
        data = image
    else:
        scaled = np.round(_as_unit_float32(image) * np.float32(255))
        data = np.clip(scaled, 0, 255).astype(np.uint8)
    gray = rgb2gray(data)  # float64 in [0, 1]
    edge = canny(gray, sigma=sigma)
    return edge.astype(np.float32), gray.astype(np.float32)


@HOST_STEPS.register("ctsdg_edges")
def ctsdg_edges(sample, source="target", sigma=2.0, official_wrap=True):
    """Host step: add `edge` (2xHxW float32: Canny edge map, gray image) computed from the
    sample's `source` image (CHW, [0, 1]); the network masks it with the known pixels itself.

    Training follows the official dataset and trainer: `source: target`, the edges of the whole
    ground truth, which the losses also compare against (`edge * mask` is only the generator's
    input). Deployment has no ground truth, so it uses `source: input`, the image with its holes
    zeroed: Canny then also finds the hole borders. The official test script feeds ground-truth
    edges times the mask, which a deployed model cannot do, so its scores are an upper bound of
    what the as-deployed evaluation measures.
    """
    if source not in sample:
        raise DataError(f"ctsdg_edges: the sample has no '{source}' image (it has {', '.join(sorted(sample))})")
    image = np.asarray(sample[source])
    if image.ndim != 3 or image.shape[0] != 3:
        raise DataError(f"ctsdg_edges: '{source}' must be a 3xHxW image, got shape {image.shape}")
    edge, gray = canny_and_gray(image.transpose(1, 2, 0), sigma=float(sigma),
                                official_wrap=bool(official_wrap))
    sample["edge"] = np.stack([edge, gray])
    return sample
