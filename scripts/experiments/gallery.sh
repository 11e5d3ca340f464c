#!/usr/bin/env bash
# Gallery experiment of docs/gallery.md (issue 18 item 6), end to end:
#  1. split the Grocery Store classes (split-classes.mjs, seed 17): A (55) trains the embedding; of B (26),
#     Be (16) are enrolled with 1 or 5 train photos each, Bc (5) are the calibration "unknown" photos and
#     Bu (5) are never seen (the open-set test);
#  2. train resnet18 with an ArcFace head (128-d embedding) on A, EPOCHS (8) epochs, 64 px: EMBED=pretrained (default)
#     starts from the softmax A model of finetune.sh (A-softmax, 12 epochs; trained here if missing) with the
#     finetune recipe; EMBED=scratch from random weights (the embedding collapses at this budget: docs/gallery.md);
#  3. gallery build on A's train split; copies enrolled with 1 and with 5 photos per Be class (gallery add);
#  4. eval --gallery on the test photos of A + Be + Bu (before calibrating, so every photo gets its vote's
#     class), gallery calibrate (known: val photos of A + Be; unknown: train+val photos of Bc; FAR 0.05),
#     and gallery-metrics.mjs: top-1 on A / Be test, AUROC known vs Bu, FAR / FRR at the threshold;
#  5. the baseline: a softmax resnet18 trained on all 81 classes at the same budget (as many steps);
#     top-1 on B test, all test, A test.
#   EXP=/tmp/exp [EPOCHS=8] [FAR=0.05] [BASELINE=0] [EMBED=pretrained|scratch] bash scripts/experiments/gallery.sh
source "$(dirname "$0")/common.sh"
FAR=${FAR:-0.05}
EPOCHS=${EPOCHS:-8}
# The 81-class softmax baseline: 1 (after the galleries), 0 (skip), only. BASELINE_EPOCHS=5 sees about as
# many images (5 x 2640 = 13200) as the embedding's 8 epochs on A (8 x 1769 = 14152), i.e. the same steps.
BASELINE=${BASELINE:-1}
BASELINE_EPOCHS=${BASELINE_EPOCHS:-5}
S="$EXP/split"
GAL="$EXP/gallery"
mkdir -p "$GAL"

EMBED=${EMBED:-pretrained}
ARC=(--data "$S/A.json" --epochs "$EPOCHS" --seed 0 --head arcface --embedding-dim 128)
if [ "$BASELINE" != only ]; then
  if [ "$EMBED" = pretrained ]; then
    train A-softmax --data "$S/A.json" --epochs 12 --seed 0
    node scripts/experiments/publish-timm.mjs "$EXP/runs/A-softmax" "$EXP/hub/resnet18.grocery_a"
    train A-arcface "${ARC[@]}" --pretrained "$EXP/hub/resnet18.grocery_a" --recipe finetune
  else
    train A-arcface-scratch "${ARC[@]}"
  fi
fi

# gallery RUN TAG: the 1- and 5-photo galleries of one model, scored.
gallery() {
  local run=$1 tag=$2 n c
  "${G[@]}" gallery build "$run" --data "$S/A.json" --split train --out "$GAL/$tag-A.gallery"
  for n in 1 5; do
    cp "$GAL/$tag-A.gallery" "$GAL/$tag-$n.gallery"
    for c in $(node -e "console.log(require('$S/split.json').Be.join(' '))"); do
      mapfile -t photos < <(node -e "for (const p of require('$S/split.json').enrol['$c'].slice(0, $n)) console.log(p)")
      "${G[@]}" gallery add "$GAL/$tag-$n.gallery" --class "$c" "${photos[@]}" > /dev/null
    done
    "${G[@]}" eval "$run" --data "$S/open-test.json" --split test --gallery "$GAL/$tag-$n.gallery" \
      --out "$GAL/$tag-$n-eval.json"
    "${G[@]}" gallery calibrate "$GAL/$tag-$n.gallery" --known "$S/calib/known" --unknown "$S/calib/unknown" --far "$FAR"
    t=$("${G[@]}" gallery list "$GAL/$tag-$n.gallery" --json | node -e "let s='';process.stdin.on('data',d=>s+=d).on('end',()=>console.log(JSON.parse(s).threshold))")
    node scripts/experiments/gallery-metrics.mjs "$S/split.json" "$GAL/$tag-$n-eval.json" "$t" "$tag $n-shot" | tee -a "$GAL/results.jsonl"
  done
}
if [ "$BASELINE" != only ]; then
  rm -f "$GAL/results.jsonl"
  if [ "$EMBED" = pretrained ]; then gallery "$EXP/runs/A-arcface" arcface; else gallery "$EXP/runs/A-arcface-scratch" arcface-scratch; fi
  # The softmax backbone of the transfer experiment (pooled features), if finetune.sh has trained it.
  if [ -f "$EXP/runs/A-softmax/best.json" ]; then gallery "$EXP/runs/A-softmax" softmaxA; fi
fi

[ "$BASELINE" = 0 ] && exit 0
train all-softmax --data "$S/all.json" --epochs "$BASELINE_EPOCHS" --seed 0
echo "all-softmax (81 classes): B test top-1 $(top1 "$EXP/runs/all-softmax" "$S/B.json"), \
all test top-1 $(top1 "$EXP/runs/all-softmax" "$S/all.json"), A test top-1 $(top1 "$EXP/runs/all-softmax" "$S/A.json")" \
  | tee "$GAL/softmax-baseline.txt"
