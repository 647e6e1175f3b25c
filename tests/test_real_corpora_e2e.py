"""The real-corpus recipe end to end on every builder's dummy data, as a user runs it.

Every step is a command in its own process, the one the READMEs and config docstrings give:

1. each builder's build command, read from its README's `## Build` block (as
   tests/test_build_command.py reads it), `--manual_dir` pointed at its `dummy_data/` and
   `--data_dir` at one temporary folder. LRS3 is cropped first on all cores with
   `python -m lipjax.preprocess` and built with `--roi_dir` (its README's route for a large
   corpus); one crop is marked so that the build can be seen to read them.
2. `python -m data_builders tokenizer LANG --sources ...` from the built audio-text corpora:
   Spanish (the language decoded below), Italian (Common Voice) and French (VoxPopuli).
3. the three stages with `python -m lipjax.train`, the `tiny` variant, 2 steps each, one 32-frame
   bucket and 32-pixel crops (`--config.` overrides): stage 1 on LRS3 + mTEDx/MuAViC Spanish +
   LRW video, stage 2 (the Spanish LMDecoder) on MLS + mTEDx audio, stage 3 on mTEDx/MuAViC
   Spanish with `init=posterior` reading both runs from `runs_dir`; then
   `python -m experiments.evaluate` on the stage-3 run and `python -m experiments.transcribe` on
   a raw LRS3 face video.
4. no file under lipjax/ or configs/ changed meanwhile: the recipe runs as shipped.

The dummy data has no language in every audio-text corpus (MLS es/pt, mTEDx es, Common Voice it,
VoxPopuli fr), so stage 2 mixes the two that share Spanish. VoxCeleb2 is built but not trained
on: its clips' language is `und`, which the input pipeline does not read yet.
"""

from __future__ import annotations

import hashlib
import math
import os
import pathlib
import re
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow_datasets as tfds

from tests.test_build_command import on_dummy_data, readme_commands

REPO = pathlib.Path(__file__).resolve().parents[1]
BUILDERS = ("lrs3", "mtedx", "mls", "common_voice", "voxpopuli", "lrw", "voxceleb2")
# What the README commands build from dummy_data/ (TFDS name/config); the stages below read them.
BUILT = {"lrs3/en", "mtedx/es_audio", "mtedx/es_video", "mls/es", "lipjax_common_voice/it",
         "voxpopuli/fr", "lrw/en", "voxceleb2/units100_k8"}
STAGE1_SOURCES = ("lrs3/en/train", "mtedx/es_video/train", "lrw/en/train")
STAGE2_SOURCES = ("mls/es/train", "mtedx/es_audio/train")
STEPS = 2
FAST = ["--config.data.frame_buckets=(32,)", "--config.data.max_frames=32",
        f"--config.train.eval_every={STEPS}", f"--config.train.checkpoint_every={STEPS}"]
VIDEO_FAST = [*FAST, "--config.data.crop=32"]
MARKED_CROP = "lrs3/trainval/aB_cD-eF0gH/00001"  # an LRS3 train clip, under the crop folder
RAW_VIDEO = REPO / "data_builders/lrs3/dummy_data/lrs3/trainval/aB_cD-eF0gH/00001.mp4"


def tree_digest(*folders: str) -> dict[str, str]:
    """sha256 of every file under the folders (relative path -> digest), bytecode caches
    excluded (running the commands writes them)."""
    out = {}
    for folder in folders:
        for path in sorted((REPO / folder).rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                out[str(path.relative_to(REPO))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


class Commands:
    """Runs commands from the repository root, each as a user would, with its output kept in
    `log_dir/<n>_<what>.log`; a failure names the command, its log and the end of its output."""

    def __init__(self, env: dict[str, str], log_dir: pathlib.Path) -> None:
        self.env, self.log_dir, self.ran = env, log_dir, []
        log_dir.mkdir(parents=True, exist_ok=True)

    def __call__(self, args: list[str], what: str, ok: tuple[int, ...] = (0,),
                 timeout: int = 900) -> subprocess.CompletedProcess:
        cmd = [sys.executable, *map(str, args)]
        start = time.monotonic()
        proc = subprocess.run(cmd, cwd=REPO, env=self.env, capture_output=True, text=True,
                              timeout=timeout)
        seconds = time.monotonic() - start
        log = self.log_dir / f"{len(self.ran):02d}_{what}.log"
        log.write_text(f"$ {' '.join(cmd)}\n# exit {proc.returncode}, {seconds:.1f} s\n"
                       f"--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}")
        self.ran.append((what, round(seconds, 1), " ".join(cmd[1:])))
        assert proc.returncode in ok, (
                f"{what}: `python {' '.join(cmd[1:])}` exited {proc.returncode} (full output in "
                f"{log}):\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")
        return proc


def built_configs(stdout: str) -> dict[str, dict[str, int]]:
    """`<tfds name>/<config>` -> examples per split, from a build command's last lines."""
    out = {}
    for name, counts in re.findall(r"^(\S+/\S+): \{(.*)\} in ", stdout, flags=re.M):
        out[name] = {s: int(n) for s, n in re.findall(r"'(\w+)': (\d+)", counts)}
    return out


def build_corpora(run: Commands, data_dir: pathlib.Path, roi_dir: pathlib.Path
                  ) -> tuple[dict[str, dict[str, int]], np.ndarray]:
    """Every builder's README command on its dummy data; returns what was built and the
    marked LRS3 crop."""
    lrs3_dummy = REPO / "data_builders/lrs3/dummy_data"
    proc = run(["-m", "lipjax.preprocess", lrs3_dummy, roi_dir, "--workers", "2"],
               "crop_lrs3", ok=(0, 3))
    # The dummy data holds one clip without a face: reported, and exit status 3 (the rest
    # written).
    assert "1 failed (NoFaceError)" in proc.stdout, proc.stdout
    marked = roi_dir / f"{MARKED_CROP}.npz"
    assert marked.exists(), f"python -m lipjax.preprocess wrote no {marked}"
    with np.load(marked) as crops:
        arrays = dict(crops)
    arrays["video"] = np.ascontiguousarray(arrays["video"][:, :, ::-1])  # mirrored: recognisable
    np.savez_compressed(marked, **arrays)

    built = {}
    for name in BUILDERS:
        argv = on_dummy_data(readme_commands(name)[-1], name, data_dir)
        if name == "lrs3":
            argv += ["--roi_dir", str(roi_dir)]
        proc = run(["-m", "data_builders", *argv], f"build_{name}")
        found = built_configs(proc.stdout)
        assert found, (f"data_builders/{name}/README.md: its build command printed no "
                       f"'<name>/<config>: {{...}} in' line:\n{proc.stdout[-2000:]}")
        built.update(found)
    return built, arrays["video"]


def train(run: Commands, config: str, workdir: pathlib.Path, overrides: list[str],
          what: str) -> str:
    proc = run(["-m", "lipjax.train", f"--config={config}", *overrides, f"--workdir={workdir}"],
               what)
    out = proc.stdout + proc.stderr
    assert f"finished at step {STEPS}" in out, f"{what}: no 'finished at step {STEPS}':\n" + \
        out[-3000:]
    return out


def check_run(workdir: pathlib.Path, what: str, metric: str, labels: tuple[str, ...]
              ) -> dict[str, float]:
    """The run's train losses are finite for every step, and its last validation has the
    metric over all sources and per source (`<builder/config/split>/<metric>`)."""
    from lipjax.train.tb import read_metrics

    losses = {r["step"]: r["loss"] for r in read_metrics(str(workdir), "train")}
    assert sorted(losses) == list(range(1, STEPS + 1)), f"{what}: train steps logged {losses}"
    assert all(math.isfinite(v) for v in losses.values()), f"{what}: train losses {losses}"
    evals = read_metrics(str(workdir), "eval")
    assert evals and evals[-1]["step"] == STEPS, f"{what}: validation records {evals}"
    last = evals[-1]
    expected = {metric} | {f"{label}/{metric}" for label in labels}
    assert expected <= set(last), (f"{what}: {workdir}/metrics.jsonl lacks "
                                   f"{sorted(expected - set(last))}; it has {sorted(last)}")
    for key in expected:
        assert 0 <= last[key] < math.inf, f"{what}: {key} = {last[key]}"
    return last


def near(a: dict, b: dict, where: str, atol: float) -> None:
    """Two parameter trees of one structure, leaf by leaf within `atol`. Batch-norm running
    statistics (`mean`, `var`) are left out: they follow the new data at once, not the
    learning rate."""
    import jax

    assert jax.tree.structure(a) == jax.tree.structure(b), f"{where}: trees differ"
    worst, name = 0.0, ""
    for (path, x), y in zip(jax.tree_util.tree_leaves_with_path(a), jax.tree.leaves(b),
                            strict=True):
        if getattr(path[-1], "key", None) in ("mean", "var"):
            continue
        gap = float(np.max(np.abs(np.asarray(x, np.float64) - np.asarray(y, np.float64))))
        if gap > worst:
            worst, name = gap, jax.tree_util.keystr(path)
    assert worst <= atol, (f"{where}: stage 3 moved {name} by {worst:.3g} in {STEPS} steps from "
                           f"the run it should start from (at most {atol} expected): was it "
                           "loaded?")


@pytest.mark.slow
def test_real_corpora_recipe_end_to_end(tmp_path):
    from lipjax import languages
    from lipjax.train.checkpoint import restore_state_numpy

    shipped = tree_digest("lipjax", "configs")
    env = dict(os.environ, PYTHONPATH=str(REPO), JAX_PLATFORMS="cpu",
               JAX_COMPILATION_CACHE_DIR=str(tmp_path / "jax_cache"))
    for key in ("XLA_FLAGS", "LIPJAX_DATA_DIR"):
        env.pop(key, None)
    run = Commands(env, tmp_path / "logs")
    data_dir, runs = tmp_path / "data", tmp_path / "runs"

    # 1. Every builder, from its README.
    built, marked = build_corpora(run, data_dir, tmp_path / "roi")
    assert set(built) == BUILT, (f"the README build commands built {sorted(built)}; the stages "
                                 f"below read {sorted(BUILT)}: update them together")
    empty = {name: splits for name, splits in built.items() if not all(splits.values())}
    assert not empty, f"splits without examples: {empty}"
    train_clip = next(ex for ex in tfds.data_source("lrs3/en", split="train",
                                                    data_dir=str(data_dir))
                      if ex["id"] == b"trainval/aB_cD-eF0gH/00001")
    np.testing.assert_array_equal(train_clip["video"], marked,
                                  err_msg="lrs3 --roi_dir: the crop made beforehand was not read")
    vox = tfds.data_source("voxceleb2/units100_k8", split="train", data_dir=str(data_dir))
    assert all(0 < len(ex["units"]) and ex["units"].max() < 8 for ex in vox)

    # 2. Tokenizers from the built audio-text corpora (common_voice is lipjax's builder); the
    # dummy text holds a few dozen characters: a small vocabulary, lowered where it has fewer.
    pieces = {}
    for lang, sources, dataset in (("es", "+".join(STAGE2_SOURCES), "(mtedx/es_audio)"),
                                   ("it", "common_voice/it/train", "(lipjax_common_voice/it)"),
                                   ("fr", "voxpopuli/fr/train", "(voxpopuli/fr)")):
        proc = run(["-m", "data_builders", "tokenizer", lang, "--sources", sources,
                    "--data_dir", data_dir, "--vocab", "48"], f"tokenizer_{lang}")
        assert (data_dir / "tokenizers" / f"{lang}.model").exists(), proc.stdout
        size = re.search(r"^vocabulary: (\d+) pieces", proc.stdout, flags=re.M)
        assert size, f"tokenizer {lang}: no 'vocabulary: N pieces' line:\n{proc.stdout}"
        pieces[lang] = int(size.group(1))
        for source in sources.split("+"):
            assert re.search(rf"^\s+{re.escape(source)}\s+[1-9]\d* sentences", proc.stdout,
                             flags=re.M), f"tokenizer {lang}: {source} not read:\n{proc.stdout}"
        assert dataset in proc.stdout, proc.stdout

    # 3. The three stages.
    stage1 = runs / "units_pretrain"
    train(run, f"configs/units_pretrain.py:tiny,data_dir={data_dir},langs=en+es,steps={STEPS},"
               f"sources={'+'.join(STAGE1_SOURCES)}", stage1, VIDEO_FAST, "stage1")
    check_run(stage1, "stage 1", "per", tuple(s.rsplit("/", 1)[0] + "/validation"
                                               for s in STAGE1_SOURCES))

    stage2 = runs / "lmdecoder_es"
    out = train(run, f"configs/lmdecoder.py:tiny,lang=es,data_dir={data_dir},steps={STEPS},"
                     f"sources={'+'.join(STAGE2_SOURCES)}", stage2, FAST, "stage2")
    assert f"text vocabulary: {pieces['es']} pieces, from the tokenizer" in out, out[-3000:]
    check_run(stage2, "stage 2", "wer", tuple(s.rsplit("/", 1)[0] + "/validation"
                                               for s in STAGE2_SOURCES))

    stage3 = runs / "finetune_es_posterior"
    train(run, f"configs/finetune.py:tiny,lang=es,init=posterior,runs_dir={runs},"
               f"data_dir={data_dir},sources=mtedx/es_video,steps={STEPS}", stage3, VIDEO_FAST,
          "stage3")
    last = check_run(stage3, "stage 3", "wer", ())
    assert "cer" in last
    from lipjax.train.tb import read_metrics

    assert [r["step"] for r in read_metrics(str(stage3), "eval")] == [0, STEPS]
    # Stage 3 starts from both runs: after 2 Adam steps (lr 1e-3) its weights are still theirs.
    fine = restore_state_numpy(str(stage3))["model"]
    first, second = (restore_state_numpy(str(w))["model"] for w in (stage1, stage2))
    near(fine["visual"], first["visual"], "visual encoder vs stage 1", 0.01)
    near(fine["unit_head"], first["unit_head"], "unit head vs stage 1", 0.01)
    near(fine["decoders"]["lmdecoders"]["es"], second["decoders"]["lmdecoders"]["es"],
         "LMDecoder vs stage 2", 0.01)

    proc = run(["-m", "experiments.evaluate", f"--workdir={stage3}"], "evaluate")
    assert re.search(r"^mtedx/es_video test: WER \d+\.\d %  CER \d+\.\d %  \| beam WER \d+\.\d % "
                     r" CER \d+\.\d %  1 utterances  \(step \d+\)$", proc.stdout, flags=re.M), \
        proc.stdout

    proc = run(["-m", "experiments.transcribe", f"--workdir={stage3}", f"--video={RAW_VIDEO}"],
               "transcribe")
    lines = proc.stdout.splitlines()
    assert len(lines) == 1, f"transcribe: stdout must be the transcript alone:\n{proc.stdout}"
    assert set(lines[0]) <= set(languages.get("es").alphabet + " "), lines
    assert re.search(rf"^{re.escape(str(RAW_VIDEO))}: \d+ frames at 25 fps$", proc.stderr,
                     flags=re.M), proc.stderr[-2000:]
    assert re.search(rf"^{re.escape(str(stage3))} step \d+, beam search$", proc.stderr,
                     flags=re.M), proc.stderr[-2000:]

    # 4. The recipe ran as shipped.
    now = tree_digest("lipjax", "configs")
    changed = sorted(k for k in shipped.keys() | now.keys() if shipped.get(k) != now.get(k))
    assert not changed, (f"files under lipjax/ or configs/ changed while the recipe ran: "
                         f"{changed}; it must run with them as shipped (a file edited by hand "
                         "meanwhile shows here too)")
    print("\n".join(f"{seconds:7.1f} s  {what}: {cmd}" for what, seconds, cmd in run.ran))
