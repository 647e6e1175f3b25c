"""Lip-reads one raw video with a fine-tuned lip reader and prints the transcript.

    python -m experiments.transcribe --workdir out/runs/finetune_it_memory --video clip.mp4
    python -m experiments.transcribe --config configs/finetune.py:small,lang=it,init=memory \
        --workdir out/runs/finetune_it_memory --video clip.mp4

The video goes the way every corpus clip went: `lipjax.preprocess` (25 fps by timestamps, face
landmarks, 96x96 grayscale mouth crop; `--roi` when the file is such a crop already, e.g. from
`python -m lipjax.preprocess IN OUT --format mp4`), then the input pipeline's evaluation
transform (downsampling, centre crop, normalisation), then the stage-3 task's joint
CTC/attention beam search (`--greedy`: greedy attention decoding) on the run's best checkpoint
on validation. The transcript is the only line on stdout; what was read goes to stderr.

Without --config the run's saved config (`{workdir}/config.json`); with it, give the training
overrides too (`--config.model.text_vocab=N`). Another landmarker: `--plugin my_module
--landmarker mine` (see lipjax.preprocess.register_landmarker). A language added by a package of
yours: `python -m data_builders.<name> transcribe ...`, so that it is registered.
"""

from __future__ import annotations

import importlib
import os
import sys

import ml_collections
import numpy as np
from absl import app, flags

from experiments.saved_run import define_run_flags, quiet_logs, run_config


def define_flags() -> None:
    """The command's flags, defined only when the module runs as the command (so that its
    functions can be imported next to another command's)."""
    define_run_flags("configs/finetune.py:ARGS", "The stage-3 run's folder.")
    flags.DEFINE_string("video", None, "The video file to read.")
    flags.DEFINE_bool("roi", False, "The video is a 96x96 mouth crop already (no face search).")
    flags.DEFINE_string("landmarker", "dlib68", "Registered landmarker name.")
    flags.DEFINE_multi_string("plugin", [], "Module(s) to import first (landmarkers).")
    flags.DEFINE_string("lang", None, "Language code (default: the config's lang).")
    flags.DEFINE_integer("step", None, "Checkpoint step (default: best on validation).")
    flags.DEFINE_bool("greedy", False, "Greedy decoding instead of beam search.")


def mouth_frames(video: str, *, roi: bool = False, landmarker: str = "dlib68") -> np.ndarray:
    """uint8 (T, 96, 96) mouth crops at 25 fps, as the corpus builders make them."""
    from lipjax import preprocess, schema

    if not os.path.exists(video):
        raise FileNotFoundError(f"{video}: no such video file")
    if not roi:
        return np.asarray(preprocess.mouth_roi(video, landmarker=landmarker), np.uint8)
    frames = list(preprocess.iter_video(video, schema.FPS, pix_fmt="gray"))
    size = schema.ROI_SIZE
    if not frames or frames[0].shape != (size, size):
        found = f"{frames[0].shape[1]}x{frames[0].shape[0]}" if frames else "no frames"
        raise ValueError(f"{video}: --roi expects {size}x{size} mouth crops, found {found}; "
                         "leave --roi out to crop the face video")
    return np.stack(frames).astype(np.uint8)


def make_batch(config: ml_collections.ConfigDict, frames: np.ndarray, lang: str,
               name: str = "") -> dict[str, np.ndarray]:
    """A batch of one clip, built by the input pipeline's own evaluation transform and collate
    (so crop, downsampling and normalisation are the ones the model was trained with)."""
    from lipjax.data.transforms import ClipTransform, Collate

    data = config.data
    crop = int(data.crop)
    transform = ClipTransform(data_dir=str(data.data_dir), with_video=True, train=False,
                              crop=crop, downsample=int(data.get("downsample", 1)),
                              tokenize=False)
    empty = np.zeros(0, np.int32)
    clip = transform(0, {"video": frames, "units": empty, "phoneme_ids": empty,
                         "language": lang, "text": "", "id": name})
    collate = Collate(batch_size=1, with_video=True, crop=crop,
                      frame_buckets=tuple(int(b) for b in data.frame_buckets))
    return collate([clip])


def transcribe(config: ml_collections.ConfigDict, workdir: str, video: str, *,
               roi: bool = False, landmarker: str = "dlib68", lang: str | None = None,
               step: int | None = None, greedy: bool = False) -> str:
    """The transcript of `video` by the stage-3 run in `workdir` (normalised text)."""
    import jax
    import jax.numpy as jnp

    from experiments.recipe import best_step
    from lipjax import languages
    from lipjax.data.transforms import HOST_KEYS
    from lipjax.tasks import get_task
    from lipjax.tasks.common import ids_to_text, load_model
    from lipjax.train.step import make_eval_step

    if config.task != "finetune":
        raise ValueError(f"{workdir}: a {config.task!r} run; transcribing needs a stage-3 "
                         "(finetune) run, the only one that reads lips into text")
    lang = lang or config.get("lang", None)
    if not lang:
        raise ValueError(f"{workdir}: the config names no language (config.lang): pass --lang")
    languages.get(lang)  # an unknown code fails here, naming the registered ones
    frames = mouth_frames(video, roi=roi, landmarker=landmarker)
    batch = make_batch(config, frames, lang, video)
    if step is None:
        step = best_step(workdir, config.train.best_metric, config.train.get("best_mode", "min"))
    if step is None:
        raise FileNotFoundError(f"{workdir}/checkpoints: no checkpoint")
    model = load_model(config, os.path.join(workdir, "checkpoints", str(step)))
    print(f"{video}: {len(frames)} frames at 25 fps, {workdir} step {step}, "
          f"{'greedy' if greedy else 'beam search'}", file=sys.stderr)
    task = get_task(config.task)
    step_fn = make_eval_step(task, task.settings(config), beam=not greedy)
    device = {k: jnp.asarray(v) for k, v in batch.items() if k not in HOST_KEYS}
    out = jax.tree.map(np.asarray, step_fn(model, device))
    return ids_to_text(out["tokens"][0], int(out["tokens_len"][0]), lang, str(config.data.data_dir))


def main(argv: list[str]) -> None:
    del argv
    f = flags.FLAGS
    quiet_logs()
    if not f.workdir or not f.video:
        sys.exit("experiments.transcribe: --workdir (a stage-3 run) and --video are required")
    for module in f.plugin:
        importlib.import_module(module)
    config = run_config(f.config, f.workdir)
    text = transcribe(config, f.workdir, f.video, roi=f.roi, landmarker=f.landmarker,
                      lang=f.lang, step=f.step, greedy=f.greedy)
    print(text, flush=True)


if __name__ == "__main__":
    define_flags()
    app.run(main)
