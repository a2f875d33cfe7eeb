"""The trained models this repository ships (in `checkpoints/`), used by default by the scripts and the app."""

from __future__ import annotations

from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[1]
CHECKPOINTS = REPOSITORY / "checkpoints"
DEFAULT_CLASSIFIER = CHECKPOINTS / "classifier-cifar10-nest_mini_32"
DEFAULT_GENERATOR = CHECKPOINTS / "gan-cifar10-nest_gen_micro_32_cond"
# FD_NesT's feature network, pinned: every FD_NesT in the cards, the relay's curves and the README was measured in
# this (the first shipped) classifier's pooled features, so it stays the feature network when a better classifier
# becomes the default (FD in another network's features is another scale; spec.md §5)
FD_FEATURES = "nest:checkpoints/classifier-cifar10-nest_micro_32"


def default_classifier() -> Path:
    """The shipped CIFAR-10 classifier; a clear error when running outside a checkout that has it."""
    if not (DEFAULT_CLASSIFIER / "config.json").is_file():
        raise FileNotFoundError(
            f"the shipped classifier {DEFAULT_CLASSIFIER} is missing: run from a nestgen checkout (pip install -e .) "
            "or pass --checkpoint DIR (train one with scripts/train_classifier.py)")
    return DEFAULT_CLASSIFIER


def default_generator() -> Path:
    """The shipped CIFAR-10 generator; a clear error naming the command that trains one when it is missing."""
    if not (DEFAULT_GENERATOR / "config.json").is_file():
        raise FileNotFoundError(
            f"no shipped generator at {DEFAULT_GENERATOR}: pass --checkpoint DIR, or train one with "
            "python scripts/train_gan.py --config configs/gan_cifar10.py:cpu --workdir runs/gan-cpu "
            "(the generator is exported to runs/gan-cpu/export)")
    return DEFAULT_GENERATOR
