#!/usr/bin/env bash
# BraTS (regions WT, TC, ET): convert -> nnUNetv2_plan_and_preprocess -> nnUNetv2_train. See --help.
#   run_training_brats.sh -f 0 --raw /data/Task01_BrainTumour  # MSD, fold 0 = the paper's 387/73 cases
#   run_training_brats.sh -f all --brats2021 --raw /data/BraTS2021_TrainingData
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/_common.sh"
sss_dataset brats 804 BraTSMSD "BraTS, MSD Task01_BrainTumour, the paper's 387 train / 73 val / 24 test cases"
sss_variant --brats2021 brats2021 805 BraTS2021 "BraTS 2021 (1251 cases), 5-fold CV"
sss_main "$@"
