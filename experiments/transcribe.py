"""Lip-reads raw videos with a fine-tuned lip reader and prints their transcripts.

    lipjax transcribe --workdir out/runs/finetune_it_memory --video clip.mp4
    lipjax transcribe --workdir out/runs/finetune_it_memory a.mp4 b.mp4 --json
    lipjax transcribe --workdir out/runs/finetune_it_memory --videos clips/ --batch_size 8
    python -m experiments.transcribe --config configs/finetune.py:small,lang=it,init=memory \
        --workdir out/runs/finetune_it_memory --video clip.mp4

Each video goes the way every corpus clip went: `lipjax.preprocess` (25 fps by timestamps, face
landmarks, 96x96 grayscale mouth crop; `--roi` when the file is such a crop already, e.g. from
`python -m lipjax.preprocess IN OUT --format mp4`), then the input pipeline's evaluation
transform (downsampling, centre crop, normalisation), then the lip reader's encoder and the
joint CTC/attention beam search (`--greedy`: greedy attention decoding), both with the decoder's
key/value cache, on the run's best checkpoint on validation.

Several videos (`--video` repeated, paths after the options, or `--videos` naming a folder or a
text file with one path a line) are read in one process: the model loads once, clips go in
batches of `--batch_size` grouped by length, and each batch shape compiles once. Output: one
video → its transcript, the only line on stdout; several → `PATH<TAB>TRANSCRIPT` lines; `--json`
→ one JSON document with each transcript, its language and a timing breakdown (start-up,
checkpoint load, mouth extraction, model, decoding). What was read goes to stderr. A run of
several languages (`configs/finetune.py:...,lang=it+pt`) given no `--lang` lets its
language-ID head pick each clip's language: `--route hard` decodes with the most likely
language's decoder, `--route soft` with every language's and keeps the hypothesis whose beam
score plus log P(language) is best (default: the run's `decoding.route`; greedy decoding routes
hard). stderr names the language with its probability (in --json: `language`,
`language_probability`).

Without --config the run's saved config (`{workdir}/config.json`); with it, give the training
overrides too (`--config.model.text_vocab=N`). Another landmarker: `--plugin my_module
--landmarker mine` (see lipjax.preprocess.register_landmarker). A language added by a package of
yours: `python -m data_builders.<name> transcribe ...`, so that it is registered.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import time
from collections.abc import Sequence
from typing import Any

import ml_collections
import numpy as np
from absl import app, flags

from experiments.saved_run import define_run_flags, quiet_logs, run_config

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".mpg", ".mpeg", ".m4v")


def define_flags() -> None:
    """The command's flags, defined only when the module runs as the command (so that its
    functions can be imported next to another command's)."""
    define_run_flags("configs/finetune.py:ARGS", "The stage-3 run's folder.")
    flags.DEFINE_multi_string("video", [], "A video file to read (repeat for several; paths "
                              "after the options count too).")
    flags.DEFINE_string("videos", None, "A folder (its video files) or a text file (one path "
                        "a line) of videos to read in this one process.")
    flags.DEFINE_integer("batch_size", 8, "Clips per batch (one compile per batch shape).")
    flags.DEFINE_bool("json", False, "Print one JSON document: transcripts, languages, timings.")
    flags.DEFINE_bool("roi", False, "The videos are 96x96 mouth crops already (no face search).")
    flags.DEFINE_string("landmarker", "dlib68", "Registered landmarker name.")
    flags.DEFINE_multi_string("plugin", [], "Module(s) to import first (landmarkers).")
    flags.DEFINE_string("lang", None, "Language code (default: the run's language; a run of "
                        "several languages picks each clip's with its language-ID head).")
    flags.DEFINE_enum("route", None, ["hard", "soft"], "Without --lang, how a run of several "
                      "languages picks each clip's decoder: hard (the language-ID head's most "
                      "likely language) or soft (every language's beam, its score plus log "
                      "P(language); beam search only). Default: the run's decoding.route.")
    flags.DEFINE_integer("step", None, "Checkpoint step (default: best on validation).")
    flags.DEFINE_bool("greedy", False, "Greedy decoding instead of beam search.")
    flags.DEFINE_string("xla_cache", default_xla_cache(),
                        "Folder of compiled programs kept between calls, so that a later call "
                        "with the same run and clip lengths skips compilation ('' = none).")


def default_xla_cache() -> str:
    """$XDG_CACHE_HOME/lipjax/xla (~/.cache/lipjax/xla)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "lipjax", "xla")


def use_xla_cache(folder: str) -> None:
    """jax's persistent compilation cache in `folder` (programs that took ≥ 0.5 s to compile:
    the encoder and the decoder of each batch shape)."""
    import jax

    jax.config.update("jax_compilation_cache_dir", folder)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)


def process_age() -> float | None:
    """Seconds since this process started (Linux /proc), for the start-up time; None elsewhere."""
    try:
        with open("/proc/self/stat") as f:
            start_ticks = int(f.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/uptime") as f:
            uptime = float(f.read().split()[0])
        return uptime - start_ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def video_list(videos: Sequence[str], listing: str | None) -> list[str]:
    """The videos to read: `videos` in order, then those `listing` names (a folder's video
    files, sorted, or a text file's lines)."""
    out = list(videos)
    if listing:
        if os.path.isdir(listing):
            found = sorted(os.path.join(listing, n) for n in os.listdir(listing)
                           if n.lower().endswith(VIDEO_SUFFIXES))
            if not found:
                raise FileNotFoundError(f"--videos {listing}: no video files "
                                        f"({', '.join(VIDEO_SUFFIXES)}) in this folder")
            out += found
        elif os.path.isfile(listing):
            with open(listing) as f:
                base = os.path.dirname(listing)
                out += [os.path.join(base, line.strip()) for line in f
                        if line.strip() and not line.startswith("#")]
        else:
            raise FileNotFoundError(f"--videos {listing}: no such folder or list file")
    if not out:
        raise ValueError("no video to read: give --video PATH (or paths after the options), "
                         "or --videos FOLDER_OR_LIST")
    return out


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


def make_batch(config: ml_collections.ConfigDict, clips: Sequence[np.ndarray],
               langs: Sequence[str], names: Sequence[str] | None = None,
               batch_size: int | None = None) -> dict[str, np.ndarray]:
    """A batch of mouth-crop clips, built by the input pipeline's own evaluation transform and
    collate (so crop, downsampling and normalisation are the ones the model was trained with);
    `batch_size` rows (default: one per clip), the missing ones padding."""
    from lipjax.data.transforms import ClipTransform, Collate

    data = config.data
    crop = int(data.crop)
    transform = ClipTransform(data_dir=str(data.data_dir), with_video=True, train=False,
                              crop=crop, downsample=int(data.get("downsample", 1)),
                              tokenize=False)
    empty = np.zeros(0, np.int32)
    names = names or [""] * len(clips)
    out = [transform(i, {"video": frames, "units": empty, "phoneme_ids": empty,
                         "language": lang, "text": "", "id": name})
           for i, (frames, lang, name) in enumerate(zip(clips, langs, names, strict=True))]
    collate = Collate(batch_size=batch_size or len(clips), with_video=True, crop=crop,
                      frame_buckets=tuple(int(b) for b in data.frame_buckets))
    return collate(out)


def given_language(config: ml_collections.ConfigDict, lang: str | None) -> str | None:
    """The language every clip is read in: `lang`, else the run's one language; None when the
    run reads several and none is given (its language-ID head then picks per clip). Checked
    before any video is read: an unknown code, or one the run has no decoder for, is an
    error."""
    from lipjax import languages
    from lipjax.models import factory

    codes = factory.lmdecoder_languages(config)
    if lang:
        languages.get(lang)  # an unknown code fails here, naming the registered ones
        if lang not in codes:
            raise ValueError(f"--lang {lang}: this run reads {', '.join(codes)} (config "
                             f"model.languages); it has no decoder for {lang!r}")
        return lang
    return codes[0] if len(codes) == 1 else None


def inference_route(config: ml_collections.ConfigDict, route: str | None,
                    greedy: bool) -> str:
    """How a reader of several languages picks a clip's decoder when nobody names the
    language: `route`, else the run's config decoding.route (lipjax/tasks/routing.py). Soft
    routing weighs each language's beam score, so greedy decoding routes hard."""
    from lipjax.tasks import routing

    chosen = routing.check_route(route or str(config.decoding.get("route", "hard")))
    if chosen == "oracle":
        raise ValueError("route 'oracle' reads each clip in its labelled language, which only "
                         "evaluation knows; give --lang, or --route hard or soft")
    return "hard" if greedy else chosen


class Reader:
    """A stage-3 model's inference: its visual encoder and its decoding jitted separately (so
    their times are told apart), each compiled once per batch shape. Without a language a
    reader of several languages routes each clip (`inference_route`)."""

    def __init__(self, config: ml_collections.ConfigDict, model: Any, *, greedy: bool = False,
                 route: str | None = None) -> None:
        import jax.numpy as jnp
        from flax import nnx

        from lipjax import decoding
        from lipjax.tasks import routing, text

        self.config, self.model, self.greedy = config, model, greedy
        self.route = inference_route(config, route, greedy)
        settings = text.TextSettings.from_config(config)

        def decode(model, states, mask, language):
            """(tokens, lengths, score) of every clip read as `language` (B,)."""
            states, mask = model.encode_states(states, mask, language)
            if greedy:
                tokens, lengths = decoding.attention_greedy(
                    model.decoders, states, mask, language, settings.decode_len(mask.shape[1]))
                return tokens, lengths, None
            return text.beam_decode(model, states, mask, language, settings)

        def soft(model, states, mask):
            return routing.soft(lambda language: decode(model, states, mask, language), model,
                                states, mask, settings.route_lid_weight)

        self._visual = nnx.jit(lambda model, video, mask: model.visual(video, mask))
        self._probs = nnx.jit(lambda model, states, mask: jnp.exp(
            routing.language_log_probs(model, states, mask)))
        self._decode = nnx.jit(lambda model, states, mask, language:
                               decode(model, states, mask, language)[:2])
        self._soft = nnx.jit(soft)

    def __call__(self, batch: dict[str, np.ndarray], lang: str | None = None,
                 ) -> tuple[np.ndarray, np.ndarray, list[tuple[str, float | None]],
                            dict[str, float]]:
        """(tokens, lengths, (language, its probability) per row, {"model": s, "decoding": s})
        of one collated batch: every clip read in `lang` (else the run's only language;
        probability None), or each in the language its language-ID head routes it to."""
        import jax
        import jax.numpy as jnp

        from lipjax import languages

        start = time.perf_counter()
        mask = jnp.asarray(batch["video_mask"])
        states = self._visual(self.model, jnp.asarray(batch["video"]), mask)
        given = given_language(self.config, lang)
        probs = None if given else np.asarray(self._probs(self.model, states, mask))
        jax.block_until_ready(states)
        encoded = time.perf_counter()
        codes = self.model.decoders.codes
        if given or self.route == "hard":
            read_as = [given] * len(mask) if given else [codes[i] for i in probs.argmax(-1)]
            language = jnp.asarray([languages.index(c) for c in read_as], jnp.int32)
            tokens, lengths = self._decode(self.model, states, mask, language)
        else:
            tokens, lengths, language = self._soft(self.model, states, mask)
            read_as = [languages.codes()[int(i)] for i in np.asarray(language)]
        tokens, lengths = np.asarray(tokens), np.asarray(lengths)
        chosen = [(code, None if probs is None else float(probs[row, codes.index(code)]))
                  for row, code in enumerate(read_as)]
        return tokens, lengths, chosen, {"model": encoded - start,
                                         "decoding": time.perf_counter() - encoded}


class Transcriber(Reader):
    """A stage-3 run's checkpoint (by default its best on validation), loaded once."""

    def __init__(self, config: ml_collections.ConfigDict, workdir: str, *,
                 step: int | None = None, greedy: bool = False,
                 route: str | None = None) -> None:
        from experiments.recipe import best_step
        from lipjax.tasks.common import load_model

        if config.task != "finetune":
            raise ValueError(f"{workdir}: a {config.task!r} run; transcribing needs a stage-3 "
                             "(finetune) run, the only one that reads lips into text")
        inference_route(config, route, greedy)  # a bad route fails before the checkpoint loads
        if step is None:
            step = best_step(workdir, config.train.best_metric,
                             config.train.get("best_mode", "min"))
        if step is None:
            raise FileNotFoundError(f"{workdir}/checkpoints: no checkpoint")
        self.workdir, self.step = workdir, step
        super().__init__(config, load_model(config, os.path.join(workdir, "checkpoints",
                                                                  str(step))),
                         greedy=greedy, route=route)


def transcribe_many(config: ml_collections.ConfigDict, workdir: str, videos: Sequence[str], *,
                    roi: bool = False, landmarker: str = "dlib68", lang: str | None = None,
                    step: int | None = None, greedy: bool = False, batch_size: int = 8,
                    route: str | None = None) -> dict[str, Any]:
    """Transcripts of `videos` by the stage-3 run in `workdir`, with the timing breakdown:
    {"videos": [{"video", "transcript", "language", "language_probability", "frames",
    "batch", "seconds": {"mouth_extraction"}}], "batches": [{"videos", "frames", "model",
    "decoding"}], "seconds": {"start_up", "checkpoint_load", "mouth_extraction", "model",
    "decoding", "total"}, "step", "decoding", "route"}. `route` (hard or soft; default the
    run's decoding.route) when a run of several languages is given no `lang`."""
    from lipjax import languages, schema
    from lipjax.tasks.common import ids_to_text

    start_up = process_age()
    started = time.perf_counter()
    from lipjax.models import factory

    # Checked before any video is read; the batch's language is a placeholder where the
    # language-ID head routes the clips.
    given = given_language(config, lang)
    default = given or factory.lmdecoder_languages(config)[0]
    clips, seconds = [], []
    for video in videos:
        t0 = time.perf_counter()
        clips.append(mouth_frames(video, roi=roi, landmarker=landmarker))
        seconds.append(time.perf_counter() - t0)
        print(f"{video}: {len(clips[-1])} frames at 25 fps", file=sys.stderr)
    t0 = time.perf_counter()
    transcriber = Transcriber(config, workdir, step=step, greedy=greedy, route=route)
    load = time.perf_counter() - t0
    routed = "" if given else f", {transcriber.route} routing by the language-ID head"
    print(f"{workdir} step {transcriber.step}, {'greedy' if greedy else 'beam search'}{routed}",
          file=sys.stderr)
    results = [{"video": v, "frames": len(c), "seconds": {"mouth_extraction": s}}
               for v, c, s in zip(videos, clips, seconds, strict=True)]
    order = sorted(range(len(clips)), key=lambda i: len(clips[i]))  # similar lengths together
    batches = []
    for first in range(0, len(order), batch_size):
        rows = order[first:first + batch_size]
        batch = make_batch(config, [clips[i] for i in rows], [default] * len(rows),
                           [videos[i] for i in rows], batch_size=min(batch_size, len(clips)))
        tokens, lengths, chosen, times = transcriber(batch, lang)
        batches.append({"videos": len(rows), "frames": int(batch["video"].shape[1]), **times})
        for row, i in enumerate(rows):
            code, prob = chosen[row]
            if prob is not None:
                print(f"{videos[i]}: language {code} ({languages.get(code).name}, "
                      f"p={prob:.2f}, chosen by {transcriber.route} routing)", file=sys.stderr)
            results[i].update(
                transcript=ids_to_text(tokens[row], int(lengths[row]), code,
                                       str(config.data.data_dir)),
                language=code, language_probability=prob, batch=len(batches) - 1)
    total = {"start_up": start_up, "checkpoint_load": load,
             "mouth_extraction": float(sum(seconds)),
             "model": sum(b["model"] for b in batches),
             "decoding": sum(b["decoding"] for b in batches)}
    total["total"] = (start_up or 0.0) + time.perf_counter() - started
    duration = sum(len(c) for c in clips) / schema.FPS
    return {"videos": results, "batches": batches, "seconds": total,
            "video_seconds": duration,
            "real_time_factor": total["total"] / duration if duration else None,
            "step": transcriber.step, "decoding": "greedy" if greedy else "beam",
            "route": None if given else transcriber.route}


def transcribe(config: ml_collections.ConfigDict, workdir: str, video: str, *,
               roi: bool = False, landmarker: str = "dlib68", lang: str | None = None,
               step: int | None = None, greedy: bool = False,
               route: str | None = None) -> str:
    """The transcript of one video by the stage-3 run in `workdir` (normalised text)."""
    return transcribe_many(config, workdir, [video], roi=roi, landmarker=landmarker,
                           lang=lang, step=step, greedy=greedy,
                           route=route)["videos"][0]["transcript"]


def main(argv: list[str]) -> None:
    f = flags.FLAGS
    quiet_logs()
    for arg in argv[1:]:
        if arg.startswith("-"):
            sys.exit(f"experiments.transcribe: unknown option {arg} (--help lists them)")
    if not f.workdir:
        sys.exit("experiments.transcribe: --workdir (a stage-3 run's folder) is required")
    if f.batch_size < 1:
        sys.exit(f"experiments.transcribe: --batch_size must be at least 1, found {f.batch_size}")
    try:
        videos = video_list([*f.video, *argv[1:]], f.videos)
    except (FileNotFoundError, ValueError) as e:
        sys.exit(f"experiments.transcribe: {e}")
    for module in f.plugin:
        importlib.import_module(module)
    config = run_config(f.config, f.workdir)
    if f.xla_cache:
        use_xla_cache(f.xla_cache)
    report = transcribe_many(config, f.workdir, videos, roi=f.roi, landmarker=f.landmarker,
                             lang=f.lang, step=f.step, greedy=f.greedy, batch_size=f.batch_size,
                             route=f.route)
    if f.json:
        print(json.dumps(report, indent=1), flush=True)
    elif len(videos) == 1:
        print(report["videos"][0]["transcript"], flush=True)
    else:
        for result in report["videos"]:
            print(f"{result['video']}\t{result['transcript']}", flush=True)


if __name__ == "__main__":
    define_flags()
    app.run(main)
