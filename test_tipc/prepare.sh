#!/bin/bash
# Prepares what a TIPC mode needs, without downloading anything:
#
#   bash test_tipc/prepare.sh CONFIG MODE
#
# Data: the config names its demo dataset after the parsed 51 lines (`demo_kind:` = a kind of
# `python -m ppir.data.demo`, `demo_root:` = where it goes). The demo data has the real dataset's folder
# layout, so a real dataset prepared with the tools in tools/ can be linked at demo_root instead.
# whole_infer: also writes seeded weights at config line 37 (`train_model:`) when nothing is there.
# benchmark_train and paddle2onnx_infer need only the data.
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

if [[ "${MODE}" == "whole_infer" ]]; then
    # Line 37 is both the weights and the export directory (the reference harness passes it as
    # `Global.pretrained_model=` and as `--save_dir=`): a checkpoint dir. Missing ones are made
    # from the seed of the export config (line 38), never downloaded; real weights put there
    # beforehand (a converted official release, a training's iter_N dir) are kept.
    declare -a infer_models infer_exports
    func_split_list "${infer_model_list}" infer_models
    func_split_list "${infer_export_list}" infer_exports
    for i in "${!infer_models[@]}"; do
        weights="${infer_models[$i]}"
        export_cmd="${infer_exports[$i]:-null}"
        [[ -z "${weights}" || "${weights}" == "null" ]] && continue
        if [[ -e "${weights}" ]]; then
            echo "prepare ${model_name} whole_infer: found ${weights}"
            continue
        fi
        if [[ "${export_cmd}" == "null" ]]; then
            status=1
            echo "error: missing inference model ${weights} (config line 37; line 38 is null, so it must" \
                 "already be an export: python tools/export.py -c CFG -o Global.pretrained_model=W --save_dir=${weights})" >&2
            continue
        fi
        cfg=""
        [[ " ${export_cmd} " =~ \ -c\ +([^ ]+) ]] && cfg="${BASH_REMATCH[1]}"
        if ! ${python} test_tipc/make_weights.py -c "${cfg}" --save_dir "${weights}"; then
            status=1
            echo "error: could not make seeded weights: ${python} test_tipc/make_weights.py -c ${cfg} --save_dir ${weights}" >&2
        fi
    done
fi
exit ${status}
