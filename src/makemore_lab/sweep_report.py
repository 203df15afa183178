"""`makemore_lab.sweep_report.SweepReport`: the public name that conf/, older configs and older
checkpoints use; the class lives in `makemore_lab.reports.sweep_report`."""

from makemore_lab.reports.sweep_report import SweepReport

__all__ = ["SweepReport"]
