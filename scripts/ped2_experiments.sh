#!/usr/bin/env bash
# Trains and evaluates the model variants on UCSD Ped2 under one step budget, one after another,
# and prints a table of the results. Usage:
#   scripts/ped2_experiments.sh DATA_ROOT OUT_DIR EPOCHS NAME='--set k=v ...' [NAME='...' ...]
# e.g. scripts/ped2_experiments.sh ../shared/data/ucsd_ped2 runs/ablation 3 none='--set model.temporal=none'
set -euo pipefail
data=$1; out=$2; epochs=$3; shift 3
mkdir -p "$out"
for spec in "$@"; do
  name=${spec%%=*}; sets=${spec#*=}
  run="$out/$name"
  if [ ! -f "$run/model.safetensors" ]; then
    # shellcheck disable=SC2086
    ocrgan train --data "$data" --out "$run" --config configs/ped2.yaml --set epochs="$epochs" $sets \
      > "$run.train.log" 2>&1
  fi
  if [ ! -f "$run/eval/metrics.json" ]; then
    ocrgan eval --checkpoint "$run/model.safetensors" --data "$data" --out "$run/eval" > "$run.eval.log" 2>&1
  fi
done
python - "$out" "$@" <<'PY'
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
print("| variant | online micro | online macro | offline micro | offline macro | pseudo-AUC (val) | train min |")
print("|---|---|---|---|---|---|---|")
for spec in sys.argv[2:]:
    name = spec.split("=", 1)[0]
    m = json.loads((out / name / "eval" / "metrics.json").read_text())
    t = m["checkpoint"]["training"]
    f = lambda v: "-" if v is None else f"{v:.3f}"
    print(f"| {name} | {f(m['online']['micro_auc'])} | {f(m['online']['macro_auc'])} | "
          f"{f(m['offline']['micro_auc'])} | {f(m['offline']['macro_auc'])} | {f(t.get('selection_score'))} | "
          f"{(t.get('wall_seconds') or 0) / 60:.0f} |")
PY
