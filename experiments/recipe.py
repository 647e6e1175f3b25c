"""The three-stage low-resource recipe (Kim et al., ICCV 2023) as functions `demo.py` chains.

1. stage 1 `units_pretrain`: visual encoder + shared-unit head on the high-resource languages'
   lip videos, with the language-ID head over all five languages;
2. stage 2 `lmdecoder`: one LMDecoder per low-resource language on its audio-text data;
3. stage 3 `finetune`: per low-resource language, on the same few clips, the method with its two
   memory addressings (`memory`: learnt attention, `posterior`: the stage-1 unit head's
   posteriors), the ablation `noread` (c: the LMDecoder's weights without the memory read) and
   the baselines `nomemory` (b: stage-1 encoder + plain decoder) and `scratch` (a).
Every run goes through `lipjax.train.trainer.train` with the configs in `configs/`, so each stage
can also be run (and resumed) alone with `python -m lipjax.train`. Test-split scores come from
each run's best checkpoint on the validation split: the test split is never used for selection.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from typing import Any

import jax
import ml_collections
import numpy as np
from flax import nnx

from configs import finetune as finetune_cfg
from configs import lmdecoder as lmdecoder_cfg
from configs import units_pretrain as units_pretrain_cfg
from data_builders.synthetic_lips import HIGH_RESOURCE, LOW_RESOURCE
from experiments.jobs import Job
from lipjax import languages
from lipjax.data.pipeline import make_loader
from lipjax.tasks import get_task
from lipjax.tasks.common import load_model, valid_rows
from lipjax.train import mesh as mesh_lib
from lipjax.train.step import make_eval_step
from lipjax.train.tb import read_metrics
from lipjax.train.trainer import eval_outputs, evaluate, train

log = logging.getLogger(__name__)

METHODS = ("memory", "posterior", "noread", "nomemory", "scratch")
METHOD_NAMES = {"memory": "proposed: stage-1 encoder + LMDecoder memory (attention read)",
                "posterior": "proposed, posterior read: unit-head posteriors address the memory",
                "noread": "ablation (c): stage-1 encoder + LMDecoder weights, no memory read",
                "nomemory": "baseline (b): stage-1 encoder, plain decoder, no memory",
                "scratch": "baseline (a): lip reader from scratch"}
MEMORY_METHODS = ("memory", "posterior")  # the methods that read the memory
# One lip reader for all the low-resource languages: their LMDecoders in one model, the
# language-ID head picking the decoder (`Recipe.joint`).
JOINT = "+".join(LOW_RESOURCE)
PRETRAINED_METHODS = ("memory", "posterior", "noread")  # stage-1 encoder + stage-2 LMDecoder
FINETUNE_LR = 3e-4  # for PRETRAINED_METHODS, chosen on the it validation split
# The posterior read's softmax temperature, chosen on the it and pt validation splits before
# fine-tuning (the beam WER of both fell from 1 to 0.05; results/README.md, `reproduce/`).
POSTERIOR_TEMPERATURE = 0.05


@dataclasses.dataclass
class Recipe:
    """Where and at what size the recipe runs. `steps` overrides each stage's step count
    (keys "units_pretrain", "lmdecoder", "finetune"); `lid_weight` is the weight of the
    low-resource languages' clips in the stage-1 mix (they are there for the LID head);
    `stage3_evals` how many times each stage-3 run is evaluated on validation (and
    checkpointed) after its start; `joint` the methods also trained as one model of all the
    low-resource languages (language `JOINT`), whose language-ID head routes each clip to its
    decoder; `rehearsal` the weight of stage 2's loss on audio-text batches mixed into the
    stage-3 runs that start from the LMDecoders (0: none); `downsample` the mouths' pixel
    averaging in every stage (0 = the variant's, configs/common.py). `frame_labels` lets stage
    1 learn phonemes from the phone at each frame (frame CE), which only the synthetic corpus
    knows; without them every stage learns from transcripts only, as on a real corpus: stage 1
    by CTC on the phone sequence, and the posterior read handles its blanks
    (model.memory_units="visemes_ctc")."""

    data_dir: str
    workdir: str
    variant: str = "small"
    units: str = "phoneme"
    steps: dict[str, int] = dataclasses.field(default_factory=dict)
    batch_size: int = 0
    beam_size: int = 5
    lid_weight: float = 1.0
    methods: tuple[str, ...] = METHODS
    stage3_evals: int = 6
    downsample: int = 0
    frame_labels: bool = True
    joint: tuple[str, ...] = ("posterior",)
    rehearsal: float = 0.0

    @property
    def runs_dir(self) -> str:
        return os.path.join(self.workdir, "runs")

    def arg(self, **extra: Any) -> str:
        items = {"data_dir": self.data_dir, **extra}
        if self.batch_size:
            items["batch_size"] = self.batch_size
        if self.downsample:
            items["downsample"] = self.downsample
        return ",".join([self.variant] + [f"{k}={v}" for k, v in items.items()])

    def stage1_config(self) -> ml_collections.ConfigDict:
        config = units_pretrain_cfg.get_config(self.arg(
            langs="+".join(HIGH_RESOURCE + LOW_RESOURCE), units=self.units,
            phoneme_targets=self.phoneme_targets,
            steps=self.steps.get("units_pretrain", 0)))
        # The low-resource languages' few clips join the mix so that the language-ID head sees
        # all five languages; at a lower weight (0.25) the demo's LID never named it or pt
        # (results/README.md, `reproduce_ctc/`), so by default every language is sampled
        # equally.
        config.data.sources = [(f"{c}_video", 1.0 if c in HIGH_RESOURCE else self.lid_weight)
                               for c in HIGH_RESOURCE + LOW_RESOURCE]
        # Stage 1 is not selected on validation (its last step is used): evaluate once, at the end.
        config.train.eval_every = config.train.num_steps
        return config

    @property
    def phoneme_targets(self) -> str:
        # The synthetic corpus knows the phone at each frame: a dense stage-1 target, unless
        # the recipe withholds it (`frame_labels`) to stand for a corpus of transcripts only.
        return "frames" if self.units == "phoneme" and self.frame_labels else "sequence"

    def stage2_config(self, lang: str) -> ml_collections.ConfigDict:
        # The LMDecoder reads the phone sequence, as the paper's reads repeats-removed units:
        # fed the frame-rate phones instead (what stage 3's frames give), it learnt far slower
        # (results/README.md, "Stage 2: does the LMDecoder read frame-rate phones?"). It reads
        # no video, so it is the same with or without `frame_labels`.
        config = lmdecoder_cfg.get_config(self.arg(lang=lang, units=self.units,
                                                   steps=self.steps.get("lmdecoder", 0)))
        if self.units == "phoneme":
            # Half the sentences as lips show them (viseme sequences): stage 3 reads visemes.
            config.loss.viseme_mix = 0.5
        return config

    def stage3_config(self, lang: str, method: str) -> ml_collections.ConfigDict:
        config = finetune_cfg.get_config(self.arg(lang=lang, init=method, units=self.units,
                                                  phoneme_targets=self.phoneme_targets,
                                                  runs_dir=self.runs_dir,
                                                  steps=self.steps.get("finetune", 0)))
        config.decoding.beam_size = self.beam_size
        # `stage3_evals` validation points, each kept as a checkpoint, beside the loaded
        # weights (step 0): on 120 clips the best point comes early or not at all.
        steps = config.train.num_steps
        every = max(steps // self.stage3_evals, 1)
        config.train.eval_every = config.train.checkpoint_every = every
        if method in PRETRAINED_METHODS:
            # Stages 1 and 2 already make a lip reader: fine-tune what comes after the visual
            # encoder and unit head, gently: training everything at 1e-3 made the posterior
            # read worse on validation (it), and with the visual side fixed 3e-4 did better
            # than 1e-3 (results/README.md, "Stage 3: fine-tuning a model that already reads").
            config.optim.freeze = ("visual", "unit_head")
            config.optim.lr = FINETUNE_LR
            if self.rehearsal > 0:
                # Stage 2's own loss on the languages' audio-text data beside each video
                # batch (lipjax/data/rehearsal.py), as stage 2 trained the LMDecoders.
                config.rehearsal.weight = self.rehearsal
                config.rehearsal.loss = self.stage2_config(lang.split("+")[0]).loss
        if method in MEMORY_METHODS and self.units == "phoneme":
            # Read the memory at the resolution of lips, as stage 2 was taught to
            # (lipreader.LipReader, memory_units), from a unit head trained on frame labels or
            # with CTC (whose blank frames emit nothing); posteriors read it unmixed with the
            # visual states (their residual made stage 1 + stage 2 read worse before
            # fine-tuning).
            config.model.memory_units = "visemes" if self.frame_labels else "visemes_ctc"
            config.model.memory_residual = method != "posterior"
        if method == "posterior":
            # Near-hard posteriors: each frame reads (almost) the one group it most likely
            # shows, the hard viseme input stage 2 trained the LMDecoder on.
            config.model.memory_temperature = POSTERIOR_TEMPERATURE
        return config

    def config(self, stage: str, lang: str | None = None,
               method: str | None = None) -> ml_collections.ConfigDict:
        """The config of run (`stage`, `lang`, `method`), as in `run_dir`."""
        if stage == "units_pretrain":
            return self.stage1_config()
        if stage == "lmdecoder":
            return self.stage2_config(lang)
        return self.stage3_config(lang, method)

    def run_dir(self, stage: str, lang: str | None = None, method: str | None = None) -> str:
        return os.path.join(self.runs_dir, run_name(stage, lang, method))

    def runs(self) -> dict[str, tuple[str, ...]]:
        """Every training run of the recipe: {name: (stage, lang, method)}."""
        runs = [("units_pretrain",)] + [("lmdecoder", lang) for lang in LOW_RESOURCE]
        runs += [("finetune", lang, method) for lang in LOW_RESOURCE for method in self.methods]
        runs += [("finetune", JOINT, method) for method in self.joint]
        return {run_name(*run): run for run in runs}

    def jobs(self) -> list[Job]:
        """Every run and score of the recipe as jobs (experiments/jobs.py), in priority order:
        stage 1 first (the longest chain), then what does not need it."""
        train = lambda *run, after=(): Job(run_name(*run), train_run, (self, *run), after)
        score = lambda *run, beam: Job("test_" + run_name(*run), score_run,
                                       (self, beam, *run), (run_name(*run),))
        needs = {"memory": ("units_pretrain", "lmdecoder"), "posterior": ("units_pretrain",
                 "lmdecoder"), "noread": ("units_pretrain", "lmdecoder"),
                 "nomemory": ("units_pretrain",), "scratch": ()}

        def after(lang: str, method: str) -> tuple[str, ...]:  # lang: one code or JOINT
            return tuple(name for stage in needs[method] for name in (
                [run_name(stage, code) for code in lang.split("+")] if stage == "lmdecoder"
                else [run_name(stage)]))

        jobs = [train("units_pretrain")]
        jobs += [train("lmdecoder", lang) for lang in LOW_RESOURCE]
        jobs += [train("finetune", lang, m, after=after(lang, m))
                 for m in self.methods for lang in LOW_RESOURCE]
        jobs += [train("finetune", JOINT, m, after=after(JOINT, m)) for m in self.joint]
        jobs.append(Job("test_units_pretrain", stage1_scores, (self,), ("units_pretrain",)))
        jobs += [Job("test_" + run_name("finetune", JOINT, m), joint_scores, (self, m),
                     (run_name("finetune", JOINT, m),)) for m in self.joint]
        jobs += [score("lmdecoder", lang, beam=True) for lang in LOW_RESOURCE]
        jobs += [score("finetune", lang, method, beam=True)
                 for lang in LOW_RESOURCE for method in self.methods]
        # Before fine-tuning, per language (the joint model's step 0 is on its curves).
        jobs += [Job(f"zero_shot_{lang}_{m}", zero_shot_scores, (self, lang, m),
                     after(lang, m)) for m in MEMORY_METHODS if m in self.methods
                 for lang in LOW_RESOURCE]
        jobs += [Job(f"memory_attention_{m}", memory_attention,
                     (self, LOW_RESOURCE[0], m, self.reading_run(m)),
                     (run_name("finetune", self.reading_run(m), m),))
                 for m in self.reading_methods]
        return jobs

    @property
    def reading_methods(self) -> tuple[str, ...]:
        """The memory-reading methods the recipe trains, per language or as the joint model."""
        return tuple(m for m in MEMORY_METHODS if m in self.methods or m in self.joint)

    def reading_run(self, method: str) -> str:
        """The language of the run whose memory read is shown: the method's per-language run
        when the recipe trains one, else the joint model's (`JOINT`)."""
        return LOW_RESOURCE[0] if method in self.methods else JOINT


def run_name(stage: str, lang: str | None = None, method: str | None = None) -> str:
    return "_".join(x for x in (stage, lang, method) if x)


def init_process(cache_dir: str) -> None:
    """Per process: quiet logs, and the persistent XLA cache so that runs of the same shapes
    (it and pt, baselines a and b) reuse each other's compiled programs."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    for noisy in ("absl", "orbax", "jax._src", "tensorflow_datasets", "grain"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    jax.config.update("jax_compilation_cache_dir", cache_dir)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)


def train_run(recipe: Recipe, stage: str, lang: str | None = None,
              method: str | None = None) -> dict[str, Any]:
    summary = run_stage(recipe.config(stage, lang, method), recipe.run_dir(stage, lang, method))
    return {"step": int(summary["step"]), "eval": summary.get("eval")}


def score_run(recipe: Recipe, beam: bool, stage: str, lang: str | None = None,
              method: str | None = None) -> dict[str, float]:
    return test_scores(recipe.config(stage, lang, method), recipe.run_dir(stage, lang, method),
                       beam=beam)


def run_stage(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
    """Trains (or resumes, or finds finished) one run; returns the trainer's summary."""
    log.info("=== %s -> %s", config.task, workdir)
    return train(config, workdir)


def best_step(workdir: str, metric: str, mode: str = "min") -> int | None:
    """The evaluated step with the best validation `metric` whose checkpoint still exists
    (the latest checkpoint when none was evaluated)."""
    ckpt_dir = os.path.join(workdir, "checkpoints")
    kept = {int(n) for n in os.listdir(ckpt_dir) if n.isdigit()} if os.path.isdir(
        ckpt_dir) else set()
    if not kept:
        return None
    scored = [(r[metric], r["step"]) for r in read_metrics(workdir, "eval")
              if metric in r and r["step"] in kept]
    if not scored:
        return max(kept)
    sign = 1 if mode == "min" else -1
    return min(scored, key=lambda x: (sign * x[0], -x[1]))[1]


def best_model(config: ml_collections.ConfigDict, workdir: str) -> tuple[nnx.Module, int]:
    """The run's model at its best validation step (see `best_step`), and that step."""
    step = best_step(workdir, config.train.best_metric, config.train.best_mode)
    return load_model(config, os.path.join(workdir, "checkpoints", str(step))), step


def test_scores(config: ml_collections.ConfigDict, workdir: str, *, beam: bool,
                split: str = "test") -> dict[str, float]:
    """Scores of `workdir`'s best-on-validation checkpoint on `split`: the task's greedy
    metrics, and with `beam` the joint CTC/attention beam search's WER/CER too."""
    model, step = best_model(config, workdir)
    return {**model_scores(config, model, beam=beam, split=split), "step": step}


def zero_shot_scores(recipe: Recipe, lang: str, method: str) -> dict[str, float]:
    """Stage 3's `method` model before fine-tuning (stage-1 and stage-2 weights as loaded, no
    video-text pair of `lang` seen), scored on the test split: what combining the two stages
    gives by itself. Nothing is selected, so nothing is tuned to the test split."""
    config = recipe.stage3_config(lang, method)
    task = get_task(config.task)
    model = task.create_model(config, nnx.Rngs(int(config.seed)))
    task.load_pretrained(model, config)
    model.eval()
    return {**model_scores(config, model, beam=True), "step": 0}


def model_scores(config: ml_collections.ConfigDict, model: nnx.Module, *, beam: bool,
                 split: str = "test") -> dict[str, float]:
    """`model`'s greedy scores on `split` and, with `beam`, the beam search's WER/CER."""
    task = get_task(config.task)
    mesh = mesh_lib.make_mesh(config.train.get("mesh", None))
    loader = lambda: make_loader(config.data, split, train=False, seed=config.seed, mesh=mesh)
    settings = task.settings(config)
    with jax.set_mesh(mesh):
        scores = evaluate(task, model, make_eval_step(task, settings), config, mesh, loader())
        if beam and hasattr(task, "beam_step"):
            beams = evaluate(task, model, make_eval_step(task, settings, beam=True), config,
                             mesh, loader())
            scores.update({f"{k}_beam": v for k, v in beams.items()
                           if k.startswith(("wer", "cer", "lid_accuracy"))})
    return scores


def joint_scores(recipe: Recipe, method: str) -> dict[str, Any]:
    """The one model of all the low-resource languages (`Recipe.joint`) on each language's
    test split, from its best validation step: the language-ID head's accuracy, WER with the
    decoder it picks (wer_routed; beam: hard and soft routing) and with the clip's labelled
    language (wer: the oracle routing aims at); and the confusion of the languages it picked
    ("confusion": counts, rows labelled, columns chosen, in LOW_RESOURCE order)."""
    config = recipe.stage3_config(JOINT, method)
    model, step = best_model(config, recipe.run_dir("finetune", JOINT, method))
    out: dict[str, Any] = {}
    for code in LOW_RESOURCE:
        out[code] = {**model_scores(one_language(config, code), model, beam=True),
                     "step": step}
    out["confusion"] = language_confusion(config, model).tolist()
    return out


def one_language(config: ml_collections.ConfigDict, code: str) -> ml_collections.ConfigDict:
    """A copy of a joint reader's config whose data is `code`'s video clips alone."""
    one = ml_collections.ConfigDict(config.to_dict())
    one.data.sources = [s for s in config.data.sources if s.endswith(f"/{code}_video")]
    return one


def language_confusion(config: ml_collections.ConfigDict, model: nnx.Module,
                       split: str = "test") -> np.ndarray:
    """(L, L) counts of the languages a multilingual reader's language-ID head picks on
    `split` (rows: labelled, columns: chosen, in config.data.languages order)."""
    from lipjax.tasks.text import chosen_languages

    task = get_task(config.task)
    mesh = mesh_lib.make_mesh(config.train.get("mesh", None))
    loader = make_loader(config.data, split, train=False, seed=config.seed, mesh=mesh)
    with jax.set_mesh(mesh):
        outputs, batches = eval_outputs(model, make_eval_step(task, task.settings(config)),
                                        config, mesh, loader)
    labels, chosen = chosen_languages(outputs, batches)
    index = [languages.index(c) for c in config.data.languages]
    counts = np.zeros((len(index), len(index)), np.int64)
    for a, b in zip(labels, chosen, strict=True):
        counts[index.index(int(a)), index.index(int(b))] += 1
    return counts


def stage1_outputs(recipe: Recipe, split: str) -> tuple[list[dict], list[dict], int]:
    """The stage-1 run's eval outputs (decoded units, LID) and host batches over `split` of the
    five languages' clips, from its best checkpoint, and that checkpoint's step."""
    config = recipe.stage1_config()
    task = get_task(config.task)
    model, step = best_model(config, recipe.run_dir("units_pretrain"))
    mesh = mesh_lib.make_mesh(config.train.get("mesh", None))
    loader = make_loader(config.data, split, train=False, seed=config.seed, mesh=mesh)
    with jax.set_mesh(mesh):
        outputs, batches = eval_outputs(model, make_eval_step(task, task.settings(config)),
                                        config, mesh, loader)
    return outputs, batches, step


def stage1_scores(recipe: Recipe) -> dict[str, dict[str, float]]:
    """Stage-1 unit error rate and LID accuracy on each language's test split, and over the five
    languages together: one pass of the model over the mixed test split, scored per language
    by masking the other languages' rows."""
    config = recipe.stage1_config()
    task = get_task(config.task)
    outputs, batches, step = stage1_outputs(recipe, "test")
    out = {}
    for code in HIGH_RESOURCE + LOW_RESOURCE:
        only = [{**b, "valid": valid_rows(b) & (np.asarray(b["language"])
                                                == languages.index(code))} for b in batches]
        out[code] = {**task.eval_metrics(outputs, only, config), "step": step}
    out["all"] = {**task.eval_metrics(outputs, batches, config), "step": step}
    return out


def memory_attention(recipe: Recipe, lang: str, method: str = "memory",
                     run: str | None = None) -> dict[str, Any]:
    """How the fine-tuned `method` model of `run` (default: `lang`'s own; `JOINT`: the joint
    model, reading `lang`'s memory) reads the memory on `lang`'s test split.

    For the first clip: its weights (frames × memory slots, mean over heads), text and the
    phone sounding at each frame. Over the whole split (phoneme units, frames inside a phone):
    `true_slot_mass`, the mean weight on the slot of the frame's own phone, and
    `true_slot_top1`, how often that slot is the most read one (chance: 1 / slots). With a
    viseme memory (model.memory_units="visemes") a slot is a viseme group, and a frame's own
    slot is its phone's group."""
    run = run or lang
    config = one_language(recipe.stage3_config(run, method), lang)
    model, _ = best_model(config, recipe.run_dir("finetune", run, method))
    slot_of, slot_names = None, None  # phone id -> slot: itself, or its viseme group
    if config.model.get("memory_units", "units") in ("visemes", "visemes_ctc"):
        from lipjax.models import visemes

        slot_of, slot_names = visemes.group_ids()
    loader = make_loader(config.data, "test", train=False, seed=config.seed)
    read = nnx.jit(lambda m, v, vm: m.memory_attention(v, vm, lang).mean(1))
    first, mass, top1, count = None, 0.0, 0, 0
    for batch in loader:
        weights = np.asarray(read(model, batch["video"], batch["video_mask"]))  # (B, T, K)
        frame_mask = np.asarray(batch["video_mask"]) & np.asarray(batch["valid"])[:, None]
        phones = np.asarray(batch.get("frame_phonemes", np.zeros(frame_mask.shape, np.int32)))
        if slot_of is not None:
            phones = slot_of[phones]  # the group of each frame's phone (0: silence in both)
        if first is None:
            n = int(frame_mask[0].sum())
            first = {"weights": weights[0, :n], "frame_units": phones[0, :n].tolist(),
                     "text": str(np.asarray(batch["text"])[0])}
        if recipe.units == "phoneme" and "frame_phonemes" in batch:
            inside = frame_mask & (phones > 0)
            on_phone = np.take_along_axis(weights, phones[..., None], axis=-1)[..., 0]
            mass += float(on_phone[inside].sum())
            top1 += int((weights.argmax(-1) == phones)[inside].sum())
            count += int(inside.sum())
    scores = ({"true_slot_mass": mass / count, "true_slot_top1": top1 / count,
               "slots": int(first["weights"].shape[-1])} if count else {})
    names = {"slot_names": list(slot_names)} if slot_names else {}
    return {**first, **scores, **names, "units": recipe.units, "language": lang,
            "method": method}


def low_resource_clip_counts(recipe: Recipe) -> dict[str, int]:
    """Training clips each low-resource language's video config has (what stage 3 sees)."""
    from lipjax.data import source

    return {code: len(source.open_source("synthetic_lips", f"{code}_video", "train",
                                         recipe.data_dir)) for code in LOW_RESOURCE}


def language_name(code: str) -> str:
    return languages.get(code).name
