"""TODO: copy to tests/test_<name>.py. Builds the configs from dummy_data/ (a manifest and a few
short clips in this folder: make them with your own clips, or see
data_builders/my_corpus/make_dummy_data.py) and checks what came out."""

import importlib

import numpy as np

from lipjax.units import acoustic, corpus_units
from tests.manual_corpus_testing import check_builder

PACKAGE = "data_builders.TEMPLATE"  # TODO: data_builders.<name>


def test_build_video(tmp_path):
    builder = importlib.import_module(f"{PACKAGE}.builder")
    code = importlib.import_module(PACKAGE).LANGUAGE.code
    if builder.UNITS_CODEBOOK:  # the stage-1 corpus's codebook: a stand-in of its shape here
        k = int(builder.UNITS_CODEBOOK.rsplit("_k", 1)[-1])
        stand_in = np.random.default_rng(0).standard_normal((k, acoustic.feature_dim()))
        acoustic.save_codebook(corpus_units.codebook_path(tmp_path, builder.UNITS_CODEBOOK),
                               stand_in.astype(np.float32))
    # TODO: the clips per split your dummy manifest yields (bad rows are skipped and logged).
    examples, log = check_builder(builder.Builder, f"{code}_video",
                                  {"train": 2, "validation": 1, "test": 1}, tmp_path)
    first = examples["train"][0]
    assert first["language"] == code and first["video"].shape[1:] == (96, 96)
    assert first["text"]  # TODO: compare with your normalised transcript
    assert "skipped 0" in log  # TODO: or the counts of the bad rows you put in dummy_data
