"""The command-line programs: makemore-train (the Hydra app), makemore-sample, makemore-table."""
