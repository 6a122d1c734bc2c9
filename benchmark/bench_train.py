"""Training-step latency of a network on this machine: forward + loss + backward + optimizer step.

    python benchmark/bench_train.py --config configs/mirnetv2_sidd.yml --size 128 --batch 8 --steps 3

Uses the config's model, losses, optimizer (with its gradient clipping) and LR scheduler on random
inputs; prints median seconds per step and images per second. A script, not a test: the numbers
depend on the machine and on what else runs on it.
"""
import argparse
import statistics
import time

import ppir  # noqa: F401  (thread defaults before paddle is imported)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True)
    parser.add_argument("-o", "--override", nargs="+", default=[], action="extend")
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    args = parser.parse_args(argv)

    import paddle

    from ppir.config import load_config
    from ppir.engine.amp import NoAmp
    from ppir.engine.lr_scheduler import build_optimizers
    from ppir.engine.step import TrainStep
    from ppir.models import build_model

    paddle.set_device("cpu")
    cfg = load_config(args.config, args.override)
    paddle.seed(0)
    model = build_model(cfg)
    optimizers, _ = build_optimizers(cfg, model)
    step = TrainStep(model.networks, optimizers, NoAmp())
    batch = {"input": paddle.rand([args.batch, 3, args.size, args.size]),
             "target": paddle.rand([args.batch, 3, args.size, args.size])}
    times = []
    for i in range(args.warmup + args.steps):
        start = time.perf_counter()
        model.train_step(batch, step)
        if i >= args.warmup:
            times.append(time.perf_counter() - start)
    median = statistics.median(times)
    name = cfg["Model"]["network"]["name"]
    print(f"| {name} | {args.batch}x3x{args.size}x{args.size} | {median:.3f} s/step | "
          f"{args.batch / median:.2f} images/s | paddle {paddle.__version__} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
