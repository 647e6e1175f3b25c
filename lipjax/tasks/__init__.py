"""Training tasks: each module exposes create_model, loss_fn, eval_step, eval_metrics and
optionally load_pretrained (the interface the trainer drives)."""

from __future__ import annotations

import importlib
from types import ModuleType

TASKS = ("units_pretrain", "lmdecoder", "finetune")


def get_task(name: str) -> ModuleType:
    """The task module for config.task."""
    if name not in TASKS:
        raise ValueError(f"config task: expected one of {TASKS}, found {name!r}")
    return importlib.import_module(f"lipjax.tasks.{name}")
