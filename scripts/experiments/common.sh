# Shared settings of the experiments in scripts/experiments/ (sourced). The budget is sized for a shared
# 2-core machine: resnet18 at 64 px, batch 64, one compute thread per training, nice NICE (10; a lower one keeps
# the experiment from starving next to other jobs).
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$REPO"
EXP=${EXP:-/tmp/exp}
DATA=${DATA:-../shared/datasets/grocery-store}
SPLIT_SEED=${SPLIT_SEED:-17}
export GOODSREC_THREADS=1
G=(nice -n "${NICE:-10}" node "$REPO/dist/src/cli/main.js")
COMMON=(--model resnet18 --size 64 --batch-size 64 --device cpu --out "$EXP/runs"
  --set data.valSplit=val --set data.workers=1 --set data.cacheMB=1500 --set threads=1)
mkdir -p "$EXP/runs"
[ -f "$EXP/split/split.json" ] || node scripts/experiments/split-classes.mjs "$DATA" "$EXP/split" "$SPLIT_SEED"

# train NAME ARGS...: trains into $EXP/runs/NAME unless it already finished (its last checkpoint exists).
train() {
  local name=$1; shift
  if [ -f "$EXP/runs/$name/latest.json" ] && [ "$(node -e "const r='$EXP/runs/$name/';
      const l=require(r+'latest.json'), c=require(r+'config.json');
      process.stdout.write(String(l.position.epoch>=c.schedule.epochs))")" = true ]; then
    echo "$name: done already"; return
  fi
  echo "== train $name"
  "${G[@]}" train "${COMMON[@]}" --name "$name" "$@" > "$EXP/runs/$name.log" 2>&1
}

# top1 RUN DATA_JSON: test top-1 of a classifier run on a manifest's test split (its classes aligned to the run's).
top1() {
  local out
  out="$1/eval-test-$(basename "$2" .json).json"
  "${G[@]}" eval "$1" --data "$2" --split test --out "$out" > /dev/null
  node -e "console.log(require('$out').metrics.top1.toFixed(4))"
}
