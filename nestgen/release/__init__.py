"""Releases: a trained model (a trainer's export, a CPU relay's committed state, a GPU window's returned folder)
made into a shipped checkpoint with its model card, behind `scripts/package.py`."""
