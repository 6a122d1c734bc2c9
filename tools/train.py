"""Train a model from one config file.

    python tools/train.py -c configs/mirnetv2_sidd.yml [-o Global.iters=1000 ...]
    python tools/train.py -c CFG --auto_resume          # continue from <output_dir>/latest
    python -m paddle.distributed.launch --nproc_per_node 2 tools/train.py -c CFG   # 2 processes
"""
import argparse
import sys

import ppir  # noqa: F401  (environment defaults before paddle is imported)
from ppir.config import load_config
from ppir.errors import run_cli


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-c", "--config", required=True, help="path to the yml config")
    parser.add_argument("-o", "--override", nargs="+", default=[], action="extend",
                        help="config overrides key=value, e.g. Global.iters=100")
    parser.add_argument("extra_overrides", nargs="*", metavar="KEY=VALUE",
                        help="more overrides (bare key=value tokens are accepted too)")
    parser.add_argument("--resume", default=None, help="checkpoint dir to resume from")
    parser.add_argument("--auto_resume", action="store_true",
                        help="resume from <output_dir>/latest when it exists")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    cfg = load_config(args.config, args.override + args.extra_overrides)
    from ppir.engine.trainer import Trainer

    Trainer(cfg, resume=args.resume, auto_resume=args.auto_resume, argv=sys.argv).train()
    return 0


if __name__ == "__main__":
    run_cli(main)
