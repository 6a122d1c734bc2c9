"""The MISF loss-curve comparison as the model-zoo seed reports it: ppir's MISFModel.train_step
and the official training step (src/models.py process + backward), started from the same
weights (the official N(0, 0.02) init), the same seeded VGG19 and the same 50 batches of 32x32
demo images (batch 2), give curves that pass the seed's rule (MRE <= 0.05 or MAE <= 2e-4) in
tools/compare_loss.py; the committed fixture holds both curves."""
import os

import numpy as np

from tests.conftest import run_tool

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures")
OURS = os.path.join(FIXTURES, "misf_loss_curve_ppir.npy")
REF = os.path.join(FIXTURES, "misf_loss_curve_official.npy")


def test_fifty_iterations_pass_the_seed_rule():
    """Every logged curve (G total, D, L1, perceptual, style, adversarial) over 50 iterations
    passes; the G and D curves also hold to 2 % mean relative error (measured: 1.1 % and
    0.02 %)."""
    proc = run_tool("tools/compare_loss.py", OURS, REF)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = {line.split(":")[0]: line for line in proc.stdout.splitlines() if "MeanRelativeError" in line}
    assert set(lines) == {"gen_loss", "dis_loss", "l1", "perceptual", "style", "adv"}
    assert all("50 iterations (1-50)" in line and line.endswith("PASS") for line in lines.values())
    for name in ("gen_loss", "dis_loss"):
        mre = float(lines[name].split("MeanRelativeError ")[1].split()[0])
        assert mre <= 0.02, lines[name]


def test_the_rule_rejects_a_curve_ten_percent_off(tmp_path):
    """The same comparison fails when our generator curve is 10 % higher (the rule can fail)."""
    ours = np.load(OURS, allow_pickle=True).item()
    ours["gen_loss"] = np.asarray(ours["gen_loss"]) * 1.1
    path = str(tmp_path / "off.npy")
    np.save(path, ours, allow_pickle=True)
    proc = run_tool("tools/compare_loss.py", path, REF, "--curve", "gen_loss")
    assert proc.returncode == 1 and "FAIL" in proc.stdout
