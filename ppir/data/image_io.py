"""Reading and writing images: RGB, float32, HWC, values in [0, 1].

What is converted and what is refused (one place, so every entry point behaves the same):
* 8-bit and 16-bit images are scaled by 255 and 65535 (16-bit DPDD-style data keeps its precision);
* a grayscale image is repeated into three channels;
* an RGBA image whose alpha is fully opaque loses its alpha; a transparent one is refused,
  because there is no right colour to put behind it;
* anything else (float TIFFs, 2-channel images) is refused with the file named.
"""
import os

import cv2
import numpy as np

from ppir.errors import DataError
from ppir.utils.paths import describe_os_error, write_atomic

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


def is_image_file(name):
    return name.lower().endswith(IMAGE_EXTENSIONS)


def imread_unchanged(path, what="image"):
    """cv2.imread(IMREAD_UNCHANGED) with a DataError naming the file if it is missing or corrupt."""
    if not os.path.isfile(path):
        raise DataError(f"{what} not found: {path}")
    data = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    if data is None:
        raise DataError(f"cannot decode {what} (corrupt or unsupported format): {path}")
    return data


def read_image(path):
    """Read an image file as RGB float32 HWC in [0, 1]; raise DataError naming the file otherwise."""
    data = imread_unchanged(path)
    if data.dtype == np.uint8:
        img = data.astype(np.float32) / 255.0
    elif data.dtype == np.uint16:
        img = data.astype(np.float32) / 65535.0
    else:
        raise DataError(f"unsupported pixel type {data.dtype} (expected 8- or 16-bit): {path}")
    if img.ndim == 2:
        img = np.repeat(img[:, :, None], 3, axis=2)
    elif img.shape[2] == 4:
        if img[:, :, 3].min() < 1.0:
            raise DataError(f"image has a transparent alpha channel, refusing to guess a background: {path}")
        img = cv2.cvtColor(img[:, :, :3], cv2.COLOR_BGR2RGB)
    elif img.shape[2] == 3:
        img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    elif img.shape[2] == 1:
        img = np.repeat(img, 3, axis=2)
    else:
        raise DataError(f"unsupported channel count {img.shape[2]} (expected 1, 3 or 4): {path}")
    return np.ascontiguousarray(img)


def to_uint8(img):
    """Float [0, 1] -> uint8 with rounding (the convention of every official test script)."""
    return (np.clip(img, 0.0, 1.0) * 255.0).round().astype(np.uint8)


def write_image(path, img):
    """Write an RGB float [0, 1] HWC image (or uint8) as 8-bit; the write goes through a temp file."""
    if img.dtype != np.uint8:
        img = to_uint8(img)
    folder = os.path.dirname(os.path.abspath(path))
    ext = os.path.splitext(path)[1] or ".png"
    ok, buf = cv2.imencode(ext, cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
    if not ok:
        raise DataError(f"cannot encode image as {ext}: {path}")
    try:
        os.makedirs(folder, exist_ok=True)
        write_atomic(path, buf.tobytes())
    except OSError as exc:
        raise DataError(f"cannot write {path} (folder {folder}): {describe_os_error(exc)}") from None


def list_images(folder):
    """Sorted image file names in a folder; DataError if it is missing or holds none."""
    if not os.path.isdir(folder):
        raise DataError(f"folder not found: {folder}")
    names = sorted(n for n in os.listdir(folder) if is_image_file(n))
    if not names:
        raise DataError(f"no images in folder: {folder}")
    return names
