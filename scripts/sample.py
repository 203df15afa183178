"""Sample names from a trained makemore-lab checkpoint.

python scripts/sample.py outputs/runs/<run>                # its checkpoints/last.ckpt
python scripts/sample.py path/to/file.ckpt --count 10 --seed 1 --prefix em
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from makemore_lab.errors import UserError
from makemore_lab.sampling import load_checkpoint, sample_names


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "checkpoint", help="a .ckpt file, or a run directory holding checkpoints/last.ckpt"
    )
    parser.add_argument("--count", type=int, default=20, help="how many names (default 20)")
    parser.add_argument(
        "--seed", type=int, default=2147483647 + 10, help="sampling seed (the lecture's)"
    )
    parser.add_argument("--prefix", default="", help="start every name with these characters")
    args = parser.parse_args(argv)
    try:
        net, vocab, _ = load_checkpoint(args.checkpoint)
        for name in sample_names(net, vocab, count=args.count, seed=args.seed, prefix=args.prefix):
            print(name)
    except UserError as err:
        print(f"makemore-lab: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
