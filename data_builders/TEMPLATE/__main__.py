"""`python -m data_builders.<name> build|tokenizer|train|evaluate|transcribe ...`: see
data_builders/my_corpus/cli.py."""

import sys

from data_builders.my_corpus import cli

if __name__ == "__main__":
    sys.exit(cli.main(__package__))
