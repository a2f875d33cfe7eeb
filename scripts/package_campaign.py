"""Moved: `python scripts/package.py campaign` (nestgen/release/). This old name only says so."""

from nestgen.cli import moved

moved("scripts/package_campaign.py", "python scripts/package.py campaign")
