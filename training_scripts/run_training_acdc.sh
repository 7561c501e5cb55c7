#!/usr/bin/env bash
# ACDC cardiac MRI: convert -> nnUNetv2_plan_and_preprocess -> nnUNetv2_train. See --help.
#   run_training_acdc.sh -f 0 --raw /data/ACDC/database       # fold 0 = the paper's 70/10 patients
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/_common.sh"
sss_dataset acdc 803 ACDC "ACDC cine MRI (RV, Myo, LV), the paper's 70 train / 10 val / 20 test patients"
sss_main "$@"
