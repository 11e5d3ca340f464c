#!/usr/bin/env bash
# Transfer experiment of docs/finetune.md (issue 17 item 6), end to end:
#  1. split the Grocery Store classes into A (55) and B (26) (split-classes.mjs, seed 17);
#  2. pretrain resnet18 on A (softmax, 12 epochs, 64 px);
#  3. publish it as the timm-format repo goodsrec/resnet18.grocery_a on the loopback fake Hub (test/hub-fake.ts);
#  4. on B, per seed, at the same budget (EPOCHS_B epochs, 64 px, batch 64): from scratch (recipe defaults),
#     --pretrained hf-hub:goodsrec/resnet18.grocery_a --recipe finetune, and (HEAD_ONLY=1) the same with only
#     the classifier learning; top-1 on B's test split.
#   EXP=/tmp/exp [SEEDS="0 1 2"] [EPOCHS_B=4] [HEAD_ONLY=1] bash scripts/experiments/finetune.sh
source "$(dirname "$0")/common.sh"
SEEDS=${SEEDS:-0}
EPOCHS_B=${EPOCHS_B:-4}
HEAD_ONLY=${HEAD_ONLY:-0}

train A-softmax --data "$EXP/split/A.json" --epochs 12 --seed 0
node scripts/experiments/publish-timm.mjs "$EXP/runs/A-softmax" "$EXP/hub/resnet18.grocery_a"

rm -f "$EXP/hub/endpoint"
node scripts/experiments/hub-serve.mjs "$EXP/hub/endpoint" "goodsrec/resnet18.grocery_a=$EXP/hub/resnet18.grocery_a" &
HUB=$!
trap 'kill $HUB 2>/dev/null || true' EXIT
for _ in $(seq 50); do [ -s "$EXP/hub/endpoint" ] && break; sleep 0.2; done
export HF_ENDPOINT=$(cat "$EXP/hub/endpoint") HF_HOME="$EXP/hf"
rm -rf "$EXP/hf"   # a fresh cache: the weights come through the Hub protocol every time
"${G[@]}" pull hf-hub:goodsrec/resnet18.grocery_a

B=(--data "$EXP/split/B.json" --epochs "$EPOCHS_B")
PRE=(--pretrained hf-hub:goodsrec/resnet18.grocery_a --recipe finetune)
for s in $SEEDS; do
  train "B-finetune-s$s" "${B[@]}" --seed "$s" "${PRE[@]}"
  train "B-scratch-s$s" "${B[@]}" --seed "$s"
  if [ "$HEAD_ONLY" = 1 ]; then
    train "B-headonly-s$s" "${B[@]}" --seed "$s" "${PRE[@]}" --set "finetune.headOnlyEpochs=$EPOCHS_B"
  fi
done

echo "| run | seed | B test top-1 |"
echo "|---|---|---|"
for kind in scratch finetune headonly; do
  for s in $SEEDS; do
    run="$EXP/runs/B-$kind-s$s"
    [ -f "$run/best.json" ] || continue
    echo "| $kind | $s | $(top1 "$run" "$EXP/split/B.json") |"
  done
done | tee "$EXP/finetune-results.md"
node -e "
const rows=require('fs').readFileSync('$EXP/finetune-results.md','utf8').trim().split('\n').map(l=>l.split('|').map(x=>x.trim()));
const by={};for(const r of rows){(by[r[1]]??=[]).push(Number(r[3]));}
for(const[k,v]of Object.entries(by)){const m=v.reduce((a,b)=>a+b,0)/v.length;
const sd=Math.sqrt(v.reduce((a,b)=>a+(b-m)**2,0)/Math.max(1,v.length-1));
console.log(k+': mean '+(100*m).toFixed(1)+' %, sd '+(100*sd).toFixed(1)+' (n='+v.length+', min '+(100*Math.min(...v)).toFixed(1)+', max '+(100*Math.max(...v)).toFixed(1)+')');}"
