"""Training one job: the engine base, the solo engine, its LightningModule, steps, signals."""
