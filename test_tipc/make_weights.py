"""Write seeded, untrained weights of a config's networks as a checkpoint directory.

    python test_tipc/make_weights.py -c configs/mirnetv2_sidd.yml --save_dir ./test_tipc/weights/mirnetv2

TIPC's whole_infer mode needs trained weights at config line 37 (`train_model:`). prepare.sh makes
them here instead of downloading anything: the task model is built with `Global.seed` (default 0)
and every network saved as in a training checkpoint (DIR/model.pdparams for the primary,
DIR/<name>.pdparams for the others) plus the COMPLETE marker, so
`Global.pretrained_model=DIR` loads it and tools/export.py can write the inference model into the
same DIR (the reference harness passes line 37 both as the weights and as the export directory).
The same seed gives the same weights on every machine, which is what makes the stored inference
results in test_tipc/results/ comparable (test_tipc/compare_results.py).
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import ppir  # noqa: F401  (sets GLOG/OMP defaults before paddle is imported)
from ppir.config import add_config_arguments, config_from_args
from ppir.errors import run_cli


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_arguments(parser)
    parser.add_argument("--save_dir", required=True, help="checkpoint directory to write")
    args = parser.parse_args(argv)
    cfg = config_from_args(args)
    import paddle

    from ppir.engine.checkpoint import COMPLETE, weights_file
    from ppir.models import build_model

    paddle.set_device("cpu")
    paddle.seed(int(cfg["Global"]["seed"]))
    model = build_model(cfg)
    os.makedirs(args.save_dir, exist_ok=True)
    for name, net in model.networks.items():
        paddle.save(net.state_dict(), os.path.join(args.save_dir, weights_file(name, model.primary)))
    with open(os.path.join(args.save_dir, COMPLETE), "w") as f:
        f.write("0\n")
    print(f"wrote seeded weights of {', '.join(model.networks)} (seed {cfg['Global']['seed']}) "
          f"to {args.save_dir}")
    return 0


if __name__ == "__main__":
    run_cli(main)
