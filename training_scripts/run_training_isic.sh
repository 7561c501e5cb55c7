#!/usr/bin/env bash
# ISIC skin lesions (2D, RGB): convert -> nnUNetv2_plan_and_preprocess -c 2d -> nnUNetv2_train ID 2d. See --help.
#   run_training_isic.sh isic2017 -f 0 --raw /data/ISIC2017     # VM-UNet protocol: 7:3 split, 256x256
#   run_training_isic.sh isic2016 -f all --raw /data/ISIC2016   # Zig-RiR protocol: official 900/379, 512x512
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/_common.sh"

isic_usage() {
    cat <<USAGE
usage: $SSS_SCRIPT DATASET [-f FOLD] [--resize H[xW]|none] [--split FILE] [--seed N] [options, see DATASET --help]

DATASET is one of
  isic2016   ISIC 2016 (Dataset806), Zig-RiR protocol: official 900 train / 379 test, resized to 512x512
  isic2017   ISIC 2017 (Dataset807), VM-UNet protocol: 7:3 split (1500/650), resized to 256x256
  isic2018   ISIC 2018 (Dataset808), VM-UNet protocol: 7:3 split (1886/808), resized to 256x256
--raw is the folder holding the extracted official archives. Training uses the 2d configuration.
Run '$SSS_SCRIPT DATASET --help' for all options.
USAGE
}

resize=""
case ${1:-} in
    isic2016) sss_dataset isic2016 806 ISIC2016 \
        "ISIC 2016 skin lesions, Zig-RiR protocol (official 900 train / 379 test)"; resize=512 ;;
    isic2017) sss_dataset isic2017 807 ISIC2017 \
        "ISIC 2017 skin lesions, VM-UNet protocol (train + val split 7:3, 1500 / 650)"; resize=256 ;;
    isic2018) sss_dataset isic2018 808 ISIC2018 \
        "ISIC 2018 skin lesions, VM-UNet protocol (train + val split 7:3, 1886 / 808)"; resize=256 ;;
    -h | --help) isic_usage; exit 0 ;;
    "" | -*) isic_usage >&2; sss_die "give the dataset first: isic2016, isic2017 or isic2018${1:+, got '$1'}" ;;
    *) isic_usage >&2; sss_die "unknown dataset '$1' (isic2016, isic2017 or isic2018)" ;;
esac
shift

# The converter's options; everything else goes to the shared driver.
declare -a rest=()
while (($#)); do
    case $1 in
        --resize | --split | --seed)
            (($# >= 2)) || sss_die "$1 needs a value"
            case $1 in
                --resize) resize=$2 ;;
                *) SSS_CONVERT_ARGS+=("$1" "$2") ;;
            esac
            shift 2 ;;
        --) rest+=("$@"); break ;;
        *) rest+=("$1"); shift ;;
    esac
done
[[ $resize == none ]] || SSS_CONVERT_ARGS=(--resize "$resize" "${SSS_CONVERT_ARGS[@]}")

SSS_DEFAULT_CONFIG=2d
SSS_USAGE_ARG=$SSS_KEY
SSS_EXTRA_USAGE="  --resize H[xW]  size the converter resizes images and masks to (default for $SSS_KEY: $resize
                  as the peer; 'none' keeps the original sizes)
  --split FILE    train/test split file for the converter (see 'sss-nnunet convert --help')
  --seed N        seed of the converter's 7:3 split (isic2017, isic2018; default 12345)
  FOLD 0 is fold 0 of nnU-Net's seeded 5-fold CV over the training images; the test images
  (imagesTs) are never trained on. Evaluate with evaluation_scripts/run_evaluation_isic.sh.
"
sss_main "${rest[@]}"
