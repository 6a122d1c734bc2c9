"""Flatten the GoPro dataset (GOPRO_Large) into numbered blur/sharp pairs.

    python tools/prepare_gopro.py --src GOPRO_Large --dst GOPRO_flat [--link hard|sym] [--naming scene]

Input, as published (Nah et al., CVPR 2017):   Output:
    GOPRO_Large/train/GOPR0372_07_00/blur/*.png     GOPRO_flat/train/blur/1.png ... 2103.png
    GOPRO_Large/train/GOPR0372_07_00/sharp/*.png    GOPRO_flat/train/sharp/1.png ... 2103.png
    GOPRO_Large/test/...                            GOPRO_flat/test/{blur,sharp}/1.png ... 1111.png
                                                    GOPRO_flat/{train,test}/names.txt

Pairs are numbered from 1 in a deterministic order (scene folders sorted, then file names sorted),
the same number in blur/ and sharp/; `names.txt` holds one `N.png<TAB>scene/file` line per pair so
every result can be traced back to its source frame. `--naming scene` writes `<scene>_<file>`
instead, the names of the official MIMO-UNet `data/preprocessing.py` (which moves the files; this
tool never modifies the source). `blur_gamma/` and the per-scene text files are ignored
(MIMO-UNet trains and tests on `blur/`). ppir's PairedImageDataset also reads the scene layout
directly, so this step is optional.
"""
import argparse
import os
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from ppir.errors import DataError, run_cli  # noqa: E402

IMAGE_EXTS = (".png", ".jpg", ".jpeg")
SPLITS = ("train", "test")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--src", required=True, help="GOPRO_Large root holding train/ and test/")
    parser.add_argument("--dst", required=True, help="output root (created; must be empty)")
    parser.add_argument("--splits", nargs="+", default=list(SPLITS),
                        help="splits to convert (default: train test)")
    parser.add_argument("--link", choices=["hard", "sym"], default=None,
                        help="hard-link or symlink the images instead of copying them")
    parser.add_argument("--naming", choices=["number", "scene"], default="number",
                        help="output names: 1.png, 2.png, ... (default) or <scene>_<file> as the "
                             "official preprocessing.py")
    return parser.parse_args(argv)


def _images(folder):
    return sorted(f for f in os.listdir(folder)
                  if f.lower().endswith(IMAGE_EXTS) and os.path.isfile(os.path.join(folder, f)))


def collect_pairs(split_dir):
    """Return [(scene, file name)] for every blur/sharp pair under `split_dir/<scene>/`."""
    if not os.path.isdir(split_dir):
        raise DataError(f"missing split folder {split_dir} (expected <src>/<split>/<scene>/blur)")
    if os.path.isdir(os.path.join(split_dir, "blur")):
        raise DataError(f"{split_dir} is already flat (it has blur/ directly); nothing to convert; "
                        f"point the dataset at it as it is")
    scenes = sorted(d for d in os.listdir(split_dir) if os.path.isdir(os.path.join(split_dir, d)))
    if not scenes:
        raise DataError(f"no scene folders in {split_dir} (expected <scene>/blur and <scene>/sharp)")
    pairs = []
    for scene in scenes:
        blur_dir = os.path.join(split_dir, scene, "blur")
        sharp_dir = os.path.join(split_dir, scene, "sharp")
        for sub in (blur_dir, sharp_dir):
            if not os.path.isdir(sub):
                raise DataError(f"scene {os.path.join(split_dir, scene)} has no "
                                f"{os.path.basename(sub)}/ folder")
        blur, sharp = _images(blur_dir), _images(sharp_dir)
        missing = sorted(set(blur) - set(sharp))
        if missing:
            raise DataError(f"blur image {os.path.join(blur_dir, missing[0])} has no sharp "
                            f"counterpart {os.path.join(sharp_dir, missing[0])}"
                            + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""))
        extra = sorted(set(sharp) - set(blur))
        if extra:
            raise DataError(f"sharp image {os.path.join(sharp_dir, extra[0])} has no blur "
                            f"counterpart {os.path.join(blur_dir, extra[0])}"
                            + (f" (and {len(extra) - 1} more)" if len(extra) > 1 else ""))
        pairs.extend((scene, name) for name in blur)
    return pairs


def _place(src, dst, link):
    if link == "sym":
        os.symlink(os.path.abspath(src), dst)
    elif link == "hard":
        try:
            os.link(src, dst)
        except OSError as exc:
            raise DataError(f"cannot hard-link {src} to {dst} ({exc.strerror}); "
                            f"use --link sym or copy (no --link)") from exc
    else:
        shutil.copyfile(src, dst)


def check_destination(split_dst):
    for sub in ("blur", "sharp"):
        out = os.path.join(split_dst, sub)
        if os.path.isdir(out) and os.listdir(out):
            raise DataError(f"destination {out} is not empty; choose a new --dst")


def flatten_split(split_src, split_dst, link=None, naming="number"):
    """Write `split_dst/{blur,sharp}/<name>` and `split_dst/names.txt`; return the pair count."""
    pairs = collect_pairs(split_src)
    check_destination(split_dst)
    for sub in ("blur", "sharp"):
        os.makedirs(os.path.join(split_dst, sub), exist_ok=True)
    lines = []
    for n, (scene, name) in enumerate(pairs, start=1):
        if naming == "scene":
            new_name = f"{scene}_{name}"
        else:
            new_name = f"{n}{os.path.splitext(name)[1].lower()}"
        for sub in ("blur", "sharp"):
            _place(os.path.join(split_src, scene, sub, name),
                   os.path.join(split_dst, sub, new_name), link)
        lines.append(f"{new_name}\t{scene}/{name}\n")
    with open(os.path.join(split_dst, "names.txt"), "w", encoding="utf-8") as f:
        f.writelines(lines)
    return len(pairs)


def main(argv=None):
    args = parse_args(argv)
    if not os.path.isdir(args.src):
        raise DataError(f"--src {args.src} is not a folder")
    if os.path.abspath(args.src) == os.path.abspath(args.dst):
        raise DataError("--dst must differ from --src")
    # Check every split before writing anything, so a bad tree leaves no half-written output.
    for split in args.splits:
        collect_pairs(os.path.join(args.src, split))
        check_destination(os.path.join(args.dst, split))
    for split in args.splits:
        count = flatten_split(os.path.join(args.src, split), os.path.join(args.dst, split), args.link,
                              args.naming)
        print(f"{split}: {count} pairs -> {os.path.join(args.dst, split)}")
    return 0


if __name__ == "__main__":
    run_cli(main)
