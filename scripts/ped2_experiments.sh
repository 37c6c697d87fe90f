#!/usr/bin/env bash
# Trains and evaluates model variants on UCSD Ped2 under one epoch budget, one after another, and prints a
# table of the results with the no-learning baselines of the same evaluation runs, and how well the
# validation signal (mean pseudo-anomaly AUC, no test labels) ranks the variants by their test AUC.
# Usage:
#   scripts/ped2_experiments.sh DATA_ROOT OUT_DIR EPOCHS NAME='--set k=v ...' [NAME='...' ...]
# e.g. scripts/ped2_experiments.sh ../shared/data/ucsd_ped2 runs/ablation 8 none='--set model.temporal=none'
set -euo pipefail
data=$1; out=$2; epochs=$3; shift 3
mkdir -p "$out"
bin=$(dirname "$(command -v python)")
ocrgan=${OCRGAN:-$bin/ocrgan}
for spec in "$@"; do
  name=${spec%%=*}; sets=${spec#*=}
  run="$out/$name"
  if [ ! -f "$run/model.safetensors" ]; then
    # shellcheck disable=SC2086
    "$ocrgan" train --data "$data" --out "$run" --config configs/ped2.yaml --set epochs="$epochs" $sets \
      > "$run.train.log" 2>&1
  fi
  if [ ! -f "$run/eval/metrics.json" ]; then
    "$ocrgan" eval --checkpoint "$run/model.safetensors" --data "$data" --out "$run/eval" > "$run.eval.log" 2>&1
  fi
done
python - "$out" "$@" <<'PY'
import json, sys
from pathlib import Path
from scipy.stats import spearmanr
out = Path(sys.argv[1])
f = lambda v: "-" if v is None else f"{v:.3f}"
cols = ["variant", "online micro", "online macro", "offline micro", "offline macro", "pseudo-AUC (val)",
        "fast / wrong way / still / appear (val)", "score weights app, feat", "flow speed online / offline",
        "frame diff online / offline", "train min"]
print("| " + " | ".join(cols) + " |")
print("|" + "---|" * len(cols))
rows = []
for spec in sys.argv[2:]:
    name = spec.split("=", 1)[0]
    m = json.loads((out / name / "eval" / "metrics.json").read_text())
    t = m["checkpoint"]["training"]
    sel = t.get("validation") or {}
    b = m["baselines"]
    kinds = " / ".join(f(sel.get(k)) for k in ("fast", "wrong_way", "still", "appear"))
    w = t.get("score_weights") or {}
    rows.append((sel.get("mean"), m["online"]["micro_auc"], m["offline"]["micro_auc"]))
    print(f"| {name} | {f(m['online']['micro_auc'])} | {f(m['online']['macro_auc'])} | "
          f"{f(m['offline']['micro_auc'])} | {f(m['offline']['macro_auc'])} | {f(sel.get('mean'))} | "
          f"{kinds} | {w.get('w_score_app', '-')}, {w.get('w_score_feat', '-')} | "
          f"{f(b['flow_speed']['online']['micro_auc'])} / {f(b['flow_speed']['offline']['micro_auc'])} | "
          f"{f(b['frame_difference']['online']['micro_auc'])} / {f(b['frame_difference']['offline']['micro_auc'])} | "
          f"{(t.get('wall_seconds') or 0) / 60:.0f} |")
if len(rows) >= 3 and all(r[0] is not None for r in rows):
    for i, protocol in ((1, "online"), (2, "offline")):
        rho, p = spearmanr([r[0] for r in rows], [r[i] for r in rows])
        print(f"\nSpearman rank correlation, validation pseudo-AUC vs test {protocol} micro AUC over "
              f"{len(rows)} variants: {rho:.2f} (p = {p:.2f})")
PY
