"""Check a TIPC run: every command the config asks for ran, and ran successfully.

    python test_tipc/check_results.py CONFIG MODE

Reads CONFIG (the 51-line suite format) the way test_train_inference_python.sh does, works out the log
file of every train, eval, export and inference command that MODE must run, and looks each one up in
./test_tipc/output/<model_name>/<MODE>/results_python.log. The step list is derived here independently of
the run script, so a step the script silently skipped is reported as missing. The layout is the one of
PaddleOCR's test_tipc/test_train_inference_python.sh, so a run of that harness is checked the same way;
both status-line wordings are read: `Run ... with command - <model> - <cmd> - <log>` and the older
`Run ... with command - <cmd>!` (the log is then the command's `> LOG` redirect, or for a training
command `<line 8 key>=<dir>` + `.log`).

Exit codes: 0 all expected steps passed; 1 results missing, a "Run failed" line, or an expected step
absent; 2 bad arguments.
"""
import argparse
import os
import re
import shutil
import subprocess
import sys

MODES = ("lite_train_lite_infer", "lite_train_whole_infer", "whole_train_whole_infer", "whole_infer",
         "benchmark_train")
REDIRECT_RE = re.compile(r">\s*(\S+)\s+2>&1")
STATUS_RE = re.compile(r"^\s*Run (successfully|failed) with command - (.*)$")
ANSI_RE = re.compile(r"\x1b\[[0-9;]*m")


def read_config(path):
    """First 51 lines, CR stripped, empty lines dropped: the indices the bash script uses."""
    with open(path, encoding="utf-8") as f:
        raw = f.read().split("\n")[:51]
    return [line.rstrip("\r") for line in raw if line.rstrip("\r")]


def key_of(line):
    return line.split(":")[0]


def value_of(line):
    parts = line.split(":")
    return parts[1] if len(parts) > 1 else ""


def split_list(value):
    return value.split("|") if value else []


def mode_value(line, mode):
    value = value_of(line)
    if "=" not in value:
        return value
    for item in split_list(value):
        if item.split("=", 1)[0] == mode:
            return item.split("=", 1)[1]
    return ""


def has_gpu(python):
    """Same rule as the run script: nvidia-smi on PATH and a CUDA build of Paddle that sees a device."""
    if shutil.which("nvidia-smi") is None:
        return False
    code = ("import sys, paddle; sys.exit(0 if paddle.is_compiled_with_cuda() "
            "and paddle.device.cuda.device_count() > 0 else 1)")
    result = subprocess.run(python.split() + ["-c", code], capture_output=True)
    return result.returncode == 0


def inference_logs(lines, log_path, flag_quant, gpu_ok, gpu_tag):
    """Log files of the inference variants func_inference runs for one model (flat in log_path)."""
    devices = split_list(value_of(lines[40]))
    mkldnns = split_list(value_of(lines[41]))
    threads = split_list(value_of(lines[42]))
    batches = split_list(value_of(lines[43]))
    trts = split_list(value_of(lines[44]))
    precisions = split_list(value_of(lines[45]))
    logs = []
    for device in devices:
        if device in ("cpu", "False"):
            for mkldnn in mkldnns:
                for thread in threads:
                    for bs in batches:
                        for precision in precisions:
                            if mkldnn == "False" and precision == "fp16":
                                continue
                            if flag_quant == "True" and precision != "int8":
                                continue
                            logs.append(f"python_infer_cpu_gpus_{gpu_tag}_usemkldnn_{mkldnn}_threads_{thread}"
                                        f"_precision_{precision}_batchsize_{bs}.log")
        elif device in ("gpu", "True") and gpu_ok:
            for trt in trts:
                for precision in precisions:
                    if flag_quant != "True" and precision == "int8":
                        continue
                    if trt == "False" and precision in ("fp16", "int8"):
                        continue
                    for bs in batches:
                        logs.append(f"python_infer_gpu_gpus_{gpu_tag}_usetrt_{trt}_precision_{precision}"
                                    f"_batchsize_{bs}.log")
    return [f"{log_path}/{name}" for name in logs]


def expected_logs(lines, mode, gpu_ok):
    """Every log path test_train_inference_python.sh writes a status line for, in run order."""
    log_path = f"./test_tipc/output/{value_of(lines[1])}/{mode}"
    infer_py = value_of(lines[39])
    expected = []
    if mode == "whole_infer":
        exports = split_list(value_of(lines[37]))
        quants = split_list(value_of(lines[38]))
        for i, _ in enumerate(split_list(value_of(lines[36]))):
            if (exports[i] if i < len(exports) else "null") != "null":
                expected.append(f"{log_path}_export_{i}.log")
            if infer_py != "null":
                quant = quants[i] if i < len(quants) else "False"
                expected += inference_logs(lines, log_path, quant, gpu_ok, "0")
        return expected

    trainers = {key_of(lines[i]): (value_of(lines[i]), value_of(lines[j]))
                for i, j in ((16, 30), (17, 31), (18, 32), (19, 33), (20, 34))}
    eval_py = value_of(lines[23])
    for gpu in split_list(value_of(lines[3])):
        gpu_tag, nodes, nodes_tag = gpu, 1, ""
        if ";" in gpu:
            ips, gpu_tag = gpu.split(";", 1)
            nodes = len(ips.split(","))
            nodes_tag = f"_nodes_{nodes}"
        for autocast in split_list(value_of(lines[5])) or ["null"]:
            for trainer in split_list(value_of(lines[14])):
                train, export = trainers.get(trainer, (value_of(lines[15]), value_of(lines[29])))
                if train in ("", "null"):
                    continue
                run_name = f"{log_path}/{trainer}_gpus_{gpu_tag}_autocast_{autocast}"
                expected.append(f"{run_name}{nodes_tag}.log")
                if (";" in gpu and not gpu_ok) or mode == "benchmark_train":
                    continue
                if eval_py != "null":
                    expected.append(f"{run_name}_nodes_{nodes}_eval.log")
                if export not in ("", "null"):
                    expected.append(f"{run_name}_nodes_{nodes}_export.log")
                    if infer_py != "null":
                        quant = "True" if trainer == key_of(lines[16]) else "False"
                        expected += inference_logs(lines, log_path, quant, gpu_ok, gpu_tag)
    return expected


def status_log_of(text, save_model_key):
    """The log file a status line refers to (see the module docstring), or None."""
    text = text.strip()
    if not text.endswith("!"):
        return text.rsplit(" - ", 1)[-1].strip()
    command = text[:-1]
    redirect = REDIRECT_RE.search(command)
    if redirect:
        return redirect.group(1)
    save_dir = re.search(re.escape(save_model_key) + r"=(\S+)", command)
    return save_dir.group(1) + ".log" if save_dir else None


def read_status(results_path, save_model_key):
    """{log_path: [status, ...]} from the status lines of results_python.log."""
    status = {}
    with open(results_path, encoding="utf-8", errors="replace") as f:
        for line in f:
            match = STATUS_RE.match(ANSI_RE.sub("", line).rstrip())
            if not match:
                continue
            log = status_log_of(match.group(2), save_model_key) or match.group(2)
            status.setdefault(os.path.normpath(log), []).append(match.group(1))
    return status


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("config")
    parser.add_argument("mode", choices=MODES)
    args = parser.parse_args(argv)
    if not os.path.isfile(args.config):
        print(f"error: config file not found: {args.config}", file=sys.stderr)
        return 2
    lines = read_config(args.config)
    if len(lines) != 51:
        print(f"error: {args.config}: expected 51 non-empty lines before line 52, found {len(lines)}",
              file=sys.stderr)
        return 2
    os.chdir(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    model = value_of(lines[1])
    results = f"./test_tipc/output/{model}/{args.mode}/results_python.log"
    if not os.path.isfile(results):
        print(f"FAIL {model} {args.mode}: {results} is missing (did test_train_inference_python.sh run?)")
        return 1
    status = read_status(results, key_of(lines[7]))
    expected = [os.path.normpath(log) for log in expected_logs(lines, args.mode, has_gpu(value_of(lines[2])))]
    problems = []
    for log, outcomes in status.items():
        if "failed" in outcomes:
            problems.append(f"Run failed: {log}")
    for log in expected:
        if log not in status:
            problems.append(f"missing step: {log}")
    extra = sorted(set(status) - set(expected))
    ok = sum(1 for log in expected if status.get(log) == ["successfully"])
    summary = f"{model} {args.mode}: {ok}/{len(expected)} expected steps ran successfully"
    if problems:
        print(f"FAIL {summary}")
        for problem in problems:
            print(f"  {problem}")
        return 1
    if extra:
        print(f"note: steps not expected from the config: {', '.join(extra)}")
    print(f"PASS {summary}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
