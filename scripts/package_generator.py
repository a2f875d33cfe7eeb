"""Moved: `python scripts/package.py generator` (nestgen/release/). This old name only says so."""

from nestgen.cli import moved

moved("scripts/package_generator.py", "python scripts/package.py generator")
