"""A language lipjax does not register and whose phones its inventory lacks, added from a user
folder as data_builders/adding_a_language.md says: Swedish ("sv": espeak-ng writes ʉ, ʂ, ɕ, ɵː
and `sx`, its name for the sj-sound ɧ, none of them in lipjax/units/ipa_inventory.txt).

Follows the guide with the machinery of tests/test_adding_a_language.py: the template package
copied into a temporary folder on PYTHONPATH, synthetic Swedish clips exported as a user's mp4s
and manifest, then every command as the guide writes it, each in its own process. Stage 1 is
trained first, on a corpus lipjax knows and before the Swedish package exists (as `make demo`'s
is); the first build prints one table of the missing phones with the lines that declare them,
which go into the package as printed; the second build has every phone; stage 2, then stage 3
with `init=posterior`, whose unit head is that older stage-1 run's, widened to the grown
inventory; evaluation and the transcript of one clip. No file under lipjax/ differs afterwards.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys

import pytest

from lipjax import languages
from tests.test_adding_a_language import EDITS, REPO, make_package, run

NAME = "sv_corpus"
SPLITS = {"train": 6, "validation": 2, "test": 2}
SV = {'code="nl",': 'code="sv",', 'name="Dutch",': 'name="Swedish",',
      'espeak_voice="nl",': 'espeak_voice="sv",', 'wordfreq_code="nl",': 'wordfreq_code="sv",',
      'num2words_code="nl",': 'num2words_code="sv",'}
SV_EDITS = [(file, old, SV.get(new, new)) for file, old, new in EDITS]
PHONES_LINE = "phones={},  # TODO after the first build, if it lists phones missing from the " \
              "inventory"


def library_hashes() -> dict[str, str]:
    """sha256 of every file under lipjax/ (compiled caches aside)."""
    root = REPO / "lipjax"
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and "__pycache__" not in p.parts}


def declared_phones(log: str) -> str:
    """The `phones={...}` lines the build's missing-phone table prints, as one line."""
    lines = log.splitlines()
    start = lines.index("    phones={")
    end = lines.index("    },", start)
    return "phones={" + "".join(line.strip() for line in lines[start + 1:end]) + "},"


@pytest.mark.slow
def test_swedish_from_a_user_folder_with_phones_outside_the_inventory(tmp_path):
    assert "sv" not in languages.codes(), "lipjax registers Swedish now: pick another language"
    before = library_hashes()
    root = tmp_path
    runs = root / "runs"
    # Stage 1 before the language exists: a corpus lipjax knows, no package imported.
    known = root / "known_data"
    run(["-m", "data_builders.synthetic_lips", "--data_dir", str(known), "--langs", "en",
         "--modalities", "video", "--sizes", "train=4,validation=2,test=2", "--no_tokenizers"],
        root)
    stage1 = runs / "elsewhere" / "units_pretrain"
    run(["-m", "lipjax.train", f"--config=configs/units_pretrain.py:tiny,langs=en,"
         f"data_dir={known},steps=2", f"--workdir={stage1}"], root)

    package = make_package(root, NAME, SV_EDITS)
    clips, data = root / "my_swedish_clips", root / "data"
    run(["-c", f"from tests.test_adding_a_language import export_clips; "
               f"export_clips({str(clips)!r}, {SPLITS!r}, {NAME!r}, 'sv')"], root)
    log = run(["-m", "data_builders", NAME, "--manual_dir", str(clips), "--data_dir",
               str(root / "first_build")], root)
    assert "PHONES MISSING FROM THE INVENTORY for language 'sv'" in log, log[-3000:]
    assert log.count("PHONES MISSING") == 1  # one table over every split
    phones = declared_phones(log)
    assert "'ʉ': 'close_round_vowel'" in phones and "TODO" not in phones, phones
    # Step 3 of the guide: the printed lines go into the package, then the build again.
    init = package / "__init__.py"
    assert PHONES_LINE in init.read_text()
    init.write_text(init.read_text().replace(PHONES_LINE, phones))
    log = run(["-m", "data_builders", NAME, "--manual_dir", str(clips), "--data_dir", str(data)],
              root)
    assert "PHONES MISSING" not in log and "phones missing" not in log, log[-3000:]
    log = run(["-m", NAME, "tokenizer", "--data_dir", str(data), "--vocab_size", "60"], root)
    assert re.search(r"tokenizer sv: \d+ pieces", log), log[-2000:]

    common = f"tiny,builder={NAME},data_dir={data},steps=2"  # no text_vocab: the tokenizer's
    run(["-m", NAME, "train", f"--config=configs/lmdecoder.py:{common},lang=sv",
         f"--workdir={runs / 'lmdecoder_sv'}"], root)
    finetune = runs / "finetune_sv_posterior"
    log = run(["-m", NAME, "train",
               f"--config=configs/finetune.py:{common},lang=sv,init=posterior,runs_dir={runs},"
               f"stage1={stage1}", f"--workdir={finetune}"], root)
    assert "finished at step 2" in log, log[-3000:]
    grown = re.search(r"stage-1 unit head of (\d+) phones read by an inventory of (\d+): (.*)",
                      log)
    assert grown, log[-3000:]
    assert int(grown.group(2)) > int(grown.group(1)) and "ʉ as u" in grown.group(3)

    log = run(["-m", NAME, "evaluate", f"--workdir={finetune}"], root)
    assert re.search(r"sv_video test: WER [\d.]+ %  CER [\d.]+ %  \| beam WER", log), log[-2000:]
    video = next(clips.glob("*/test_*.mp4"))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(root), str(REPO)]),
               JAX_PLATFORMS="cpu")
    proc = subprocess.run([sys.executable, "-m", NAME, "transcribe", f"--workdir={finetune}",
                           f"--video={video}", "--roi"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert proc.stdout.count("\n") == 1, proc.stdout  # one line: the transcript
    assert library_hashes() == before, "a file under lipjax/ changed"
