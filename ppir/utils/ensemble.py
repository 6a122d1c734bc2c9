"""x8 geometric self-ensemble: run `fn` on the 8 flips/rotations of an image and average.

The eight transforms are the dihedral group of the square: k = 0..7 means "flip W if k >= 4,
then rotate by (k % 4) * 90 degrees in the H-W plane". Each output is mapped back with the
inverse (rotate back, then flip back) before averaging, in float64.

Rotations swap H and W, so `fn` must accept both orientations: pad to the network's size
multiple before calling (or let `fn` pad), as `deploy/infer.py` and `tools/eval.py` do.
Works on NCHW numpy arrays and paddle tensors; the result has the input's type and dtype.
"""
import numpy as np

from ppir.utils.tiling import is_paddle_tensor, to_numpy

NUM_TRANSFORMS = 8


def transform(img, k):
    """Apply the k-th dihedral transform (0 = identity) to an NCHW array or tensor."""
    flip, rot = k >= 4, k % 4
    if is_paddle_tensor(img):
        import paddle

        if flip:
            img = paddle.flip(img, axis=[3])
        return paddle.rot90(img, k=rot, axes=[2, 3]) if rot else img
    if flip:
        img = img[:, :, :, ::-1]
    if rot:
        img = np.rot90(img, k=rot, axes=(2, 3))
    return np.ascontiguousarray(img)


def inverse_transform(img, k):
    """Undo `transform(., k)`: rotate back first, then flip back."""
    flip, rot = k >= 4, k % 4
    if is_paddle_tensor(img):
        import paddle

        if rot:
            img = paddle.rot90(img, k=4 - rot, axes=[2, 3])
        return paddle.flip(img, axis=[3]) if flip else img
    if rot:
        img = np.rot90(img, k=4 - rot, axes=(2, 3))
    if flip:
        img = img[:, :, :, ::-1]
    return np.ascontiguousarray(img)


def ensemble_forward(fn, img):
    """Mean of `inverse_transform(fn(transform(img, k)), k)` over the 8 transforms."""
    total = None
    dtype = None
    for k in range(NUM_TRANSFORMS):
        out = to_numpy(inverse_transform(fn(transform(img, k)), k))
        if total is None:
            dtype = out.dtype
            total = np.zeros(out.shape, dtype=np.float64)
        total += out
    mean = (total / NUM_TRANSFORMS).astype(dtype)
    if is_paddle_tensor(img):
        import paddle

        return paddle.to_tensor(mean, place=img.place)
    return mean
