"""`python -m data_builders tokenizer` on the MLS, VoxPopuli and Common Voice builders' dummy data.

The dummy transcripts are plain ASCII (or Italian/French), so the corpora are built from copies of
each builder's dummy_data/ laid out for Spanish, with transcripts that hold ñ, é, ü, á, í, ó and
one "ç" (a letter outside the Spanish alphabet): what the command must keep encodable.
"""

from __future__ import annotations

import pathlib
import shutil

import pytest
import tensorflow_datasets as tfds

from data_builders import build
from lipjax import languages
from lipjax.data import source, tokenizer
from lipjax.schema import UNK

REPO = pathlib.Path(__file__).resolve().parents[1]
SOURCES = "mls/es/train+voxpopuli/es/train+common_voice/es/train"
MLS_TRAIN = ["qué tal señoras", "el niño comió pingüino"]  # the third line has no audio
VOXPOPULI_TRAIN = ["gracias señor muñoz", "françois llegó tarde"]
CV_TRAIN = ["canción de la región ánimo", "adiós"]


def _spanish_dummy_data(root: pathlib.Path) -> dict[str, pathlib.Path]:
    """Copies of the three builders' dummy data as Spanish corpora: manual_dir per builder."""
    dummy = lambda name: REPO / "data_builders" / name / "dummy_data"
    mls = root / "mls"
    shutil.copytree(dummy("mls") / "mls_spanish", mls / "mls_spanish")
    (mls / "mls_spanish" / "train" / "transcripts.txt").write_text(
            f"4800_10003_000000\t{MLS_TRAIN[0]}\n12_345_000001\t{MLS_TRAIN[1]}\n"
            "4800_10003_000002\tsin audio\n", encoding="utf-8")

    voxpopuli = root / "voxpopuli"
    shutil.copytree(dummy("voxpopuli") / "transcribed_data" / "fr",
                    voxpopuli / "transcribed_data" / "es")
    train = voxpopuli / "transcribed_data" / "es" / "asr_train.tsv"
    train.write_text(train.read_text(encoding="utf-8")
                     .replace("Merci, Monsieur.\tmerci monsieur", "Gracias, señor Muñoz.\t")
                     .replace("Bonjour à tous.", "François llegó tarde."), encoding="utf-8")

    cv = root / "common_voice"
    shutil.copytree(dummy("common_voice") / "cv-corpus-17.0-2024-03-15" / "it",
                    cv / "cv-corpus-17.0-2024-03-15" / "es")
    train = cv / "cv-corpus-17.0-2024-03-15" / "es" / "train.tsv"
    train.write_text(train.read_text(encoding="utf-8")
                     .replace("Buongiorno a tutti.", "¡Canción de la región, ánimo!")
                     .replace("Ciao!", "¿Adiós?"), encoding="utf-8")
    return {"mls": mls, "voxpopuli": voxpopuli, "common_voice": cv}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> str:
    """The three Spanish corpora, a renamed copy of MLS es (a config not in the builder's list)
    and VoxPopuli fr from its own dummy data, built into one data_dir."""
    root = tmp_path_factory.mktemp("tokenizer_command")
    manual = _spanish_dummy_data(root / "manual")
    data = str(root / "data")
    tfds.disable_progress_bar()
    for name, folder in manual.items():
        build.build(name, str(folder), data, ["es"])
    build.build("mls", str(manual["mls"]), data, ["es"], new_name="es_sample")
    build.build("voxpopuli", str(REPO / "data_builders" / "voxpopuli" / "dummy_data"), data,
                ["fr"])
    return data


def _train_text(data_dir: str) -> list[str]:
    """Every training sentence of the three sources, read back and normalised."""
    es = languages.get("es")
    texts = []
    for name in ("mls/es", "voxpopuli/es", "lipjax_common_voice/es"):
        data = tfds.data_source(name, split="train", data_dir=data_dir, download=False)
        texts += [es.normalize(source.as_str(data[i]["text"])) for i in range(len(data))]
    return texts


def test_builds_from_three_corpora_and_every_sentence_round_trips(data_dir, capsys):
    assert tokenizer.main(["es", "--sources", SOURCES, "--data_dir", data_dir]) == 0
    out = capsys.readouterr().out
    texts = _train_text(data_dir)
    assert sorted(texts) == sorted(MLS_TRAIN + VOXPOPULI_TRAIN + CV_TRAIN)
    sp = tokenizer.tokenizer.load_tokenizer("es", data_dir)
    for text in texts:
        ids = sp.encode(text)
        assert UNK not in ids, (text, sp.encode(text, out_type=str))
        assert sp.decode(ids) == text
    # Letters of the Spanish alphabet that no training sentence holds still encode.
    assert sp.decode(sp.encode("kiwi útil y xilófono")) == "kiwi útil y xilófono"
    # Per source: sentences and characters; then the vocabulary and the coverage.
    for name, sentences in (("mls/es/train", MLS_TRAIN), ("voxpopuli/es/train", VOXPOPULI_TRAIN),
                            ("common_voice/es/train", CV_TRAIN)):
        line = next(x for x in out.splitlines() if x.strip().startswith(name))
        assert f"{len(sentences)} sentences" in line, line
        assert f"{sum(map(len, sentences))} characters" in line, line
    assert "(lipjax_common_voice/es)" in out  # lipjax's own Common Voice builder
    assert (f"vocabulary: {sp.get_piece_size()} pieces (lowered from the 1000 requested"
            in out), out
    assert "character coverage: 1.0" in out
    assert str(languages.get("es").tokenizer_path(data_dir)) in out


def test_a_character_that_cannot_be_encoded_fails_and_writes_nothing(data_dir, capsys):
    """At character_coverage 0.98 SentencePiece leaves out the text's rarest characters outside
    the alphabet: here the one "ç"."""
    path = languages.get("es").tokenizer_path(data_dir)
    before = path.read_bytes() if path.exists() else None
    code = tokenizer.main(["es", "--sources", SOURCES, "--data_dir", data_dir,
                       "--character_coverage", "0.98"])
    err = capsys.readouterr().err
    assert code == 1
    assert "'ç' (U+00E7)" in err and "'françois llegó tarde' (voxpopuli/es/train)" in err, err
    assert "Nothing was written" in err
    assert (path.read_bytes() if path.exists() else None) == before


def test_vocabulary_too_small_for_the_characters(data_dir, capsys):
    code = tokenizer.main(["es", "--sources", SOURCES, "--data_dir", data_dir,
                       "--vocab", "20"])
    err = capsys.readouterr().err
    assert code == 1 and "A vocabulary of 20 pieces cannot hold" in err, err
    assert "--vocab " in err


def test_source_not_built_names_the_build_command(data_dir, capsys):
    code = tokenizer.main(["es", "--sources", "mls/es/train+common_voice/pt/train",
                       "--data_dir", data_dir])
    err = capsys.readouterr().err
    assert code == 1
    assert "lipjax_common_voice/pt is not built" in err, err
    assert (f"python -m data_builders common_voice --manual_dir <the corpus as downloaded> "
            f"--data_dir {data_dir} --config pt") in err


def test_malformed_and_wrong_language_sources(data_dir, capsys):
    assert tokenizer.main(["es", "--sources", "mls/es", "--data_dir", data_dir]) == 1
    assert "each source is builder/config/split" in capsys.readouterr().err
    assert tokenizer.main(["es", "--sources", "voxpopuli/fr/train",
                       "--data_dir", data_dir]) == 1
    assert "its examples are in language 'fr', not 'es'" in capsys.readouterr().err
    assert tokenizer.main(["es", "--sources", "mls/es/dev", "--data_dir", data_dir]) == 1
    assert "has no split 'dev'; it has test, train, validation" in capsys.readouterr().err


def test_config_built_under_another_name(data_dir, tmp_path):
    """`--name` gives a config the builder's list does not hold: read from its files."""
    report = tokenizer.build_tokenizer("es", "mls/es_sample/train", data_dir, vocab_size=60)
    assert report.sources[0].texts == MLS_TRAIN
    assert report.sources[0].dataset == "mls/es_sample"


def test_help_lists_the_options():
    """Through the command users type: `python -m data_builders tokenizer --help`."""
    import subprocess
    import sys

    repo = pathlib.Path(__file__).resolve().parents[1]
    res = subprocess.run([sys.executable, "-m", "data_builders", "tokenizer", "--help"],
                         cwd=repo, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    for option in ("--sources", "--data_dir", "--vocab", "--character_coverage"):
        assert option in res.stdout
