"""Releases: a trained model (a trainer's export, a CPU relay's committed state, a GPU window's returned folder)
made into a shipped checkpoint with its model card, behind `scripts/package.py`."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_source_arguments(parser: argparse.ArgumentParser, export_help: str, relay_help: str) -> None:
    """The options every release takes: where the model comes from (`--export DIR` or `--relay JOB`, with
    `--state-dir`), `--output`, and the card's provenance for an export (`--hardware`, `--train-time`,
    `--train-command`; a relay's come from its record, `nestgen.release.relay.release_export`)."""
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--export", help=export_help)
    source.add_argument("--relay", metavar="JOB", help=relay_help)
    parser.add_argument("--state-dir", type=Path, default=None, help="with --relay: where the states live "
                        "(default: relay/)")
    parser.add_argument("--output", required=True, help="the checkpoint directory to write, e.g. checkpoints/NAME")
    parser.add_argument("--hardware", help="with --export: the machine that trained it")
    parser.add_argument("--train-time", help="with --export: how long it trained")
    parser.add_argument("--train-command", help="with --export: the command that trained it")
