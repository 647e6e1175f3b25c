"""The launch scripts of experiments/launch/: valid bash, and the commands they would run
(`DRY_RUN=1`). The 2-process CPU script itself runs in tests/test_multiprocess.py."""

import os
import subprocess
from pathlib import Path

import pytest

LAUNCH = Path(__file__).resolve().parents[1] / "experiments" / "launch"
SCRIPTS = ["cpu_2proc.sh", "tpu_pod.sh", "slurm_gpu.sbatch"]


@pytest.mark.parametrize("name", SCRIPTS)
def test_scripts_parse(name):
    res = subprocess.run(["bash", "-n", str(LAUNCH / name)], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr


def _dry(name, *args, **env):
    res = subprocess.run(["bash", str(LAUNCH / name), *args], capture_output=True, text=True,
                         env=dict(os.environ, DRY_RUN="1", **env), timeout=60)
    assert res.returncode == 0, res.stderr
    return res.stdout


def test_tpu_pod_runs_every_worker():
    out = _dry("tpu_pod.sh", "my-tpu", "us-central2-b", "--config=configs/x.py:base",
               "--workdir=gs://b/run", PROJECT="proj")
    assert out.startswith("gcloud compute tpus tpu-vm ssh my-tpu --zone us-central2-b "
                          "--worker=all --command")
    assert "-m lipjax.train --distributed --config=configs/x.py:base --workdir=gs://b/run" \
        in out.replace("\\", "")
    assert "--project proj" in out
    usage = subprocess.run(["bash", str(LAUNCH / "tpu_pod.sh")], capture_output=True, text=True)
    assert usage.returncode == 2 and "usage" in usage.stderr


def test_slurm_runs_one_task_per_node():
    text = (LAUNCH / "slurm_gpu.sbatch").read_text()
    assert "#SBATCH --ntasks-per-node=1" in text and "#SBATCH --signal=TERM@" in text
    out = _dry("slurm_gpu.sbatch", "--config=configs/x.py:base", "--workdir=/shared/run")
    assert out.split()[:2] == ["srun", "--kill-on-bad-exit=1"]
    assert "-m lipjax.train --config=configs/x.py:base --workdir=/shared/run" in out
