"""Entry point: `python -m lipjax.train --config configs/FILE.py:ARGS --workdir DIR`.

Config overrides: `--config.train.num_steps=100`. Several processes: set
`--coordinator_address=host:port --num_processes=N --process_id=i` (or JAX_COORDINATOR_ADDRESS,
JAX_NUM_PROCESSES, JAX_PROCESS_ID); TPU pods and SLURM are detected automatically (launch
scripts in experiments/launch/). Process 0 alone logs, shows progress and writes metrics; every
process writes its part of each checkpoint. Library INFO chatter (Orbax, absl) is off unless
`--verbose_logs`. With several processes any failure (a dead peer above all) ends every process
with exit status 1 and a message within about `--heartbeat_timeout_s` seconds, never a hang.
"""

from __future__ import annotations

import logging
import os
import sys
import traceback

from absl import app, flags
from absl import logging as absl_logging
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file("config", None, "configs/FILE.py:ARGS",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Output directory (checkpoints, tb, metrics).")
_COORD = flags.DEFINE_string("coordinator_address", None, "host:port of process 0.")
_NPROC = flags.DEFINE_integer("num_processes", None, "Number of processes.")
_PID = flags.DEFINE_integer("process_id", None, "This process's index.")
_CPU_DEVICES = flags.DEFINE_integer("cpu_devices", None,
                                    "Simulated CPU devices per process (tests, laptops).")
_DATA_SHARDS = flags.DEFINE_integer(
        "data_shards", None, "Data shards of the input stream (default: one per process); "
        "2 in a 1-process run reads exactly what a 2-process run reads.")
_HEARTBEAT = flags.DEFINE_integer(
        "heartbeat_timeout_s", 60, "Seconds without a heartbeat after which the other "
        "processes declare a peer dead and exit.")
_DISTRIBUTED = flags.DEFINE_bool(
        "distributed", False, "Call jax.distributed.initialize() even without coordinator "
        "flags or cluster variables (TPU VM pods: jax asks the TPU metadata).")
_VERBOSE = flags.DEFINE_bool("verbose_logs", False,
                             "Keep the INFO logs of Orbax, absl and jax (off by default).")


def _setup_logging(process_index: int, verbose: bool) -> None:
    """lipjax INFO on process 0 (WARNING elsewhere); libraries at WARNING unless verbose."""
    if not verbose:
        absl_logging.set_verbosity(absl_logging.WARNING)
        for name in ("absl", "orbax", "jax", "tensorstore"):
            logging.getLogger(name).setLevel(logging.WARNING)
    logging.getLogger("lipjax").setLevel(logging.INFO if process_index == 0 else
                                         logging.WARNING)
    if not verbose:  # the root handler absl installs must let lipjax INFO through
        logging.getLogger().setLevel(logging.INFO if process_index == 0 else logging.WARNING)
        absl_logging.get_absl_logger().setLevel(logging.WARNING)


def main(argv: list[str]) -> None:
    del argv
    import jax

    if _CPU_DEVICES.value:
        jax.config.update("jax_num_cpu_devices", _CPU_DEVICES.value)
    from lipjax.train import mesh as mesh_lib

    _setup_logging(0, _VERBOSE.value)  # quiet jax.distributed's own INFO lines too
    mesh_lib.maybe_initialize_distributed(_COORD.value, _NPROC.value, _PID.value,
                                          heartbeat_timeout_s=_HEARTBEAT.value,
                                          force=_DISTRIBUTED.value)
    _setup_logging(jax.process_index(), _VERBOSE.value)
    from lipjax.train.trainer import train

    config = _CONFIG.value
    if _DATA_SHARDS.value:
        with config.unlocked():
            config.data.num_shards = _DATA_SHARDS.value
    multi = jax.process_count() > 1
    try:
        summary = train(config, _WORKDIR.value)
    except Exception as e:
        if not multi:
            raise
        # Another process may be dead: unwinding (waiting for saves, the distributed
        # shutdown barrier) could block on it. Report and leave now.
        traceback.print_exc()
        print(f"process {jax.process_index()} of {jax.process_count()} stopped: "
              f"{type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}"
              f"\nA peer process may have died (see its log); workdir {_WORKDIR.value}, latest "
              "complete checkpoint is resumed on restart.", file=sys.stderr, flush=True)
        sys.stdout.flush()
        os._exit(1)
    if jax.process_index() == 0:
        print(f"finished at step {summary['step']}; eval {summary['eval']}; "
              f"checkpoints in {summary['checkpoint_dir']}", flush=True)


if __name__ == "__main__":
    flags.mark_flags_as_required(["config", "workdir"])
    app.run(main)
