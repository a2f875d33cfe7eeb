"""Moved: `python scripts/package.py classifier` (nestgen/release/). This old name only says so."""

from nestgen.cli import moved

moved("scripts/package_classifier.py", "python scripts/package.py classifier")
