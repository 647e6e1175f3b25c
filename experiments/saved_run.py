"""What the evaluation commands share: a run's config (given, or the one it saved) and quiet
library logs. Defines no flags, so each command module can import it."""

from __future__ import annotations

import json
import logging
import os

import ml_collections
from absl import logging as absl_logging


def define_run_flags(config_help: str, workdir_help: str) -> None:
    """`--config` (default: the run's saved config.json, see `run_config`) and `--workdir`,
    the flags every command on a finished run takes."""
    from absl import flags
    from ml_collections import config_flags

    config_flags.DEFINE_config_file(
            "config", None, f"{config_help} (default: the run's saved config.json)",
            lock_config=False)
    flags.DEFINE_string("workdir", None, workdir_help)


def quiet_logs() -> None:
    """Library INFO chatter (Orbax restores, absl) off: the scores are what the user reads."""
    absl_logging.set_verbosity(absl_logging.WARNING)
    for name in ("absl", "orbax", "jax", "tensorstore", "tensorflow_datasets", "grain"):
        logging.getLogger(name).setLevel(logging.WARNING)


def run_config(config: ml_collections.ConfigDict | None,
               workdir: str) -> ml_collections.ConfigDict:
    """`config` if given, else the one the trainer saved in `workdir` (config.json)."""
    if not os.path.isdir(os.path.join(workdir, "checkpoints")):
        raise FileNotFoundError(f"{workdir}: not a training run (no checkpoints/ folder); "
                                "--workdir must be the folder given to the trainer")
    if config is not None:
        return config
    path = os.path.join(workdir, "config.json")
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path} does not exist: pass the run's --config "
                                "(configs/FILE.py:ARGS)")
    with open(path) as f:
        return ml_collections.ConfigDict(json.load(f))
