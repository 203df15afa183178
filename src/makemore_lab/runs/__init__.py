"""A run's directory and records: metrics.json, the run claim, checkpoints, resume, summaries."""
