r"""Write the reproducible test pairing of an inpainting set: one `image mask group` line per pair.

    python tools/make_inpaint_pairs.py --root data/celeba --layout celeba --split test \
        --masks data/nvidia_test_masks_by_ratio --out data/celeba/test_pairs.txt --seed 0

Every image gets one mask from every ratio bin (a random file of that bin, drawn from `--seed`),
so a bin's score covers the whole test set. `--masks` is either a folder sorted into bin
sub-folders (`0%-20%/`, ... as tools/sort_masks_by_ratio.py or MISF's mask-test make them) or a
flat folder, which is binned here by each file's hole ratio at its own size. `--modulo` pairs
image i with file i % n of every bin instead (MISF's per-bin test runs). Image names are relative
to the layout's image folder, mask names to `--masks`; the dataset reads the list with
`mask_source: pairs` (`pairs: <file>`, `mask_root: <--masks>`).
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from ppir.data.inpainting_dataset import LAYOUTS, find_images  # noqa: E402
from ppir.data.masks import (DEFAULT_BIN_EDGES, bin_names, check_bin_edges, hole_ratio,  # noqa: E402
                             list_masks, ratio_bin, read_mask)
from ppir.data.pair_list import make_pairs, write_pairs  # noqa: E402
from ppir.errors import DataError, run_cli  # noqa: E402


def masks_by_bin(mask_root, edges, hole_value="white", threshold=0.5):
    """{bin name: [mask path relative to mask_root]} from bin folders or from the files' ratios."""
    names = bin_names(edges)
    if all(os.path.isdir(os.path.join(mask_root, b)) for b in names):
        return {b: [os.path.relpath(p, mask_root) for p in list_masks(os.path.join(mask_root, b))]
                for b in names}
    binned = {b: [] for b in names}
    for path in list_masks(mask_root):
        group = ratio_bin(hole_ratio(read_mask(path, hole_value, threshold)), edges)
        if group is not None:
            binned[group].append(os.path.relpath(path, mask_root))
    empty = [b for b in names if not binned[b]]
    if empty:
        raise DataError(f"{mask_root}: no mask with a hole ratio in bin(s) {', '.join(empty)}")
    return binned


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", required=True, help="dataset folder")
    parser.add_argument("--layout", choices=LAYOUTS, default="folder")
    parser.add_argument("--split", default=None, help="celeba: test/val/train; misf: test/valid")
    parser.add_argument("--image-dir", default=None, help="folder layout: images sub-folder")
    parser.add_argument("--masks", required=True, help="test mask folder (binned or flat)")
    parser.add_argument("--out", required=True, help="pair list to write")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--bins", default=",".join(f"{e:g}" for e in DEFAULT_BIN_EDGES),
                        help="hole-ratio bin edges, comma separated (default %(default)s)")
    parser.add_argument("--hole-value", choices=("white", "black"), default="white")
    parser.add_argument("--threshold", type=float, default=0.5)
    parser.add_argument("--modulo", action="store_true", help="image i gets mask i %% n")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    edges = check_bin_edges(args.bins.split(","), "--bins")
    _, images = find_images(args.root, args.layout, args.split, args.image_dir)
    binned = masks_by_bin(args.masks, edges, args.hole_value, args.threshold)
    pairs = make_pairs(images, binned, args.seed, args.modulo)
    write_pairs(args.out, pairs, header=[
        f"made by tools/make_inpaint_pairs.py --seed {args.seed} --bins {args.bins}"
        f"{' --modulo' if args.modulo else ''}", "image mask group"])
    counts = ", ".join(f"{b}: {len(m)} masks" for b, m in binned.items())
    print(f"{args.out}: {len(pairs)} pairs ({len(images)} images x {len(binned)} bins; {counts})")
    return 0


if __name__ == "__main__":
    run_cli(main)
