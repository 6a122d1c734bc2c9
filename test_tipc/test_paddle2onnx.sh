#!/bin/bash
# TIPC paddle2onnx chain: export to ONNX, run it with onnxruntime, check it against Paddle Inference.
#
#   bash test_tipc/prepare.sh CONFIG paddle2onnx_infer
#   bash test_tipc/test_paddle2onnx.sh CONFIG
#
# CONFIG is configs/<model>/model_linux_gpu_normal_normal_paddle2onnx_python_linux_cpu.txt (13 lines,
# layout in test_tipc/docs/test_paddle2onnx.md). Steps, each with a status line in
# ./test_tipc/output/<model_name>/paddle2onnx/results_paddle2onnx.log:
#   1. <2onnx> <weights key>=<weights> <save key>=<dir> <opset key>=<v> <atol key>=<v>: tools/export.py
#      --onnx writes the Paddle and ONNX models and already compares both with dygraph;
#   2. <inference> --backend=onnxruntime on the config's images, for each device of the list
#      (paddle2onnx_infer_<device>.log);
#   3. the same with Paddle Inference (paddle_infer_<device>.log);
#   4. test_tipc/compare_results.py: the per-image scores of 2 must equal those of 3 within its
#      tolerance (paddle2onnx_compare_<device>.log).

if [[ $# -lt 1 ]]; then
    echo "usage: bash test_tipc/test_paddle2onnx.sh CONFIG" >&2
    exit 2
fi
source "$(dirname "${BASH_SOURCE[0]}")/common_func.sh"
if [[ ! -f "$1" ]]; then
    echo "error: config file not found: $1" >&2
    exit 2
fi
FILENAME=$(realpath "$1")
cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 2
export GLOG_minloglevel=${GLOG_minloglevel:-2}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}

mapfile -t lines < <(sed -n '1,13p' "${FILENAME}" | tr -d '\r' | awk 'length($0) > 0')
if [[ ${#lines[@]} -ne 13 ]]; then
    echo "error: ${FILENAME} must hold 13 non-empty lines (found ${#lines[@]});" \
         "see test_tipc/docs/test_paddle2onnx.md" >&2
    exit 2
fi
model_name=$(func_parser_value "${lines[1]}")
python=$(func_parser_value "${lines[2]}")
to_onnx=$(func_parser_value "${lines[3]}")
weights_key=$(func_parser_key "${lines[4]}")
weights=$(func_parser_value "${lines[4]}")
save_key=$(func_parser_key "${lines[5]}")
save_dir=$(func_parser_value "${lines[5]}")
opset_key=$(func_parser_key "${lines[6]}")
opset=$(func_parser_value "${lines[6]}")
atol_key=$(func_parser_key "${lines[7]}")
atol=$(func_parser_value "${lines[7]}")
inference_py=$(func_parser_value "${lines[8]}")
device_key=$(func_parser_key "${lines[9]}")
device_list=$(func_parser_value "${lines[9]}")
model_dir_key=$(func_parser_key "${lines[10]}")
input_key=$(func_parser_key "${lines[11]}")
input=$(func_parser_value "${lines[11]}")
gt_key=$(func_parser_key "${lines[12]}")
gt=$(func_parser_value "${lines[12]}")

LOG_PATH="./test_tipc/output/${model_name}/paddle2onnx"
rm -rf "${LOG_PATH}"
mkdir -p "${LOG_PATH}"
status_log="${LOG_PATH}/results_paddle2onnx.log"

cmd="${python} ${to_onnx} $(func_set_params "${weights_key}" "${weights}") $(func_set_params "${save_key}" "${save_dir}")"
cmd+=" $(func_set_params "${opset_key}" "${opset}") $(func_set_params "${atol_key}" "${atol}")"
if func_run "${cmd}" "${LOG_PATH}/paddle2onnx_export.log"; then
    declare -a devices
    func_split_list "${device_list}" devices
    common="$(func_set_params "${model_dir_key}" "${save_dir}") $(func_set_params "${input_key}" "${input}")"
    common+=" $(func_set_params "${gt_key}" "${gt}")"
    for device in "${devices[@]}"; do
        set_device=$(func_set_params "${device_key}" "${device}")
        onnx_log="${LOG_PATH}/paddle2onnx_infer_${device}.log"
        paddle_log="${LOG_PATH}/paddle_infer_${device}.log"
        func_run "${python} ${inference_py} ${set_device} ${common} --backend=onnxruntime" "${onnx_log}" || continue
        func_run "${python} ${inference_py} ${set_device} ${common} --backend=paddle" "${paddle_log}" || continue
        func_run "${python} test_tipc/compare_results.py --gt_file=${paddle_log} --log_file=${onnx_log}" \
            "${LOG_PATH}/paddle2onnx_compare_${device}.log"
    done
fi

n_ok=$(grep -c "Run successfully" "${status_log}" 2> /dev/null)
n_fail=$(grep -c "Run failed" "${status_log}" 2> /dev/null)
echo "TIPC ${model_name} paddle2onnx: ${n_ok:-0} commands ran successfully, ${n_fail:-0} failed (${status_log})"
[[ "${n_fail:-0}" -eq 0 ]]
