#!/bin/bash
# Prepares what a TIPC mode needs, without downloading anything:
#
#   bash test_tipc/prepare.sh CONFIG MODE
#
# Data: the config names its demo dataset after the parsed 51 lines (`demo_kind:` = a kind of
# `python -m ppir.data.demo`, `demo_root:` = where it goes). The demo data has the real dataset's folder
# layout, so a real dataset prepared with the tools in tools/ can be linked at demo_root instead.
# whole_infer: also writes seeded weights at config line 37 (`train_model:`) when nothing is there.
# paddle2onnx_infer: the same for the weights of a paddle2onnx config (its line 5).
# benchmark_train needs only the data.
# Exit code 0 when the mode can run, 1 when something is missing (the message says what and how to make it).

if [[ $# -lt 2 ]]; then
    echo "usage: bash test_tipc/prepare.sh CONFIG MODE" >&2
    exit 2
fi
MODE=$2
source "$(dirname "${BASH_SOURCE[0]}")/common_func.sh"
func_enter_repo "$1" "${MODE}" lite_train_lite_infer lite_train_whole_infer whole_train_whole_infer \
    whole_infer benchmark_train paddle2onnx_infer || exit 2
export GLOG_minloglevel=${GLOG_minloglevel:-2}

func_read_config "${FILENAME}"
model_name=$(func_parser_value "${lines[1]}")
python=$(func_parser_value "${lines[2]}")
infer_model_list=$(func_parser_value "${lines[36]}")
infer_export_list=$(func_parser_value "${lines[37]}")

# The data lines live outside the 51 parsed ones, so any line position works.
demo_kind=$(func_parser_value "$(grep -m1 '^demo_kind:' "${FILENAME}")")
demo_root=$(func_parser_value "$(grep -m1 '^demo_root:' "${FILENAME}")")
if [[ -z "${demo_kind}" || -z "${demo_root}" ]]; then
    echo "error: ${FILENAME} has no 'demo_kind:' / 'demo_root:' line after line 51" \
         "(e.g. demo_kind:denoise and demo_root:./test_tipc/data/mirnetv2_lite)" >&2
    exit 1
fi

status=0
# ppir.data.demo marks a finished build with .complete and returns at once when it is current. A
# non-empty root without that mark holds data someone put there (e.g. a linked real dataset): keep it.
if [[ -n "$(ls -A "${demo_root}" 2> /dev/null)" && ! -e "${demo_root}/.complete" ]]; then
    echo "prepare ${model_name} ${MODE}: using the data already in ${demo_root} (not made by ppir.data.demo)"
else
    echo "prepare ${model_name} ${MODE}: ${demo_kind} demo data in ${demo_root}"
    if ! ${python} -m ppir.data.demo "${demo_kind}" --root "${demo_root}"; then
        echo "error: could not make the demo data: ${python} -m ppir.data.demo ${demo_kind} --root ${demo_root}" >&2
        exit 1
    fi
fi
if [[ "${MODE}" == "whole_train_whole_infer" ]]; then
    echo "note: whole_train_whole_infer trains the full schedule on what ${demo_root} holds;" \
         "link a real dataset there (same layout) for meaningful numbers."
fi

# Line 37 of a training config (line 5 of a paddle2onnx one) is both the weights and the directory
# the reference harness exports to (it passes it as `Global.pretrained_model=` and `--save_dir=`):
# a checkpoint dir. A missing one is made from the seed of the export config (line 38, line 4),
# never downloaded; real weights put there beforehand (a converted official release, a training's
# iter_N dir) are kept.
function func_make_weights() {
    local weights="$1" export_cmd="$2" cfg=""
    [[ -z "${weights}" || "${weights}" == "null" ]] && return 0
    if [[ -e "${weights}" ]]; then
        echo "prepare ${model_name} ${MODE}: found ${weights}"
        return 0
    fi
    if [[ "${export_cmd}" == "null" ]]; then
        echo "error: missing inference model ${weights} (config line 37; line 38 is null, so it must" \
             "already be an export: python tools/export.py -c CFG -o Global.pretrained_model=W --save_dir=${weights})" >&2
        return 1
    fi
    [[ " ${export_cmd} " =~ \ -c\ +([^ ]+) ]] && cfg="${BASH_REMATCH[1]}"
    if ! ${python} test_tipc/make_weights.py -c "${cfg}" --save_dir "${weights}"; then
        echo "error: could not make seeded weights: ${python} test_tipc/make_weights.py -c ${cfg} --save_dir ${weights}" >&2
        return 1
    fi
}

if [[ "${MODE}" == "whole_infer" ]]; then
    declare -a infer_models infer_exports
    func_split_list "${infer_model_list}" infer_models
    func_split_list "${infer_export_list}" infer_exports
    for i in "${!infer_models[@]}"; do
        func_make_weights "${infer_models[$i]}" "${infer_exports[$i]:-null}" || status=1
    done
elif [[ "${MODE}" == "paddle2onnx_infer" ]]; then
    func_make_weights "$(func_parser_value "${lines[4]}")" "$(func_parser_value "${lines[3]}")" || status=1
fi
exit ${status}
