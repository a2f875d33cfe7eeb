"""Training: optimizer, sharding over devices and hosts, checkpoints, metrics, and the trainers."""
