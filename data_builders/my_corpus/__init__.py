"""my_corpus: the user's own clips + manifest CSV (`tfds.data_source("my_corpus/<config>")`).

Importing registers the builder; `MyCorpusConfig` and `Builder` are the pieces to reuse.
"""

from data_builders.my_corpus.my_corpus_dataset_builder import (  # noqa: F401
    COLUMNS,
    Builder,
    MyCorpusConfig,
    config_name,
    read_manifest,
)
