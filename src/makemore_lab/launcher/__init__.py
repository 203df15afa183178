"""The stacked launcher (hydra/launcher=stacked): which jobs stack, groups, side by side."""
