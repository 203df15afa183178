"""Train makemore-lab from the repository root: `python train.py [-m] [overrides...]`.

The Hydra app is src/makemore_lab/app.py (also installed as the `makemore-train` command), the
training src/makemore_lab/train.py. This file only hands the command line to the app; the
package must be installed (`make install`, or `pip install -e .`).
"""

import sys

try:
    from makemore_lab.cli.app import main
except ModuleNotFoundError as err:
    if err.name != "makemore_lab":
        raise
    sys.exit(
        "makemore-lab: error: the makemore_lab package is not installed in this Python "
        f"({sys.executable}). Run `make install` and use .venv/bin/python, or "
        "`pip install -e .` in your environment, then run this command again."
    )

if __name__ == "__main__":
    main()
