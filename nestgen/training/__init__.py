"""Training: optimizer, checkpoints, metrics, and the trainers."""
