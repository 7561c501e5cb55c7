#!/usr/bin/env bash
# Synapse multi-organ CT: convert -> nnUNetv2_plan_and_preprocess -> nnUNetv2_train. See --help.
#   run_training_synapse.sh -f 0 --raw /data/RawData          # 8 organs, the paper's 18/12 split
#   run_training_synapse.sh -f all --btcv13 --raw /data/RawData
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/_common.sh"
sss_dataset synapse 801 Synapse8 "Synapse multi-organ CT, 8 organs, the paper's 18 train / 12 test cases"
sss_variant --btcv13 btcv 802 BTCV13 "the 13-organ BTCV dataset, 5-fold CV over 30 cases"
sss_main "$@"
