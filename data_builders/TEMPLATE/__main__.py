"""`python -m data_builders.<name> build|tokenizer|train ...`: data_builders/my_corpus/cli.py."""

from data_builders.my_corpus import cli

if __name__ == "__main__":
    cli.main(__package__)
