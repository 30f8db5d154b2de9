"""The training loop and what it is made of: the Trainer, its config, optimizers,
the learning-rate schedule, the log window and checkpoint files."""
