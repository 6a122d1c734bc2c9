r"""Write the SIDD validation blocks (40 images x 32 blocks of 256x256) as PNG pairs.

    python tools/sidd_extract_val_blocks.py --noisy ValidationNoisyBlocksSrgb.mat \
        --gt ValidationGtBlocksSrgb.mat --dst data/SIDD/val

The official evaluation (`test_real_denoising_sidd.py` + `evaluate_sidd.m`) scores these 1280
blocks. Each .mat holds one uint8 RGB array [40, 32, 256, 256, 3] (keys
`ValidationNoisyBlocksSrgb` / `ValidationGtBlocksSrgb`). PNG is lossless, so metrics on the PNGs
equal metrics on the .mat arrays. Output:

    DST/input/<i:04d>-<j:04d>.png        (noisy block j of image i)
    DST/groundtruth/<i:04d>-<j:04d>.png  (its ground truth)
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from ppir.errors import DataError, run_cli  # noqa: E402

NOISY_KEY = "ValidationNoisyBlocksSrgb"
GT_KEY = "ValidationGtBlocksSrgb"


def load_blocks(path, key):
    """The uint8 [images, blocks, H, W, 3] array stored under `key` in the .mat file."""
    import numpy as np
    import scipy.io

    if not os.path.isfile(path):
        raise DataError(f"file not found: {path}")
    try:
        mat = scipy.io.loadmat(path)
    except NotImplementedError:
        raise DataError(f"{path}: MATLAB v7.3 (HDF5) files are not supported; re-save as v7") \
            from None
    except Exception as exc:
        raise DataError(f"{path}: not a readable .mat file: {exc}") from None
    if key not in mat:
        keys = [k for k in mat if not k.startswith("__")]
        raise DataError(f"{path}: key '{key}' not found; keys present: {', '.join(keys)}")
    blocks = mat[key]
    if blocks.ndim != 5 or blocks.shape[-1] != 3 or blocks.dtype != np.uint8:
        raise DataError(f"{path}: '{key}' must be uint8 [images, blocks, H, W, 3], got "
                        f"{blocks.dtype} {list(blocks.shape)}")
    return blocks


def extract(noisy_mat, gt_mat, dst):
    """Write every block pair; returns the number of pairs written."""
    import cv2

    noisy = load_blocks(noisy_mat, NOISY_KEY)
    gt = load_blocks(gt_mat, GT_KEY)
    if noisy.shape != gt.shape:
        raise DataError(f"{noisy_mat} {list(noisy.shape)} and {gt_mat} {list(gt.shape)} "
                        f"have different shapes")
    for sub in ("input", "groundtruth"):
        os.makedirs(os.path.join(dst, sub), exist_ok=True)
    n_img, n_blk = noisy.shape[:2]
    for i in range(n_img):
        for j in range(n_blk):
            name = f"{i:04d}-{j:04d}.png"
            for sub, arr in (("input", noisy), ("groundtruth", gt)):
                path = os.path.join(dst, sub, name)
                # The .mat arrays are RGB; OpenCV writes BGR.
                if not cv2.imwrite(path, cv2.cvtColor(arr[i, j], cv2.COLOR_RGB2BGR)):
                    raise DataError(f"cannot write {path}")
    return n_img * n_blk


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--noisy", required=True, help="ValidationNoisyBlocksSrgb.mat")
    parser.add_argument("--gt", required=True, help="ValidationGtBlocksSrgb.mat")
    parser.add_argument("--dst", required=True, help="output folder; gets input/ and groundtruth/")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    n = extract(args.noisy, args.gt, args.dst)
    print(f"wrote {n} block pairs to {args.dst}")
    return 0


if __name__ == "__main__":
    run_cli(main)
