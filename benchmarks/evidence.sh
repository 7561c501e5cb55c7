#!/usr/bin/env bash
# Re-runs the fair-comparison evidence of docs/results.md: every network under ONE recipe, 3 seeds,
# paired per-case 95 % intervals against nnU-Net (sss-nnunet compare). Resumable: compare skips runs
# whose result.json exists, so rerun the same command after an interruption (a session, a preemption).
#
#   benchmarks/evidence.sh [PIECE ...]        # default: all pieces, in the order below
#   DEVICE=cuda SCALE=4 benchmarks/evidence.sh   # on a GPU: 4x the iterations of every piece
#
# Environment: WORK (default ./sss_evidence: nnUNet_raw/_preprocessed and each piece's --out), ARCHIVE
# (default docs/evidence with the default DEVICE, SCALE, SEEDS and BATCH, else none; ARCHIVE=none: none),
# DEVICE (cpu|cuda, default cpu), SCALE (iteration multiplier, default 1), SEEDS (default "0 1 2"),
# ROWS (see NETS below), RUNGS (a ladder's rungs to run, in this order, and no whole-ladder table, which would
# train the rungs not listed; default all, then the table), BATCH (one batch
# size for every network, default 2 = the default plans' batch on these sets; nnU-Net's
# ResEnc presets would otherwise train batches of up to 40 here).
# CPU time measured on 2 idle cores (2026-12-06, 500 iterations on 991 context 3d_fullres, batch 2): one
# nnUNetTrainer run ~6.5 min of training, one SSSTrainer run ~8-9 min, one ResEnc M run ~10 min (+ ~1-2 min
# prediction each), so a 2-row x 3-seed piece takes ~55 min and a 4-row piece about 2 h. On 993 context2d 2d
# (256 x 256, 7 stages, batch 2; 2026-12-06): nnUNetTrainer ~13 min of training (35 s per 25-iteration epoch),
# SSSTrainer ~19 min (52-55 s), ResEnc M ~26 min (74 s), global-only ~15 min, + ~0.5 min prediction: the 4-row
# c2d piece 3.7 h (measured, 12 runs).
# All pieces together exceed 8 hours on 2 cores: run them piece by piece (resumable) or on a GPU. Measured
# hours per piece and in all: python benchmarks/evidence_summary.py docs/evidence --time (2026-12-07, 10 pieces,
# 104 finished runs: 24.3 h of wall time, some runs beside tests; the 6 four-row pieces 15.9 h, c3d-sss-2x 1.3 h,
# demo-sss-2x 2.8 h). A run's time is the network's train step: data loading and augmentation take ~0.02 s of
# its 0.6-1.0 s per iteration on 991 (2 idle cores, 2026-12-07), so smaller sets, not fewer workers, shorten it.
# Pieces (dataset, configuration, rows, recipe; results in docs/results.md):
#   c2d-sss      993 context2d 2d:       PlainConvUNet, ResEnc M, RWKV-SSS (paper), RWKV-SSS global-only; sss
#   c2d-nnunet   993 context2d 2d:       the same four under nnU-Net's SGD recipe
#   c3d-sss      991 context 3d_fullres: the same four; sss
#   c3d-nnunet   991 context 3d_fullres: the same four; nnunet
#   mni-sss      992 mni152 3d_fullres:  the same four; sss, 250 iterations (needs pip install '.[datasets]';
#                2026-12-07: 128 min for 12 runs, PlainConvUNet ~9-11 min, ResEnc M ~13-15, RWKV-SSS ~7-9)
#   mni-nnunet   992 mni152 3d_fullres:  the same four; nnunet, 250 iterations (the second set under nnU-Net's
#                recipe; 2026-12-07: 131 min for 12 runs)
#   demo-sss     990 demo 3d_fullres:    the same four; sss, 500 iterations (at 250 under its own SGD recipe
#                nnUNetTrainer had not yet learnt the spleen and the gallbladder)
#   c3d-sss-2x   991 context 3d_fullres: budget check, PlainConvUNet and RWKV-SSS at 2x the c3d-sss budget
#                (1000 iterations; BUDGET_ROWS overrides the rows); the pseudo Dice of 2 validation batches
#                is too noisy there to tell convergence, the test cases tell it:
#                python benchmarks/budget_check.py $WORK/c3d_sss $WORK/c3d_sss_2x (79 min on 2 idle cores)
#   demo-sss-2x  990 demo 3d_fullres:    the same budget check of demo-sss (1000 iterations; on idle cores
#                ~20 min per nnUNetTrainer run, ~24 min per SSSTrainer run: ~2.3 h)
#   ladder-c2d   993: ablation ladder SSSTrainer_L0..L6 + SSSTrainer, nnUNetTrainer baseline; sss, 250
#                iterations: at 500 both networks of c2d-sss reach 0.99 on every class, a ceiling no rung
#                can rise above (at 250, seed 0, 2026-12-07: PlainConvUNet 0.541, RWKV-SSS 0.995; ~6 min
#                per PlainConvUNet run, ~9 min per RWKV-SSS run, 27 runs: ~4 h)
#   ladder-c3d   991: the same ladder; sss, 500 iterations
#   ladder-demo  990: the same ladder; sss, 500 iterations
# Ladder pieces run rung by rung (each rung's seeds before the next rung, so an interrupted session
# leaves whole rungs), reuse the nnUNetTrainer and SSSTrainer runs of the same set's sss piece where it
# has the same budget (c3d, demo) and end with one compare over all rows that writes the table (not with RUNGS; it
# skips every run).
# Rung-to-rung differences: python benchmarks/ladder_summary.py $WORK/ladder_c3d
# Across machines and sessions (run folders lost): each piece's reports go to ARCHIVE/<piece>/ (compare.md,
# compare.json with every run record, the plots; a ladder rung's compare.json to ARCHIVE/<piece>/rungs/),
# and every piece starts with `compare --restore` of those JSON files: the data digest and the settings
# must match, then the finished runs are skipped.
set -euo pipefail
cd "$(dirname "$0")/.."
SSS=${SSS:-$(command -v sss-nnunet || echo .venv/bin/sss-nnunet)}
PY=${PY:-$(dirname "$SSS")/python}  # the Python beside sss-nnunet, for benchmarks/archive_guard.py
[ -x "$PY" ] || PY=$(command -v python3 || command -v python)
WORK=$(realpath -m "${WORK:-sss_evidence}")
DEVICE=${DEVICE:-cpu}
SCALE=${SCALE:-1}
SEEDS=${SEEDS:-"0 1 2"}
BATCH=${BATCH:-2}
export nnUNet_raw="$WORK/nnUNet_raw" nnUNet_preprocessed="$WORK/nnUNet_preprocessed"
export nnUNet_results="$WORK/nnUNet_results"  # unused by compare (models go to each --out), set for nnU-Net
mkdir -p "$nnUNet_raw" "$nnUNet_preprocessed"
if [ -z "${ARCHIVE:-}" ]; then  # the committed evidence holds the default budget only
  [ "$DEVICE $SCALE $SEEDS $BATCH" = "cpu 1 0 1 2 2" ] && ARCHIVE=docs/evidence || ARCHIVE=none
fi
[ "$ARCHIVE" = none ] || ARCHIVE=$(realpath -m "$ARCHIVE")

NETS=(nnUNetTrainer nnUNetTrainer:nnUNetResEncUNetMPlans SSSTrainer SSSTrainer_globalOnly)
# ROWS="nnUNetTrainer SSSTrainer": only these rows in the four-row pieces (the runs published so far; its report
# lacks the other rows' runs, so it does not replace an archive that holds them); a later
# run without ROWS adds the other rows and skips the finished runs
# shellcheck disable=SC2206
[ -z "${ROWS:-}" ] || NETS=($ROWS)
# shellcheck disable=SC2206
BUDGET_NETS=(${BUDGET_ROWS:-nnUNetTrainer SSSTrainer})  # the rows of a budget check (*-2x pieces)
LADDER=(nnUNetTrainer SSSTrainer_L0 SSSTrainer_L1 SSSTrainer_L2 SSSTrainer_L3 SSSTrainer_L4 SSSTrainer_L5
        SSSTrainer_L6 SSSTrainer)

dataset() {  # name id: generate a built-in set once
  local name=$1 id=$2
  if ! compgen -G "$nnUNet_raw/Dataset${id}_*" > /dev/null; then
    "$SSS" convert "$name"
  fi
}

piece() {  # out dataset config iterations recipe trainers...; RUNG=name: archive as one rung of a ladder
  local out=$1 id=$2 config=$3 iters=$4 recipe=$5 f
  shift 5
  local start=$SECONDS restore=() rc=0
  if [ "$ARCHIVE" != none ]; then
    for f in "$ARCHIVE/$out/compare.json" "$ARCHIVE/$out"/rungs/*.json; do [ -f "$f" ] && restore+=("$f"); done
  fi
  # shellcheck disable=SC2086
  "$SSS" compare -d "$id" -c "$config" -tr "$@" --recipe "$recipe" --baseline nnUNetTrainer --batch-size "$BATCH" \
    --iterations $((iters * SCALE)) --iterations-per-epoch 25 --val-iterations 2 --seeds $SEEDS \
    -device "$DEVICE" --out "$WORK/$out" ${restore[@]:+--restore "${restore[@]}"} || rc=$?
  if [ "$rc" -gt 1 ]; then  # compare stopped before or while running (bad input, interrupted): no report to keep
    echo "evidence: $out: compare stopped (exit $rc); nothing archived" >&2
    return 0
  fi
  [ "$rc" = 0 ] || echo "evidence: $out finished with failed runs (see $WORK/$out/compare.md)"
  archive "$out"
  echo "evidence: $out took $(( (SECONDS - start) / 60 )) min wall time (runs skipped as done cost nothing)"
}

archive() {  # out: keep the piece's reports (every run record is in compare.json) in ARCHIVE/out
  local from=$WORK/$1 to=$ARCHIVE/$1 f
  [ "$ARCHIVE" != none ] && [ -f "$from/compare.json" ] || return 0
  if [ -n "${RUNG:-}" ]; then
    "$PY" benchmarks/archive_guard.py "$to/rungs/$RUNG.json" "$from/compare.json" || return 0
    mkdir -p "$to/rungs" && cp "$from/compare.json" "$to/rungs/$RUNG.json.tmp" && mv "$to/rungs/$RUNG.json.tmp" "$to/rungs/$RUNG.json"
    return 0
  fi
  # a report with fewer finished runs than the archive (ROWS=..., a stale report) does not replace it
  "$PY" benchmarks/archive_guard.py "$to/compare.json" "$from/compare.json" || return 0
  mkdir -p "$to"
  for f in compare.json compare.md compare.png curves.png; do
    [ -f "$from/$f" ] && cp "$from/$f" "$to/$f.tmp" && mv "$to/$f.tmp" "$to/$f"
  done
  return 0
}

reuse() {  # from to rows...: copy finished runs of the same budget and recipe from piece `from`
  local from=$WORK/$1 to=$WORK/$2 row seed
  shift 2
  for seed in $SEEDS; do
    for row in "$@"; do
      if [ -f "$from/runs/seed$seed/$row/result.json" ] && [ ! -e "$to/runs/seed$seed/$row" ]; then
        # copied whole or not at all (and compare refuses a finished run of another budget)
        mkdir -p "$to/runs/seed$seed" "$to/.reuse_tmp" && rm -rf "$to/.reuse_tmp/$row"
        cp -a "$from/runs/seed$seed/$row" "$to/.reuse_tmp/$row"
        mv "$to/.reuse_tmp/$row" "$to/runs/seed$seed/$row"
      fi
    done
  done
}

ladder() {  # out from dataset config iterations: the ladder rung by rung, then the whole table
  local out=$1 from=$2 id=$3 config=$4 iters=$5 rung
  [ -z "$from" ] || reuse "$from" "$out" nnUNetTrainer__sss SSSTrainer__sss  # from: same budget and recipe
  # shellcheck disable=SC2206
  local rungs=(${RUNGS:-${LADDER[@]:1}})
  for rung in "${rungs[@]}"; do
    RUNG=$rung piece "$out" "$id" "$config" "$iters" sss nnUNetTrainer "$rung"
  done
  if [ -n "${RUNGS:-}" ]; then  # the whole table would train every rung not listed: leave it to a run without RUNGS
    echo "evidence: $out: RUNGS given, no whole-ladder table (python benchmarks/ladder_summary.py $WORK/$out)"
    return 0
  fi
  piece "$out" "$id" "$config" "$iters" sss "${LADDER[@]}"
}

run_piece() {
  case $1 in
    c2d-sss)    dataset context2d 993; piece c2d_sss 993 2d 500 sss "${NETS[@]}" ;;
    c2d-nnunet) dataset context2d 993; piece c2d_nnunet 993 2d 500 nnunet "${NETS[@]}" ;;
    c3d-sss)    dataset context 991; piece c3d_sss 991 3d_fullres 500 sss "${NETS[@]}" ;;
    c3d-nnunet) dataset context 991; piece c3d_nnunet 991 3d_fullres 500 nnunet "${NETS[@]}" ;;
    mni-sss)    dataset mni152 992; piece mni_sss 992 3d_fullres 250 sss "${NETS[@]}" ;;
    mni-nnunet) dataset mni152 992; piece mni_nnunet 992 3d_fullres 250 nnunet "${NETS[@]}" ;;
    demo-sss)   dataset demo 990; piece demo_sss 990 3d_fullres 500 sss "${NETS[@]}" ;;
    c3d-sss-2x) dataset context 991; piece c3d_sss_2x 991 3d_fullres 1000 sss "${BUDGET_NETS[@]}" ;;
    demo-sss-2x) dataset demo 990; piece demo_sss_2x 990 3d_fullres 1000 sss "${BUDGET_NETS[@]}" ;;
    ladder-c2d) dataset context2d 993; ladder ladder_c2d "" 993 2d 250 ;;
    ladder-c3d) dataset context 991; ladder ladder_c3d c3d_sss 991 3d_fullres 500 ;;
    ladder-demo) dataset demo 990; ladder ladder_demo demo_sss 990 3d_fullres 500 ;;
    *) echo "evidence: unknown piece '$1'" >&2; exit 2 ;;
  esac
}

PIECES=("$@")
[ ${#PIECES[@]} -gt 0 ] || PIECES=(c2d-sss c2d-nnunet c3d-sss c3d-nnunet mni-sss mni-nnunet demo-sss c3d-sss-2x demo-sss-2x
                                ladder-c2d ladder-c3d ladder-demo)
for p in "${PIECES[@]}"; do run_piece "$p"; done
