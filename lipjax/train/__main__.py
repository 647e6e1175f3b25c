"""Entry point: `python -m lipjax.train --config configs/FILE.py:ARGS --workdir DIR`.

Config overrides: `--config.train.num_steps=100`. Several processes: set
`--coordinator_address=host:port --num_processes=N --process_id=i` (or JAX_COORDINATOR_ADDRESS,
JAX_NUM_PROCESSES, JAX_PROCESS_ID); TPU pods and SLURM are detected automatically.
"""

from __future__ import annotations

import logging

from absl import app, flags
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file("config", None, "configs/FILE.py:ARGS",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Output directory (checkpoints, tb, metrics).")
_COORD = flags.DEFINE_string("coordinator_address", None, "host:port of process 0.")
_NPROC = flags.DEFINE_integer("num_processes", None, "Number of processes.")
_PID = flags.DEFINE_integer("process_id", None, "This process's index.")
_CPU_DEVICES = flags.DEFINE_integer("cpu_devices", None,
                                    "Simulated CPU devices per process (tests, laptops).")


def main(argv: list[str]) -> None:
    del argv
    import jax

    if _CPU_DEVICES.value:
        jax.config.update("jax_num_cpu_devices", _CPU_DEVICES.value)
    from lipjax.train import mesh as mesh_lib

    mesh_lib.maybe_initialize_distributed(_COORD.value, _NPROC.value, _PID.value)
    logging.getLogger("lipjax").setLevel(logging.INFO)
    from lipjax.train.trainer import train

    summary = train(_CONFIG.value, _WORKDIR.value)
    if jax.process_index() == 0:
        print(f"finished at step {summary['step']}; eval {summary['eval']}; "
              f"checkpoints in {summary['checkpoint_dir']}")


if __name__ == "__main__":
    flags.mark_flags_as_required(["config", "workdir"])
    app.run(main)
