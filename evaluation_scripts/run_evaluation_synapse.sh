#!/usr/bin/env bash
# Predict the Synapse (BTCV 8 organs, 12 test cases) test set with nnUNetv2_predict, evaluate, print the table.
# Usage: run_evaluation_synapse.sh [-tr SSSTrainer] [-f 0 | --ensemble] [--protocol paper|strict] [--dry-run]; -h for all options.
set -euo pipefail
EVAL_DATASET=synapse
EVAL_DATASET_ID=801
EVAL_TITLE="Synapse (BTCV 8 organs, 12 test cases)"
# shellcheck source=_common.sh
source "$(dirname "${BASH_SOURCE[0]}")/_common.sh"
sss_eval_main "$@"
