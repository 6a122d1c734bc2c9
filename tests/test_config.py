"""Config rules: _base_ inheritance, typed overrides, unknown keys refused, defaults filled."""
import os

import pytest

from ppir.config import apply_override, load_config, parse_value
from ppir.errors import ConfigError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SIDD = os.path.join(ROOT, "configs", "mirnetv2_sidd.yml")


def write(path, text):
    path.write_text(text)
    return str(path)


def test_base_inheritance_merges_mappings_and_replaces_lists(tmp_path):
    """A child file wins key by key; lists are replaced whole; _inherited_: false replaces a mapping."""
    write(tmp_path / "base.yml", "Global:\n  iters: 10\n  seed: 1\nTrain:\n  dataset: {name: A, root: x}\n"
          "Eval:\n  metrics: [{name: PSNR}, {name: SSIM}]\n")
    child = write(tmp_path / "child.yml", "_base_: base.yml\nGlobal:\n  iters: 20\n"
                  "Train:\n  dataset: {_inherited_: false, name: B}\nEval:\n  metrics: [{name: PSNR}]\n")
    cfg = load_config(child)
    assert cfg["Global"]["iters"] == 20 and cfg["Global"]["seed"] == 1
    assert cfg["Train"]["dataset"] == {"name": "B"}
    assert cfg["Eval"]["metrics"] == [{"name": "PSNR"}]


def test_defaults_and_output_dir_from_file_stem():
    """Unset Global keys take their schema defaults; the output dir is output/<config stem>."""
    cfg = load_config(SIDD)
    assert cfg["Global"]["output_dir"] == os.path.join("output", "mirnetv2_sidd")
    assert cfg["Global"]["max_nonfinite_steps"] == 10
    assert cfg["LRScheduler"]["learning_rate"] == pytest.approx(2e-4)  # "2.0e-4" read as float


@pytest.mark.parametrize("text, value", [("1e-4", 1e-4), ("3", 3), ("[1, 2]", [1, 2]), ("null", None),
                                         ("true", True), ("abc", "abc"), ("{'a': 1}", {"a": 1})])
def test_override_values_are_typed(text, value):
    """-o values are parsed as Python/YAML literals, falling back to a plain string."""
    assert parse_value(text) == value


def test_override_sets_nested_value():
    """-o a.b.c=v reaches into components (network kwargs) and fixed sections."""
    cfg = load_config(SIDD, ["Global.iters=7", "Model.network.n_feat=8", "Optimizer.grad_clip=0.5"])
    assert cfg["Global"]["iters"] == 7
    assert cfg["Model"]["network"]["n_feat"] == 8
    assert cfg["Optimizer"]["grad_clip"] == 0.5


@pytest.mark.parametrize("override, named", [
    ("Global.itres=5", "Global.itres"),
    ("Trian.batch_size=2", "Trian"),
    ("Train.batchsize=2", "Train.batchsize"),
    ("Global.iters", "key=value"),
])
def test_unknown_override_key_is_an_error_naming_it(override, named):
    """A typo in an override is refused with the key in the message, not silently added."""
    with pytest.raises(ConfigError, match=named.replace(".", r"\.")):
        load_config(SIDD, [override])


def test_unknown_key_in_file_is_an_error(tmp_path):
    """An unknown key in a fixed section of a file is refused, naming section and key."""
    path = write(tmp_path / "bad.yml", f"_base_: {SIDD}\nGlobal:\n  save_intervall: 5\n")
    with pytest.raises(ConfigError, match=r"Global\.save_intervall"):
        load_config(path)


def test_unknown_section_is_an_error(tmp_path):
    path = write(tmp_path / "bad.yml", "Globals:\n  iters: 5\n")
    with pytest.raises(ConfigError, match="Globals"):
        load_config(path)


def test_component_typo_is_caught_at_build_time():
    """Network kwargs are checked against the constructor: a misspelt argument names itself."""
    from ppir.models import build_model

    cfg = load_config(SIDD, ["Model.network.n_fet=8"])
    with pytest.raises(ConfigError, match="n_fet"):
        build_model(cfg)


def test_missing_base_and_missing_file_are_errors(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(str(tmp_path / "nope.yml"))
    path = write(tmp_path / "child.yml", "_base_: missing_base.yml\n")
    with pytest.raises(ConfigError, match="missing_base.yml"):
        load_config(path)


def test_list_items_cannot_be_overridden_piecewise():
    cfg = load_config(SIDD)
    with pytest.raises(ConfigError, match="lists are set whole"):
        apply_override(cfg, "Eval.metrics.0.crop_border=4")


def test_resolved_config_is_written_with_the_run(tmp_path, demo_denoise):
    """The trainer writes the resolved config and the command line next to the checkpoints."""
    from tests.conftest import run_tool, tiny_overrides

    out = tmp_path / "run"
    res = run_tool("tools/train.py", "-c", "configs/demo/mirnetv2_demo.yml", "-o",
                   *tiny_overrides(demo_denoise, out, iters=1))
    assert res.returncode == 0, res.stderr[-2000:]
    written = load_config(str(out / "config.yml"))
    assert written["Model"]["network"]["n_feat"] == 16
    assert "tools/train.py" in (out / "cmd.txt").read_text()
