"""Training: `python -m lipjax.train --config configs/FILE.py:ARGS --workdir DIR`.

trainer.py (the loop), state.py (sharded model/optimizer creation, checkpoint pytree),
checkpoint.py (Orbax layout, `restore_params`), schedules.py, mesh.py, tb.py, progress.py.
"""

from lipjax.train.checkpoint import restore_params

__all__ = ["restore_params"]
