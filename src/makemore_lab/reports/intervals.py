"""What several seeds say: a mean with its 95% confidence interval, and a difference with a verdict.

Student's t-interval, not the bootstrap: at the 3-10 seeds users run, percentile and BCa
bootstrap intervals cover well below their nominal 95% (they never reach beyond the values
seen), and BCa is undefined on constant data. The t-interval assumes the seeds' results are
roughly normal, which final losses of one config are; tests/test_intervals.py checks its
coverage by simulation.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

LEVEL = 0.95  # the confidence level of every interval the tables and figures show


@dataclass(frozen=True)
class Estimate:
    """A mean over seeds, its confidence interval (None with one seed) and the spread."""

    mean: float
    low: float | None
    high: float | None
    std: float | None  # the seeds' standard deviation (for a difference: of the differences)
    n: int
    paired: bool = False  # a difference taken seed by seed


def t_quantile(p: float, df: float) -> float:
    """Student's t quantile. scipy.stats is imported here, when a table needs it, not above:
    it takes 0.6 s, and every run imports this module (through the sweep report's callback)."""
    from scipy import stats

    return float(stats.t.ppf(p, df))


def t_interval(values: Sequence[float], level: float = LEVEL) -> Estimate:
    """The mean of `values` and Student's t confidence interval of it."""
    n = len(values)
    mean = statistics.fmean(values)
    if n < 2:
        return Estimate(mean, None, None, None, n)
    std = statistics.stdev(values)
    half = t_quantile(0.5 + level / 2, n - 1) * std / math.sqrt(n)
    return Estimate(mean, mean - half, mean + half, std, n)


def welch_interval(a: Sequence[float], b: Sequence[float], level: float = LEVEL) -> Estimate:
    """mean(a) - mean(b) with Welch's interval (unequal variances, seeds not matched)."""
    mean = statistics.fmean(a) - statistics.fmean(b)
    n = min(len(a), len(b))
    if n < 2:
        return Estimate(mean, None, None, None, n)
    va, vb = statistics.variance(a) / len(a), statistics.variance(b) / len(b)
    se = math.sqrt(va + vb)
    if se == 0:
        return Estimate(mean, mean, mean, 0.0, n)
    df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    half = t_quantile(0.5 + level / 2, df) * se
    return Estimate(mean, mean - half, mean + half, se * math.sqrt(n), n)


def difference(
    values: Sequence[tuple[int, float]], baseline: Sequence[tuple[int, float]]
) -> Estimate:
    """values - baseline, each as (seed, value) pairs: paired seed by seed when both hold the
    same seeds once each (the seed's shared luck cancels), else Welch's interval."""
    mine, theirs = dict(values), dict(baseline)
    same = mine.keys() == theirs.keys() and len(mine) == len(values) == len(baseline)
    if same and len(mine) >= 2:
        paired = t_interval([mine[s] - theirs[s] for s in sorted(mine)])
        return Estimate(paired.mean, paired.low, paired.high, paired.std, paired.n, paired=True)
    return welch_interval([v for _, v in values], [v for _, v in baseline])


def verdict(diff: Estimate) -> str:
    """In words, for a loss (lower is better): better, worse, or not distinguishable."""
    if diff.low is None or diff.high is None:
        return "one seed: no interval"
    if diff.high < 0:
        return "better"
    if diff.low > 0:
        return "worse"
    return f"not distinguishable with {diff.n} seeds"
