"""Tests of the TIPC shell helpers (test_tipc/common_func.sh) and of the committed TIPC configs.

The helpers are run through `bash -c 'source test_tipc/common_func.sh; ...'`, exactly as the TIPC
scripts use them; nothing here trains or runs a model.
"""
import glob
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = sorted(glob.glob(os.path.join(ROOT, "test_tipc", "configs", "*", "train_infer_python.txt")))
MODES = ("lite_train_lite_infer", "lite_train_whole_infer", "whole_train_whole_infer", "whole_infer")


def bash(script, *args):
    """Runs `script` after sourcing common_func.sh; returns stdout (must exit 0)."""
    result = subprocess.run(["bash", "-c", "source test_tipc/common_func.sh\n" + script, "bash", *args],
                            cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_parser_key_and_value_split_on_colon():
    """key = field 0 and value = field 1 of a ':' split; spaces inside the value are kept, a second
    ':' cuts the value (the reference behaviour), and a trailing CR (CRLF file) is ignored."""
    out = bash('func_parser_key "$1"; func_parser_value "$1"; func_parser_value "$2"; '
               'func_parser_value "$3"; func_parser_key "$4"; func_parser_value "$4"',
               "norm_train:tools/train.py -c a.yml -o  Global.seed=100", "k:v1:v2", "k:v\r", "##")
    assert out.split("\n")[:-1] == ["norm_train", "tools/train.py -c a.yml -o  Global.seed=100", "v1",
                                    "v", "##", ""]


def test_parser_value_does_not_expand_globs_or_leak_ifs():
    """A value with '*' comes back literally even where files match, and the caller's IFS is intact."""
    out = bash('before="$IFS"; func_parser_value "train_model_name:*.py" > /dev/null; '
               'v=$(func_parser_value "train_model_name:*"); echo "$v"; [[ "$IFS" == "$before" ]] && echo same')
    assert out == "*\nsame\n"


@pytest.mark.parametrize("mode, expected", [
    ("lite_train_lite_infer", "20"),
    ("whole_train_whole_infer", "300000"),
    ("whole_infer", ""),
])
def test_parser_params_picks_the_mode_value(mode, expected):
    """`key:m1=v1|m2=v2` gives the value of the requested mode, and nothing for an unlisted mode."""
    line = "Global.iters:lite_train_lite_infer=20|lite_train_whole_infer=20|whole_train_whole_infer=300000"
    assert bash('func_parser_params "$1" "$2"', line, mode) == expected + "\n"


def test_parser_params_plain_value_applies_to_every_mode():
    """A per-mode line without `mode=` items (`Train.batch_size:4`) applies to all modes, and a value
    may itself contain '=' after the mode prefix."""
    assert bash('func_parser_params "Train.batch_size:4" whole_infer') == "4\n"
    assert bash('func_parser_params "k:lite_train_lite_infer=a=b|x=1" lite_train_lite_infer') == "a=b\n"


@pytest.mark.parametrize("key, value, expected", [
    ("Global.iters", "20", "Global.iters=20"),
    ("--save_dir", "./out/inference", "--save_dir=./out/inference"),
    ("null", "20", " "),
    ("##", "cpu", " "),
    ("", "20", " "),
    ("Global.pretrained_model", "null", " "),
    ("Global.pretrained_model", "", " "),
    ("Global.pretrained_model", " ", " "),
])
def test_set_params_renders_or_omits(key, value, expected):
    """`key=value`, or a single space (argument left out) for a null/## key or a null/empty value."""
    assert bash('func_set_params "$1" "$2"', key, value) == expected + "\n"


def test_status_check_wording_and_file(tmp_path):
    """status_check writes the 5-argument TIPC line, ANSI escapes included, appending to the log:
    rc 0 -> 'Run successfully', non-zero or non-numeric -> 'Run failed'."""
    log = tmp_path / "results_python.log"
    out = bash('status_check 0 "python tools/train.py -o a=1" "$1" mirnetv2 ./x/train.log; '
               'status_check 3 "python deploy/infer.py --a=\\n" "$1" mirnetv2 ./x/infer.log; '
               'status_check "" "cmd" "$1" m l', str(log))
    expected = ("\x1b[33m Run successfully with command - mirnetv2 - python tools/train.py -o a=1 - "
                "./x/train.log \x1b[0m\n"
                "\x1b[33m Run failed with command - mirnetv2 - python deploy/infer.py --a=\\n - "
                "./x/infer.log \x1b[0m\n"
                "\x1b[33m Run failed with command - m - cmd - l \x1b[0m\n")
    assert log.read_text() == expected
    assert out == expected


def test_read_config_drops_empty_lines_before_indexing(tmp_path):
    """func_read_config keeps the first 51 lines minus empty ones (CRLF tolerated), so a blank line
    shifts later indices exactly as in the reference scripts."""
    cfg = tmp_path / "c.txt"
    cfg.write_text("===h===\r\nmodel_name:m\r\n\r\npython:python\r\n" + "".join(f"k{i}:v\n" for i in range(60)))
    out = bash('func_read_config "$1"; echo "${#lines[@]}"; echo "${lines[1]}"; echo "${lines[2]}"', str(cfg))
    assert out == "50\nmodel_name:m\npython:python\n"


# Slot layout of reference/tipc.md §1A as used by test_train_inference_python.sh:
# index -> exact line, or key that the line must have.
FIXED = {0: "===========================train_params===========================", 13: "##", 21: "##",
         22: "===========================eval_params===========================", 25: "##",
         26: "===========================infer_params==========================="}
KEYS = {2: "python", 3: "gpu_list", 10: "train_model_name", 11: "train_infer_img_dir", 14: "trainer",
        15: "norm_train", 16: "pact_train", 17: "fpgm_train", 18: "distill_train", 23: "eval",
        29: "norm_export", 30: "quant_export", 31: "fpgm_export", 32: "distill_export", 33: "export1",
        34: "export2", 35: "inference_dir", 36: "train_model", 37: "infer_export", 38: "infer_quant",
        39: "inference", 40: "--device", 41: "--enable_mkldnn", 42: "--cpu_threads", 43: "--batch_size",
        44: "--use_tensorrt", 45: "--precision", 46: "--model_dir", 47: "--input", 48: "--output",
        49: "--benchmark"}


def test_configs_exist():
    """Every model with a TIPC chain has its config (mirnetv2, mimounet, mimounetplus)."""
    names = {os.path.basename(os.path.dirname(c)) for c in CONFIGS}
    assert {"mirnetv2", "mimounet", "mimounetplus"} <= names


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: os.path.basename(os.path.dirname(c)))
def test_config_parses_to_the_51_slots(config):
    """Each config gives exactly 51 parsed lines in the §1A layout (headers, separators and keys at
    their indices), names its own folder as model_name, has mode values for the lite modes, and
    keeps the trainer/eval/export commands open for the `-o` overrides the script appends."""
    with open(config) as f:
        text = f.read()
    assert text.count("\n", 0, len(text)) >= 51
    assert all(line.strip() for line in text.split("\n")[:51]), "blank line inside the first 51 lines"
    out = bash('func_read_config "$1"; echo "${#lines[@]}"; printf "%s\\n" "${lines[@]}"', config)
    count, *lines = out.split("\n")[:-1]
    assert int(count) == 51 and len(lines) == 51
    for idx, line in FIXED.items():
        assert lines[idx] == line, f"line {idx + 1}"
    for idx, key in KEYS.items():
        assert lines[idx].split(":")[0] == key, f"line {idx + 1}: {lines[idx]}"
    assert lines[1] == "model_name:" + os.path.basename(os.path.dirname(config))
    for idx in (6, 8):
        for mode in ("lite_train_lite_infer", "lite_train_whole_infer"):
            assert bash('func_parser_params "$1" "$2"', lines[idx], mode).strip(), f"line {idx + 1} {mode}"
    for idx in (15, 29, 37):
        assert " -o" in lines[idx], f"line {idx + 1} must pass overrides through -o"
    assert lines[29].endswith(" -o") and lines[37].endswith(" -o")
    for line in lines:
        assert line.count(":") <= 1 or line.startswith("==="), f"':' inside a value is cut: {line}"


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: os.path.basename(os.path.dirname(c)))
def test_config_names_its_demo_data(config):
    """prepare.sh finds `demo_kind:` and `demo_root:` after the parsed lines, and the inference
    input of the config lies inside that demo root."""
    with open(config) as f:
        lines = f.read().split("\n")
    tail = {line.split(":")[0]: line.split(":", 1)[1] for line in lines[51:] if ":" in line}
    assert tail["demo_kind"] in ("denoise", "deblur")
    root = tail["demo_root"].rstrip("/")
    for mode in MODES[:3]:
        assert bash('func_parser_params "$1" "$2"', lines[11], mode).startswith(root + "/"), mode
    assert lines[47].split(":", 1)[1].startswith(root + "/")


# ---- the run script and the checker, driven by a stub interpreter (no Paddle, no training)

STUB_PY = """#!/bin/bash
# Stub interpreter: prints its arguments; fails when one contains FAIL; makes --save_dir folders.
echo "$@"
for a in "$@"; do
    case "$a" in --save_dir=*) mkdir -p "${a#--save_dir=}" ;; esac
done
case "$*" in *FAIL*) exit 1 ;; esac
exit 0
"""


def stub_config(tmp_path, name, edit=None):
    """The mirnetv2 config with line 2/3 pointing at a unique model name and the stub interpreter."""
    stub = tmp_path / "stubpython"
    stub.write_text(STUB_PY)
    stub.chmod(0o755)
    with open(os.path.join(ROOT, "test_tipc", "configs", "mirnetv2", "train_infer_python.txt")) as f:
        lines = f.read().split("\n")
    lines[1] = f"model_name:{name}"
    lines[2] = f"python:{stub}"
    if edit:
        edit(lines)
    cfg = tmp_path / "train_infer_python.txt"
    cfg.write_text("\n".join(lines))
    return str(cfg)


def run_tipc(cfg, mode, check=True):
    run = subprocess.run(["bash", "test_tipc/test_train_inference_python.sh", cfg, mode], cwd=ROOT,
                         capture_output=True, text=True, timeout=60)
    checker = subprocess.run([sys.executable, "test_tipc/check_results.py", cfg, mode], cwd=ROOT,
                             capture_output=True, text=True, timeout=60)
    return run, checker


@pytest.fixture
def stub_name(request):
    import shutil

    name = f"_pytest_tipc_{request.node.name}".replace("[", "_").replace("]", "")
    yield name
    shutil.rmtree(os.path.join(ROOT, "test_tipc", "output", name), ignore_errors=True)


def status_lines(name, mode):
    with open(os.path.join(ROOT, "test_tipc", "output", name, mode, "results_python.log")) as f:
        return f.read().splitlines()


needs_cpu_only = pytest.mark.skipif(bool(__import__("shutil").which("nvidia-smi")),
                                    reason="the CPU fallback is only taken on a machine without GPU")


@needs_cpu_only
def test_lite_run_records_every_step_and_checker_passes(tmp_path, stub_name):
    """lite_train_lite_infer runs train/eval/export/4 CPU inference variants per gpu_list entry; on a
    CPU-only machine entry 0 trains with Global.device=cpu and entry 0,1 as a 2-process CPU launch;
    eval/export read <save_log>/latest and inference reads <save_log>/inference; the checker passes."""
    cfg = stub_config(tmp_path, stub_name)
    run, checker = run_tipc(cfg, "lite_train_lite_infer")
    assert run.returncode == 0, run.stdout + run.stderr
    assert checker.returncode == 0 and "PASS" in checker.stdout and "14/14" in checker.stdout, checker.stdout
    lines = status_lines(stub_name, "lite_train_lite_infer")
    assert len(lines) == 14 and all("Run successfully" in line for line in lines)
    out = f"./test_tipc/output/{stub_name}/lite_train_lite_infer"
    assert f"tools/train.py -c configs/demo/mirnetv2_demo.yml -o Global.seed=100" in lines[0]
    assert (f"Global.device=cpu Global.output_dir={out}/norm_train_gpus_0_autocast_null Global.iters=20 "
            "Train.progressive.batch_sizes=[2,2] - ") in lines[0]
    assert f"Global.pretrained_model={out}/norm_train_gpus_0_autocast_null/latest Global.device=cpu" in lines[1]
    assert f"--save_dir={out}/norm_train_gpus_0_autocast_null/inference - " in lines[2]
    assert (f"--device=cpu --enable_mkldnn=True --cpu_threads=1 --model_dir={out}/norm_train_gpus_0_autocast_null"
            f"/inference --batch_size=1 --input=./test_tipc/data/mirnetv2_lite/val/input/coffee_1.png") in lines[3]
    assert lines[3].endswith(f"norm_train_gpus_0_autocast_null/python_infer_cpu_usemkldnn_True_threads_1"
                             f"_precision_fp32_batchsize_1.log \x1b[0m")
    assert (f"-m paddle.distributed.launch --nproc_per_node 2 --log_dir {out}/norm_train_gpus_0,1_autocast_null"
            f"/dist_log tools/train.py") in lines[7]


def test_a_failed_step_does_not_stop_the_run(tmp_path, stub_name):
    """A failing export is recorded as 'Run failed' and the following inference commands still run;
    the script then exits 1 and the checker names the failed log."""
    def edit(lines):
        lines[3] = "gpu_list:-1"
        lines[29] = lines[29] + " FAIL"
    cfg = stub_config(tmp_path, stub_name, edit)
    run, checker = run_tipc(cfg, "lite_train_lite_infer")
    assert run.returncode == 1
    lines = status_lines(stub_name, "lite_train_lite_infer")
    assert [line.split(" with ")[0] for line in lines] == (
        ["\x1b[33m Run successfully"] * 2 + ["\x1b[33m Run failed"] + ["\x1b[33m Run successfully"] * 4)
    assert checker.returncode == 1
    assert "Run failed: ./test_tipc/output/" in checker.stdout and "_export.log" in checker.stdout


def test_checker_reports_a_missing_step(tmp_path, stub_name):
    """A step absent from results_python.log (e.g. one inference variant) fails the check even when
    every recorded line is 'Run successfully'."""
    def edit(lines):
        lines[3] = "gpu_list:-1"
    cfg = stub_config(tmp_path, stub_name, edit)
    run, _ = run_tipc(cfg, "lite_train_lite_infer")
    assert run.returncode == 0
    path = os.path.join(ROOT, "test_tipc", "output", stub_name, "lite_train_lite_infer", "results_python.log")
    lines = status_lines(stub_name, "lite_train_lite_infer")
    with open(path, "w") as f:
        f.write("\n".join(lines[:-1]) + "\n")
    checker = subprocess.run([sys.executable, "test_tipc/check_results.py", cfg, "lite_train_lite_infer"],
                             cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert checker.returncode == 1
    assert "missing step:" in checker.stdout and "threads_2_precision_fp32_batchsize_1.log" in checker.stdout


def test_whole_infer_without_weights_fails_clearly(tmp_path, stub_name):
    """whole_infer with the line-37 weights absent records 'Run failed' for that export, and its log
    names the missing file and the convert_weights.py command that makes it."""
    def edit(lines):
        lines[36] = f"train_model:{tmp_path}/absent.pdparams"
    cfg = stub_config(tmp_path, stub_name, edit)
    run, checker = run_tipc(cfg, "whole_infer")
    assert run.returncode == 1
    lines = status_lines(stub_name, "whole_infer")
    assert len(lines) == 1 and "Run failed" in lines[0] and lines[0].endswith("whole_infer_0_export.log \x1b[0m")
    with open(os.path.join(ROOT, "test_tipc", "output", stub_name, "whole_infer", "whole_infer_0_export.log")) as f:
        log = f.read()
    assert f"{tmp_path}/absent.pdparams" in log and "tools/convert_weights.py" in log
    assert checker.returncode == 1


def test_whole_infer_exports_and_infers_given_weights(tmp_path, stub_name):
    """whole_infer exports the line-37 weights with the line-38 command into whole_infer_0/inference
    and runs every CPU inference variant on the line-48 data; the checker passes."""
    weights = tmp_path / "w.pdparams"
    weights.write_bytes(b"")

    def edit(lines):
        lines[36] = f"train_model:{weights}"
    cfg = stub_config(tmp_path, stub_name, edit)
    run, checker = run_tipc(cfg, "whole_infer")
    assert run.returncode == 0, run.stdout
    lines = status_lines(stub_name, "whole_infer")
    assert len(lines) == 5
    assert (f"tools/export.py -c configs/mirnetv2_sidd.yml -o Global.pretrained_model={weights} "
            f"--save_dir=./test_tipc/output/{stub_name}/whole_infer/whole_infer_0/inference") in lines[0]
    assert checker.returncode == 0, checker.stdout
