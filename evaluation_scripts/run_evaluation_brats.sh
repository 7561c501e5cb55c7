#!/usr/bin/env bash
# Predict the BraTS (MSD Task01, 24 test cases; WT/TC/ET) test set with nnUNetv2_predict, evaluate, print the table.
# Usage: run_evaluation_brats.sh [-tr SSSTrainer] [-f 0 | --ensemble] [--protocol paper|strict] [--dry-run]; -h for all options.
set -euo pipefail
EVAL_DATASET=brats
EVAL_DATASET_ID=804
EVAL_TITLE="BraTS (MSD Task01, 24 test cases; WT/TC/ET)"
# shellcheck source=_common.sh
source "$(dirname "${BASH_SOURCE[0]}")/_common.sh"
sss_eval_main "$@"
