r"""Build an ICT colour palette (kmeans_centers.npy format) from an image folder.

    python tools/ict_palette.py --images data/places2/train --out palette.npy --k 512 --size 32

The released models use the 512 colours of OpenAI's iGPT (`kmeans_centers.npy` in raywzy/ICT);
use this tool only to train a transformer from scratch on other data. Images (searched
recursively) are resized to --size x --size with PIL BILINEAR, as the tokeniser does, their
pixels pooled, at most --max-pixels of them drawn with --seed, and clustered by seeded k-means
(numpy only). The output is (K, 3) float32 in [-1, 1], the official file format.
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from ppir.errors import DataError, run_cli  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", required=True, help="folder of images (searched recursively)")
    parser.add_argument("--out", required=True, help="output .npy palette")
    parser.add_argument("--k", type=int, default=512, help="number of colours (vocab_size)")
    parser.add_argument("--size", type=int, default=32,
                        help="resize every image to SIZE x SIZE first (0 keeps full resolution)")
    parser.add_argument("--max-pixels", type=int, default=1_000_000,
                        help="random subset of pixels clustered")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--iters", type=int, default=20, help="Lloyd iterations")
    return parser.parse_args(argv)


def image_paths(folder):
    from ppir.data.image_io import is_image_file

    if not os.path.isdir(folder):
        raise DataError(f"folder not found: {folder}")
    paths = []
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        paths += [os.path.join(root, n) for n in sorted(files) if is_image_file(n)]
    if not paths:
        raise DataError(f"no images in folder: {folder}")
    return paths


def main(argv=None):
    args = parse_args(argv)
    import numpy as np

    from ppir.data.palette import palette_from_images, palette_to_file_format

    colors, n_pixels = palette_from_images(image_paths(args.images), k=args.k, size=args.size,
                                           max_pixels=args.max_pixels, seed=args.seed,
                                           iters=args.iters)
    folder = os.path.dirname(os.path.abspath(args.out))
    os.makedirs(folder, exist_ok=True)
    np.save(args.out, palette_to_file_format(colors))
    print(f"{args.k} colours from {n_pixels:,} pixels -> {args.out}")
    return 0


if __name__ == "__main__":
    run_cli(main)
