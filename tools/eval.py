"""Evaluate a checkpoint on the config's Eval dataset with the paper's metric protocol.

    python tools/eval.py -c configs/mirnetv2_sidd.yml -o Global.pretrained_model=output/mirnetv2_sidd/best_model
    options: --ensemble (x8 flip/rotate self-ensemble), --runtime (per-image time), --save_dir DIR
"""
import argparse

import ppir  # noqa: F401
from ppir.config import add_config_arguments, config_from_args
from ppir.errors import run_cli


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_arguments(parser)
    parser.add_argument("--ensemble", action="store_true", help="x8 geometric self-ensemble")
    parser.add_argument("--runtime", action="store_true", help="report seconds per image")
    parser.add_argument("--save_dir", default=None, help="write the restored images here")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    cfg = config_from_args(args)
    from ppir.engine.checkpoint import build_trained_model
    from ppir.engine.evaluator import Evaluator, format_scores

    model = build_trained_model(cfg)
    weights = cfg["Global"]["pretrained_model"]
    evaluator = Evaluator(cfg, model)
    scores = evaluator.run(save_dir=args.save_dir, ensemble=args.ensemble)
    runtime = scores.pop("runtime")
    print(f"weights: {weights}")
    print(f"dataset: {evaluator.dataset.root} ({len(evaluator.dataset)} images)"
          + (", x8 self-ensemble" if args.ensemble else ""))
    print(f"inputs:  {format_scores(evaluator.input_scores())}")
    print(f"outputs: {format_scores(scores)}")
    if args.runtime:
        print(f"runtime: {runtime:.4f} s/image")
    return 0


if __name__ == "__main__":
    run_cli(main)
