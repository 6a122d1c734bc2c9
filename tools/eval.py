"""Evaluate a checkpoint on the config's Eval dataset with the paper's metric protocol.

    python tools/eval.py -c configs/mirnetv2_sidd.yml -o Global.pretrained_model=output/mirnetv2_sidd/best_model
    options: --ensemble (x8 flip/rotate self-ensemble), --runtime (per-image time), --save_dir DIR,
             --json FILE (the scores, per hole-ratio bin for inpainting, as JSON), --overwrite (replace
             files ppir did not write). Nothing is written onto or into what the run reads.
"""
import argparse
import os

import ppir  # noqa: F401
from ppir.config import add_config_arguments, config_from_args
from ppir.errors import DataError, run_cli


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_arguments(parser)
    parser.add_argument("--ensemble", action="store_true", help="x8 geometric self-ensemble")
    parser.add_argument("--runtime", action="store_true", help="report seconds per image")
    parser.add_argument("--save_dir", default=None, help="write the restored images here")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace existing files (images, --json) that ppir did not write")
    parser.add_argument("--json", default=None, help="also write the scores (inputs and outputs) to this JSON file")
    return parser.parse_args(argv)


def planned_images(dataset, save_dir):
    """The files `Evaluator.run(save_dir)` writes: <save_dir>/<name relative to the root>.png."""
    return [os.path.join(save_dir, os.path.splitext(dataset.name(i))[0] + ".png") for i in range(len(dataset))]


def run_reads(cfg, args, dataset=None):
    """What an evaluation reads: every path the config names (datasets, palettes, weights), the
    config file, and the built Eval dataset's files (pair lists resolved, mask files)."""
    from ppir.data.reads import config_reads

    reads = config_reads(cfg, args.config)
    if dataset is not None:
        paths = [getattr(dataset, name, None) for name in ("root", "image_folder", "mask_root")]
        paths += [p for pair in getattr(dataset, "pairs", ()) for p in pair]
        paths += list(getattr(dataset, "mask_files", ()))
        reads += [(p, "Eval dataset") for p in paths if isinstance(p, str)]
    return reads


def check_save_dir(args, dataset, reads):
    """Refuse, before any work, a --save_dir whose images would land on or in what the run reads,
    or replace files ppir did not write; returns the planned files."""
    from ppir.utils.paths import check_outputs, refuse_overlap

    if os.path.exists(args.save_dir) and not os.path.isdir(args.save_dir):
        raise DataError(f"--save_dir {args.save_dir} is a file, not a folder")
    images = planned_images(dataset, args.save_dir)
    refuse_overlap([(args.save_dir, "--save_dir")] + [(p, "--save_dir") for p in images], reads)
    check_outputs(images, args.overwrite, "--save_dir")
    return images


def main(argv=None):
    args = parse_args(argv)
    cfg = config_from_args(args)
    from ppir.data import build_eval_dataset
    from ppir.engine.checkpoint import build_trained_model
    from ppir.engine.evaluator import Evaluator, format_scores
    from ppir.metrics.inpainting import format_table, write_table_json
    from ppir.utils.paths import record_outputs

    from ppir.utils.paths import check_output_file

    dataset = build_eval_dataset(cfg)
    reads = run_reads(cfg, args, dataset)
    if args.save_dir:
        images = check_save_dir(args, dataset, reads)
    if args.json:
        check_output_file(args.json, "--json", reads + [(args.save_dir, "--save_dir")], args.overwrite)
    model = build_trained_model(cfg)
    weights = cfg["Global"]["pretrained_model"]
    evaluator = Evaluator(cfg, model, dataset)
    if args.save_dir:
        record_outputs(images, "--save_dir")
    scores = evaluator.run(save_dir=args.save_dir, ensemble=args.ensemble)
    runtime = scores.pop("runtime")
    print(f"weights: {weights}")
    print(f"dataset: {evaluator.dataset.root} ({len(evaluator.dataset)} images)"
          + (", x8 self-ensemble" if args.ensemble else ""))
    print(f"inputs:  {format_scores(evaluator.input_scores())}")
    print(f"outputs: {format_scores(scores)}")
    if evaluator.table:  # per group (inpainting: hole-ratio bin)
        print(f"inputs by group:\n{format_table(evaluator.input_table)}")
        print(f"outputs by group:\n{format_table(evaluator.table)}")
    if args.runtime:
        print(f"runtime: {runtime:.4f} s/image")
    if args.json:
        write_table_json(args.json, {"inputs": evaluator.input_table or {"all": evaluator.input_scores()},
                                     "outputs": evaluator.table or {"all": scores}})
        print(f"scores written to {args.json}")
    return 0


if __name__ == "__main__":
    run_cli(main)
