#!/usr/bin/env bash
# A TPU VM pod (e.g. v5e-32: 8 hosts): the same `python -m lipjax.train` on every worker at once.
# jax.distributed finds the other hosts through the TPU metadata (`--distributed`).
#
#   experiments/launch/tpu_pod.sh TPU_NAME ZONE \
#       --config=configs/units_pretrain.py:base --workdir=gs://BUCKET/runs/units_pretrain
#
# Assumes the repository is checked out at $REMOTE_DIR (default ~/lipjax) on every worker with
# `make .venv/.installed` done there and `pip install "jax[tpu]"` in that venv. The workdir
# must be shared by all hosts (a gs:// bucket or an NFS path): every host writes its part of
# each checkpoint. Environment: PROJECT (gcloud project), REMOTE_DIR, DRY_RUN=1 (print the
# command instead of running it). Worker logs go to $REMOTE_DIR/train_worker.log on each host;
# process 0's output also streams here.
set -euo pipefail
if [[ $# -lt 3 ]]; then
  echo "usage: $0 TPU_NAME ZONE --config=... --workdir=... [more lipjax.train flags]" >&2
  exit 2
fi
TPU=$1
ZONE=$2
shift 2
REMOTE_DIR=${REMOTE_DIR:-\~/lipjax}
ARGS=$(printf '%q ' "$@")
REMOTE="cd $REMOTE_DIR && .venv/bin/python -m lipjax.train --distributed $ARGS 2>&1 | tee train_worker.log"
CMD=(gcloud compute tpus tpu-vm ssh "$TPU" --zone "$ZONE" --worker=all --command "$REMOTE")
if [[ -n "${PROJECT:-}" ]]; then CMD+=(--project "$PROJECT"); fi
if [[ "${DRY_RUN:-0}" == 1 ]]; then
  printf '%q ' "${CMD[@]}"
  echo
  exit 0
fi
exec "${CMD[@]}"
