#!/bin/bash
# Parser and status helpers shared by the TIPC scripts (test_tipc/docs/test_train_inference_python.md).
#
# A config line is `key:value`. Like every TIPC common_func.sh, the line is split on each ':' and only
# fields 0 and 1 are used, so a value must not contain ':' (it would be cut there). Unlike the scripts
# this format comes from, nothing here changes the caller's IFS or expands globs: a value such as
# `iter_*/model.pdparams` stays literal until the command that uses it is run through `eval`.

# Prints field 0 of "key:value" (the key).
function func_parser_key() {
    local IFS=":"
    local -a fields
    read -r -a fields <<< "${1%$'\r'}"
    printf '%s\n' "${fields[0]}"
}

# Prints field 1 of "key:value" (the value), spaces inside it kept as written.
function func_parser_value() {
    local line="${1%$'\r'}"
    local rest=""
    [[ "${line}" == *:* ]] && rest="${line#*:}"
    printf '%s\n' "${rest%%:*}"
}

# Prints "key=value", or " " when the argument must be left out: key `null`, `##` or empty, or value
# `null`, " " or empty. The single space keeps the caller's command string well formed.
function func_set_params() {
    local key="$1"
    local value="$2"
    if [[ -z "${key}" || "${key}" == "null" || "${key}" == "##" ]]; then
        echo " "
    elif [[ -z "${value}" || "${value}" == "null" || "${value}" == " " ]]; then
        echo " "
    else
        printf '%s=%s\n' "${key}" "${value}"
    fi
}

# Prints the value of "key:mode1=v1|mode2=v2" for MODE ($2), or nothing when MODE is not listed.
# A value without any `mode=` item (`Train.batch_size:2`) applies to every mode; this is an extension
# of the reference parser, which returns nothing for such a line.
function func_parser_params() {
    local value
    value=$(func_parser_value "$1")
    local mode="$2"
    if [[ "${value}" != *=* ]]; then
        printf '%s\n' "${value}"
        return 0
    fi
    local IFS="|"
    local -a items
    read -r -a items <<< "${value}"
    local item
    for item in "${items[@]}"; do
        if [[ "${item%%=*}" == "${mode}" ]]; then
            printf '%s\n' "${item#*=}"
            return 0
        fi
    done
    echo ""
}

# Splits a `|`-list into the array named by $2 (bash 4.3+ nameref).
function func_split_list() {
    local -n _out="$2"
    local IFS="|"
    read -r -a _out <<< "$1"
}

# Reads the parsed part of a suite-format config into the global array `lines`: the first 51 lines,
# CR stripped, empty lines dropped (the reference scripts split the text on newlines, so an empty
# line takes no index and shifts every later one).
function func_read_config() {
    local file="$1"
    mapfile -t lines < <(sed -n '1,51p' "${file}" | tr -d '\r' | awk 'length($0) > 0')
}

# status_check RC COMMAND STATUS_LOG MODEL_NAME LOG_PATH
# Appends the 5-argument TIPC status line to STATUS_LOG (and prints it):
#   \033[33m Run successfully with command - <model> - <cmd> - <log_path> \033[0m
# RC 0 gives "Run successfully", anything else (a non-number included) "Run failed". The escape bytes
# are written to the file, as in the reference logs.
function status_check() {
    local last_status="$1"
    local run_command="$2"
    local run_log="$3"
    local model_name="$4"
    local log_path="$5"
    local outcome="failed"
    [[ "${last_status}" =~ ^[0-9]+$ ]] && (( last_status == 0 )) && outcome="successfully"
    printf '\033[33m Run %s with command - %s - %s - %s \033[0m\n' \
        "${outcome}" "${model_name}" "${run_command}" "${log_path}" | tee -a "${run_log}"
}

# func_run CMD LOG
# Runs CMD (a string, evaluated) with stdout+stderr to LOG, then records the status line in the
# caller's ${status_log} under ${model_name}.
# On failure the end of the log is shown so a CI console explains itself.
function func_run() {
    local cmd log="$2"
    # Unused slots leave runs of spaces; squeeze them so the status line reads cleanly.
    cmd=$(printf '%s' "$1" | tr -s ' ' | sed 's/^ //; s/ $//')
    mkdir -p "$(dirname "${log}")"
    eval "${cmd}" > "${log}" 2>&1
    local rc=$?
    status_check ${rc} "${cmd}" "${status_log}" "${model_name}" "${log}"
    if [[ ${rc} -ne 0 ]]; then
        echo "---- last lines of ${log} (exit code ${rc}) ----"
        tail -n 20 "${log}"
        echo "----"
    fi
    return ${rc}
}

# func_convert_hint PYTHON EXPORT_CMD WEIGHTS
# Prints the command that makes missing whole_infer weights, with the network name read from the
# `-c` config of EXPORT_CMD (`<NETWORK>` when that config cannot be read).
function func_convert_hint() {
    local python="$1" export_cmd="$2" weights="$3" cfg="" arch=""
    [[ " ${export_cmd} " =~ \ -c\ +([^ ]+) ]] && cfg="${BASH_REMATCH[1]}"
    if [[ -n "${cfg}" ]]; then
        arch=$(${python} -c "import sys; from ppir.config import load_config; \
print(load_config(sys.argv[1])['Model']['network']['name'])" "${cfg}" 2> /dev/null)
    fi
    printf '%s tools/convert_weights.py --arch %s --src <official checkpoint> --dst %s\n' \
        "${python}" "${arch:-<NETWORK>}" "${weights}"
}

# func_enter_repo CONFIG MODE [ALLOWED_MODE ...]
# Check the CONFIG and MODE arguments (MODE must be one of ALLOWED_MODE, by default the modes of
# test_train_inference_python.sh), set FILENAME to the config's absolute path and cd to the
# repository root (every path in a config is relative to it). Returns 2 with a one-line error.
function func_enter_repo() {
    local config=$1 mode=$2
    shift 2
    local -a allowed=("$@")
    [[ ${#allowed[@]} -eq 0 ]] && allowed=(lite_train_lite_infer lite_train_whole_infer
                                           whole_train_whole_infer whole_infer benchmark_train)
    if [[ " ${allowed[*]} " != *" ${mode} "* ]]; then
        echo "error: unknown MODE '${mode}' (${allowed[*]})" >&2
        return 2
    fi
    if [[ ! -f "${config}" ]]; then
        echo "error: config file not found: ${config}" >&2
        return 2
    fi
    FILENAME=$(realpath "${config}")
    cd "$(dirname "${BASH_SOURCE[0]}")/.." || return 2
}
