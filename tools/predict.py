"""Restore or inpaint an image or a folder with a trained checkpoint (dygraph, no export needed).

    python tools/predict.py -c configs/mirnetv2_sidd.yml -o Global.pretrained_model=W --input noisy.png --output out.png
    python tools/predict.py -c CFG -o Global.pretrained_model=W --input noisy_dir/ --output restored_dir/
    python tools/predict.py -c configs/misf_celeba.yml -o Global.pretrained_model=W --input photo.png --mask hole.png --output out.png
    python tools/predict.py -c configs/demo/ict_demo.yml -o Global.pretrained_model=CKPT_DIR --input photo.png \
        --mask hole.png --output out/ --n_samples 4 --seed 0

A thin command line over `ppir.load(config, weights)` (docs/api.md). Masks pair with inputs by
file name as in deploy/infer.py (white = hole unless --mask_hole_value black); ICT writes
`<name>_sample<k>.png` per sample.
"""
import argparse
import os

import ppir
from ppir.config import add_config_arguments, config_from_args
from ppir.errors import PpirError, run_cli


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_arguments(parser)
    parser.add_argument("--input", required=True, help="an image file or a folder of images")
    parser.add_argument("--output", required=True, help="an image file (for one input) or a folder")
    parser.add_argument("--mask", default=None, help="inpainting: a mask file, or a folder paired with --input by name")
    parser.add_argument("--mask_hole_value", default="white", choices=("white", "black"),
                        help="which side of the mask files is the hole (default white)")
    parser.add_argument("--ensemble", action="store_true", help="x8 geometric self-ensemble (restoration)")
    parser.add_argument("--tile", type=int, default=None, help="tile size for large images (restoration)")
    parser.add_argument("--tile_overlap", type=int, default=32)
    parser.add_argument("--n_samples", type=int, default=None, help="ICT: completions per image")
    parser.add_argument("--seed", type=int, default=None, help="ICT: sampling seed")
    parser.add_argument("--overwrite", action="store_true", help="replace existing output files ppir did not write")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    for name, low in (("n_samples", 1), ("seed", 0), ("tile", 0), ("tile_overlap", 0)):
        value = getattr(args, name)
        if value is not None and value < low:
            parser.error(f"--{name} must be >= {low}, got {value}")
    return args


def main(argv=None):
    args = parse_args(argv)
    cfg = config_from_args(args)
    from ppir.data.image_io import write_image
    from ppir.errors import ConfigError, DataError
    from ppir.inference import files, host
    from ppir.inference.progress import Progress
    from ppir.utils.paths import record_outputs

    weights = cfg["Global"]["pretrained_model"]
    if not weights:
        raise ConfigError("set the weights with -o Global.pretrained_model=PATH (a .pdparams file or a checkpoint dir)")
    inputs = files.list_inputs(args.input)
    masks = files.match_files(inputs, args.mask, "--mask") if args.mask else [None] * len(inputs)
    reads = [(args.config, "-c"), (weights, "Global.pretrained_model"), (args.mask, "--mask")]
    outputs = files.plan_outputs(args.input, inputs, args.output, reads + [(m, "--mask") for m in masks],
                                 overwrite=args.overwrite)
    model = ppir.load(args.config, weights, device=cfg["Global"]["device"], tile=args.tile,
                      tile_overlap=args.tile_overlap, ensemble=args.ensemble,
                      overrides=args.override + args.extra_overrides)
    if model.needs_mask and not args.mask:
        raise DataError(f"{model.name} inpaints: pass --mask (white = hole; --mask_hole_value black for the other way)")
    if model.samples:
        k = model.model.n_samples if args.n_samples is None else args.n_samples
        outputs = [[f"{root}_sample{i}{ext or '.png'}" for i in range(k)] for root, ext in map(os.path.splitext, outputs)]
        files.check_outputs([p for per in outputs for p in per], args.overwrite)
    record_outputs([p for per in outputs for p in per] if model.samples else outputs)
    failures = files.Failures(len(inputs))
    sampling = {"n_samples": args.n_samples, "seed": args.seed} if model.samples else {}
    with Progress(not args.quiet and len(inputs) > 1, len(inputs), "images") as bar:
        for src, mask_path, dst in zip(inputs, masks, outputs):
            try:
                img = host.as_image(src)
                mask = model.read_mask(mask_path, img.shape[:2], args.mask_hole_value) if mask_path else None
                (out,) = model.run([img], [mask], progress=not args.quiet, **sampling)
            except PpirError as exc:
                failures.add(src, exc)
                bar.step()
                continue
            for path, result in zip(dst, out) if model.samples else [(dst, out)]:
                write_image(path, result)
            print(f"{src} -> {dst if not model.samples else ', '.join(dst)}", flush=True)
            bar.step()
    return failures.exit_code()


if __name__ == "__main__":
    run_cli(main)
