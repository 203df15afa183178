"""Sample names from a trained makemore-lab checkpoint.

makemore-sample outputs/runs/<run>                # its checkpoints/last.ckpt
makemore-sample path/to/file.ckpt --count 10 --seed 1 --prefix em
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from makemore_lab.errors import UserError


def ranged(low: int, high: int) -> Callable[[str], int]:
    """An argparse type: an integer from `low` to `high`, else argparse's one-line error."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{value} is not from {low} to {high}")
        return value

    return parse


def parser() -> argparse.ArgumentParser:
    """The command line of `makemore-sample`: a checkpoint or run directory, and how to sample."""
    parser = argparse.ArgumentParser(
        prog="makemore-sample",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "checkpoint", help="a .ckpt file, or a run directory holding checkpoints/last.ckpt"
    )
    parser.add_argument(
        "--count", type=ranged(1, 10**6), default=20, help="how many names (default 20)"
    )
    parser.add_argument(
        "--seed",
        type=ranged(0, 2**63 - 1),
        default=2147483647 + 10,
        help="sampling seed (the lecture's)",
    )
    parser.add_argument("--prefix", default="", help="start every name with these characters")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Print `--count` names, one a line; exit 2 with one paragraph on a bad checkpoint/prefix."""
    args = parser().parse_args(argv)
    # torch loads only once the arguments are good: `--help` and typos answer at once
    from makemore_lab.network.sampling import sample_names
    from makemore_lab.runs.checkpoints import load_checkpoint

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
