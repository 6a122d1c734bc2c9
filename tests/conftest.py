"""Shared fixtures: the embedded demo data (built once per session), tiny training configs, and
the reprod_log-style closeness check of the alignment tests."""
import os
import subprocess
import sys

import numpy as np
import pytest

os.environ.setdefault("GLOG_minloglevel", "2")
os.environ.setdefault("OMP_NUM_THREADS", "1")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="session")
def demo_denoise(tmp_path_factory):
    from ppir.data.demo import make_demo

    return make_demo("denoise", str(tmp_path_factory.mktemp("demo") / "denoise"), seed=0)


@pytest.fixture(scope="session")
def demo_deblur(tmp_path_factory):
    from ppir.data.demo import make_demo

    return make_demo("deblur", str(tmp_path_factory.mktemp("demo") / "deblur"), seed=0)


def tiny_overrides(demo_root, output_dir, iters=4):
    """A MIRNetV2 of width 16 (the smallest its grouped convs allow) on 32x32 patches: seconds per run, same code paths as the real thing."""
    return [
        f"Global.output_dir={output_dir}", f"Global.iters={iters}", "Global.log_interval=1",
        "Global.eval_interval=0", "Global.save_interval=2", "Global.use_visualdl=False",
        "Model.network.n_feat=16",
        "Train.progressive={'iters': [2, 100], 'patch_sizes': [32, 48], 'batch_sizes': [2, 1]}",
        f"Train.dataset.root={demo_root}", f"Eval.dataset.root={demo_root}",
    ]


def run_tool(script, *args, env=None, timeout=300):
    """Run tools/<script> in a subprocess; returns CompletedProcess with text output."""
    full_env = dict(os.environ, **(env or {}))
    return subprocess.run([sys.executable, os.path.join(ROOT, script), *args], cwd=ROOT,
                          capture_output=True, text=True, env=full_env, timeout=timeout)


def assert_reprod_close(ours, official, threshold=1e-5):
    """Compare like the reprod_log alignment reports: mean abs diff within `threshold` (and the
    max within 100x, so a few wild pixels cannot hide behind a small mean)."""
    from reprod_log import ReprodDiffHelper

    helper = ReprodDiffHelper()
    helper.compare_info({"output": official}, {"output": ours})
    mean_diff = helper.diff_dict["output"]["mean"]
    assert mean_diff <= threshold, f"mean abs diff {mean_diff:.3e} > {threshold}"
    assert np.abs(ours - official).max() <= 100 * threshold
