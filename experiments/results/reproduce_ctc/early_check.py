"""Stage 1 at an intermediate checkpoint of the reproduce_ctc run: validation VER/PER/LID, and
the posterior read before fine-tuning (validation, greedy + beam) with the CTC handling
(visemes_ctc) and without it (the frame-label read, visemes), to see whether the read works
before the run ends.

    PYTHONPATH=. python experiments/results/reproduce_ctc/early_check.py STEP

from the repository root, STEP a kept checkpoint of /work/out_ctc/runs/units_pretrain."""
import json
import sys
import time

import jax
from flax import nnx

from experiments.recipe import Recipe, init_process, model_scores
from lipjax.data.pipeline import make_loader
from lipjax.tasks import get_task
from lipjax.tasks.common import load_model
from lipjax.train import mesh as mesh_lib
from lipjax.train.step import make_eval_step
from lipjax.train.trainer import eval_outputs

step = int(sys.argv[1])
init_process("/work/out_ctc/jax_cache")
recipe = Recipe(data_dir="/work/out_ctc/data", workdir="/work/out_ctc",
                steps={"units_pretrain": 2000, "lmdecoder": 1500, "finetune": 150},
                frame_labels=False, methods=("posterior", "scratch", "memory"))
ck = f"/work/out_ctc/runs/units_pretrain/checkpoints/{step}"
out = {"stage1_step": step}
t = time.time()
c1 = recipe.stage1_config()
task = get_task(c1.task)
model = load_model(c1, ck)
mesh = mesh_lib.make_mesh(c1.train.get("mesh", None))
with jax.set_mesh(mesh):
    outputs, batches = eval_outputs(model, make_eval_step(task, task.settings(c1)), c1, mesh,
                                    make_loader(c1.data, "validation", train=False,
                                                seed=c1.seed, mesh=mesh))
out["stage1_validation"] = task.eval_metrics(outputs, batches, c1)
print(json.dumps(out), flush=True)
for lang, units in (("it", "visemes_ctc"), ("pt", "visemes_ctc"), ("it", "visemes")):
    c3 = recipe.stage3_config(lang, "posterior")
    c3.init.encoder = c3.init.unit_head = ck
    c3.model.memory_units = units
    task3 = get_task(c3.task)
    m = task3.create_model(c3, nnx.Rngs(int(c3.seed)))
    task3.load_pretrained(m, c3)
    m.eval()
    out[f"zero_shot_{lang}_{units}"] = model_scores(c3, m, beam=True, split="validation")
    print(json.dumps(out), flush=True)
out["seconds"] = time.time() - t
print(json.dumps(out), flush=True)
