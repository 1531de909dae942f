#!/usr/bin/env bash
# Grid runs (scripts/run_grid.py) on a bare GPU machine, many at once, against one deadline.
#
#   scripts/gpu_grid.sh JOB OUT DEADLINE_S RUNSPEC... [-- RUNNER_ARGS...]
#
# JOB: a folder carried with the working tree that holds whl/ (wheels the machine lacks: lightning,
# hydra, omegaconf, torchmetrics, ...), solo-learn/ (a solo-learn checkout: solo/ and main_*.py)
# and data/cifar10_jpg.tar.gz (CIFAR-10 as JPEG ImageFolders train/ and test/).
# RUNSPEC: PROTOCOL:METHOD:VARIANT:SEEDS, e.g. cpu_long:vicreg:paper:- (the config's seed) or
# cpu:vicreg_dual_gating:tracked:1,2 (seeds 1 and 2, one after the other); each RUNSPEC is one
# run_grid.py process: t_d 0.3, accelerator=gpu for pre-training and linear probe, no UMAP (the
# machine has no umap-learn), 3 loader workers for cpu_long and 2 otherwise.
# The data, the solo-learn copy and each protocol's grid go to $DATA_ROOT, $SOLO_ROOT and
# $RUNS_ROOT/grid_<PROTOCOL> (defaults: /work/data, /work/solo-learn, /work/runs): the paths the
# runner's stage records name on the machine that continues or publishes the grid.
# At DEADLINE_S seconds the runners are interrupted (finished stages are kept: the runner resumes).
# OUT receives grid_<PROTOCOL>.tar.gz (every run's records, logs and metrics, no checkpoints),
# runners.log and environment.json.
set -u
JOB=$(realpath "$1"); OUT=$2; DEADLINE=$3; shift 3
SPECS=(); while [ $# -gt 0 ] && [ "$1" != "--" ]; do SPECS+=("$1"); shift; done
[ $# -gt 0 ] && shift
REPO=$(cd "$(dirname "$0")/.." && pwd)
DATA_ROOT=${DATA_ROOT:-/work/data}; SOLO_ROOT=${SOLO_ROOT:-/work/solo-learn}
RUNS_ROOT=${RUNS_ROOT:-/work/runs}
START=$(date +%s)
mkdir -p "$OUT" "$DATA_ROOT" "$RUNS_ROOT"
if ls "$JOB"/whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site "$JOB"/whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site
fi
export PYTHONPATH=$REPO${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
[ -d "$DATA_ROOT/cifar10_jpg/train" ] || tar -xzf "$JOB/data/cifar10_jpg.tar.gz" -C "$DATA_ROOT"
[ -f "$SOLO_ROOT/main_pretrain.py" ] || { mkdir -p "$SOLO_ROOT" && cp -r "$JOB"/solo-learn/. "$SOLO_ROOT"; }
PROTOCOLS=$(printf '%s\n' "${SPECS[@]}" | cut -d: -f1 | sort -u)
# the protocols' subsets once, before the parallel runners; the machine's description
python3 - "$DATA_ROOT/cifar10_jpg" "$RUNS_ROOT" "$OUT/environment.json" $PROTOCOLS <<'PY' || exit 1
import json, os, platform, sys
from pathlib import Path
import torch
from dualgate_solo.provenance import provenance
from experiments.runner.data import subset_folder
from experiments.runner.protocols import PROTOCOLS
data, runs, record, *names = sys.argv[1:]
for name in names:
    grid, protocol = Path(runs) / f"grid_{name}", PROTOCOLS[name]
    if protocol.train_per_class:
        subset_folder(data / Path("train"), grid / "data" / "train", protocol.train_per_class)
    if protocol.val_per_class:
        subset_folder(data / Path("test"), grid / "data" / "val", protocol.val_per_class)
gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
info = {**provenance(), "gpu": gpu, "torch": torch.__version__, "cpu_count": os.cpu_count(),
        "python": platform.python_version()}
Path(record).write_text(json.dumps(info, indent=2))
PY
for spec in "${SPECS[@]}"; do
  IFS=: read -r protocol method variant seeds <<< "$spec"
  workers=2; [ "$protocol" = cpu_long ] && workers=3
  seed_args=(); [ "$seeds" != "-" ] && seed_args=(--seeds ${seeds//,/ })
  mkdir -p "$RUNS_ROOT/grid_$protocol"
  left=$(( DEADLINE - ($(date +%s) - START) ))
  timeout -k 15 -s INT "$left" python3 "$REPO/scripts/run_grid.py" --protocol "$protocol" \
    --solo "$SOLO_ROOT" --train "$DATA_ROOT/cifar10_jpg/train" --val "$DATA_ROOT/cifar10_jpg/test" \
    --out "$RUNS_ROOT/grid_$protocol" --methods "$method" --variants "$variant" --densities 0.3 \
    "${seed_args[@]}" --workers "$workers" --no-umap \
    --pretrain-override accelerator=gpu --linear-override accelerator=gpu "$@" \
    > "$RUNS_ROOT/grid_$protocol/runner-$method-$variant-$seeds.log" 2>&1 &
done
wait
echo "runners done after $(( $(date +%s) - START )) s" | tee "$OUT/runners.log"
tail -n 4 "$RUNS_ROOT"/grid_*/runner-*.log >> "$OUT/runners.log"
for protocol in $PROTOCOLS; do
  tar -czf "$OUT/grid_$protocol.tar.gz" -C / --exclude='*.ckpt' --exclude="grid_$protocol/data" \
    "${RUNS_ROOT#/}/grid_$protocol"
done
ls -la "$OUT"
