"""`python -m data_builders NAME --manual_dir DIR ...`: builds a corpus (data_builders/build.py);
`python -m data_builders tokenizer LANG --sources ...`: trains a language's tokenizer on built
text (lipjax/data/tokenizer.py)."""

import sys

from data_builders import build

if __name__ == "__main__":
    sys.exit(build.main())
