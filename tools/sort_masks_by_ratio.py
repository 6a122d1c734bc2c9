r"""Copy a folder of inpainting masks into hole-ratio bin sub-folders.

    python tools/sort_masks_by_ratio.py --src testing_mask_dataset --out masks_by_ratio \
        --bins 0,0.2,0.4,0.6 --hole-value white

Writes `OUT/<bin>/<name>` (e.g. `OUT/20%-40%/00012.png`) for every mask whose hole ratio, at the
file's own size, falls in a bin (bins are [lo, hi), the last one closed); masks outside every bin
are counted and left out. The source folder is only read: `--out` may not be inside it.
"""
import argparse
import os
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from ppir.data.masks import (DEFAULT_BIN_EDGES, bin_names, check_bin_edges, hole_ratio,  # noqa: E402
                             list_masks, ratio_bin, read_mask)
from ppir.errors import DataError, run_cli  # noqa: E402


def sort_masks(src, out, edges=DEFAULT_BIN_EDGES, hole_value="white", threshold=0.5):
    """Copy masks into bin folders; returns ({bin: count}, number left out)."""
    src_real, out_real = os.path.realpath(src), os.path.realpath(out)
    if out_real == src_real or out_real.startswith(src_real + os.sep):
        raise DataError(f"--out {out} is inside the source folder {src}; choose a folder outside it")
    paths = list_masks(src)
    counts = {b: 0 for b in bin_names(edges)}
    skipped = 0
    for path in paths:
        group = ratio_bin(hole_ratio(read_mask(path, hole_value, threshold)), edges)
        if group is None:
            skipped += 1
            continue
        dst = os.path.join(out, group, os.path.relpath(path, src))
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        shutil.copyfile(path, dst)
        counts[group] += 1
    return counts, skipped


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--src", required=True, help="mask folder (read only)")
    parser.add_argument("--out", required=True, help="output folder, outside --src")
    parser.add_argument("--bins", default=",".join(f"{e:g}" for e in DEFAULT_BIN_EDGES),
                        help="hole-ratio bin edges, comma separated (default %(default)s)")
    parser.add_argument("--hole-value", choices=("white", "black"), default="white",
                        help="hole colour in the files (NVIDIA test masks: white)")
    parser.add_argument("--threshold", type=float, default=0.5)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    edges = check_bin_edges(args.bins.split(","), "--bins")
    counts, skipped = sort_masks(args.src, args.out, edges, args.hole_value, args.threshold)
    summary = ", ".join(f"{b}: {n}" for b, n in counts.items())
    print(f"{args.out}: {summary}; {skipped} outside every bin, not copied")
    return 0


if __name__ == "__main__":
    run_cli(main)
