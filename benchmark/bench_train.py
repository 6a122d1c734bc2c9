r"""Training-step latency on this machine: forward + losses + backward + optimizer step(s).

    python benchmark/bench_train.py --config configs/mirnetv2_sidd.yml --size 128 --batch 8 --steps 3
    python benchmark/bench_train.py --config configs/ctsdg_celeba.yml --size 256 --batch 6 --steps 2
    PYTHONPATH=/path/to/MIMO-UNet python benchmark/bench_train.py --config configs/mimounet_gopro.yml \
        --size 256 --batch 4 --torch models.MIMOUNet:MIMOUNet --torch_python /path/to/torch-venv/bin/python

Runs the config's task model `train_step` (its own losses, every optimizer in the official order,
gradient clipping) on one fixed random batch: images in [0, 1] and, for inpainting models, seeded
free-form hole masks (30-40 %) with the host steps the model declares (e.g. CTSDG's edges).
Prints the median seconds per step and images per second.

`--torch module:Class` also times a PyTorch network (e.g. the official one on PYTHONPATH) in a
separate process: forward, an L1 loss against the target (each output of a multi-scale list
against the target resized to its size), backward and an Adam step, with the same thread count.
The PyTorch side has no extra loss terms (MIMO-UNet's FFT term, for one), so the ratio slightly
favours it. A script, not a test: the numbers depend on the machine and on what else runs.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np

import ppir  # noqa: F401  (thread defaults before paddle is imported)
from ppir.errors import ConfigError, run_cli


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True)
    parser.add_argument("-o", "--override", nargs="+", default=[], action="extend")
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--torch", default=None, metavar="MODULE:CLASS")
    parser.add_argument("--torch_kwargs", default="{}", help="its constructor arguments as JSON")
    parser.add_argument("--torch_python", default=sys.executable, help="interpreter that has torch")
    parser.add_argument("--torch_worker", action="store_true", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def timed_steps(fn, steps, warmup):
    times = []
    for i in range(warmup + steps):
        start = time.perf_counter()
        fn()
        if i >= warmup:
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def host_batch(spec, size, batch):
    """One batch dict (numpy) as the data layer names it: target, input, mask and host-step outputs."""
    from ppir.data.host_steps import run_host_steps
    from ppir.data.masks import generate_mask
    from ppir.inference import host as io
    from ppir.inference.spec import needs_mask

    rng = np.random.default_rng(0)
    samples = []
    for _ in range(batch):
        target = rng.random((size, size, 3), dtype=np.float32)
        mask = generate_mask((size, size), rng, (0.3, 0.4)) if needs_mask(spec) else None
        sample = run_host_steps(io.host_sample(target, mask), spec.get("host_steps"))
        sample["target"] = np.ascontiguousarray(target.transpose(2, 0, 1))
        samples.append(sample)
    return {k: np.stack([s[k] for s in samples]).astype(np.float32) for k in samples[0]}


def torch_worker(args):
    import importlib

    import torch
    import torch.nn.functional as F

    module, _, cls = args.torch.partition(":")
    torch.manual_seed(0)
    net = getattr(importlib.import_module(module), cls)(**json.loads(args.torch_kwargs))
    net.train()  # not chained: CTSDG's official train() override returns None
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    optimizer = torch.optim.Adam(net.parameters(), lr=2e-4)
    x = torch.rand(args.batch, 3, args.size, args.size)
    target = torch.rand(args.batch, 3, args.size, args.size)

    def step():
        out = net(x)
        outs = out if isinstance(out, (list, tuple)) else [out]
        loss = sum(F.l1_loss(o, target if o.shape == target.shape else
                             F.interpolate(target, size=o.shape[-2:], mode="bilinear")) for o in outs)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    print(json.dumps({"seconds": timed_steps(step, args.steps, args.warmup)}))
    return 0


def main(argv=None):
    args = parse_args(argv)
    if args.torch_worker:
        return torch_worker(args)
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
    batch = {k: paddle.to_tensor(v) for k, v in host_batch(model.io_spec(), args.size, args.batch).items()}
    model.set_train(True)
    seconds = timed_steps(lambda: model.train_step(batch, step), args.steps, args.warmup)
    threads = os.environ.get("MKL_NUM_THREADS", "?")
    shape = f"{args.batch}x3x{args.size}x{args.size}"
    print(f"| {type(model).__name__} ({args.config}) | {shape} | {seconds:.3f} s/step | "
          f"{args.batch / seconds:.2f} images/s | paddle {paddle.__version__}, {threads} MKL threads |")
    if args.torch:
        cmd = [args.torch_python, os.path.abspath(__file__), "--config", args.config, "--size", str(args.size),
               "--batch", str(args.batch), "--steps", str(args.steps), "--warmup", str(args.warmup),
               "--torch", args.torch, "--torch_kwargs", args.torch_kwargs, "--torch_worker"]
        env = dict(os.environ, OMP_NUM_THREADS=threads if threads != "?" else "1")
        done = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if done.returncode:
            raise ConfigError(f"the PyTorch reference {args.torch} failed: {done.stderr.strip().splitlines()[-1:]}")
        theirs = json.loads(done.stdout.strip().splitlines()[-1])["seconds"]
        print(f"| {args.torch} (PyTorch) | {shape} | {theirs:.3f} s/step | {args.batch / theirs:.2f} images/s | "
              f"ratio ppir / PyTorch {seconds / theirs:.2f} |")
    return 0


if __name__ == "__main__":
    run_cli(main)
