"""Speed record of a training log, as Paddle's benchmark analysis writes it (test_tipc/benchmark_train.sh).

    python test_tipc/benchmark_analysis.py --filename LOG --speed_log_file OUT --model_name mirnetv2_bs2_fp32_DP \
        --base_batch_size 2 --run_mode DP --fp_item fp32 --device_num N1C1 [--skip_steps 5]

Reads the `[train] iter i/N ... loss x ... batch_cost y s  ips: z images/s` lines of ppir's trainer,
drops the first --skip_steps of them (start-up: oneDNN primitive creation, allocator growth), and
writes one JSON record to --speed_log_file with the fields of the reference suites' benchmark
records: model_name, batch_size, fp_item, run_mode, convergence_value (last loss),
convergence_key, ips (mean samples/s x number of devices), speed_unit, device_num, model_run_time
(s, first to last log line), frame_version (paddle); plus batch_cost (mean s per step) and
steps (how many steps were averaged). The record is also printed, after a one-line summary.
Exit code 1 when the log holds no more steps than --skip_steps.
"""
import argparse
import importlib.metadata
import json
import re
import sys
from datetime import datetime

STEP = re.compile(r"^\[(?P<time>[\d/ :]+)\].*\[train\] iter (?P<iter>\d+)/\d+ .*?"
                  r"(?P<key>loss) (?P<loss>[-\d.e]+).*batch_cost (?P<cost>[\d.]+) s\s+ips: (?P<ips>[\d.]+)")


def parse_steps(path):
    steps = []
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            match = STEP.search(line)
            if match:
                steps.append(match.groupdict())
    return steps


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--filename", required=True)
    parser.add_argument("--speed_log_file", required=True)
    parser.add_argument("--model_name", required=True)
    parser.add_argument("--base_batch_size", type=int, required=True)
    parser.add_argument("--run_mode", default="DP")
    parser.add_argument("--fp_item", default="fp32")
    parser.add_argument("--device_num", default="N1C1")
    parser.add_argument("--skip_steps", type=int, default=5)
    args = parser.parse_args(argv)
    try:
        steps = parse_steps(args.filename)
    except OSError as exc:
        print(f"error: cannot read the training log: {exc}", file=sys.stderr)
        return 1
    kept = steps[args.skip_steps:]
    if not kept:
        print(f"error: {args.filename} has {len(steps)} logged training steps, not more than "
              f"--skip_steps {args.skip_steps}", file=sys.stderr)
        return 1
    cards = int(args.device_num.split("C")[-1]) if "C" in args.device_num else 1
    stamps = [datetime.strptime(s["time"].strip(), "%Y/%m/%d %H:%M:%S") for s in (steps[0], steps[-1])]
    try:
        version = importlib.metadata.version("paddlepaddle")
    except importlib.metadata.PackageNotFoundError:
        version = None
    record = {
        "model_name": args.model_name,
        "batch_size": args.base_batch_size,
        "fp_item": args.fp_item,
        "run_mode": args.run_mode,
        "convergence_value": float(steps[-1]["loss"]),
        "convergence_key": "loss:",
        "ips": round(sum(float(s["ips"]) for s in kept) / len(kept) * cards, 3),
        "speed_unit": "samples/s",
        "device_num": args.device_num,
        "model_run_time": str(int((stamps[1] - stamps[0]).total_seconds())),
        "frame_version": version,
        "batch_cost": round(sum(float(s["cost"]) for s in kept) / len(kept), 4),
        "steps": len(kept),
    }
    with open(args.speed_log_file, "w", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")
    print(f"{args.model_name} {args.device_num}: ips {record['ips']} samples/s, batch_cost "
          f"{record['batch_cost']} s over steps {len(steps) - len(kept) + 1}..{len(steps)}, "
          f"last loss {record['convergence_value']}")
    print(json.dumps(record))
    return 0


if __name__ == "__main__":
    sys.exit(main())
