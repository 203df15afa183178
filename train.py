"""Train makemore-lab from the repository root: `python train.py [-m] [overrides...]`.

All the work is in src/makemore_lab/train.py; this file only makes the package importable
without installation and hands the command line to Hydra.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "src"))

from makemore_lab.train import main

if __name__ == "__main__":
    main()
