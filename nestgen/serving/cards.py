"""The Models tab: the model card (README.md) of every loaded checkpoint, with the metrics its config.json records.

A checkpoint without a README gets a card built from its config; a missing shipped model is listed with the
command that trains it.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from nestgen.convert.checkpoint import Checkpoint
from nestgen.files import strip_machine_paths
from nestgen.models.registry import count_params

ROLES = (("Classifier", "classifier"), ("Generator", "generator"))


_EMAIL_LIKE = re.compile(r"(?<![`\w.])([\w.+-]+@[\w-]+\.[\w.-]*\w)(?![`\w])")
_IMAGE_LINK = re.compile(r"!\[([^\]]*)\]\(([^)\s]+)\)")


def _outside_code(markdown: str, fix) -> str:
    """Apply `fix` to the text outside code fences and `code spans`."""
    out, fenced = [], False
    for line in markdown.splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
        out.append(line if fenced else "`".join(part if i % 2 else fix(part)
                                                for i, part in enumerate(line.split("`"))))
    return "\n".join(out)


def _served_images(markdown: str, folder: Path) -> str:
    """Relative image links of a card (`![samples](samples.png)`) → URLs the app serves (`launch` allows exactly
    these files, see `card_files`)."""
    def link(match):
        path = (folder / match[2]).resolve()
        inside = path.is_file() and path.is_relative_to(folder.resolve())
        return f"![{match[1]}](/gradio_api/file={path})" if inside and "://" not in match[2] else match[0]

    return _IMAGE_LINK.sub(link, markdown)


def card_files(predictor) -> list[Path]:
    """The image files the loaded checkpoints' cards show (served by the app; nothing else of the checkpoints)."""
    files = []
    for _, checkpoint in predictor.checkpoints():
        readme = checkpoint.path / "README.md" if checkpoint.path is not None else None
        if readme is not None and readme.is_file():
            for match in _IMAGE_LINK.finditer(readme.read_text()):
                path = (checkpoint.path / match[2]).resolve()
                if path.is_file() and path.is_relative_to(checkpoint.path.resolve()):
                    files.append(path)
    return files


def _demote(markdown: str, levels: int = 2) -> str:
    """Push every heading down `levels` levels (outside code fences), so a card nests under its role's heading."""
    out, fenced = [], False
    for line in markdown.splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
        out.append("#" * levels + line if not fenced and line.startswith("#") else line)
    return "\n".join(out)


def _numbers(record: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    """The numeric entries of a (nested) metadata record, with dotted names."""
    rows = []
    for key, value in record.items():
        if isinstance(value, dict):
            rows += _numbers(value, f"{prefix}{key}.")
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            rows.append((prefix + key, value))
    return rows


def measured(checkpoint: Checkpoint) -> str:
    """The metrics recorded in config.json (`metadata.model_card` and `metadata.metrics`) as a table."""
    meta = checkpoint.metadata
    rows = _numbers(meta.get("model_card") or {}) + _numbers(meta.get("metrics") or {}, "metrics.")
    if not rows:
        return "_No measured metrics are recorded in this checkpoint's config.json._"
    lines = ["| metric | value |", "|---|---|"]
    lines += [f"| {name} | {value:.6g} |" if isinstance(value, float) else f"| {name} | {value:,} |"
              for name, value in rows]
    return "\n".join(lines)


def summary(checkpoint: Checkpoint) -> str:
    """A card for a checkpoint that ships without README.md: what the config says."""
    config = checkpoint.config.to_dict()
    shape = ", ".join(f"{k} {config[k]}" for k in ("image_size", "num_levels", "dims", "heads", "depths", "channels",
                                                    "latent_dim", "num_classes") if k in config)
    names = ", ".join(checkpoint.class_names[:12]) + (" …" if len(checkpoint.class_names) > 12 else "")
    provenance = {k: checkpoint.metadata[k] for k in ("trained_by", "converted_from", "source", "train_data", "steps")
                  if k in checkpoint.metadata}
    lines = [f"- kind: {config['kind']}; {shape}", f"- parameters: {count_params(checkpoint.params):,}"]
    if names:
        lines.append(f"- classes: {names}")
    lines += [f"- {k}: {v}" for k, v in provenance.items()]
    return "\n".join(lines)


def card(role: str, checkpoint: Checkpoint) -> str:
    path = checkpoint.path
    readme = path / "README.md" if path is not None else None
    if readme is not None and readme.is_file():
        text = _outside_code(readme.read_text(), lambda part: _EMAIL_LIKE.sub(r"`\1`", strip_machine_paths(part)))
        body = _served_images(_demote(text), path)
    else:
        body = summary(checkpoint)
    return (f"## {role}: `{path.name if path else 'in memory'}`\n\n{body}\n\n"
            f"### Measured (recorded in config.json)\n\n{measured(checkpoint)}")


def model_cards(predictor) -> str:
    """All cards of the Models tab, loaded models first, then the missing ones with how to produce them."""
    parts = [card(role, checkpoint) for role, checkpoint in predictor.checkpoints()]
    parts += [f"## {role}: not loaded\n\n{predictor.missing[key]}" for role, key in ROLES if key in predictor.missing]
    return "\n\n---\n\n".join(parts) or "No model is loaded."
