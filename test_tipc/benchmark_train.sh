#!/bin/bash
# TIPC training benchmark: train with the benchmark settings of a config, then write the speed record.
#
#   bash test_tipc/prepare.sh CONFIG benchmark_train
#   bash test_tipc/benchmark_train.sh CONFIG benchmark_train [MODELTYPE_bsN_FP_RUNMODE_NxCy]
#
# CONFIG is a training config whose `train_benchmark_params` block has the reference's five lines:
#   batch_size:2            batch sizes to run (`|`-list)
#   fp_items:fp32           precisions (`|`-list; fp16 runs with auto_cast amp)
#   iters:20                training iterations of each run
#   --profiler_options:null not supported by ppir's trainer; must stay null
#   flags:null              `;`-list of FLAGS_x=y exported before training, or null
# The third argument picks one run, e.g. dynamic_bs2_fp32_DP_N1C1 (default: every batch size x
# precision, DP on N1C1). For each run the config is copied with lines 4 (gpu_list), 6 (auto_cast),
# 7 (iterations) and 9 (batch size) set for the mode benchmark_train, test_train_inference_python.sh
# trains it (training only in that mode), and test_tipc/benchmark_analysis.py reads the training log:
#   benchmark_log/train_log/<repo>_<model>_bs<N>_<fp>_<run_mode>_<NxCy>_log     the training log
#   benchmark_log/train_log/<repo>_<model>_bs<N>_<fp>_<run_mode>_<NxCy>_speed   one JSON record
#   (ips in samples/s averaged after the first 5 logged steps, batch_cost, last loss, ...)
# as Paddle's benchmark analysis writes it; benchmark_log/results.log gathers the status lines.

if [[ $# -lt 2 || "$2" != "benchmark_train" ]]; then
    echo "usage: bash test_tipc/benchmark_train.sh CONFIG benchmark_train [MODELTYPE_bsN_FP_RUNMODE_NxCy]" >&2
    exit 2
fi
source "$(dirname "${BASH_SOURCE[0]}")/common_func.sh"
func_enter_repo "$1" "$2" benchmark_train || exit 2
PARAMS=$3

func_read_config "${FILENAME}"
model_name=$(func_parser_value "${lines[1]}")
python=$(func_parser_value "${lines[2]}")
gpu_list=$(func_parser_value "${lines[3]}")

# The five lines after the block header (blank lines skipped, as everywhere in these configs).
mapfile -t block < <(tr -d '\r' < "${FILENAME}" | awk 'length($0) > 0' |
                     sed -n '/train_benchmark_params/,$p' | sed -n '2,6p')
if [[ ${#block[@]} -ne 5 || "$(func_parser_key "${block[0]}")" != "batch_size" ]]; then
    echo "error: ${FILENAME}: no train_benchmark_params block of five lines (batch_size, fp_items," \
         "iters, --profiler_options, flags); see test_tipc/docs/benchmark_train.md" >&2
    exit 2
fi
batch_sizes=$(func_parser_value "${block[0]}")
fp_items=$(func_parser_value "${block[1]}")
iters=$(func_parser_value "${block[2]}")
profiler=$(func_parser_value "${block[3]}")
flags=$(func_parser_value "${block[4]}")
if [[ "${profiler}" != "null" ]]; then
    echo "error: ${FILENAME}: --profiler_options must be null (ppir's trainer has no profiler hook)" >&2
    exit 2
fi
if [[ "${flags}" != "null" ]]; then
    IFS=";" read -r -a flag_list <<< "${flags}"
    for flag in "${flag_list[@]}"; do
        export "${flag?}"
    done
fi

run_mode=DP
device_num=N1C1
declare -a bs_list fp_list
if [[ -n "${PARAMS}" ]]; then
    IFS="_" read -r -a fields <<< "${PARAMS}"
    if [[ ${#fields[@]} -ne 5 || ! "${fields[1]}" =~ ^bs[0-9]+$ || ! "${fields[4]}" =~ ^N1C[0-9]+$ ]]; then
        echo "error: run '${PARAMS}' is not MODELTYPE_bsN_FP_RUNMODE_N1Cy (e.g. dynamic_bs2_fp32_DP_N1C1)" >&2
        exit 2
    fi
    bs_list=("${fields[1]#bs}")
    fp_list=("${fields[2]}")
    run_mode=${fields[3]}
    device_num=${fields[4]}
else
    func_split_list "${batch_sizes}" bs_list
    func_split_list "${fp_items}" fp_list
fi
# N1Cy: one machine, y devices; a CPU config (gpu_list -1) keeps training on CPU.
cards=${device_num#N1C}
gpu_ids=$(seq -s, 0 $((cards - 1)))
[[ "${gpu_list}" == "-1" ]] && gpu_ids=-1

SAVE_LOG=benchmark_log
mkdir -p "${SAVE_LOG}/train_log"
status_log="${SAVE_LOG}/results.log"
repo_name=$(basename "$(pwd)")
tmp_dir=$(mktemp -d)
trap 'rm -rf "${tmp_dir}"' EXIT
status=0
for bs in "${bs_list[@]}"; do
    for fp in "${fp_list[@]}"; do
        autocast=null
        [[ "${fp}" == "fp16" ]] && autocast=amp
        # The batch line keeps its shape: a list (progressive stages) gets bs in every stage.
        batch_value=$(func_parser_params "${lines[8]}" lite_train_lite_infer)
        if [[ "${batch_value}" == \[*\] ]]; then
            n_stages=$(tr -cd ',' <<< "${batch_value}" | wc -c)
            batch_value="[$(printf "${bs}%.0s," $(seq 0 "${n_stages}") | sed 's/,$//')]"
        else
            batch_value=${bs}
        fi
        cfg="${tmp_dir}/${model_name}_bs${bs}_${fp}.txt"
        awk -v g="${gpu_ids}" -v ac="${autocast}" -v it="${iters}" -v b="${batch_value}" '
            BEGIN { n = 0 }
            length($0) == 0 { print; next }
            { n++; split($0, kv, ":") }
            n == 4 { print kv[1] ":" g; next }
            n == 6 { print kv[1] ":" ac; next }
            n == 7 { print kv[1] ":benchmark_train=" it; next }
            n == 9 { print kv[1] ":benchmark_train=" b; next }
            { print }' "${FILENAME}" > "${cfg}"
        name="${repo_name}_${model_name}_bs${bs}_${fp}_${run_mode}_${device_num}"
        log="${SAVE_LOG}/train_log/${name}_log"
        echo "benchmark ${name}: ${iters} iterations, batch ${batch_value}, gpu_list ${gpu_ids}, auto_cast ${autocast}"
        bash test_tipc/test_train_inference_python.sh "${cfg}" benchmark_train > "${log}.harness" 2>&1
        train_log="./test_tipc/output/${model_name}/benchmark_train/norm_train_gpus_${gpu_ids}_autocast_${autocast}.log"
        cp "${train_log}" "${log}" 2> /dev/null
        func_run "${python} test_tipc/benchmark_analysis.py --filename ${log} --speed_log_file ${log%_log}_speed \
            --model_name ${model_name}_bs${bs}_${fp}_${run_mode} --base_batch_size ${bs} --run_mode ${run_mode} \
            --fp_item ${fp} --device_num ${device_num} --skip_steps 5" "${log%_log}_analysis.log" || status=1
        cat "${log%_log}_analysis.log"
    done
done
exit ${status}
