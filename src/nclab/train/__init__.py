"""Training engine: config schema, loop, evaluation, NC tracking, checkpoints, DDP."""
