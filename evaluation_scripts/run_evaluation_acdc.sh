#!/usr/bin/env bash
# Predict the ACDC (20 test patients, 40 volumes) test set with nnUNetv2_predict, evaluate, print the table.
# Usage: run_evaluation_acdc.sh [-tr SSSTrainer] [-f 0 | --ensemble] [--protocol paper|strict] [--dry-run]; -h for all options.
set -euo pipefail
EVAL_DATASET=acdc
EVAL_DATASET_ID=803
EVAL_TITLE="ACDC (20 test patients, 40 volumes)"
# shellcheck source=_common.sh
source "$(dirname "${BASH_SOURCE[0]}")/_common.sh"
sss_eval_main "$@"
