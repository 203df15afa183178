"""A sweep's per-layer activation table: use `makemore-table --layers`; this is its wrapper.

makemore-table outputs/multiruns/<timestamp> --layers [--step N]
"""

import sys

from makemore_lab.cli.table import main

if __name__ == "__main__":
    sys.exit(main([*sys.argv[1:], "--layers"]))
