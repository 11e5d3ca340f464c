#!/usr/bin/env bash
# Runs the numeric test files (every comparison against the PyTorch oracle) under each combination of
# intra-op threads (1, 2) and OPENBLAS_CORETYPE (as the machine sets it, and unset, so OpenBLAS picks
# the CPU's own kernels), and prints one line per combination. CI runs one combination (the machine's);
# run this on a new kind of CPU (Intel/AMD, AVX2/AVX-512) before trusting a tolerance there.
#   bash scripts/test-matrix.sh [FILTER...]    default filters: the oracle-backed test files
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --test >/dev/null
filters=("$@")
(( ${#filters[@]} )) || filters=(tensor-ops nn.test optim models-resnet models-zoo-a models-zoo-b tensor-train)
coretype=${OPENBLAS_CORETYPE:-}
cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')
isa=$(grep -m1 '^flags' /proc/cpuinfo | tr ' ' '\n' | grep -E '^(avx2|avx512f|avx512_bf16|amx_tile)$' | tr '\n' ' ')
echo "cpu: $cpu; isa: $isa; OPENBLAS_CORETYPE on this machine: ${coretype:-unset}"
status=0
for threads in 1 2; do
  for ct in "$coretype" ""; do
    [[ -z $coretype && -n $ct ]] && continue
    label="threads=$threads OPENBLAS_CORETYPE=${ct:-unset}"
    log=$(mktemp)
    for f in "${filters[@]}"; do
      if [[ -n $ct ]]; then env GOODSREC_THREADS=$threads OPENBLAS_CORETYPE=$ct GOODSREC_TEST_FILTER=$f node scripts/run-tests.mjs
      else env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE GOODSREC_THREADS=$threads GOODSREC_TEST_FILTER=$f node scripts/run-tests.mjs; fi
    done >"$log" 2>&1
    pass=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$log" | awk '{p+=$1; f+=$3} END {print p+0, f+0}')
    read -r p f <<<"$pass"
    echo "$label: $p passed, $f failed"
    if (( f > 0 )); then status=1; grep -E '^✖' "$log" | sort -u | head -20; fi
    rm -f "$log"
  done
done
exit $status
