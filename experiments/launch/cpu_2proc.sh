#!/usr/bin/env bash
# Two JAX processes x 2 CPU devices on this machine: the multi-host code path (jax.distributed,
# gloo collectives, per-process data, Orbax multi-process checkpoints) without a cluster.
#
#   experiments/launch/cpu_2proc.sh --config=configs/units_pretrain.py:tiny \
#       --workdir=out/runs/units_pretrain_2proc
#
# Every argument goes to `python -m lipjax.train`. Environment: NPROC (2), DEVICES (2 per
# process), PORT (a free one), PYTHON (.venv/bin/python if present), TRAIN_MODULE
# (lipjax.train), LOG_DIR (where process_<i>.log go; default: a temporary directory).
# Exits with the first non-zero status among the processes (0 if all succeeded).
set -euo pipefail
cd "$(dirname "$0")/../.."
NPROC=${NPROC:-2}
DEVICES=${DEVICES:-2}
if [[ -z "${PYTHON:-}" ]]; then
  if [[ -x .venv/bin/python ]]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
PORT=${PORT:-$("$PYTHON" -c 'import portpicker; print(portpicker.pick_unused_port())')}
TRAIN_MODULE=${TRAIN_MODULE:-lipjax.train}
LOG_DIR=${LOG_DIR:-$(mktemp -d -t lipjax_cpu_2proc.XXXXXX)}
mkdir -p "$LOG_DIR"
echo "coordinator 127.0.0.1:$PORT, $NPROC processes x $DEVICES CPU devices, logs in $LOG_DIR"

pids=()
for ((i = 0; i < NPROC; i++)); do
  JAX_PLATFORMS=cpu "$PYTHON" -m "$TRAIN_MODULE" --coordinator_address="127.0.0.1:$PORT" \
    --num_processes="$NPROC" --process_id="$i" --cpu_devices="$DEVICES" "$@" \
    >"$LOG_DIR/process_$i.log" 2>&1 &
  pids+=($!)
done
trap 'kill "${pids[@]}" 2>/dev/null || true' INT TERM

status=0
for ((i = 0; i < NPROC; i++)); do
  rc=0
  wait "${pids[$i]}" || rc=$?
  if ((rc != 0)); then
    echo "process $i exited with status $rc; last lines of $LOG_DIR/process_$i.log:" >&2
    tail -n 20 "$LOG_DIR/process_$i.log" >&2
    [[ $status -eq 0 ]] && status=$rc
  fi
done
[[ $status -eq 0 ]] && tail -n 3 "$LOG_DIR/process_0.log"
exit $status
