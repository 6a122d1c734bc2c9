"""The host side of an exported model: images and masks in (paths or arrays, any encoding),
the graph's inputs built from them, tiny inputs padded up, the output checked and turned back
into an image. Everything here is numpy; `ppir.inference.predictor` runs the graph in between.

One convention inside: an image is HxWx3 float32 RGB in [0, 1]; a mask is HxW float32 with
1 = hole. What comes in from users is converted once, here, and refused in one line when it
cannot be read without guessing.
"""
import os

import numpy as np

from ppir.data.host_steps import run_host_steps
from ppir.errors import DataError

# The smallest side any exported model is fed: smaller images are reflect-padded up to it (and
# cropped back). The inpainting networks reflect-pad by up to 3 pixels at a quarter of the
# input's resolution (EdgeConnect-style encoders), which a 7x5 photo cannot give.
MIN_SIDE = 32


def as_image(image, what="image"):
    """A path, or an HxWx3 / HxWx4 / HxW uint8, uint16 or float [0, 1] array -> HxWx3 float32 [0, 1]."""
    from ppir.data.image_io import read_image

    if isinstance(image, (str, os.PathLike)):
        return read_image(os.fspath(image))
    arr = np.asarray(image)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3 or arr.shape[2] not in (1, 3, 4) or min(arr.shape[:2]) < 1:
        raise DataError(f"{what}: expected an HxWx3 RGB array (or HxW, HxWx4), got shape {list(arr.shape)}")
    if arr.dtype == np.uint8:
        arr = arr.astype(np.float32) / 255.0
    elif arr.dtype == np.uint16:
        arr = arr.astype(np.float32) / 65535.0
    elif arr.dtype.kind == "f":
        if not np.isfinite(arr).all() or arr.min() < 0.0 or arr.max() > 1.0:
            raise DataError(f"{what}: a float image must hold finite values in [0, 1]")
        arr = arr.astype(np.float32)
    else:
        raise DataError(f"{what}: unsupported pixel type {arr.dtype} (expected uint8, uint16 or float in [0, 1])")
    if arr.shape[2] == 4:
        if arr[:, :, 3].min() < 1.0:
            raise DataError(f"{what}: transparent alpha channel; refusing to guess a background")
        arr = arr[:, :, :3]
    elif arr.shape[2] == 1:
        arr = np.repeat(arr, 3, axis=2)
    return np.ascontiguousarray(arr)


def as_mask(mask, hw, hole_value="white", what="mask"):
    """A path or an array (bool, 0/1, 0/255, 16-bit, gray or RGB/RGBA) -> HxW float32, 1 = hole.
    `hw` is the image's (H, W); a mask of another size is refused, and so is one that marks no
    hole at all (the output would silently equal the input)."""
    from ppir.data.masks import mask_from_array, read_mask

    if isinstance(mask, (str, os.PathLike)):
        out = read_mask(os.fspath(mask), hole_value, expect_hw=hw)
        where = os.fspath(mask)
    else:
        out = mask_from_array(np.asarray(mask), hole_value, what)
        where = what
        if tuple(out.shape) != tuple(hw):
            raise DataError(f"{what} is {out.shape[1]}x{out.shape[0]} but its image is {hw[1]}x{hw[0]}")
    if not out.any():
        raise DataError(f"{where} marks no hole (hole = {hole_value}); nothing to fill")
    return out


def host_sample(img, mask=None):
    """The host-side sample of one image (HWC [0, 1]) and its mask (HxW, 1 = hole): CHW arrays
    named as the data layer names them (`input` is the image with its holes zeroed)."""
    x = np.ascontiguousarray(img.transpose(2, 0, 1), dtype=np.float32)
    if mask is None:
        return {"input": x}
    m = np.ascontiguousarray(mask[None], dtype=np.float32)
    return {"input": x * (1.0 - m), "mask": m}


def graph_inputs(sample, spec):
    """The exported graph's inputs for one host sample, concatenated along channels (CHW):
    each input's `source` array (after the host steps ran) mapped from [0, 1] to its value range,
    a `1 = known` mask inverted. One array, so padding, tiling and batching treat every input
    alike; the predictor splits it by `spec['inputs']` channels."""
    sample = run_host_steps(sample, spec.get("host_steps"))
    parts = []
    for item in spec["inputs"]:
        if item["source"] not in sample:
            raise DataError(f"the model needs '{item['source']}' for input {item['name']}, which the host "
                            f"steps did not produce (inference.yml inputs/host_steps)")
        x = sample[item["source"]].astype(np.float32)
        if x.shape[0] != int(item["channels"]):
            raise DataError(f"input {item['name']} has {x.shape[0]} channels; the model takes {item['channels']}")
        if item.get("role") == "mask" and item.get("mask_convention") == "1 = known":
            x = 1.0 - x
        low, high = (float(v) for v in item.get("value_range", (0.0, 1.0)))
        if (low, high) != (0.0, 1.0):
            x = x * np.float32(high - low) + np.float32(low)
        parts.append(x)
    return np.ascontiguousarray(np.concatenate(parts, axis=0), dtype=np.float32)


def pad_small(img, mask, min_side=MIN_SIDE):
    """Reflect-pad an HWC image (and its HxW mask) at the bottom/right up to `min_side`; returns
    (img, mask, (h, w)) with the original size to crop back to. Padded pixels are known pixels,
    so they never widen a hole."""
    h, w = img.shape[:2]
    pad_h, pad_w = max(0, min_side - h), max(0, min_side - w)
    if not (pad_h or pad_w):
        return img, mask, (h, w)
    img = np.pad(img, ((0, pad_h), (0, pad_w), (0, 0)), mode="symmetric")
    if mask is not None:
        mask = np.pad(mask, ((0, pad_h), (0, pad_w)), mode="constant")
    return img, mask, (h, w)


def postprocess(out, spec, sample=None, what="the model"):
    """CHW model output -> HWC float32 in [0, 1] (clipped to the output's value range); with
    `output.composite`, known pixels come from the host sample's input (holes from the model).
    A non-finite output is refused: a NaN would otherwise be written as black."""
    if not np.isfinite(out).all():
        raise DataError(f"{what} produced non-finite values (NaN/inf); the weights or the export are broken")
    low, high = (float(v) for v in spec["output"].get("value_range", (0.0, 1.0)))
    img = (np.clip(out, low, high) - low) / (high - low)
    if spec["output"].get("composite") and sample is not None and "mask" in sample:
        m = sample["mask"]
        img = sample["input"] * (1.0 - m) + img * m
    return np.ascontiguousarray(img.transpose(1, 2, 0).astype(np.float32))
