"""`python -m lipjax.preprocess IN_DIR OUT_DIR ...`: lipjax/preprocess/crop_folder.py."""

import sys

from lipjax.preprocess.crop_folder import main

if __name__ == "__main__":
    sys.exit(main())
