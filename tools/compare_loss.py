r"""Compare two loss curves (ours vs a reference run) and apply the loss-alignment pass rule.

    python tools/compare_loss.py output/misf/train.log reference/misf_loss.npy
    python tools/compare_loss.py ours.log ref.txt --curve loss --plot loss_compare.png
    python tools/compare_loss.py ours.log ref.npy --curve total=loss   # different names

Inputs (the format is recognised per file):
* ppir's `train.log`: every `[train] iter N/M  ...  <name> <value>  ...` line gives one point of
  each named curve (`lr`, `reader_cost`, `batch_cost`, `ips` and `eta` are not losses);
* a reprod_log `.npy` (a pickled dict, as `ReprodLogger.save` writes it): keys `<name>_<i>` are
  step i of curve `<name>` (0-based, so iteration i + 1), a key holding an array is a whole curve
  from iteration 1;
* plain text: one value per line (iterations 1, 2, ...) or `iteration value` per line; `#`
  comments and blank lines are skipped. The curve is called `loss`.

Curves are paired by name (`--curve NAME` or `--curve OURS=REF` to choose; by default every name
the two files share, or their only curves) and aligned on the iterations both hold. For each curve:
  mean relative error  MRE = mean(|ours - ref| / |ref|)
  mean absolute error  MAE = mean(|ours - ref|)
and the rule of the MISF seed's loss comparison: PASS when MRE <= 0.05 or MAE <= 0.0002. The
errors are taken in absolute value, so over- and undershoots cannot cancel; the signed means are
printed next to them. Exit code 0 when every curve passes, 1 when one fails, 2 on bad input.
.npy files are unpickled: only read files you trust.
"""
import argparse
import os
import re
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from ppir.errors import DataError, run_cli  # noqa: E402

MRE_LIMIT, MAE_LIMIT = 0.05, 2e-4
_TRAIN_LINE = re.compile(r"\[train\] iter (\d+)/\d+\s+(.*)$")
_NUMBER = r"[-+]?(?:\d+\.?\d*(?:[eE][-+]?\d+)?|nan|inf)"
_PAIR = re.compile(rf"(?<!\S)([A-Za-z_][\w./-]*) ({_NUMBER})(?=\s|$)")
_NOT_LOSSES = {"lr", "reader_cost", "batch_cost", "ips", "eta"}
_STEP_KEY = re.compile(r"^(.+)_(\d+)$")


def _add(curves, name, iteration, value, path):
    try:
        curves.setdefault(name, {})[int(iteration)] = float(np.asarray(value).reshape(-1)[0])
    except (TypeError, ValueError, IndexError):
        raise DataError(f"{path}: value of '{name}' at iteration {iteration} is not a number: "
                        f"{value!r}") from None


def read_train_log(path, lines):
    """{name: {iteration: value}} from ppir `[train] iter` lines (a resumed run's later line wins)."""
    curves = {}
    for line in lines:
        match = _TRAIN_LINE.search(line)
        if not match:
            continue
        for name, value in _PAIR.findall(match.group(2)):
            if name not in _NOT_LOSSES:
                _add(curves, name, match.group(1), value, path)
    return curves


def read_text(path, lines):
    """One value per line (iterations from 1) or `iteration value` per line."""
    curves = {}
    rows = [line.split("#", 1)[0].split() for line in lines]
    rows = [(n, row) for n, row in enumerate(rows, 1) if row]
    for count, (lineno, row) in enumerate(rows, 1):
        if len(row) > 2:
            raise DataError(f"{path}:{lineno}: expected 'value' or 'iteration value', got "
                            f"{' '.join(row)!r}")
        iteration, value = (count, row[0]) if len(row) == 1 else row
        if not re.fullmatch(r"\d+", str(iteration)):
            raise DataError(f"{path}:{lineno}: iteration {iteration!r} is not an integer")
        if not re.fullmatch(_NUMBER, value):
            raise DataError(f"{path}:{lineno}: {value!r} is not a number")
        _add(curves, "loss", iteration, value, path)
    return curves


def read_reprod(path):
    """A reprod_log dict: `<name>_<i>` scalars (step i -> iteration i + 1) or whole-curve arrays."""
    try:
        obj = np.load(path, allow_pickle=True)
        obj = obj.item() if isinstance(obj, np.ndarray) and obj.dtype == object else obj
    except Exception as exc:  # np.load / unpickling failures come in many types
        raise DataError(f"{path}: cannot read as a reprod_log .npy dict: {exc}") from None
    if not isinstance(obj, dict) or not obj:
        raise DataError(f"{path}: expected a non-empty reprod_log dict, got {type(obj).__name__}")
    curves = {}
    for key, value in obj.items():
        value = np.asarray(value)
        step = _STEP_KEY.match(str(key))
        if step and value.size == 1:
            _add(curves, step.group(1), int(step.group(2)) + 1, value, path)
        else:
            for i, v in enumerate(value.reshape(-1), 1):
                _add(curves, str(key), i, v, path)
    return curves


def read_curves(path):
    """Read any supported loss log; DataError naming the file when it holds no curve."""
    if not os.path.isfile(path):
        raise DataError(f"loss log not found: {path}")
    if path.endswith(".npy"):
        curves = read_reprod(path)
    else:
        try:
            with open(path, encoding="utf-8") as f:
                lines = f.read().splitlines()
        except UnicodeDecodeError:
            raise DataError(f"{path}: not a text file (reprod_log dicts must end in .npy)") from None
        is_log = any(_TRAIN_LINE.search(line) for line in lines)
        curves = read_train_log(path, lines) if is_log else read_text(path, lines)
    if not curves:
        raise DataError(f"{path}: no loss values found")
    return curves


def pair_curves(ours, ref, requested, paths):
    """[(our_name, ref_name)] from --curve specs, the shared names, or the two only curves."""
    if requested:
        pairs = [tuple(spec.split("=", 1)) if "=" in spec else (spec, spec) for spec in requested]
    else:
        shared = [name for name in ours if name in ref]
        if shared:
            pairs = [(name, name) for name in shared]
        elif len(ours) == 1 and len(ref) == 1:
            pairs = [(next(iter(ours)), next(iter(ref)))]
        else:
            raise DataError(f"no curve name shared by {paths[0]} ({', '.join(ours)}) and "
                            f"{paths[1]} ({', '.join(ref)}); pass --curve OURS=REF")
    for (a, b) in pairs:
        for name, curves, path in ((a, ours, paths[0]), (b, ref, paths[1])):
            if name not in curves:
                raise DataError(f"{path}: no curve '{name}' (has {', '.join(curves)})")
    return pairs


def compare(ours, ref):
    """Errors of two {iteration: value} curves on their shared iterations."""
    steps = sorted(set(ours) & set(ref))
    if not steps:
        return {"iterations": steps}
    a = np.array([ours[i] for i in steps], np.float64)
    b = np.array([ref[i] for i in steps], np.float64)
    diff = a - b
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = diff / np.abs(b)
    mre, mae = float(np.mean(np.abs(rel))), float(np.mean(np.abs(diff)))
    return {"iterations": steps, "mre": mre, "mae": mae, "signed_mre": float(np.mean(rel)),
            "signed_mae": float(np.mean(diff)), "passed": bool(mre <= MRE_LIMIT or mae <= MAE_LIMIT)}


def plot(path, results, labels):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(results), 1, figsize=(7, 3 * len(results)), squeeze=False)
    for ax, (name, ours, ref, res) in zip(axes[:, 0], results):
        for curve, label in ((ours, labels[0]), (ref, labels[1])):
            steps = sorted(curve)
            ax.plot(steps, [curve[i] for i in steps], label=label, linewidth=1)
        ax.set_title(f"{name}: MRE {res['mre']:.4g}, MAE {res['mae']:.4g} "
                     f"({'PASS' if res['passed'] else 'FAIL'})", fontsize=9)
        ax.set_xlabel("iteration")
        ax.legend(fontsize=8)
    fig.tight_layout()
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("ours", help="our loss log (train.log, reprod_log .npy or text)")
    parser.add_argument("ref", help="the reference run's loss log, same formats")
    parser.add_argument("--curve", action="append", default=[], metavar="NAME|OURS=REF",
                        help="curve to compare (repeatable); default: every shared name")
    parser.add_argument("--plot", default=None, metavar="PNG", help="draw both curves here")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    paths = (args.ours, args.ref)
    ours, ref = read_curves(args.ours), read_curves(args.ref)
    results = []
    for a, b in pair_curves(ours, ref, args.curve, paths):
        res = compare(ours[a], ref[b])
        if not res["iterations"]:
            raise DataError(f"curve '{a}' of {args.ours} (iterations {min(ours[a])}-"
                            f"{max(ours[a])}) and '{b}' of {args.ref} (iterations {min(ref[b])}-"
                            f"{max(ref[b])}) share no iteration")
        name = a if a == b else f"{a} vs {b}"
        results.append((name, ours[a], ref[b], res))
        steps = res["iterations"]
        print(f"{name}: {len(steps)} iterations ({steps[0]}-{steps[-1]})  "
              f"MeanRelativeError {res['mre']:.6g}  MeanAbsoluteError {res['mae']:.6g}  "
              f"(signed: {res['signed_mre']:.6g}, {res['signed_mae']:.6g})  "
              f"{'PASS' if res['passed'] else 'FAIL'}")
    passed = all(res["passed"] for *_, res in results)
    print(f"rule: mean_relative_error <= {MRE_LIMIT} or mean_absolute_error <= {MAE_LIMIT} "
          f"for every curve: {'PASS' if passed else 'FAIL'}")
    if args.plot:
        plot(args.plot, results, ("ours", "reference"))
        print(f"plot: {args.plot}")
    return 0 if passed else 1


if __name__ == "__main__":
    run_cli(main)
