"""A sweep's reports: the ablation table, its figures, the end-of-sweep summary."""
