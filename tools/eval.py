"""Evaluate a checkpoint on the config's Eval dataset with the paper's metric protocol.

    python tools/eval.py -c configs/mirnetv2_sidd.yml -o Global.pretrained_model=output/mirnetv2_sidd/best_model
    options: --ensemble (x8 flip/rotate self-ensemble), --runtime (per-image time), --save_dir DIR
"""
import argparse

import ppir  # noqa: F401
from ppir.config import load_config
from ppir.errors import ConfigError, run_cli


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-c", "--config", required=True)
    parser.add_argument("-o", "--override", nargs="+", default=[], action="extend")
    parser.add_argument("extra_overrides", nargs="*", metavar="KEY=VALUE",
                        help="more overrides (bare key=value tokens are accepted too)")
    parser.add_argument("--ensemble", action="store_true", help="x8 geometric self-ensemble")
    parser.add_argument("--runtime", action="store_true", help="report seconds per image")
    parser.add_argument("--save_dir", default=None, help="write the restored images here")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    cfg = load_config(args.config, args.override + args.extra_overrides)
    weights = cfg["Global"]["pretrained_model"]
    if not weights:
        raise ConfigError("set the weights to evaluate with -o Global.pretrained_model=PATH")
    from ppir.engine.checkpoint import load_weights
    from ppir.engine.evaluator import Evaluator, format_scores
    from ppir.engine.trainer import setup_device
    from ppir.models import build_model

    setup_device(cfg["Global"]["device"])
    model = build_model(cfg)
    load_weights(model.net, weights)
    evaluator = Evaluator(cfg, model)
    scores = evaluator.run(save_dir=args.save_dir, ensemble=args.ensemble)
    runtime = scores.pop("runtime")
    print(f"weights: {weights}")
    print(f"dataset: {cfg['Eval']['dataset'].get('root')} ({len(evaluator.dataset)} images)"
          + (", x8 self-ensemble" if args.ensemble else ""))
    print(f"inputs:  {format_scores(evaluator.input_scores())}")
    print(f"outputs: {format_scores(scores)}")
    if args.runtime:
        print(f"runtime: {runtime:.4f} s/image")
    return 0


if __name__ == "__main__":
    run_cli(main)
