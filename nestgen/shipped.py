"""The trained models this repository ships (in `checkpoints/`), used by default by the scripts and the app."""

from __future__ import annotations

from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[1]
CHECKPOINTS = REPOSITORY / "checkpoints"
DEFAULT_CLASSIFIER = CHECKPOINTS / "classifier-cifar10-nest_micro_32"


def default_classifier() -> Path:
    """The shipped CIFAR-10 classifier; a clear error when running outside a checkout that has it."""
    if not (DEFAULT_CLASSIFIER / "config.json").is_file():
        raise FileNotFoundError(
            f"the shipped classifier {DEFAULT_CLASSIFIER} is missing: run from a nestgen checkout (pip install -e .) "
            "or pass --checkpoint DIR (train one with scripts/train_classifier.py)")
    return DEFAULT_CLASSIFIER
