"""Tests for tools/compare_loss.py: the three log formats, alignment by iteration, the MISF seed's
pass rule (MRE <= 0.05 or MAE <= 2e-4) with its exit codes, the plot, and one-line input errors."""
import importlib.util
import os

import numpy as np
import pytest

from tests.conftest import run_tool
from tests.test_cli_errors import assert_one_line_error

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
spec = importlib.util.spec_from_file_location("compare_loss",
                                              os.path.join(ROOT, "tools", "compare_loss.py"))
tool = importlib.util.module_from_spec(spec)
spec.loader.exec_module(tool)

REF = {"loss": [2.0, 1.5, 1.2, 1.0], "l1": [0.5, 0.4, 0.3, 0.25]}


def _train_log(path, curves, first=1):
    lines = ["[2026/12/01 15:00:00] INFO training MISFGenerator for iterations 1-4"]
    for i in range(len(curves["loss"])):
        losses = "  ".join(f"{k} {v[i]:.5f}" for k, v in curves.items())
        lines.append(f"[2026/12/01 15:00:0{i}] INFO [train] iter {i + first}/4  lr 1.0000e-04  "
                     f"{losses}  reader_cost 0.0100 s  batch_cost 0.2000 s  ips: 5.00 images/s  "
                     f"eta 0:00:01")
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def _reprod(path, curves):
    np.save(path, {f"{k}_{i}": np.array([v], np.float32) for k, vals in curves.items()
                   for i, v in enumerate(vals)})
    return str(path)


def test_formats_read_to_the_same_curves(tmp_path):
    """train.log lines, reprod_log loss_<i> dicts (step i = iteration i + 1), whole-array reprod
    keys, and text with one value or `iteration value` per line all give iteration -> value."""
    want = {i + 1: v for i, v in enumerate(REF["loss"])}
    log = tool.read_curves(_train_log(tmp_path / "train.log", REF))
    assert set(log) == {"loss", "l1"} and log["loss"] == pytest.approx(want)
    assert tool.read_curves(_reprod(tmp_path / "r.npy", REF))["loss"] == pytest.approx(want)
    np.save(tmp_path / "a.npy", {"loss": np.array(REF["loss"])})
    assert tool.read_curves(str(tmp_path / "a.npy"))["loss"] == pytest.approx(want)
    (tmp_path / "one.txt").write_text("# loss\n" + "\n".join(map(str, REF["loss"])) + "\n")
    assert tool.read_curves(str(tmp_path / "one.txt"))["loss"] == pytest.approx(want)
    (tmp_path / "two.txt").write_text("".join(f"{i * 10} {v}\n" for i, v in want.items()))
    assert tool.read_curves(str(tmp_path / "two.txt"))["loss"] == \
        pytest.approx({i * 10: v for i, v in want.items()})


def test_passing_pair_and_plot(tmp_path, capsys):
    """Curves within 5 % relative error pass (exit 0) for every shared name, aligned only on the
    shared iterations, and --plot writes a PNG."""
    ours = {k: [v * 1.01 for v in vals] for k, vals in REF.items()}
    log = _train_log(tmp_path / "train.log", ours)
    ref = _reprod(tmp_path / "ref.npy", {k: v + [9.0] for k, v in REF.items()})  # extra iter 5
    png = tmp_path / "plots" / "cmp.png"
    assert tool.main([log, ref, "--plot", str(png)]) == 0
    out = capsys.readouterr().out
    assert "loss: 4 iterations (1-4)" in out and "l1: 4 iterations" in out
    mre = float(out.split("MeanRelativeError ")[1].split()[0])
    assert mre == pytest.approx(0.01, rel=1e-4) and out.count("PASS") == 3
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_failing_pair_exits_1(tmp_path, capsys):
    """A curve 10 % off (MRE 0.1 and MAE far above 2e-4) fails with exit code 1; errors are
    absolute, so a curve alternating +-10 % fails too although its signed mean is 0."""
    ref = tmp_path / "ref.txt"
    ref.write_text("\n".join(map(str, REF["loss"])))
    ours = tmp_path / "ours.txt"
    ours.write_text("\n".join(str(v * (1.1 if i % 2 else 0.9)) for i, v in enumerate(REF["loss"])))
    assert tool.main([str(ours), str(ref)]) == 1
    assert "FAIL" in capsys.readouterr().out
    res = run_tool("tools/compare_loss.py", str(ours), str(ref))
    assert res.returncode == 1 and "MeanRelativeError 0.1 " in res.stdout


def test_small_absolute_error_passes():
    """The rule's second arm: a near-zero curve far off in relative terms passes when the mean
    absolute error is <= 2e-4."""
    res = tool.compare({1: 1e-4, 2: 2e-4}, {1: 2e-4, 2: 1e-4})
    assert res["mre"] > 0.05 and res["mae"] <= 2e-4 and res["passed"]


def test_curve_selection_by_name(tmp_path, capsys):
    """--curve OURS=REF pairs differently named curves; an unknown name is a one-line error."""
    log = _train_log(tmp_path / "train.log", {"loss": REF["loss"], "gen_l1": REF["l1"]})
    ref = tmp_path / "ref.txt"
    ref.write_text("\n".join(map(str, REF["l1"])))
    assert tool.main([log, str(ref), "--curve", "gen_l1=loss"]) == 0
    assert "gen_l1 vs loss: 4 iterations" in capsys.readouterr().out
    assert_one_line_error(run_tool("tools/compare_loss.py", log, str(ref), "--curve", "adv"),
                          "train.log: no curve 'adv' (has loss, gen_l1)")


@pytest.mark.parametrize("content, fragment", [
    (None, "loss log not found"),
    ("1.0\nabc\n", "bad.txt:2: 'abc' is not a number"),
    ("", "bad.txt: no loss values found"),
    ("1 2 3\n", "bad.txt:1: expected 'value' or 'iteration value'"),
])
def test_bad_input_is_one_line_error(tmp_path, content, fragment):
    """Missing, malformed or empty logs exit 2 with one `error:` line naming the file."""
    bad = tmp_path / "bad.txt"
    if content is not None:
        bad.write_text(content)
    good = tmp_path / "good.txt"
    good.write_text("1.0\n")
    assert_one_line_error(run_tool("tools/compare_loss.py", str(bad), str(good)), fragment)


def test_disjoint_iterations_and_bad_npy(tmp_path):
    """Curves with no shared iteration, and a .npy that is not a reprod_log dict, are errors
    naming the files."""
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    a.write_text("1 1.0\n2 1.0\n")
    b.write_text("5 1.0\n")
    with pytest.raises(tool.DataError, match="a.txt.*b.txt.*share no iteration"):
        tool.main([str(a), str(b)])
    np.save(tmp_path / "arr.npy", np.zeros(3))
    np.save(tmp_path / "d.npy", {})
    for name, kind in (("arr.npy", "ndarray"), ("d.npy", "dict")):
        with pytest.raises(tool.DataError, match=f"{name}: expected a non-empty reprod_log dict, "
                                                 f"got {kind}"):
            tool.read_curves(str(tmp_path / name))
