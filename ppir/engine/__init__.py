"""Training, evaluation and checkpointing."""
