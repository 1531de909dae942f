#!/usr/bin/env bash
# Offline k-NN of every trained branch of a pre-training run with solo-learn's unchanged main_knn.py
# (spec §6.3, D16): k = 1 (the paper's released scripts) and k = 20 (the online monitor), Euclidean,
# backbone and projector features, validation transform for both splits.
# usage: knn.sh RUN_DIR DATASET TRAIN_PATH VAL_PATH   (SOLO_LEARN_SRC: solo-learn checkout, default .)
set -euo pipefail
run_dir=$1 dataset=$2 train=$3 val=$4
solo=${SOLO_LEARN_SRC:-.}
for dir in $(dualgate-solo branch-dir "$run_dir" | sed -n 's/.*--pretrained_checkpoint_dir //p'); do
  echo "### $dir"
  python "$solo/main_knn.py" --dataset "$dataset" --train_data_path "$train" --val_data_path "$val" \
    --batch_size 256 --num_workers 4 --pretrained_checkpoint_dir "$dir" \
    --k 1 20 --temperature 0.07 --feature_type backbone projector --distance_function euclidean
done
