"""Train makemore-lab from the repository root: `python train.py [-m] [overrides...]`.

The Hydra app is src/makemore_lab/app.py, the training src/makemore_lab/train.py. This file
only makes the package importable without installation (here and in the processes a launcher
such as submitit starts) and hands the command line to the app.
"""

import os
import sys
from pathlib import Path

SRC = str(Path(__file__).resolve().parent / "src")
sys.path.insert(0, SRC)
os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (SRC, os.environ.get("PYTHONPATH")) if p)

from makemore_lab.app import main  # noqa: E402

if __name__ == "__main__":
    main()
