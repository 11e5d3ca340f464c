#!/usr/bin/env bash
# The train/eval issue's result on real photos: ResNet-50 at 128 px from scratch
# with the recipe on the full Grocery Store train split (2640 photos, 81 classes),
# tested on its test split (2485 photos), for goodsrec and for the torchvision
# twin (bench/train_torchvision.py) with the same recipe and budget. Both run at
# the same time with one compute thread and one data worker each, so each gets
# one of the two cores. Usage: bash bench/grocery-result.sh [epochs] [outdir]
set -euo pipefail
cd "$(dirname "$0")/.."
epochs=${1:-10}
out=${2:-runs/grocery-result}
data=../shared/datasets/grocery-store
mkdir -p "$out"
/usr/bin/time -v node dist/src/cli/main.js train --data "$data" --model resnet50 --size 128 --batch-size 32 --epochs "$epochs" \
  --set schedule.warmupEpochs=0.5 --set schedule.perIteration=true --set augment.cutout=8 \
  --set threads=1 --set data.workers=1 --set validateEvery="$epochs" --set checkpointEvery=5 \
  --out "$out" --name goodsrec --json > "$out/goodsrec.json" 2> "$out/goodsrec.log" &
p1=$!
OMP_NUM_THREADS=1 /usr/bin/time -v /usr/bin/python3 bench/train_torchvision.py --data "$data" --size 128 --batch-size 32 \
  --epochs "$epochs" --warmup-epochs 0.5 --cutout 8 --threads 1 --workers 1 --out "$out/torchvision.json" > "$out/torchvision.log" 2>&1 &
p2=$!
wait $p1; wait $p2
node -e '
const fs = require("fs"); const out = process.argv[1];
const g = JSON.parse(fs.readFileSync(out + "/goodsrec.json", "utf8"));
const t = JSON.parse(fs.readFileSync(out + "/torchvision.json", "utf8"));
const ev = fs.readFileSync(out + "/goodsrec/metrics.jsonl", "utf8").trim().split("\n").map(JSON.parse).filter((m) => m.type === "epoch");
console.log(`goodsrec:    top-1 ${(100 * g.lastVal.top1).toFixed(2)}%  top-5 ${(100 * g.lastVal.top5).toFixed(2)}%  wall ${(g.seconds / 60).toFixed(1)} min  (${ev.length} epochs)`);
console.log(`torchvision: top-1 ${(100 * t.top1).toFixed(2)}%  top-5 ${(100 * t.top5).toFixed(2)}%  wall ${(t.wallSeconds / 60).toFixed(1)} min  (${t.epochs} epochs)`);
' "$out"
