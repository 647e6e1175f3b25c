#!/usr/bin/env bash
# One-shot GPU check for a lent machine (one H100/H200, no internet): correctness on the device,
# then the base-model train-step benchmark (bf16, 64 clips x 75 frames; stage-1 units_pretrain
# model: ResNet-18 front end + 12-layer Conformer d768 + unit head + LID head), with and without
# remat. Writes $OUT/check.json, $OUT/bench_*.json, $OUT/report.md, $OUT/gpu_check.json,
# $OUT/status.tsv and $OUT/logs/*.log, and prints the report.
#
#   OUT=/path/to/out bash experiments/gpu_check.sh        # in the repository root
#
# Python packages the device lacks (ml_collections, jiwer and its deps click, rapidfuzz) travel
# as wheels in .whl/ and are installed with pip --no-index --target into a temporary folder
# (never into the system environment), only when one of them does not import.
#
# Environment:
#   GPU_CHECK_CPU_SMOKE=1    tiny config, batch 2, 8 frames, 2 timed steps, on the CPU (a dry run
#                            of this script; finishes in about 3 minutes on 2 CPU cores)
#   GPU_CHECK_BUDGET_S=300   wall-clock budget: a stage starts only if its minimum time is left,
#                            and its timeout is capped by what is left
#   GPU_CHECK_FINETUNE=auto  also time stage 3 (auto_avsr architecture) if >= 150 s are left;
#                            1 = always try, 0 = never
#   GPU_CHECK_REMAT=0        skip the remat row (short device budgets)
#   GPU_CHECK_FORCE_WHEELS=1 install .whl/ even if everything imports (to test that step)
#   PYTHON=...               interpreter (default: the first of .venv/bin/python, python3, python
#                            that imports jax)
set -euo pipefail

cd "$(dirname "$0")/.."
REPO=$PWD
OUT=${OUT:-$REPO/out/gpu_check}
mkdir -p "$OUT/logs"
OUT=$(cd "$OUT" && pwd)
START=$SECONDS
SMOKE=${GPU_CHECK_CPU_SMOKE:-0}
: > "$OUT/status.tsv"

# ---------------------------------------------------------------- interpreter
PY=""
for cand in "${PYTHON:-}" "$REPO/.venv/bin/python" python3 python; do
  [ -n "$cand" ] || continue
  command -v "$cand" >/dev/null 2>&1 || [ -x "$cand" ] || continue
  if "$cand" -c "import jax" >/dev/null 2>&1; then PY=$cand; break; fi
done
if [ -z "$PY" ]; then echo "gpu_check: no python that imports jax" >&2; exit 2; fi
echo "== python: $PY ($("$PY" -c 'import sys; print(sys.version.split()[0])'))"

# ---------------------------------------------------------------- wheels from .whl/
MODULES="ml_collections jiwer click rapidfuzz"
missing() {
  "$PY" - $MODULES <<'EOF'
import importlib.util, sys
print(" ".join(m for m in sys.argv[1:] if importlib.util.find_spec(m) is None))
EOF
}
MISSING=$(missing)
if [ -n "$MISSING" ] || [ "${GPU_CHECK_FORCE_WHEELS:-0}" = 1 ]; then
  DEPS=${GPU_CHECK_DEPS_DIR:-${TMPDIR:-/tmp}/lipjax_pydeps}
  echo "== installing .whl/ into $DEPS (missing: ${MISSING:-none, forced})"
  mkdir -p "$DEPS"
  shopt -s nullglob
  WHEELS=("$REPO"/.whl/*.whl)
  shopt -u nullglob
  if [ "${#WHEELS[@]}" -eq 0 ]; then
    echo "warning: no wheels in .whl/"
  elif "$PY" -m pip --version >/dev/null 2>&1; then
    for w in "${WHEELS[@]}"; do
      "$PY" -m pip install --no-index --no-deps --no-compile --disable-pip-version-check -q \
        --upgrade --target "$DEPS" "$w" 2>&1 | grep -v "^$" || true
    done
  else  # no pip: a wheel is a zip of the installed files
    for w in "${WHEELS[@]}"; do "$PY" -m zipfile -e "$w" "$DEPS"; done
  fi
  export PYTHONPATH="$DEPS${PYTHONPATH:+:$PYTHONPATH}"
  MISSING=$(missing)
  echo "== still missing after install: ${MISSING:-none}"
else
  echo "== $MODULES already import; .whl/ not needed"
fi
export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"

# ---------------------------------------------------------------- settings
if [ "$SMOKE" = 1 ]; then
  export JAX_PLATFORMS=cpu
  CFG=tiny BATCH=2 FRAMES=8 WARMUP=1 STEPS=2 PEAK_N=256 PEAK_ITERS=3
  CHECKS=padding CHECK_TASKS=units_pretrain CHECK_DTYPES=bfloat16
  BUDGET=${GPU_CHECK_BUDGET_S:-600} CAP_CHECK=300 CAP_BENCH=300
  FINETUNE=${GPU_CHECK_FINETUNE:-0}
else
  export XLA_PYTHON_CLIENT_MEM_FRACTION=${XLA_PYTHON_CLIENT_MEM_FRACTION:-0.92}
  CFG=base BATCH=64 FRAMES=75 WARMUP=3 STEPS=${GPU_CHECK_STEPS:-15} PEAK_N=8192 PEAK_ITERS=10
  CHECKS=${GPU_CHECK_CHECKS:-padding,remat,train} CHECK_TASKS=units_pretrain,finetune
  CHECK_DTYPES=bfloat16
  BUDGET=${GPU_CHECK_BUDGET_S:-300} CAP_CHECK=${GPU_CHECK_CAP_CHECK:-150} CAP_BENCH=240
  FINETUNE=${GPU_CHECK_FINETUNE:-auto}
fi
TIMEOUT=""
command -v timeout >/dev/null 2>&1 && TIMEOUT=timeout

echo "== device"
if command -v nvidia-smi >/dev/null 2>&1; then
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1 \
    | tee "$OUT/nvidia-smi.csv" || true
else
  echo "no nvidia-smi"
fi

# stage NAME CAP_S MIN_S ARGS...: python -u ARGS under a timeout; never aborts the script.
FAILED=0
stage() {
  local name=$1 cap=$2 min=$3
  shift 3
  local left=$((BUDGET - (SECONDS - START)))
  if [ "$left" -lt "$min" ]; then
    echo "== $name: skipped (${left} s of the budget left, needs ${min} s)"
    printf '%s\tskipped\t0\n' "$name" >> "$OUT/status.tsv"
    return 0
  fi
  local limit=$((cap < left ? cap : left)) t0=$SECONDS rc
  echo "== $name (timeout ${limit} s): $*"
  set +e
  if [ -n "$TIMEOUT" ]; then
    $TIMEOUT -k 10 "$limit" "$PY" -u "$@" 2>&1 | tee "$OUT/logs/$name.log"
  else
    "$PY" -u "$@" 2>&1 | tee "$OUT/logs/$name.log"
  fi
  rc=${PIPESTATUS[0]}
  set -e
  local status=ok
  if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then status=timeout; elif [ "$rc" -ne 0 ]; then
    status="rc=$rc"; fi
  [ "$status" = ok ] || FAILED=1
  echo "== $name: $status ($((SECONDS - t0)) s)"
  printf '%s\t%s\t%s\n' "$name" "$status" "$((SECONDS - t0))" >> "$OUT/status.tsv"
}

# ---------------------------------------------------------------- 1. correctness + peak
stage check "$CAP_CHECK" 20 -m experiments.bench_train --check --checks "$CHECKS" \
  --check_tasks "$CHECK_TASKS" --check_dtypes "$CHECK_DTYPES" \
  --peak --peak_n "$PEAK_N" --peak_iters "$PEAK_ITERS" --json "$OUT/check.json"

PEAK=$("$PY" -c "import json,sys; print(json.load(open(sys.argv[1])).get('peak_TFLOP_s') or '')" \
  "$OUT/check.json" 2>/dev/null || true)
if [ -n "$PEAK" ]; then PEAK_ARGS=(--peak_tflops "$PEAK"); else
  PEAK_ARGS=(--peak --peak_n "$PEAK_N" --peak_iters "$PEAK_ITERS"); fi

# ---------------------------------------------------------------- 2. base benchmark
BENCH=(-m experiments.bench_train --configs "$CFG" --batch "$BATCH" --frames "$FRAMES"
       --dtype bfloat16 --warmup "$WARMUP" --steps "$STEPS" "${PEAK_ARGS[@]}")
stage bench_units_pretrain "$CAP_BENCH" 60 "${BENCH[@]}" --task units_pretrain \
  --json "$OUT/bench_units_pretrain.json"
if [ "${GPU_CHECK_REMAT:-1}" = 1 ]; then
  stage bench_units_pretrain_remat "$CAP_BENCH" 60 "${BENCH[@]}" --task units_pretrain --remat \
    --json "$OUT/bench_units_pretrain_remat.json"
fi
if [ "$FINETUNE" = 1 ] || { [ "$FINETUNE" = auto ] && \
     [ $((BUDGET - (SECONDS - START))) -ge 150 ]; }; then
  stage bench_finetune_auto_avsr "$CAP_BENCH" 60 "${BENCH[@]}" --task finetune --no_memory \
    --memory_layers 0 --json "$OUT/bench_finetune_auto_avsr.json"
fi

# ---------------------------------------------------------------- 3. report
JSONS=()
for f in "$OUT"/check.json "$OUT"/bench_units_pretrain.json \
         "$OUT"/bench_units_pretrain_remat.json "$OUT"/bench_finetune_auto_avsr.json; do
  [ -f "$f" ] && JSONS+=("$f")
done
echo
echo "================ gpu_check report ($((SECONDS - START)) s) ================"
if [ "${#JSONS[@]}" -gt 0 ]; then
  "$PY" -m experiments.bench_train --report "${JSONS[@]}" --md "$OUT/report.md" \
    --json "$OUT/gpu_check.json" || { echo "report failed"; FAILED=1; }
else
  echo "no results" | tee "$OUT/report.md"
fi
{
  echo
  echo "| stage | status | seconds |"
  echo "|---|---|---|"
  while IFS=$'\t' read -r n s t; do echo "| $n | $s | $t |"; done < "$OUT/status.tsv"
  echo
  echo "total $((SECONDS - START)) s (budget ${BUDGET} s); logs in \$OUT/logs/"
} | tee -a "$OUT/report.md"
exit "$FAILED"
