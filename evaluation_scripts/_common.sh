# Shared code of run_evaluation_{synapse,acdc,brats}.sh -- sourced, not run.
#
# The sourcing script sets EVAL_DATASET (the `sss-nnunet evaluate -d` key),
# EVAL_DATASET_ID (default nnU-Net id) and EVAL_TITLE, optionally EVAL_CONFIG (default
# configuration, 3d_fullres) and EVAL_USAGE_ARG (words after the script name in the usage line),
# then calls `sss_eval_main "$@"`.
# Steps: nnUNetv2_predict on $nnUNet_raw/DatasetNNN_*/imagesTs, `sss-nnunet evaluate`
# against labelsTs, print table.md.
set -euo pipefail

sss_usage() {
    cat <<EOF
Usage: $(basename "$0") ${EVAL_USAGE_ARG:-}[options] [-- extra nnUNetv2_predict arguments]

Predict the ${EVAL_TITLE} test set (\$nnUNet_raw/DatasetNNN_*/imagesTs) with the stock
nnUNetv2_predict, evaluate it against labelsTs with 'sss-nnunet evaluate', print the table.

Options:
  -tr TRAINER       trainer class (default: SSSTrainer)
  -f FOLD           fold whose checkpoint predicts: 0-4 or all (nnU-Net's fold_all; default: 0)
  --ensemble        ensemble of folds 0 1 2 3 4 instead of one fold
  -c CONFIG         nnU-Net configuration (default: ${EVAL_CONFIG:-3d_fullres})
  -p PLANS          plans identifier (default: nnUNetPlans, as the training scripts; SSSPlans after 'sss-nnunet plan')
  --protocol P      paper | strict (default: paper; see 'sss-nnunet evaluate -h')
  -d ID             nnU-Net dataset id (default: ${EVAL_DATASET_ID})
  -chk FILE         checkpoint file name (default: checkpoint_final.pth)
  -device D         nnUNetv2_predict -device (cuda, cpu, mps; default: nnU-Net's)
  -o DIR            prediction folder (default: \$nnUNet_results/<dataset>/
                    <trainer>__<plans>__<config>/predictions_imagesTs_<fold_F|ensemble>)
  -np N             evaluation processes (default: sss-nnunet evaluate's)
  --dry-run         print the commands instead of running them
  -h, --help        show this help

Old spellings still work, with a warning: --trainer, --fold, --config, --plans, --dataset,
--checkpoint, --device, --output, --workers.

Needs nnUNet_raw, nnUNet_preprocessed and nnUNet_results to be set. Everything cheap (the fold,
the trainer name, the variables, the dataset and model folders) is checked before predicting.
EOF
}

sss_die() {
    echo "$(basename "$0"): error: $*" >&2
    exit 2
}

# One line on stderr for an old option spelling: sss_deprecated OLD NEW
sss_deprecated() { echo "$(basename "$0"): warning: $1 is deprecated, use $2" >&2; }

# Print (dry run) or run a command.
sss_run() {
    if [[ "$DRY_RUN" == 1 ]]; then
        printf '%q ' "$@" | sed 's/ $//'
        echo
    else
        "$@"
    fi
}

sss_check_env() {
    local var missing=()
    for var in nnUNet_raw nnUNet_preprocessed nnUNet_results; do
        [[ -n "${!var:-}" ]] || missing+=("$var")
    done
    if ((${#missing[@]})); then
        sss_die "${missing[*]} not set. nnU-Net needs all three folders, e.g.
  export nnUNet_raw=/data/nnUNet_raw nnUNet_preprocessed=/data/nnUNet_preprocessed nnUNet_results=/data/nnUNet_results"
    fi
    [[ -d "$nnUNet_raw" ]] || sss_die "nnUNet_raw=$nnUNet_raw is not a folder"
}

# Sets DATASET_FOLDER from $nnUNet_raw/DatasetNNN_* (exactly one match).
sss_find_dataset() {
    local id matches
    id=$(printf '%03d' "$((10#$DATASET_ID))")
    shopt -s nullglob
    matches=("$nnUNet_raw"/Dataset"${id}"_*/)
    shopt -u nullglob
    if ((${#matches[@]} == 0)); then
        sss_die "no Dataset${id}_* folder in nnUNet_raw ($nnUNet_raw); convert it first: sss-nnunet convert ${EVAL_DATASET} ..."
    elif ((${#matches[@]} > 1)); then
        sss_die "several Dataset${id}_* folders in $nnUNet_raw: ${matches[*]}"
    fi
    DATASET_FOLDER=$(basename "${matches[0]}")
    local sub
    for sub in imagesTs labelsTs; do
        [[ -d "$nnUNet_raw/$DATASET_FOLDER/$sub" ]] ||
            sss_die "$nnUNet_raw/$DATASET_FOLDER/$sub not found: the converter puts the paper test cases there"
    done
}

sss_check_model() {
    local model="$nnUNet_results/$DATASET_FOLDER/${TRAINER}__${PLANS}__${CONFIG}" f
    for f in "${FOLDS[@]}"; do
        if [[ ! -f "$model/fold_$f/$CHECKPOINT" ]]; then
            local msg="no trained model: $model/fold_$f/$CHECKPOINT not found (train it with nnUNetv2_train)"
            if [[ "$DRY_RUN" == 1 ]]; then echo "# warning: $msg" >&2; else sss_die "$msg"; fi
        fi
    done
}

# shellcheck source=../training_scripts/_trainer_check.sh
source "$(dirname "${BASH_SOURCE[0]}")/../training_scripts/_trainer_check.sh"

sss_eval_main() {
    TRAINER=SSSTrainer FOLD=0 ENSEMBLE=0 CONFIG=${EVAL_CONFIG:-3d_fullres} PLANS=nnUNetPlans PROTOCOL=paper
    DATASET_ID=$EVAL_DATASET_ID CHECKPOINT=checkpoint_final.pth DEVICE="" OUTPUT="" WORKERS="" DRY_RUN=0
    local extra=()
    local -A old=([--trainer]=-tr [--fold]=-f [--config]=-c [--plans]=-p [--dataset]=-d [--checkpoint]=-chk
        [--device]=-device [--output]=-o [--workers]=-np)
    while (($#)); do
        if [[ -n "$1" && -n "${old[$1]:-}" ]]; then  # old spelling -> new one
            sss_deprecated "$1" "${old[$1]}"
            set -- "${old[$1]}" "${@:2}"
        fi
        case "$1" in
            -h | --help) sss_usage; exit 0 ;;
            -tr) TRAINER=${2:?-tr needs a value}; shift 2 ;;
            -f) FOLD=${2:?-f needs a value}; shift 2 ;;
            --ensemble) ENSEMBLE=1; shift ;;
            -c) CONFIG=${2:?-c needs a value}; shift 2 ;;
            -p) PLANS=${2:?-p needs a value}; shift 2 ;;
            --protocol) PROTOCOL=${2:?--protocol needs a value}; shift 2 ;;
            -d) DATASET_ID=${2:?-d needs a value}; shift 2 ;;
            -chk) CHECKPOINT=${2:?-chk needs a value}; shift 2 ;;
            -device) DEVICE=${2:?-device needs a value}; shift 2 ;;
            -o) OUTPUT=${2:?-o needs a value}; shift 2 ;;
            -np) WORKERS=${2:?-np needs a value}; shift 2 ;;
            --dry-run) DRY_RUN=1; shift ;;
            --) shift; extra=("$@"); break ;;
            *) sss_usage >&2; sss_die "unknown argument: $1" ;;
        esac
    done
    [[ "$PROTOCOL" == paper || "$PROTOCOL" == strict ]] || sss_die "--protocol must be paper or strict"
    [[ "$DATASET_ID" =~ ^[0-9]{1,3}$ ]] || sss_die "-d must be a numeric nnU-Net id, got '$DATASET_ID'"
    [[ "$FOLD" =~ ^[0-4]$ || "$FOLD" == all ]] || sss_die "-f must be 0, 1, 2, 3, 4 or 'all', got '$FOLD'"
    local label
    if [[ "$ENSEMBLE" == 1 ]]; then
        FOLDS=(0 1 2 3 4) label=ensemble
    else
        FOLDS=("$FOLD") label="fold_$FOLD"
    fi

    sss_check_env
    sss_check_trainer "$TRAINER"
    sss_find_dataset
    sss_check_model
    if [[ "$DRY_RUN" != 1 ]]; then
        command -v nnUNetv2_predict >/dev/null || sss_die "nnUNetv2_predict not on PATH (activate the venv)"
        command -v sss-nnunet >/dev/null || sss_die "sss-nnunet not on PATH (activate the venv)"
    fi

    local raw="$nnUNet_raw/$DATASET_FOLDER"
    local out=${OUTPUT:-"$nnUNet_results/$DATASET_FOLDER/${TRAINER}__${PLANS}__${CONFIG}/predictions_imagesTs_${label}"}
    local predict=(nnUNetv2_predict -i "$raw/imagesTs" -o "$out" -d "$DATASET_ID" -c "$CONFIG"
        -tr "$TRAINER" -p "$PLANS" -f "${FOLDS[@]}" -chk "$CHECKPOINT")
    if [[ -n "$DEVICE" ]]; then predict+=(-device "$DEVICE"); fi
    predict+=("${extra[@]}")
    local evaluate=(sss-nnunet evaluate --pred "$out" --gt "$raw/labelsTs" -d "$EVAL_DATASET"
        --protocol "$PROTOCOL" --method-name "$TRAINER $label" --overwrite --quiet)
    if [[ -n "$WORKERS" ]]; then evaluate+=(-np "$WORKERS"); fi

    if [[ "$DRY_RUN" == 1 ]]; then
        echo "# dry run: $EVAL_TITLE, $DATASET_FOLDER, $TRAINER $label, protocol $PROTOCOL"
    fi
    sss_run "${predict[@]}"
    sss_run "${evaluate[@]}"
    sss_run cat "$out/evaluation_$PROTOCOL/table.md"
}
