#!/usr/bin/env bash
# The dense-parity runs on the corrected cpu protocol, one after the other (resumable: the runner
# reuses finished stages). Run it from a separate clone at a fixed commit so the code under the runs
# does not move while you work:
#   git clone . /tmp/parity && cd /tmp/parity && \
#     SOLO_LEARN_SRC=/path/to/solo-learn DATA=/data/cifar10_jpg OUT=/runs/parity \
#     nice -n 10 bash scripts/dense_parity_sweep.sh
# then publish each grid (run_grid.py ... --tables-only --publish
# results/dense_parity/<protocol>-lr<lr>)
# and summarize with scripts/dense_parity.py (docs/results.md, "Dense parity").
set -euo pipefail
: "${SOLO_LEARN_SRC:?a solo-learn checkout at 9187ea3}" "${DATA:?cifar10_jpg folder}" "${OUT:?output folder}"
SEEDS=${SEEDS:-}  # e.g. "1 2" for the repeats at the best lr (the seedless run counts as seed 5)
# LONG=1 adds the cpu_long stage
grid() {  # <protocol> <base lr> <run_grid arguments>: one grid per (protocol, lr), its folder
  local protocol=$1 lr=$2
  shift 2
  python scripts/run_grid.py --protocol "$protocol" --cpu --no-umap --densities 0.3 \
    --train "$DATA/train" --val "$DATA/test" --out "$OUT/$protocol-lr$lr" \
    --pretrain-override "optimizer.lr=$lr" ${SEEDS:+--seeds $SEEDS} "$@"
}
# base lrs (solo-learn scales them by batch/256: 0.3 -> a 0.15 peak at batch 128)
grid cpu 0.3 --methods vicreg vicreg_dual_gating --variants paper paper_dense_pair paper_dense_pair_sg
# the small network alone, at the widths around the gated branch's MACs
grid cpu 0.3 --methods vicreg --variants paper --baseline-widths 8 12
grid cpu 0.6 --methods vicreg vicreg_dual_gating --variants paper paper_dense_pair
grid cpu 0.15 --methods vicreg vicreg_dual_gating --variants paper paper_dense_pair
grid cpu 0.075 --methods vicreg vicreg_dual_gating --variants paper paper_dense_pair
# at VICReg's best base lr (0.15): the small network alone, and one cause at a time: the official
# code's gate warm-up (one dense-only epoch), the shared weights trained by the dense term alone
grid cpu 0.15 --methods vicreg --variants paper --baseline-widths 8 12
grid cpu 0.15 --methods vicreg_dual_gating --variants paper_gate_warmup paper_dense_pair_sg_s0
# at length (40 epochs, online curves), each method at its best base lr of the sweep (VICReg, the
# paper form and the small network 0.15, the dense pair 0.3); each epoch is checkpointed, so a
# killed run resumes where it stopped when the same command runs again
if [ -n "${LONG:-}" ]; then
  grid cpu_long 0.15 --methods vicreg vicreg_dual_gating --variants paper paper_dense_pair_sg_s0 \
    --baseline-widths 12
  grid cpu_long 0.3 --methods vicreg_dual_gating --variants paper_dense_pair
fi
