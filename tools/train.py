"""Train a model from one config file.

    python tools/train.py -c configs/mirnetv2_sidd.yml [-o Global.iters=1000 ...]
    python tools/train.py -c CFG --auto_resume          # continue from <output_dir>/latest
    python tools/train.py -c CFG --archive_existing     # keep the earlier run as <output_dir>.archived-N, start over
    python -m paddle.distributed.launch --nproc_per_node 2 tools/train.py -c CFG   # 2 processes
"""
import argparse
import sys

import ppir  # noqa: F401  (environment defaults before paddle is imported)
from ppir.config import add_config_arguments, config_from_args
from ppir.errors import run_cli


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_arguments(parser)
    parser.add_argument("--resume", default=None, help="checkpoint dir to resume from")
    parser.add_argument("--auto_resume", action="store_true",
                        help="resume from <output_dir>/latest when it exists")
    parser.add_argument("--archive_existing", action="store_true",
                        help="if <output_dir> holds an earlier run, rename it to <output_dir>.archived-N "
                             "and start a new run (without this, such a directory is refused)")
    parser.add_argument("--allow_config_change", action="store_true",
                        help="resume even though the config differs from the checkpoint's in ways that "
                             "make the resume inexact (the differences are logged)")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    cfg = config_from_args(args)
    from ppir.engine.trainer import Trainer

    Trainer(cfg, resume=args.resume, auto_resume=args.auto_resume, argv=sys.argv,
            archive_existing=args.archive_existing, allow_config_change=args.allow_config_change).train()
    return 0


if __name__ == "__main__":
    run_cli(main)
