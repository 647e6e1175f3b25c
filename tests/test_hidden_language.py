"""A language the project does not register, added from a user folder: Polish ("pl").

Follows data_builders/adding_a_language.md with the machinery of tests/test_adding_a_language.py
(the Dutch walk-through): the template package copied into a temporary folder on PYTHONPATH and
edited for Polish, synthetic Polish clips (espeak-ng's Polish voice, wordfreq's Polish words;
the phone inventory's `# + pl` section gives its phones ids) exported as a user's mp4s and
manifest, then every command as the guide writes it, each in its own process: build, tokenizer,
a stage-1 run on the Polish video (the guide's `stage1=` points at it), stage 2, stage 3 reading
the Polish memory, evaluation on the test split and the transcript of one clip. Nothing under
lipjax/ is edited: the package lives in the test's temporary folder.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from lipjax import languages
from tests.test_adding_a_language import EDITS, REPO, make_package, run

NAME = "pl_corpus"
SPLITS = {"train": 6, "validation": 2, "test": 2}
PL = {'code="nl",': 'code="pl",', 'name="Dutch",': 'name="Polish",',
      'espeak_voice="nl",': 'espeak_voice="pl",', 'wordfreq_code="nl",': 'wordfreq_code="pl",',
      'num2words_code="nl",': 'num2words_code="pl",'}
PL_EDITS = [(file, old, PL.get(new, new)) for file, old, new in EDITS]


@pytest.mark.slow
def test_polish_from_a_user_folder(tmp_path):
    assert "pl" not in languages.codes(), "lipjax registers Polish now: pick another language"
    root = tmp_path
    make_package(root, NAME, PL_EDITS)
    clips, data, runs = root / "my_polish_clips", root / "data", root / "runs"
    run(["-c", f"from tests.test_adding_a_language import export_clips; "
               f"export_clips({str(clips)!r}, {SPLITS!r}, {NAME!r}, 'pl')"], root)
    log = run(["-m", "data_builders", NAME, "--manual_dir", str(clips), "--data_dir", str(data)],
              root)
    assert "PHONES MISSING" not in log, log[-3000:]
    log = run(["-m", NAME, "tokenizer", "--data_dir", str(data), "--vocab_size", "60"], root)
    pieces = int(re.search(r"tokenizer pl: (\d+) pieces", log).group(1))

    common = f"tiny,builder={NAME},data_dir={data},steps=2"
    vocab = f"--config.model.text_vocab={pieces}"
    # Stage 1 on the user's own video (phone sequences: no per-frame phones outside the
    # synthetic corpus), in a folder of its own as the demo's is.
    stage1 = runs / "elsewhere" / "units_pretrain"
    run(["-m", NAME, "train", f"--config=configs/units_pretrain.py:{common},langs=pl",
         f"--workdir={stage1}"], root)
    run(["-m", NAME, "train", f"--config=configs/lmdecoder.py:{common},lang=pl", vocab,
         f"--workdir={runs / 'lmdecoder_pl'}"], root)
    finetune = runs / "finetune_pl_memory"
    log = run(["-m", NAME, "train",
               f"--config=configs/finetune.py:{common},lang=pl,init=memory,runs_dir={runs},"
               f"stage1={stage1}", vocab, f"--workdir={finetune}"], root)
    assert "finished at step 2" in log  # stage1= was read: the default place has no run
    assert not (runs / "units_pretrain").exists()

    log = run(["-m", NAME, "evaluate", f"--workdir={finetune}"], root)
    assert re.search(r"pl_video test: WER [\d.]+ %  CER [\d.]+ %  \| beam WER", log), log[-2000:]
    video = next(clips.glob("*/test_*.mp4"))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(root), str(REPO)]),
               JAX_PLATFORMS="cpu")
    proc = subprocess.run([sys.executable, "-m", NAME, "transcribe", f"--workdir={finetune}",
                           f"--video={video}", "--roi"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert proc.stdout.count("\n") == 1, proc.stdout  # one line: the transcript
    assert f"{video.name}: " in proc.stderr and "beam search" in proc.stderr
