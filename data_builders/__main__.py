"""`python -m data_builders NAME --manual_dir DIR ...`: builds a corpus (data_builders/build.py).

`python -m data_builders tokenizer LANG --sources BUILDER/CONFIG/SPLIT+...`: trains a language's
SentencePiece model from built corpora (lipjax/data/tokenizer.py). A program, not a library:
nothing imports it, so it may reach the loader's layer above the builders.
"""

import sys

from data_builders import build

if __name__ == "__main__":
    if sys.argv[1:2] == ["tokenizer"]:
        from lipjax.data import tokenizer

        sys.exit(tokenizer.main(sys.argv[2:]))
    sys.exit(build.main())
