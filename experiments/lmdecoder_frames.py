"""Does a stage-2 LMDecoder read frame-rate phones? Scores a trained LMDecoder run on a video
split's exact phones, given as the phone sequence, as the phone of each frame (the form in which
stage 3's visual frames reach it) and as the viseme sequence (what a perfect visual model can
tell, the input of stage 3's model.memory_units="visemes").

    python -m experiments.lmdecoder_frames --run out/demo/runs/lmdecoder_it --lang it \
        --data_dir out/data [--variant small] [--split test]

Prints greedy WER / CER and the CTC head's WER for the three forms (results/README.md has a table).
"""

from __future__ import annotations

import argparse
import dataclasses

import jax

from configs import finetune as finetune_cfg
from configs import lmdecoder as lmdecoder_cfg
from experiments.recipe import best_model
from lipjax.data.pipeline import make_loader
from lipjax.tasks import get_task
from lipjax.train import mesh as mesh_lib
from lipjax.train.step import make_eval_step
from lipjax.train.trainer import evaluate
from lipjax.units.targets import UnitTargets


def main(argv: list[str] | None = None) -> dict[str, dict[str, float]]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--run", required=True, help="the LMDecoder run's workdir")
    p.add_argument("--lang", required=True)
    p.add_argument("--data_dir", default="out/data")
    p.add_argument("--variant", default="small")
    p.add_argument("--split", default="test")
    args = p.parse_args(argv)
    arg = f"{args.variant},lang={args.lang},data_dir={args.data_dir}"
    config = lmdecoder_cfg.get_config(arg)
    video = finetune_cfg.get_config(arg + ",phoneme_targets=frames")  # the video config's data
    model, step = best_model(config, args.run)
    task = get_task("lmdecoder")
    base = task.settings(config)
    mesh = mesh_lib.make_mesh(None)
    out = {}
    sequence, frames = UnitTargets("phoneme", False), UnitTargets("phoneme", True)
    for form, units, visemes in (("sequence", sequence, 0.0), ("frames", frames, 0.0),
                                 ("visemes", sequence, 1.0)):
        settings = dataclasses.replace(base, units=units, frame_mix=0.0, viseme_mix=visemes)
        loader = make_loader(video.data, args.split, train=False, seed=0, mesh=mesh)
        with jax.set_mesh(mesh):
            out[form] = evaluate(task, model, make_eval_step(task, settings), video, mesh, loader)
        print(f"{form:9s} (reads {units.lmdecoder_keys[0]}{' as visemes' * bool(visemes)}), "
              f"step {step}: " + ", ".join(
            f"{k} {100 * v:.1f} %" for k, v in sorted(out[form].items())), flush=True)
    return out


if __name__ == "__main__":
    main()
