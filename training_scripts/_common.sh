# Shared code of run_training_{synapse,acdc,brats,isic}.sh. Sourced, not run.
#
# A script declares its dataset with `sss_dataset KEY ID NAME DESCRIPTION`, optionally a
# second one behind a flag with `sss_variant FLAG KEY ID NAME DESCRIPTION`, then calls
# `sss_main "$@"`, which runs, with the stock nnU-Net v2 command line:
#   1. sss-nnunet convert KEY --raw PATH -d ID      (only if $nnUNet_raw/DatasetID_NAME is missing)
#   2. nnUNetv2_plan_and_preprocess -d ID -c CONFIG --verify_dataset_integrity --clean
#                                                   (only if the plans or the preprocessed data are
#                                                    missing or older than the raw dataset.json)
#   3. nnUNetv2_train ID CONFIG FOLD -tr TRAINER     (once per fold; FOLD `all` = folds 0..4)
# The converter writes splits_final.json into $nnUNet_preprocessed/DatasetID_NAME before
# planning; nnUNetv2_plan_and_preprocess (2.8) leaves it in place and nnUNetv2_train uses it.

SSS_SCRIPT=$(basename "$0")
SSS_VARIANT_FLAG=""
# A script may override these after sourcing: default configuration, extra `sss-nnunet convert`
# arguments, a word before FOLD in the usage line, and extra help text.
SSS_DEFAULT_CONFIG=3d_fullres
SSS_CONVERT_ARGS=()
SSS_USAGE_ARG=""
SSS_EXTRA_USAGE=""

sss_dataset() { SSS_KEY=$1 SSS_ID=$2 SSS_NAME=$3 SSS_DESCRIPTION=$4; }
sss_variant() {
    SSS_VARIANT_FLAG=$1
    SSS_VARIANT=("${@:2}")
}

sss_die() { echo "$SSS_SCRIPT: error: $*" >&2; exit 2; }
sss_note() { echo "$SSS_SCRIPT: $*" >&2; }

sss_usage() {
    local variant=""
    [[ -n $SSS_VARIANT_FLAG ]] && variant="
  $(printf '%-16s' "$SSS_VARIANT_FLAG")${SSS_VARIANT[3]} (Dataset$(printf %03d "${SSS_VARIANT[1]}")_${SSS_VARIANT[2]})"
    cat <<EOF
usage: $SSS_SCRIPT${SSS_USAGE_ARG:+ $SSS_USAGE_ARG} [-f FOLD] [--raw PATH] [-tr TRAINER] [-c CONFIG] [-d ID] [-np N] [-npfp N] [-device D]${SSS_VARIANT_FLAG:+ [$SSS_VARIANT_FLAG]} [--dry-run] [-- TRAIN_ARGS...]

$SSS_DESCRIPTION (Dataset$(printf %03d "$SSS_ID")_$SSS_NAME):
convert the raw download (if not converted yet), plan and preprocess with nnU-Net
(if not done yet), then train with the stock nnUNetv2_train.

  -f FOLD         fold to train, 0-4 (default 0; fold 0 is the paper's train/val split),
                  or 'all' to train folds 0..4 one after another
  --raw PATH      the raw download; needed only when the dataset is not converted yet
  -tr TRAINER     nnU-Net trainer class (default SSSTrainer)
  -c CONFIG       nnU-Net configuration (default $SSS_DEFAULT_CONFIG)
  -d ID           nnU-Net dataset id (default $SSS_ID)
  -np N           processes for conversion and preprocessing (default: the tools' own)
  -npfp N         processes for the dataset fingerprint (default: nnU-Net's)
  -device D       nnUNetv2_train -device: cuda, cpu or mps (default: nnU-Net's)$variant
  --dry-run       print the commands instead of running them
  -h, --help      show this help
  -- ARGS         passed on to nnUNetv2_train (e.g. -- --npz)
$SSS_EXTRA_USAGE
Old spellings still work, with a warning: FOLD as a plain argument, --trainer, --config, --id, --np.
Needs the environment variables nnUNet_raw, nnUNet_preprocessed and nnUNet_results (a folder that
does not exist yet is created when its parent exists; a missing parent is an error). Everything
cheap is checked first (FOLD, the trainer name, the variables, --raw), before converting.
EOF
}

# One line on stderr for an old option spelling: sss_deprecated OLD NEW
sss_deprecated() { echo "$SSS_SCRIPT: warning: $1 is deprecated, use $2" >&2; }

# Print (dry run) or run one command.
sss_run() {
    if ((SSS_DRY_RUN)); then
        local quoted
        printf -v quoted '%q ' "$@"
        echo "${quoted% }"
    else
        echo "+ $*" >&2
        "$@"
    fi
}

# shellcheck source=_trainer_check.sh
source "$(dirname "${BASH_SOURCE[0]}")/_trainer_check.sh"

# Each nnUNet_* folder exists, or its parent does (then the tools create it).
sss_check_folders() {
    local var
    for var in nnUNet_raw nnUNet_preprocessed nnUNet_results; do
        if [[ -e ${!var} && ! -d ${!var} ]]; then
            sss_die "$var=${!var} is a file, not a folder"
        elif [[ ! -d ${!var} ]]; then
            [[ -d $(dirname "${!var}") ]] ||
                sss_die "$var=${!var} does not exist and neither does $(dirname "${!var}") (a typo?)"
            sss_note "note: $var=${!var} does not exist yet; it will be created"
        fi
    done
}

sss_check_env() {
    local var missing=()
    for var in nnUNet_raw nnUNet_preprocessed nnUNet_results; do
        [[ -n ${!var:-} ]] || missing+=("$var")
    done
    if ((${#missing[@]})); then
        {
            echo "$SSS_SCRIPT: error: environment variable(s) ${missing[*]} not set."
            echo "nnU-Net keeps raw data, preprocessed data and trained models in three folders, e.g."
            echo "  export nnUNet_raw=/data/nnUNet_raw"
            echo "  export nnUNet_preprocessed=/data/nnUNet_preprocessed"
            echo "  export nnUNet_results=/data/nnUNet_results"
            echo "(see nnU-Net's documentation/setting_up_paths.md)"
        } >&2
        exit 2
    fi
}

sss_main() {
    local fold=0 raw="" trainer=SSSTrainer config=$SSS_DEFAULT_CONFIG id="" np="" npfp="" device="" variant=0
    local -a train_args=()
    SSS_DRY_RUN=0
    while (($#)); do
        case $1 in  # old spellings -> new ones
            --trainer) sss_deprecated "$1" -tr; set -- -tr "${@:2}" ;;
            --config) sss_deprecated "$1" -c; set -- -c "${@:2}" ;;
            --id) sss_deprecated "$1" -d; set -- -d "${@:2}" ;;
            --np) sss_deprecated "$1" "-np N -npfp N"; (($# >= 2)) && npfp=$2; set -- -np "${@:2}" ;;
        esac
        case $1 in
            -h|--help) sss_usage; exit 0 ;;
            --raw|-tr|-c|-d|-np|-npfp|-f|-device)
                (($# >= 2)) || sss_die "$1 needs a value"
                case $1 in
                    --raw) raw=$2 ;; -tr) trainer=$2 ;; -c) config=$2 ;; -d) id=$2 ;;
                    -np) np=$2 ;; -npfp) npfp=$2 ;; -f) fold=$2 ;; -device) device=$2 ;;
                esac
                shift 2 ;;
            --dry-run) SSS_DRY_RUN=1; shift ;;
            --) shift; train_args=("$@"); break ;;
            -*)
                if [[ -n $SSS_VARIANT_FLAG && $1 == "$SSS_VARIANT_FLAG" ]]; then
                    variant=1; shift
                else
                    sss_die "unknown option $1 (see --help)"
                fi ;;
            *) sss_deprecated "FOLD as a plain argument" "-f $1"; fold=$1; shift ;;
        esac
    done
    [[ -z $device ]] || train_args=(-device "$device" "${train_args[@]}")
    if ((variant)); then
        SSS_KEY=${SSS_VARIANT[0]} SSS_ID=${SSS_VARIANT[1]} SSS_NAME=${SSS_VARIANT[2]}
    fi
    id=${id:-$SSS_ID}
    [[ $id =~ ^[0-9]+$ ]] && ((10#$id >= 1 && 10#$id <= 999)) || sss_die "-d must be 1..999, got '$id'"
    id=$((10#$id))
    [[ -z $np || $np =~ ^[1-9][0-9]*$ ]] || sss_die "-np must be a positive number, got '$np'"
    [[ -z $npfp || $npfp =~ ^[1-9][0-9]*$ ]] || sss_die "-npfp must be a positive number, got '$npfp'"
    local -a folds
    if [[ $fold == all ]]; then
        folds=(0 1 2 3 4)
    elif [[ $fold =~ ^[0-4]$ ]]; then
        folds=("$fold")
    else
        sss_die "FOLD must be 0, 1, 2, 3, 4 or 'all', got '$fold'"
    fi

    sss_check_env
    sss_check_folders
    if ((!SSS_DRY_RUN)); then
        local cmd
        for cmd in sss-nnunet nnUNetv2_plan_and_preprocess nnUNetv2_train; do
            command -v "$cmd" >/dev/null ||
                sss_die "$cmd not found on PATH: activate the environment sss_nnunet is installed in"
        done
    fi
    sss_check_trainer "$trainer"

    local folder raw_dataset preprocessed
    folder=Dataset$(printf %03d "$id")_$SSS_NAME
    raw_dataset=$nnUNet_raw/$folder
    preprocessed=$nnUNet_preprocessed/$folder

    # 1. convert
    local converted=0
    if [[ -d $raw_dataset ]]; then
        sss_note "$raw_dataset exists, not converting"
    else
        [[ -n $raw ]] || sss_die "$raw_dataset does not exist yet: give the raw download with --raw PATH"
        if [[ ! -d $raw ]]; then
            ((SSS_DRY_RUN)) || sss_die "--raw $raw is not a folder"
            sss_note "warning: --raw $raw is not a folder"
        fi
        sss_run sss-nnunet convert "$SSS_KEY" --raw "$raw" -d "$id" ${np:+-np "$np"} "${SSS_CONVERT_ARGS[@]}"
        converted=1
        if ((!SSS_DRY_RUN)) && [[ ! -d $raw_dataset ]]; then
            sss_die "the conversion did not produce $raw_dataset: is --raw the right download?"
        fi
    fi

    # 2. plan and preprocess
    local -a configs=("$config")
    [[ $config == 3d_cascade_fullres ]] && configs=(3d_fullres 3d_lowres)
    local plans=$preprocessed/nnUNetPlans.json need_plan=$converted c
    [[ -f $plans && $plans -nt $raw_dataset/dataset.json ]] || need_plan=1
    for c in "${configs[@]}"; do
        [[ -d $preprocessed/nnUNetPlans_$c ]] || need_plan=1
    done
    if ((need_plan)); then
        sss_run nnUNetv2_plan_and_preprocess -d "$id" -c "${configs[@]}" --verify_dataset_integrity --clean \
            ${np:+-np "$np"} ${npfp:+-npfp "$npfp"}
    else
        sss_note "$preprocessed is planned and preprocessed for ${configs[*]}, not planning"
    fi

    # 3. train
    for fold in "${folds[@]}"; do
        sss_run nnUNetv2_train "$id" "$config" "$fold" -tr "$trainer" "${train_args[@]}"
    done
}
