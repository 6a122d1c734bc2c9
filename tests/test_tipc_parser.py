"""Tests of the TIPC shell helpers (test_tipc/common_func.sh) and of the committed TIPC configs.

The helpers are run through `bash -c 'source test_tipc/common_func.sh; ...'`, exactly as the TIPC
scripts use them; nothing here trains or runs a model.
"""
import glob
import os
import re
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = sorted(glob.glob(os.path.join(ROOT, "test_tipc", "configs", "*", "train_*.txt")))
CPU_CONFIG = "train_linux_cpu_normal_normal_infer_python_linux_cpu.txt"
VARIANTS = ("train_infer_python.txt", CPU_CONFIG, "train_linux_gpu_normal_amp_infer_python_linux_gpu_cpu.txt",
            "train_linux_gpu_fleet_normal_infer_python_linux_gpu_cpu.txt")
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


def config_id(config):
    return os.path.relpath(config, os.path.join(ROOT, "test_tipc", "configs"))


# Slot layout of the suite format (PaddleOCR test_tipc/test_train_inference_python.sh) by index:
# index -> exact line, or key that the line must have.
FIXED = {0: "===========================train_params===========================", 13: "##", 21: "##",
         22: "===========================eval_params===========================", 25: "##",
         26: "===========================infer_params==========================="}
KEYS = {2: "python", 3: "gpu_list", 10: "train_model_name", 11: "train_infer_img_dir", 14: "trainer",
        15: "norm_train", 16: "pact_train", 17: "fpgm_train", 18: "distill_train", 23: "eval",
        29: "norm_export", 30: "quant_export", 31: "fpgm_export", 32: "distill_export", 33: "export1",
        34: "export2", 35: "inference_dir", 36: "train_model", 37: "infer_export", 38: "infer_quant",
        39: "inference", 40: "--device", 41: "--enable_mkldnn", 42: "--cpu_threads", 43: "--batch_size",
        44: "--use_tensorrt", 45: "--precision", 46: "--model_dir", 47: "--input",
        49: "--benchmark"}


def test_configs_exist():
    """Every restoration model has the four training configs under their TIPC names (GPU, CPU,
    AMP, multi-node) and the paddle2onnx config; the inpainting models the GPU and CPU ones."""
    for model in ("mirnetv2", "mimounet", "mimounetplus"):
        for name in VARIANTS + ("model_linux_gpu_normal_normal_paddle2onnx_python_linux_cpu.txt",):
            assert os.path.isfile(os.path.join(ROOT, "test_tipc", "configs", model, name)), (model, name)
    for model in ("ctsdg", "misf"):
        for name in ("train_infer_python.txt", CPU_CONFIG):
            assert os.path.isfile(os.path.join(ROOT, "test_tipc", "configs", model, name)), (model, name)


@pytest.mark.parametrize("config", CONFIGS, ids=config_id)
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
    # Read as the reference harness reads them: line 12 one plain value, the export written to
    # --save_dir itself (line 36 null), line 37 a checkpoint dir (weights and export dir at once),
    # and the save-log slot left null (the reference configs never fill it).
    assert "=" not in lines[11] and "|" not in lines[11], "line 12 is one plain path"
    assert lines[27] == "--save_dir:./output/" and lines[28] == "Global.pretrained_model:"
    assert lines[35] == "inference_dir:null"
    assert not lines[36].endswith(".pdparams") and lines[36].startswith("train_model:./test_tipc/weights/")
    if lines[50].startswith("--mask:") and lines[1] != "model_name:ict":
        # Inpainting: line 51 passes the mask, so the save-log slot passes the ground truth (the
        # folder of the unmasked input image) that deploy/infer.py scores against.
        assert lines[48] == "--gt:" + os.path.dirname(lines[47].split(":", 1)[1])
    else:  # restoration, and ICT, whose diverse samples are not scored against one ground truth
        assert lines[48] == "--output:null"


@pytest.mark.parametrize("config", CONFIGS, ids=config_id)
def test_config_variant_matches_its_tipc_name(config):
    """The file name states the chain (TIPC naming rule): the CPU config trains with gpu_list -1 on
    Global.device cpu and infers on CPU only; the AMP one sets auto_cast amp; the multi-node one
    has an `ips;ids` entry with two machines; the GPU ones infer on gpu and cpu."""
    out = bash('func_read_config "$1"; printf "%s\\n" "${lines[@]}"', config)
    lines = out.split("\n")[:-1]
    value = {i: bash('func_parser_value "$1"', lines[i]).strip() for i in (3, 4, 5, 40)}
    name = os.path.basename(config)
    if name == CPU_CONFIG:
        assert (value[3], value[4], value[5], value[40]) == ("-1", "cpu", "null", "cpu")
        return
    assert value[40] == "gpu|cpu" and "cpu" not in value[4]
    if "_amp_" in name:
        assert value[5] == "amp"
    elif "_fleet_" in name:
        ips, ids = value[3].split(";")
        assert len(ips.split(",")) == 2 and ids == "0,1"
    else:
        assert value[3] == "0|0,1" and value[5] == "null"


@pytest.mark.parametrize("config", CONFIGS, ids=config_id)
def test_config_train_benchmark_block(config):
    """After the parsed lines: the `train_benchmark_params` header followed by the reference's five
    lines (batch_size, fp_items, iterations, --profiler_options, flags) that benchmark_train.sh reads."""
    with open(config) as f:
        lines = [line for line in f.read().split("\n") if line]
    i = next(n for n, line in enumerate(lines) if "train_benchmark_params" in line)
    assert [line.split(":")[0] for line in lines[i + 1:i + 6]] == [
        "batch_size", "fp_items", "iters", "--profiler_options", "flags"]
    assert int(lines[i + 1].split(":")[1]) >= 1 and int(lines[i + 3].split(":")[1]) >= 1


@pytest.mark.parametrize("config", CONFIGS, ids=config_id)
def test_config_names_its_demo_data(config):
    """prepare.sh finds `demo_kind:` and `demo_root:` after the parsed lines, and the inference
    input of the config lies inside that demo root."""
    with open(config) as f:
        lines = f.read().split("\n")
    tail = {line.split(":")[0]: line.split(":", 1)[1] for line in lines[51:] if ":" in line}
    assert tail["demo_kind"] in ("denoise", "deblur", "inpaint")
    root = tail["demo_root"].rstrip("/")
    assert lines[11].split(":", 1)[1].startswith(root + "/")
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


def stub_config(tmp_path, name, edit=None, variant="train_infer_python.txt"):
    """A mirnetv2 config with line 2/3 pointing at a unique model name and the stub interpreter."""
    stub = tmp_path / "stubpython"
    stub.write_text(STUB_PY)
    stub.chmod(0o755)
    with open(os.path.join(ROOT, "test_tipc", "configs", "mirnetv2", variant)) as f:
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
    """lite_train_lite_infer runs train/eval/export/4 CPU inference variants per gpu_list entry, with
    the commands and log names of the reference harness: eval/export read <save_log>/latest, the
    export goes to --save_dir=<save_log> and inference reads <save_log> (line 36 null), eval/export
    logs are <run>_nodes_1_*.log and inference logs lie flat in the mode folder. On a CPU-only
    machine entry 0 trains with Global.device=cpu and entry 0,1 as a 2-process CPU launch (the GPU
    inference variants are skipped). The checker passes."""
    cfg = stub_config(tmp_path, stub_name)
    run, checker = run_tipc(cfg, "lite_train_lite_infer")
    assert run.returncode == 0, run.stdout + run.stderr
    assert checker.returncode == 0 and "PASS" in checker.stdout and "14/14" in checker.stdout, checker.stdout
    lines = status_lines(stub_name, "lite_train_lite_infer")
    assert len(lines) == 14 and all("Run successfully" in line for line in lines)
    out = f"./test_tipc/output/{stub_name}/lite_train_lite_infer"
    run0 = f"{out}/norm_train_gpus_0_autocast_null"
    assert f"tools/train.py -c configs/demo/mirnetv2_demo.yml -o Global.seed=100" in lines[0]
    assert (f"Global.device=cpu Global.output_dir={run0} Global.iters=20 "
            f"Train.progressive.batch_sizes=[2,2] - {run0}.log \x1b[0m") in lines[0]
    assert f"Global.pretrained_model={run0}/latest Global.device=cpu" in lines[1]
    assert lines[1].endswith(f"{run0}_nodes_1_eval.log \x1b[0m")
    assert f"Global.pretrained_model={run0}/latest --save_dir={run0} - {run0}_nodes_1_export.log" in lines[2]
    assert (f"--device=cpu --enable_mkldnn=True --cpu_threads=1 --model_dir={run0} --batch_size=1 "
            f"--input=./test_tipc/data/mirnetv2_lite/val/input --benchmark=True --precision=fp32 "
            f"--gt=./test_tipc/data/mirnetv2_lite/val/groundtruth - ") in lines[3]
    assert "--output" not in lines[3]
    assert lines[3].endswith(f"{out}/python_infer_cpu_gpus_0_usemkldnn_True_threads_1_precision_fp32"
                             f"_batchsize_1.log \x1b[0m")
    assert (f"-m paddle.distributed.launch --nproc_per_node 2 --log_dir {out}/norm_train_gpus_0,1_autocast_null"
            f"/dist_log tools/train.py") in lines[7]
    assert lines[13].endswith("python_infer_cpu_gpus_0,1_usemkldnn_False_threads_6_precision_fp32"
                              "_batchsize_1.log \x1b[0m")


def test_amp_autocast_appends_the_reference_switches(tmp_path, stub_name):
    """auto_cast `amp` appends Global.use_amp=True Global.scale_loss=1024.0
    Global.use_dynamic_loss_scaling=True to the training command and names the run _autocast_amp."""
    def edit(lines):
        lines[3], lines[4] = "gpu_list:-1", "Global.device:cpu"
    cfg = stub_config(tmp_path, stub_name, edit, "train_linux_gpu_normal_amp_infer_python_linux_gpu_cpu.txt")
    run, checker = run_tipc(cfg, "lite_train_lite_infer")
    assert run.returncode == 0, run.stdout
    lines = status_lines(stub_name, "lite_train_lite_infer")
    assert ("Global.use_amp=True Global.scale_loss=1024.0 Global.use_dynamic_loss_scaling=True - "
            f"./test_tipc/output/{stub_name}/lite_train_lite_infer/norm_train_gpus_-1_autocast_amp.log") in lines[0]
    assert checker.returncode == 0, checker.stdout


def test_a_failed_step_does_not_stop_the_run(tmp_path, stub_name):
    """A failing export is recorded as 'Run failed' and the following inference commands still run;
    the script then exits 1 and the checker names the failed log."""
    def edit(lines):
        lines[29] = lines[29] + " FAIL"
    cfg = stub_config(tmp_path, stub_name, edit, CPU_CONFIG)
    run, checker = run_tipc(cfg, "lite_train_lite_infer")
    assert run.returncode == 1
    lines = status_lines(stub_name, "lite_train_lite_infer")
    assert [line.split(" with ")[0] for line in lines] == (
        ["\x1b[33m Run successfully"] * 2 + ["\x1b[33m Run failed"] + ["\x1b[33m Run successfully"] * 4)
    assert checker.returncode == 1
    assert "Run failed: test_tipc/output/" in checker.stdout and "_nodes_1_export.log" in checker.stdout


def test_checker_reports_a_missing_step(tmp_path, stub_name):
    """A step absent from results_python.log (e.g. one inference variant) fails the check even when
    every recorded line is 'Run successfully'."""
    cfg = stub_config(tmp_path, stub_name, None, CPU_CONFIG)
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


def test_checker_reads_the_older_status_wording(tmp_path, stub_name):
    """A results_python.log in the 3-argument wording (`Run successfully with command - <cmd>!`, as
    written by older reference common_func.sh copies) is checked too: the log of each step is found
    from the command's `> LOG 2>&1` redirect, or for training from Global.output_dir=<dir>."""
    cfg = stub_config(tmp_path, stub_name, None, CPU_CONFIG)
    run, _ = run_tipc(cfg, "lite_train_lite_infer")
    assert run.returncode == 0
    path = os.path.join(ROOT, "test_tipc", "output", stub_name, "lite_train_lite_infer", "results_python.log")
    old = []
    for line in status_lines(stub_name, "lite_train_lite_infer"):
        body = line.split(f" - {stub_name} - ", 1)[1].rsplit(" \x1b[0m", 1)[0]
        cmd, log = body.rsplit(" - ", 1)
        if not log.endswith("_autocast_null.log"):
            cmd += f" > {log} 2>&1 "
        old.append(f"\x1b[33m Run successfully with command - {cmd}!  \x1b[0m")
    with open(path, "w") as f:
        f.write("\n".join(old) + "\n")
    checker = subprocess.run([sys.executable, "test_tipc/check_results.py", cfg, "lite_train_lite_infer"],
                             cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert checker.returncode == 0 and "7/7" in checker.stdout, checker.stdout


def test_whole_infer_without_weights_fails_clearly(tmp_path, stub_name):
    """whole_infer with the line-37 weights absent records 'Run failed' for that export, and its log
    names the missing path and how to make it (prepare.sh, or convert_weights.py)."""
    def edit(lines):
        lines[36] = f"train_model:{tmp_path}/absent"
    cfg = stub_config(tmp_path, stub_name, edit, CPU_CONFIG)
    run, checker = run_tipc(cfg, "whole_infer")
    assert run.returncode == 1
    lines = status_lines(stub_name, "whole_infer")
    assert len(lines) == 1 and "Run failed" in lines[0] and lines[0].endswith("whole_infer_export_0.log \x1b[0m")
    with open(os.path.join(ROOT, "test_tipc", "output", stub_name, "whole_infer_export_0.log")) as f:
        log = f.read()
    assert f"{tmp_path}/absent" in log and "prepare.sh" in log and "tools/convert_weights.py" in log
    assert checker.returncode == 1


def test_whole_infer_exports_into_the_weights_dir_and_infers_there(tmp_path, stub_name):
    """whole_infer passes line 37 both as the weights and as --save_dir (the reference harness does),
    logs the export as <MODE>_export_0.log next to the mode folder, then runs every CPU inference
    variant on the line-48 data with --model_dir=<line 37> and logs _gpus_0_; the checker passes."""
    weights = tmp_path / "ckpt"
    weights.mkdir()

    def edit(lines):
        lines[36] = f"train_model:{weights}"
    cfg = stub_config(tmp_path, stub_name, edit, CPU_CONFIG)
    run, checker = run_tipc(cfg, "whole_infer")
    assert run.returncode == 0, run.stdout
    lines = status_lines(stub_name, "whole_infer")
    assert len(lines) == 5
    assert (f"tools/export.py -c configs/demo/mirnetv2_demo.yml --tune_sizes 256x256 -o "
            f"Global.pretrained_model={weights} "
            f"--save_dir={weights} - ./test_tipc/output/{stub_name}/whole_infer_export_0.log") in lines[0]
    assert f"--model_dir={weights} --batch_size=1 --input=./test_tipc/data/mirnetv2_lite/val/input" in lines[1]
    assert "python_infer_cpu_gpus_0_usemkldnn_True_threads_1_precision_fp32_batchsize_1.log" in lines[1]
    assert checker.returncode == 0, checker.stdout


# ---- paddle2onnx config, precision check, benchmark record, TIPC AMP switches

P2O_CONFIGS = sorted(glob.glob(os.path.join(ROOT, "test_tipc", "configs", "*",
                                            "model_linux_gpu_normal_normal_paddle2onnx_python_linux_cpu.txt")))


@pytest.mark.parametrize("config", P2O_CONFIGS, ids=config_id)
def test_paddle2onnx_config_layout(config):
    """test_paddle2onnx.sh reads 13 lines: the export command with --onnx, the weights prepare.sh
    makes, the export dir, opset and tolerance, the inference script, devices, model-dir key, and
    the data (inside the config's demo root)."""
    with open(config) as f:
        lines = [line for line in f.read().split("\n") if line]
    keys = [line.split(":")[0] for line in lines[:13]]
    assert keys == ["===========================paddle2onnx_params===========================", "model_name",
                    "python", "2onnx", "Global.pretrained_model", "--save_dir", "--opset", "--atol", "inference",
                    "--device", "--model_dir", "--input", "--gt"]
    assert lines[1] == "model_name:" + os.path.basename(os.path.dirname(config))
    assert " --onnx -o" in lines[3] and lines[3].endswith(" -o")
    assert lines[4].split(":")[1].startswith("./test_tipc/weights/")
    root = next(line for line in lines if line.startswith("demo_root:")).split(":")[1]
    assert lines[11].split(":")[1].startswith(root + "/") and lines[12].split(":")[1].startswith(root + "/")


def test_compare_results_tolerance_and_image_set(tmp_path):
    """compare_results.py reads the per-image score lines of inference logs, passes scores within
    atol of the stored `image<TAB>json` file, and fails on a larger difference or a missing image;
    --write stores a log's scores in that format."""
    log = tmp_path / "python_infer_cpu_fp32.log"
    log.write_text("no --output given\na.png  psnr: 20.0000  ssim: 0.5000\nb.png  psnr: 30.0000  ssim: 0.9000\n"
                   "mean over 2 images  psnr: 25.0000  ssim: 0.7000\n")
    stored = tmp_path / "python_m_results_fp32.txt"

    def run(*args):
        return subprocess.run([sys.executable, "test_tipc/compare_results.py", *args], cwd=ROOT,
                              capture_output=True, text=True, timeout=60)
    assert run("--write", str(stored), "--log_file", str(log)).returncode == 0
    assert stored.read_text() == 'a.png\t{"psnr": 20.0, "ssim": 0.5}\nb.png\t{"psnr": 30.0, "ssim": 0.9}\n'
    close = tmp_path / "close.log"
    close.write_text("a.png  psnr: 20.0040  ssim: 0.5000\nb.png  psnr: 29.9990  ssim: 0.9010\n")
    assert run("--gt_file", str(stored), "--log_file", str(close)).returncode == 0
    far = tmp_path / "far.log"
    far.write_text("a.png  psnr: 20.0100  ssim: 0.5000\nb.png  psnr: 30.0000  ssim: 0.9000\n")
    result = run("--gt_file", str(stored), "--log_file", str(far))
    assert result.returncode == 1 and "a.png psnr: 20.01 vs reference 20.0" in result.stdout
    short = tmp_path / "short.log"
    short.write_text("a.png  psnr: 20.0000  ssim: 0.5000\n")
    result = run("--gt_file", str(close), "--log_file", str(short))
    assert result.returncode == 1 and "missing ['b.png']" in result.stdout


def test_stored_results_cover_every_model():
    """Each model has stored fp32 whole_infer scores for the images of its CPU config's data (the
    inpainting configs infer one image with one mask, scored with the inpainting metrics)."""
    expected = {"mirnetv2": (6, {"psnr", "ssim"}), "mimounet": (6, {"psnr", "ssim"}),
                "mimounetplus": (6, {"psnr", "ssim"}), "misf": (1, {"psnr", "ssim", "l1"})}
    for model, (count, metrics) in expected.items():
        path = os.path.join(ROOT, "test_tipc", "results", f"python_{model}_results_fp32.txt")
        with open(path) as f:
            rows = [line.split("\t") for line in f.read().splitlines()]
        assert len(rows) >= count and all(set(__import__("json").loads(r[1])) == metrics for r in rows)


def test_benchmark_analysis_record(tmp_path):
    """benchmark_analysis.py averages ips and batch_cost over the logged steps after --skip_steps,
    scales ips by the device count, takes the last loss, and fails when no step is left."""
    log = tmp_path / "train_log"
    steps = [(1, 9.0, 0.1), (2, 1.0, 2.0), (3, 3.0, 4.0)]
    log.write_text("".join(f"[2026/01/01 00:00:0{i}] INFO [train] iter {i}/3  lr 1.0e-03  loss 0.{i}  "
                           f"reader_cost 0.0 s  batch_cost {c} s  ips: {p} images/s  eta 0:00:00\n"
                           for i, c, p in steps))
    out = tmp_path / "speed"
    args = [sys.executable, "test_tipc/benchmark_analysis.py", "--filename", str(log), "--speed_log_file", str(out),
            "--model_name", "m_bs2_fp32_DP", "--base_batch_size", "2", "--device_num", "N1C2", "--skip_steps", "1"]
    assert subprocess.run(args, cwd=ROOT, capture_output=True, timeout=60).returncode == 0
    record = __import__("json").loads(out.read_text())
    assert (record["ips"], record["batch_cost"], record["convergence_value"], record["steps"]) == (6.0, 2.0, 0.3, 2)
    assert record["speed_unit"] == "samples/s" and record["model_run_time"] == "2"
    args[-1] = "3"
    assert subprocess.run(args, cwd=ROOT, capture_output=True, timeout=60).returncode == 1


def test_tipc_amp_switches_override_the_amp_section():
    """Global.use_amp / scale_loss / use_dynamic_loss_scaling (what TIPC's amp autocast appends)
    are accepted config keys and take precedence over AMP.enable and AMP.init_loss_scaling."""
    from ppir.config import load_config
    from ppir.engine.amp import amp_settings

    cfg = os.path.join(ROOT, "configs", "demo", "mirnetv2_demo.yml")
    assert amp_settings(load_config(cfg)) == (False, 1024.0, True)
    tipc = load_config(cfg, ["Global.use_amp=True", "Global.scale_loss=512.0",
                             "Global.use_dynamic_loss_scaling=False"])
    assert amp_settings(tipc) == (True, 512.0, False)
    assert amp_settings(load_config(cfg, ["AMP.enable=True", "Global.use_amp=False"]))[0] is False


@pytest.mark.parametrize("overrides, expected", [
    (["amp=None"], (False, 1024.0, True)),                        # PaddleOCR/PaddleClas harness, AMP off
    (["AMP=None"], (False, 1024.0, True)),
    (["AMP.enable=True", "amp=None"], (False, 1024.0, True)),
    (["amp.scale_loss=128.0", "amp.use_dynamic_loss_scaling=False", "amp.amp_level=O2"], (True, 128.0, False)),
])
def test_harness_variant_amp_keys_are_amp_settings(overrides, expected):
    """The AMP overrides other harnesses of the family append map onto ppir's AMP settings (they
    used to fail every train command as unknown keys); `amp.amp_level` sets AMP.level."""
    from ppir.config import load_config
    from ppir.engine.amp import amp_settings

    cfg = load_config(os.path.join(ROOT, "configs", "demo", "mirnetv2_demo.yml"), overrides)
    assert amp_settings(cfg) == expected
    assert cfg["AMP"]["level"] == ("O2" if "amp.amp_level=O2" in overrides else "O1")


@pytest.mark.parametrize("override, fragment", [
    ("amp.scale_los=1.0", "unknown config key 'amp.scale_los'"),
    ("amp=3", "amp takes None (AMP off) or a boolean"),
    ("ampp=None", "unknown config key 'ampp'"),
    ("Global.use_ampp=True", "unknown config key 'Global.use_ampp'"),
])
def test_other_amp_like_keys_stay_errors(override, fragment):
    from ppir.config import load_config
    from ppir.errors import ConfigError

    with pytest.raises(ConfigError, match=re.escape(fragment)):
        load_config(os.path.join(ROOT, "configs", "demo", "mirnetv2_demo.yml"), [override])


@pytest.mark.parametrize("demo", ["mimounet_demo.yml", "misf_demo.yml"])
def test_make_weights_writes_a_loadable_seeded_checkpoint(tmp_path, demo):
    """make_weights.py (prepare.sh's whole_infer weights) writes model.pdparams + COMPLETE, a dir
    that `Global.pretrained_model` loads, and the same config seed gives identical weights; a
    multi-network config (MISF: generator + discriminator) writes every network, the primary as
    model.pdparams."""
    import numpy as np
    import paddle

    from ppir.config import load_config
    from ppir.engine.checkpoint import load_weights
    from ppir.models import build_model

    cfg = os.path.join(ROOT, "configs", "demo", demo)
    dirs = [tmp_path / "a", tmp_path / "b"]
    for d in dirs:
        result = subprocess.run([sys.executable, "test_tipc/make_weights.py", "-c", cfg, "--save_dir", str(d)],
                                cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr
        others = [f"{name}.pdparams" for name in list(build_model(load_config(cfg)).networks)[1:]]
        assert sorted(os.listdir(d)) == sorted(["COMPLETE", "model.pdparams", *others])
    a, b = (paddle.load(str(d / "model.pdparams")) for d in dirs)
    assert a.keys() == b.keys() and all(np.array_equal(a[k].numpy(), b[k].numpy()) for k in a)
    load_weights(build_model(load_config(cfg)).net, str(dirs[0]))
