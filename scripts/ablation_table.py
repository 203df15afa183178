"""A sweep's ablation table and plots: use the `makemore-table` command; this is its wrapper.

makemore-table outputs/multiruns/<timestamp> [--reference]
"""

import sys

from makemore_lab.cli.table import main

if __name__ == "__main__":
    sys.exit(main())
