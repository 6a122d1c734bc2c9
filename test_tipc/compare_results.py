"""Precision check of TIPC inference: per-image scores in inference logs against stored ones.

    python test_tipc/compare_results.py --gt_file test_tipc/results/python_mirnetv2_results_fp32.txt \
        --log_file "./test_tipc/output/mirnetv2/whole_infer/python_infer_cpu_*.log"
    python test_tipc/compare_results.py --gt_file paddle.log --log_file onnx.log      # two logs
    python test_tipc/compare_results.py --write results.txt --log_file one.log           # store

deploy/infer.py run with --gt prints one line per image, `<image>  PSNR: 31.2345  SSIM: 0.8765`.
Every log matched by --log_file must hold the same images as the reference, each score within
--atol + --rtol * |reference| (numpy.allclose); by default 0.005 (dB for PSNR), which the 4-decimal
printout and the uint8 rounding of the outputs keep well inside when the model and weights are the
same, while a changed network, weights, pre/post-processing or a broken export moves the scores by
far more. A stored file (`--gt_file *.txt`) holds `<image>\t<json scores>` lines, the format of the
reference suites' test_tipc/results/*.txt; any other --gt_file is read as an inference log.

Exit codes: 0 all logs match, 1 a mismatch or a log without scores, 2 bad arguments.
"""
import argparse
import glob
import json
import os
import re
import sys

import numpy as np

SCORE_LINE = re.compile(r"^(\S+)((?:\s+[A-Za-z][\w-]*: -?[0-9.]+(?:e-?\d+)?)+)\s*$")
SCORE = re.compile(r"([A-Za-z][\w-]*): (-?[0-9.]+(?:e-?\d+)?)")
DEFAULT_TOL = 5e-3


def scores_from_log(path):
    """{image: {metric: value}} from the per-image lines of an inference log."""
    scores = {}
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            match = SCORE_LINE.match(line.strip())
            if match and match.group(1) != "mean":
                scores[match.group(1)] = {k: float(v) for k, v in SCORE.findall(match.group(2))}
    return scores


def read_results(path):
    """{image: {metric: value}} of a stored results file (`image<TAB>json` lines)."""
    scores = {}
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                name, text = line.rstrip("\n").split("\t")
                scores[os.path.basename(name)] = json.loads(text)
            except ValueError:
                raise SystemExit(f"error: {path} line {n}: expected '<image>\\t<json scores>'") from None
    return scores


def write_results(path, scores):
    with open(path, "w", encoding="utf-8") as f:
        for name in sorted(scores):
            f.write(f"{name}\t{json.dumps(scores[name], sort_keys=True)}\n")


def compare(reference, scores, atol, rtol):
    """Problems (strings) of `scores` against `reference`; empty when they agree."""
    problems = []
    if set(scores) != set(reference):
        missing, extra = sorted(set(reference) - set(scores)), sorted(set(scores) - set(reference))
        problems.append(f"images differ: missing {missing or '-'}, unexpected {extra or '-'}")
    for name in sorted(set(scores) & set(reference)):
        ref, got = reference[name], scores[name]
        if set(ref) != set(got):
            problems.append(f"{name}: metrics {sorted(got)} != {sorted(ref)}")
            continue
        for metric in sorted(ref):
            if not np.allclose(got[metric], ref[metric], atol=atol, rtol=rtol):
                problems.append(f"{name} {metric}: {got[metric]} vs reference {ref[metric]} "
                                f"(diff {abs(got[metric] - ref[metric]):.4g} > atol {atol:g} + rtol {rtol:g})")
    return problems


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--log_file", required=True, help="inference log(s); a quoted glob is expanded here")
    parser.add_argument("--gt_file", help="stored results (.txt) or a reference inference log")
    parser.add_argument("--write", help="store the scores of the (single) --log_file here and exit")
    parser.add_argument("--atol", type=float, default=DEFAULT_TOL)
    parser.add_argument("--rtol", type=float, default=0.0)
    args = parser.parse_args(argv)
    logs = sorted(glob.glob(args.log_file))
    if not logs:
        print(f"error: no log matches {args.log_file}", file=sys.stderr)
        return 2
    if args.write:
        if len(logs) != 1:
            print(f"error: --write takes one log, {args.log_file} matches {len(logs)}", file=sys.stderr)
            return 2
        scores = scores_from_log(logs[0])
        if not scores:
            print(f"error: no per-image scores in {logs[0]} (was deploy/infer.py given --gt?)", file=sys.stderr)
            return 1
        write_results(args.write, scores)
        print(f"wrote {len(scores)} image scores of {logs[0]} to {args.write}")
        return 0
    if not args.gt_file or not os.path.isfile(args.gt_file):
        print(f"error: --gt_file not found: {args.gt_file}", file=sys.stderr)
        return 2
    reference = read_results(args.gt_file) if args.gt_file.endswith(".txt") else scores_from_log(args.gt_file)
    status = 0
    for log in logs:
        scores = scores_from_log(log)
        problems = compare(reference, scores, args.atol, args.rtol) if scores else ["no per-image scores"]
        if problems:
            status = 1
            print(f"FAIL {log} vs {args.gt_file}:")
            for problem in problems:
                print(f"  {problem}")
        else:
            print(f"PASS {log}: {len(scores)} images within atol {args.atol:g} rtol {args.rtol:g} of {args.gt_file}")
    return status


if __name__ == "__main__":
    sys.exit(main())
