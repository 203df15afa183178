"""Config values checked before anything runs (one paragraph per bad value)."""
