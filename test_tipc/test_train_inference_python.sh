#!/bin/bash
# TIPC basic chain: train -> eval -> export -> Paddle Inference, driven by a 51-line suite-format config.
#
#   bash test_tipc/test_train_inference_python.sh CONFIG MODE [GPUID]
#
# MODE: lite_train_lite_infer | lite_train_whole_infer | whole_train_whole_infer | whole_infer |
#       benchmark_train (training only; test_tipc/benchmark_train.sh drives it)
# GPUID (whole_infer only): value for CUDA_VISIBLE_DEVICES.
# Results: ./test_tipc/output/<model_name>/<MODE>/results_python.log, one status line per command.
# The commands and log files are those of PaddleOCR's test_tipc/test_train_inference_python.sh, so
# the same config passes both; the differences (checks, CPU fallbacks) are listed in
# test_tipc/docs/test_train_inference_python.md with the config line by line.

usage="usage: bash test_tipc/test_train_inference_python.sh CONFIG MODE [GPUID]
  MODE: lite_train_lite_infer | lite_train_whole_infer | whole_train_whole_infer | whole_infer | benchmark_train"
if [[ $# -lt 2 ]]; then
    echo "${usage}" >&2
    exit 2
fi
MODE=$2
GPUID=$3
source "$(dirname "${BASH_SOURCE[0]}")/common_func.sh"
func_enter_repo "$1" "${MODE}" || { echo "${usage}" >&2; exit 2; }

# Quiet glog INFO spam and keep Paddle eager at one OpenMP thread (two measured 2.5x slower on this
# project's 2-core CPU machine); a caller's own settings win.
export GLOG_minloglevel=${GLOG_minloglevel:-2}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}

func_read_config "${FILENAME}"

# ---- train_params (line index = 0-based position among the non-empty lines 1-51)
model_name=$(func_parser_value "${lines[1]}")
python=$(func_parser_value "${lines[2]}")
gpu_list=$(func_parser_value "${lines[3]}")
device_key=$(func_parser_key "${lines[4]}")
device_value=$(func_parser_value "${lines[4]}")
autocast_key=$(func_parser_key "${lines[5]}")
autocast_list=$(func_parser_value "${lines[5]}")
iters_key=$(func_parser_key "${lines[6]}")
iters_value=$(func_parser_params "${lines[6]}" "${MODE}")
save_model_key=$(func_parser_key "${lines[7]}")
train_batch_key=$(func_parser_key "${lines[8]}")
train_batch_value=$(func_parser_params "${lines[8]}" "${MODE}")
pretrain_model_key=$(func_parser_key "${lines[9]}")
pretrain_model_value=$(func_parser_value "${lines[9]}")
train_model_name=$(func_parser_value "${lines[10]}")
train_infer_img_dir=$(func_parser_value "${lines[11]}")
train_param_key1=$(func_parser_key "${lines[12]}")
train_param_value1=$(func_parser_value "${lines[12]}")

trainer_list=$(func_parser_value "${lines[14]}")
norm_trainer=$(func_parser_value "${lines[15]}")
pact_key=$(func_parser_key "${lines[16]}")
pact_trainer=$(func_parser_value "${lines[16]}")
fpgm_key=$(func_parser_key "${lines[17]}")
fpgm_trainer=$(func_parser_value "${lines[17]}")
distill_key=$(func_parser_key "${lines[18]}")
distill_trainer=$(func_parser_value "${lines[18]}")
trainer_key1=$(func_parser_key "${lines[19]}")
trainer_value1=$(func_parser_value "${lines[19]}")
trainer_key2=$(func_parser_key "${lines[20]}")
trainer_value2=$(func_parser_value "${lines[20]}")

# ---- eval_params
eval_py=$(func_parser_value "${lines[23]}")
eval_key1=$(func_parser_key "${lines[24]}")
eval_value1=$(func_parser_value "${lines[24]}")

# ---- infer_params
save_infer_key=$(func_parser_key "${lines[27]}")
export_weight_key=$(func_parser_key "${lines[28]}")
norm_export=$(func_parser_value "${lines[29]}")
pact_export=$(func_parser_value "${lines[30]}")
fpgm_export=$(func_parser_value "${lines[31]}")
distill_export=$(func_parser_value "${lines[32]}")
export_key1=$(func_parser_value "${lines[33]}")
export_key2=$(func_parser_value "${lines[34]}")
inference_dir=$(func_parser_value "${lines[35]}")
infer_model_list=$(func_parser_value "${lines[36]}")
infer_export_list=$(func_parser_value "${lines[37]}")
infer_quant_list=$(func_parser_value "${lines[38]}")
inference_py=$(func_parser_value "${lines[39]}")
infer_device_key=$(func_parser_key "${lines[40]}")
infer_device_list=$(func_parser_value "${lines[40]}")
mkldnn_key=$(func_parser_key "${lines[41]}")
mkldnn_list=$(func_parser_value "${lines[41]}")
cpu_threads_key=$(func_parser_key "${lines[42]}")
cpu_threads_list=$(func_parser_value "${lines[42]}")
batch_size_key=$(func_parser_key "${lines[43]}")
batch_size_list=$(func_parser_value "${lines[43]}")
use_trt_key=$(func_parser_key "${lines[44]}")
use_trt_list=$(func_parser_value "${lines[44]}")
precision_key=$(func_parser_key "${lines[45]}")
precision_list=$(func_parser_value "${lines[45]}")
infer_model_key=$(func_parser_key "${lines[46]}")
image_dir_key=$(func_parser_key "${lines[47]}")
infer_img_dir=$(func_parser_value "${lines[47]}")
save_log_key=$(func_parser_key "${lines[48]}")
save_log_value=$(func_parser_value "${lines[48]}")
benchmark_key=$(func_parser_key "${lines[49]}")
benchmark_value=$(func_parser_value "${lines[49]}")
infer_key1=$(func_parser_key "${lines[50]}")
infer_value1=$(func_parser_value "${lines[50]}")

if [[ ${#lines[@]} -ne 51 || -z "${model_name}" ]]; then
    echo "error: ${FILENAME} must hold 51 non-empty lines in the suite layout before any blank line" \
         "(found ${#lines[@]}); see test_tipc/docs/test_train_inference_python.md" >&2
    exit 2
fi

LOG_PATH="./test_tipc/output/${model_name}/${MODE}"
# A rerun starts from an empty results folder, so results_python.log only ever describes this run.
rm -rf "${LOG_PATH}" "${LOG_PATH}"_export_*.log
mkdir -p "${LOG_PATH}"
status_log="${LOG_PATH}/results_python.log"

# GPU work needs both a CUDA build of Paddle and a visible driver; otherwise every gpu_list entry
# runs on CPU (multi-card entries as a multi-process CPU job, see func_train_launcher).
has_gpu=False
if command -v nvidia-smi > /dev/null 2>&1 && ${python} -c \
        "import sys, paddle; sys.exit(0 if paddle.is_compiled_with_cuda() and paddle.device.cuda.device_count() > 0 else 1)" \
        > /dev/null 2>&1; then
    has_gpu=True
fi
echo "TIPC ${model_name} ${MODE}: GPU available: ${has_gpu}; results in ${LOG_PATH}"

# func_inference MODEL_DIR IMG_DIR FLAG_QUANT GPU
# Runs the inference script once per device variant; the log of each is
# LOG_PATH/python_infer_cpu_gpus_<GPU>_usemkldnn_<m>_threads_<t>_precision_<p>_batchsize_<b>.log or
# LOG_PATH/python_infer_gpu_gpus_<GPU>_usetrt_<trt>_precision_<p>_batchsize_<b>.log.
# CPU: enable_mkldnn x cpu_threads x batch_size x precision (no fp16 without oneDNN; a quantised
# model only as int8). GPU (only where a GPU is available): use_tensorrt x precision x batch_size
# (int8 only for quantised models, fp16/int8 only with TensorRT).
function func_inference() {
    local _model_dir="$1" _img_dir="$2" _flag_quant="$3" _gpu="$4"
    local -a devices mkldnns threads batches trts precisions
    func_split_list "${infer_device_list}" devices
    func_split_list "${mkldnn_list}" mkldnns
    func_split_list "${cpu_threads_list}" threads
    func_split_list "${batch_size_list}" batches
    func_split_list "${use_trt_list}" trts
    func_split_list "${precision_list}" precisions
    local set_model_dir set_infer_data set_benchmark set_save_log set_infer_params1
    set_model_dir=$(func_set_params "${infer_model_key}" "${_model_dir}")
    set_infer_data=$(func_set_params "${image_dir_key}" "${_img_dir}")
    set_benchmark=$(func_set_params "${benchmark_key}" "${benchmark_value}")
    set_save_log=$(func_set_params "${save_log_key}" "${save_log_value}")
    set_infer_params1=$(func_set_params "${infer_key1}" "${infer_value1}")
    local device mkldnn thread bs trt precision cmd
    for device in "${devices[@]}"; do
        if [[ "${device}" == "cpu" || "${device}" == "False" ]]; then
            for mkldnn in "${mkldnns[@]}"; do
                for thread in "${threads[@]}"; do
                    for bs in "${batches[@]}"; do
                        for precision in "${precisions[@]}"; do
                            [[ "${mkldnn}" == "False" && "${precision}" == "fp16" ]] && continue
                            [[ "${_flag_quant}" == "True" && "${precision}" != "int8" ]] && continue
                            cmd="${python} ${inference_py} ${infer_device_key}=${device}"
                            cmd+=" $(func_set_params "${mkldnn_key}" "${mkldnn}") $(func_set_params "${cpu_threads_key}" "${thread}")"
                            cmd+=" ${set_model_dir} $(func_set_params "${batch_size_key}" "${bs}") ${set_save_log}"
                            cmd+=" ${set_infer_data} ${set_benchmark} $(func_set_params "${precision_key}" "${precision}")"
                            cmd+=" ${set_infer_params1}"
                            func_run "${cmd}" "${LOG_PATH}/python_infer_cpu_gpus_${_gpu}_usemkldnn_${mkldnn}_threads_${thread}_precision_${precision}_batchsize_${bs}.log"
                        done
                    done
                done
            done
        elif [[ "${device}" == "gpu" || "${device}" == "True" ]]; then
            if [[ "${has_gpu}" != "True" ]]; then
                echo "skip GPU inference (${infer_device_key}=${device}): no GPU on this machine"
                continue
            fi
            for trt in "${trts[@]}"; do
                for precision in "${precisions[@]}"; do
                    [[ "${_flag_quant}" != "True" && "${precision}" == "int8" ]] && continue
                    [[ "${trt}" == "False" && ( "${precision}" == "fp16" || "${precision}" == "int8" ) ]] && continue
                    for bs in "${batches[@]}"; do
                        cmd="${python} ${inference_py} ${infer_device_key}=${device}"
                        cmd+=" $(func_set_params "${use_trt_key}" "${trt}") $(func_set_params "${precision_key}" "${precision}")"
                        cmd+=" ${set_model_dir} $(func_set_params "${batch_size_key}" "${bs}") ${set_infer_data}"
                        cmd+=" ${set_benchmark} ${set_infer_params1} ${set_save_log}"
                        func_run "${cmd}" "${LOG_PATH}/python_infer_gpu_gpus_${_gpu}_usetrt_${trt}_precision_${precision}_batchsize_${bs}.log"
                    done
                done
            done
        else
            echo "Does not support hardware other than CPU and GPU Currently! (${infer_device_key}=${device})"
        fi
    done
}

# Prints the launcher prefix for a gpu_list entry: nothing for CPU (-1) and single devices,
# `-m paddle.distributed.launch ...` for a multi-device entry. Without a GPU a multi-device entry
# `0,1` becomes one CPU process per listed id (gloo); `--gpus` would fail on a CPU build of Paddle.
function func_train_launcher() {
    local gpu="$1"
    local save_log="$2"
    local ids="${gpu#*;}"
    if [[ "${gpu}" == "-1" || "${ids}" != *,* ]]; then
        echo ""
    elif [[ "${has_gpu}" == "True" ]]; then
        if [[ "${gpu}" == *";"* ]]; then
            echo "-m paddle.distributed.launch --ips=${gpu%%;*} --gpus=${ids} --log_dir=${save_log}/dist_log"
        else
            echo "-m paddle.distributed.launch --gpus=${ids} --log_dir=${save_log}/dist_log"
        fi
    else
        local -a id_arr
        IFS="," read -r -a id_arr <<< "${ids}"
        echo "-m paddle.distributed.launch --nproc_per_node ${#id_arr[@]} --log_dir ${save_log}/dist_log"
    fi
}

if [[ "${MODE}" == "whole_infer" ]]; then
    [[ -n "${GPUID}" ]] && export CUDA_VISIBLE_DEVICES=${GPUID}
    declare -a infer_models infer_exports infer_quants
    func_split_list "${infer_model_list}" infer_models
    func_split_list "${infer_export_list}" infer_exports
    func_split_list "${infer_quant_list}" infer_quants
    for i in "${!infer_models[@]}"; do
        # Line 37 is the weights and, when line 38 exports, also the directory the export is
        # written to and inference reads (prepare.sh makes it a checkpoint dir).
        infer_model="${infer_models[$i]}"
        infer_export="${infer_exports[$i]:-null}"
        if [[ "${infer_export}" != "null" ]]; then
            export_log="${LOG_PATH}_export_${i}.log"
            export_cmd="${python} ${infer_export} $(func_set_params "${export_weight_key}" "${infer_model}")"
            export_cmd+=" $(func_set_params "${save_infer_key}" "${infer_model}")"
            if [[ ! -e "${infer_model}" ]]; then
                echo "error: missing weights ${infer_model} (config line 37, train_model): run" \
                     "bash test_tipc/prepare.sh CONFIG whole_infer, or put converted weights there:" \
                     "$(func_convert_hint "${python}" "${infer_export}" "${infer_model}")" | tee "${export_log}"
                status_check 1 "${export_cmd}" "${status_log}" "${model_name}" "${export_log}"
                continue
            fi
            func_run "${export_cmd}" "${export_log}" || continue
        fi
        if [[ "${inference_py}" != "null" ]]; then
            func_inference "${infer_model}" "${infer_img_dir}" "${infer_quants[$i]:-False}" 0
        fi
    done
else
    declare -a gpus device_values autocasts trainers
    func_split_list "${gpu_list}" gpus
    func_split_list "${device_value}" device_values
    func_split_list "${autocast_list}" autocasts
    func_split_list "${trainer_list}" trainers
    [[ ${#autocasts[@]} -eq 0 ]] && autocasts=("null")
    for g in "${!gpus[@]}"; do
        gpu="${gpus[$g]}"
        # Device: -1 is CPU; a GPU id runs on that GPU when there is one, else on CPU.
        env=""
        if [[ "${gpu}" == "-1" || "${has_gpu}" != "True" ]]; then
            device="cpu"
        else
            device="${device_values[$g]:-gpu}"
            ids="${gpu#*;}"
            env="CUDA_VISIBLE_DEVICES=${ids%%,*}"
        fi
        # A line-5 key of `##`/`null` means the trainer picks its own device.
        set_device=$(func_set_params "${device_key}" "${device}")
        # `ips;ids` is a multi-machine entry: named by its ids plus _nodes_<number of ips>.
        gpu_tag="${gpu#*;}"
        nodes=1
        nodes_tag=""
        if [[ "${gpu}" == *";"* ]]; then
            IFS="," read -r -a ips <<< "${gpu%%;*}"
            nodes=${#ips[@]}
            nodes_tag="_nodes_${nodes}"
        fi
        for autocast in "${autocasts[@]}"; do
            # As in the reference harness the line-6 key only names the run; `amp` switches AMP on
            # through the Global.* keys it appends (ppir/engine/amp.py reads them).
            set_amp=" "
            [[ "${autocast}" == "amp" ]] && set_amp="Global.use_amp=True Global.scale_loss=1024.0 Global.use_dynamic_loss_scaling=True"
            for trainer in "${trainers[@]}"; do
                flag_quant=False
                if [[ "${trainer}" == "${pact_key}" ]]; then
                    run_train=${pact_trainer}; run_export=${pact_export}; flag_quant=True
                elif [[ "${trainer}" == "${fpgm_key}" ]]; then
                    run_train=${fpgm_trainer}; run_export=${fpgm_export}
                elif [[ "${trainer}" == "${distill_key}" ]]; then
                    run_train=${distill_trainer}; run_export=${distill_export}
                elif [[ "${trainer}" == "${trainer_key1}" ]]; then
                    run_train=${trainer_value1}; run_export=${export_key1}
                elif [[ "${trainer}" == "${trainer_key2}" ]]; then
                    run_train=${trainer_value2}; run_export=${export_key2}
                else
                    run_train=${norm_trainer}; run_export=${norm_export}
                fi
                if [[ -z "${run_train}" || "${run_train}" == "null" ]]; then
                    echo "skip trainer ${trainer}: no command in the config"
                    continue
                fi

                run_name="${trainer}_gpus_${gpu_tag}_autocast_${autocast}"
                save_log="${LOG_PATH}/${run_name}${nodes_tag}"
                mkdir -p "${save_log}"
                if [[ "${gpu}" == *";"* && "${has_gpu}" != "True" ]]; then
                    msg="multi-machine entry '${gpu}' needs GPUs; this machine has none"
                    echo "error: ${msg}" | tee "${save_log}.log"
                    status_check 1 "${msg}" "${status_log}" "${model_name}" "${save_log}.log"
                    continue
                fi
                launcher=$(func_train_launcher "${gpu}" "${save_log}")
                set_save_model=$(func_set_params "${save_model_key}" "${save_log}")
                set_iters=$(func_set_params "${iters_key}" "${iters_value}")
                set_batchsize=$(func_set_params "${train_batch_key}" "${train_batch_value}")
                set_pretrain=$(func_set_params "${pretrain_model_key}" "${pretrain_model_value}")
                set_train_params1=$(func_set_params "${train_param_key1}" "${train_param_value1}")
                train_env="${env}"
                [[ -n "${launcher}" ]] && train_env=""
                cmd="${train_env} ${python} ${launcher} ${run_train} ${set_device} ${set_save_model} ${set_iters}"
                cmd+=" ${set_pretrain} ${set_batchsize} ${set_train_params1} ${set_amp}"
                func_run "${cmd}" "${save_log}.log"
                # benchmark_train measures training only (test_tipc/benchmark_train.sh reads the log).
                [[ "${MODE}" == "benchmark_train" ]] && continue

                # Eval and export read the checkpoint the training left (line 11, e.g. `latest`).
                weights="${save_log}/${train_model_name}"
                if [[ "${eval_py}" != "null" ]]; then
                    set_eval_pretrain=$(func_set_params "${pretrain_model_key}" "${weights}")
                    set_eval_params1=$(func_set_params "${eval_key1}" "${eval_value1}")
                    eval_cmd="${env} ${python} ${eval_py} ${set_eval_pretrain} ${set_device} ${set_eval_params1}"
                    func_run "${eval_cmd}" "${LOG_PATH}/${run_name}_nodes_${nodes}_eval.log"
                fi
                if [[ -n "${run_export}" && "${run_export}" != "null" ]]; then
                    # The export goes to <save_log> itself; inference reads <save_log>/<line 36>,
                    # which is <save_log> when line 36 is null (tools/export.py writes into --save_dir).
                    set_export_weight=$(func_set_params "${export_weight_key}" "${weights}")
                    set_save_infer_key=$(func_set_params "${save_infer_key}" "${save_log}")
                    export_cmd="${python} ${run_export} ${set_export_weight} ${set_save_infer_key}"
                    func_run "${export_cmd}" "${LOG_PATH}/${run_name}_nodes_${nodes}_export.log"
                    infer_model_dir="${save_log}"
                    [[ "${inference_dir}" != "null" && "${inference_dir}" != "##" ]] && infer_model_dir="${save_log}/${inference_dir}"
                    if [[ "${inference_py}" != "null" ]]; then
                        [[ -n "${env}" ]] && export ${env}
                        func_inference "${infer_model_dir}" "${train_infer_img_dir}" "${flag_quant}" "${gpu_tag}"
                        unset CUDA_VISIBLE_DEVICES
                    fi
                fi
            done
        done
    done
fi

n_ok=$(grep -c "Run successfully" "${status_log}" 2> /dev/null)
n_fail=$(grep -c "Run failed" "${status_log}" 2> /dev/null)
echo "TIPC ${model_name} ${MODE}: ${n_ok:-0} commands ran successfully, ${n_fail:-0} failed (${status_log})"
# Non-zero when any command failed, so `prepare && run && check` chains stop here too.
[[ "${n_fail:-0}" -eq 0 ]]
