#!/usr/bin/env bash
# Predict an ISIC test set (imagesTs, 2d configuration) with nnUNetv2_predict, evaluate mIoU/DSC/Acc/Spe/Sen
# (pooled as VM-UNet and per image) beside the published VM-UNet / Zig-RiR numbers, print the table.
# Usage: run_evaluation_isic.sh isic2016|isic2017|isic2018 [-tr SSSTrainer] [-f 0 | --ensemble] [--dry-run]; -h for all options.
set -euo pipefail
case ${1:-} in
    isic2016) EVAL_DATASET_ID=806 EVAL_TITLE="ISIC 2016 (official 379 test images, Zig-RiR protocol)" ;;
    isic2017) EVAL_DATASET_ID=807 EVAL_TITLE="ISIC 2017 (650 test images of the 7:3 split, VM-UNet protocol)" ;;
    isic2018) EVAL_DATASET_ID=808 EVAL_TITLE="ISIC 2018 (808 test images of the 7:3 split, VM-UNet protocol)" ;;
    *)
        cat >&2 <<USAGE
Usage: $(basename "$0") isic2016|isic2017|isic2018 [options]; '$(basename "$0") isic2017 --help' for the options.
USAGE
        [[ ${1:-} == -h || ${1:-} == --help ]] && exit 0
        echo "$(basename "$0"): error: give the dataset first: isic2016, isic2017 or isic2018${1:+, got '$1'}" >&2
        exit 2 ;;
esac
EVAL_DATASET=$1
EVAL_CONFIG=2d
EVAL_USAGE_ARG="$1 "
shift
# shellcheck source=_common.sh
source "$(dirname "${BASH_SOURCE[0]}")/_common.sh"
sss_eval_main "$@"
