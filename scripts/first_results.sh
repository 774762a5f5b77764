#!/usr/bin/env bash
# First measured results on real radio data (issue 7), using only the public commands.
#   bash scripts/first_results.sh [pretrain|evaluate|ablation|all]
# Corpus: the FIRST PNGs and FR-DEEP FITS of ../shared/data without their labels (kept whole: smaller than a tile).
# Pretraining: the cpu preset. The reconstruction-only model is stage 1 of the two-stage run (the same config,
# seed and steps as a train.branch=reconstruction run), so the three branches cost two runs, run side by side.
# Evaluation: linear probe and k-NN, 3-fold CV, against a random-init encoder of the same architecture, on FIRST
# 4-class and on FR-DEEP FRI/FRII trained on FIRST images and tested on NVSS images of held-out objects; once
# with the seed's strict protocol, once with fold-fitted feature standardization, plus a depth sweep.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:-../shared/data}
OUT=${OUT:-runs/real}
T=.venv/bin/tessera

stage_pretrain() {
  $T ingest "$DATA/first_radio_galaxies" "$DATA/frdeep_fits" --out "$OUT/corpus" --tile 512 --workers 2
  OMP_NUM_THREADS=1 $T pretrain --config cpu --corpus "$OUT/corpus" --out "$OUT/two-stage" train.branch=two-stage train.progress=false &
  OMP_NUM_THREADS=1 $T pretrain --config cpu --corpus "$OUT/corpus" --out "$OUT/contrastive" train.branch=contrastive train.progress=false &
  wait
}

stage_evaluate() {
  local models=(--model "reconstruction=$OUT/two-stage/stage1_reconstruction/model" --model "contrastive=$OUT/contrastive"
                --model "two-stage=$OUT/two-stage" --model "random-init=random:cpu")
  local cache="$OUT/feature_cache"
  for data in "first:$DATA/first_radio_galaxies" "frdeep-cross:$DATA/frdeep_fits"; do
    local name=${data%%:*}
    $T evaluate "${models[@]}" --data "$data" --protocol linear --protocol knn --out "$OUT/eval_${name}_strict" \
      --overwrite progress=false cache_dir="$cache"
    $T evaluate "${models[@]}" --data "$data" --protocol linear --protocol knn --out "$OUT/eval_${name}_standardized" \
      --overwrite progress=false cache_dir="$cache" linear.standardize=true knn.standardize=true
  done
  $T evaluate "${models[@]}" --data "first:$DATA/first_radio_galaxies" --protocol linear --layers all \
    --out "$OUT/eval_first_depth" --overwrite progress=false cache_dir="$cache" linear.standardize=true
}

# Ablation: the contrastive branch with plain resized crops (views.regime=none) instead of the seed's augmentations.
stage_ablation() {
  $T pretrain --config cpu --corpus "$OUT/corpus" --out "$OUT/contrastive_plain" train.branch=contrastive \
    views.regime=none train.max_steps=600 train.progress=false
  local models=(--model "contrastive-plain-crops=$OUT/contrastive_plain" --model "random-init=random:cpu")
  $T evaluate "${models[@]}" --data "first:$DATA/first_radio_galaxies" --protocol linear --protocol knn \
    --out "$OUT/eval_first_plain_strict" --overwrite progress=false cache_dir="$OUT/feature_cache"
  $T evaluate "${models[@]}" --data "first:$DATA/first_radio_galaxies" --protocol linear --protocol knn \
    --out "$OUT/eval_first_plain_standardized" --overwrite progress=false cache_dir="$OUT/feature_cache" \
    linear.standardize=true knn.standardize=true
}

case "${1:-all}" in
  pretrain) stage_pretrain ;;
  evaluate) stage_evaluate ;;
  ablation) stage_ablation ;;
  all) stage_pretrain; stage_evaluate; stage_ablation ;;
  *) echo "usage: $0 [pretrain|evaluate|ablation|all]" >&2; exit 2 ;;
esac
