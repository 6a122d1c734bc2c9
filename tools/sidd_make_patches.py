r"""Cut SIDD-Medium sRGB training pairs into overlapping square patches (MIRNet-v2 training data).

    python tools/sidd_make_patches.py --src SIDD_Medium_Srgb/Data --dst data/SIDD/train \
        --patch 512 --overlap 128 --workers 4

`--src` holds one folder per scene, each with NOISY/GT pairs such as `0001_NOISY_SRGB_010.PNG`
and `0001_GT_SRGB_010.PNG`. Every pair is cut like the official `generate_patches_sidd.py`:
patch 512, overlap 128 (stride 384), top-left corners 0, 384, 768, ... below `size - patch`, plus
one last patch flush with the bottom/right border. Patches are written losslessly (PNG, the
source's bit depth and channel order untouched) as

    DST/input/<scene>_<pair>_<k>.png        (noisy)
    DST/groundtruth/<scene>_<pair>_<k>.png  (clean, same name)

with <scene> the scene folder name, <pair> the number at the end of the file name (010, 011) and
<k> counting patches from 1 in row-major order.
"""
import argparse
import glob
import multiprocessing
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from ppir.errors import ConfigError, DataError, run_cli  # noqa: E402

_NOISY = re.compile(r"^(?P<pre>.*)NOISY(?P<post>_SRGB_(?P<pair>\d+))\.png$", re.IGNORECASE)


def patch_starts(size, patch, stride):
    """Top-left corners along one axis: every `stride` below `size - patch`, then the border."""
    if size < patch:
        raise ValueError(f"size {size} is smaller than the patch {patch}")
    return list(range(0, size - patch, stride)) + [size - patch]


def find_pairs(src):
    """[(scene, pair_id, noisy_path, gt_path)] for every NOISY image under src/<scene>/."""
    if not os.path.isdir(src):
        raise DataError(f"--src folder not found: {src}")
    pairs = []
    for scene_dir in sorted(glob.glob(os.path.join(src, "*"))):
        if not os.path.isdir(scene_dir):
            continue
        for name in sorted(os.listdir(scene_dir)):
            m = _NOISY.match(name)
            if not m:
                continue
            gt_name = f"{m['pre']}GT{m['post']}{os.path.splitext(name)[1]}"
            gt_path = os.path.join(scene_dir, gt_name)
            if not os.path.isfile(gt_path):
                raise DataError(f"{os.path.join(scene_dir, name)}: ground truth {gt_name} "
                                f"not found next to it")
            pairs.append((os.path.basename(scene_dir), m["pair"], os.path.join(scene_dir, name),
                          gt_path))
    if not pairs:
        raise DataError(f"no *NOISY_SRGB_*.PNG images found in the scene folders of {src}")
    return pairs


def _read(path):
    import cv2

    img = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    if img is None:
        raise DataError(f"cannot read image {path}")
    return img


def _write(path, img):
    import cv2

    if not cv2.imwrite(path, img):
        raise DataError(f"cannot write {path}")


def cut_pair(job):
    """Cut one NOISY/GT pair; returns the number of patches written."""
    (scene, pair_id, noisy_path, gt_path), dst, patch, overlap = job
    noisy, gt = _read(noisy_path), _read(gt_path)
    if noisy.shape != gt.shape:
        raise DataError(f"{noisy_path}: shape {noisy.shape} differs from {gt_path} {gt.shape}")
    h, w = noisy.shape[:2]
    if h < patch or w < patch:
        raise DataError(f"{noisy_path}: image {h}x{w} is smaller than --patch {patch}")
    stride = patch - overlap
    k = 0
    for top in patch_starts(h, patch, stride):
        for left in patch_starts(w, patch, stride):
            k += 1
            name = f"{scene}_{pair_id}_{k}.png"
            _write(os.path.join(dst, "input", name), noisy[top:top + patch, left:left + patch])
            _write(os.path.join(dst, "groundtruth", name), gt[top:top + patch, left:left + patch])
    return k


def make_patches(src, dst, patch=512, overlap=128, workers=1):
    """Cut every pair under `src` into `dst/{input,groundtruth}`; returns the patch count."""
    if patch <= 0 or not 0 <= overlap < patch:
        raise ConfigError(f"need patch > 0 and 0 <= overlap < patch, got patch={patch}, "
                          f"overlap={overlap}")
    pairs = find_pairs(src)
    for sub in ("input", "groundtruth"):
        os.makedirs(os.path.join(dst, sub), exist_ok=True)
    jobs = [(pair, dst, patch, overlap) for pair in pairs]
    total = 0
    if workers <= 1:
        for i, job in enumerate(jobs, 1):
            total += cut_pair(job)
            print(f"[{i}/{len(jobs)}] {job[0][2]}", flush=True)
    else:
        with multiprocessing.Pool(workers) as pool:
            for i, n in enumerate(pool.imap_unordered(cut_pair, jobs), 1):
                total += n
                if i % 10 == 0 or i == len(jobs):
                    print(f"[{i}/{len(jobs)}] pairs done", flush=True)
    return total


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--src", required=True, help="SIDD_Medium_Srgb/Data (one folder per scene)")
    parser.add_argument("--dst", required=True, help="output folder; gets input/ and groundtruth/")
    parser.add_argument("--patch", type=int, default=512)
    parser.add_argument("--overlap", type=int, default=128)
    parser.add_argument("--workers", type=int, default=1, help="parallel processes")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    total = make_patches(args.src, args.dst, args.patch, args.overlap, args.workers)
    print(f"wrote {total} patch pairs to {args.dst}")
    return 0


if __name__ == "__main__":
    run_cli(main)
