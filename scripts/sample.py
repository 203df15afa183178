"""Sample names from a trained checkpoint: use the `makemore-sample` command; this is its wrapper.

makemore-sample outputs/runs/<run> [--count N --seed S --prefix P]
"""

import sys

from makemore_lab.cli.sample import main

if __name__ == "__main__":
    sys.exit(main())
