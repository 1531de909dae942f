#!/usr/bin/env bash
# UMAP of every trained branch with solo-learn's unchanged main_umap.py (it writes
# im100_train_umap.pdf / im100_val_umap.pdf into the working directory, so each branch runs in its
# own eval-<branch> directory). For both branches side by side in one figure: dualgate-solo umap.
# usage: umap.sh RUN_DIR DATASET TRAIN_PATH VAL_PATH   (SOLO_LEARN_SRC: solo-learn checkout, default .)
set -euo pipefail
run_dir=$1 dataset=$2 train=$3 val=$4
solo=$(cd "${SOLO_LEARN_SRC:-.}" && pwd)
for dir in $(dualgate-solo branch-dir "$run_dir" | sed -n 's/.*--pretrained_checkpoint_dir //p'); do
  (cd "$dir" && python "$solo/main_umap.py" --dataset "$dataset" --train_data_path "$train" \
    --val_data_path "$val" --batch_size 256 --num_workers 4 --pretrained_checkpoint_dir .)
  echo "wrote $dir/im100_val_umap.pdf"
done
