"""The generation handlers: Generate, Class grid, Interpolate, Level mixing, Project. Each takes the app's state
(`events.AppState`) and what the tab's widgets send, and returns what they show; bad input raises the generator
service's `InputError` (a missing generator `ModelMissing`), which `events.as_event` turns into the visitor's
message. `generation_tabs.py` wires them to the widgets.
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Sequence

import numpy as np
from PIL import Image

from nestgen.data.classes import file_safe
from nestgen.drawing.pictures import captioned_grid, drawable_labels, labelled_grid, save_gif, save_mp4, save_png
from nestgen.serving.events import AppState, big, gr, plural, upload
from nestgen.serving.generator_service import ANY_CLASS
from nestgen.serving.inputs import MAX_SEED, InputError

DOWNLOAD_CELL = 128  # pixels of a sample in a downloaded, captioned grid
ALONE = 256  # pixels (at least) of a sample downloaded alone


def level_span(high: int, low: int) -> str:
    return f"level {high}" if high == low else f"levels {high}–{low}"


def file_span(seeds: Sequence[int]) -> str:
    """Seeds in a file name (ASCII only): seed7, seeds7-11."""
    return f"seed{seeds[0]}" if len(seeds) == 1 else f"seeds{seeds[0]}-{seeds[-1]}"


def seed_span(seeds: Sequence[int]) -> str:
    return f"seed {seeds[0]}" if len(seeds) == 1 else f"seeds {seeds[0]}–{seeds[-1]}"


def parse_caption(caption) -> tuple[int, str]:
    """A gallery caption "seed 42 · cat" (or "seed 42" from an unconditional model) → (42, "cat" or any class)."""
    match = re.match(r"seed (\d+)(?: · (.+))?$", caption or "")
    if not match:
        raise InputError("no sample selected yet: generate some first")
    return int(match[1]), match[2] or ANY_CLASS


def generate(app: AppState, class_value, seed, count, truncation, progress=gr.Progress()):  # noqa: B008 - a hook
    """class, first seed, count, ψ → gallery captioned "seed · class", the captioned grid PNG, a status line."""
    service = app.predictor.need("generator", progress)
    start = time.perf_counter()
    images, seeds, labels = service.sample(seed, count, class_value, truncation,
                                           progress=lambda done, total: progress((done, total), unit="images"))
    names = [service.class_name(y) for y in labels]
    captions = [f"seed {s}" + (f" · {n}" if n else "") for s, n in zip(seeds, names, strict=True)]
    picture = captioned_grid(images, captions, columns=min(8, len(images)), cell=DOWNLOAD_CELL)
    grid_file = save_png(picture, app.scratch.path(f"nestgen-samples-{file_span(seeds)}", ".png"))
    status = (f"{plural(len(seeds), 'sample')}, {seed_span(seeds)}, class {class_value or ANY_CLASS}, "
              f"ψ = {float(truncation):g} ({time.perf_counter() - start:.2f} s). Click a sample, then "
              "“Explain this sample” to ask the classifier.")
    gallery = app.save_all([(big(im), c) for im, c in zip(images, captions, strict=True)], "sample")
    return gallery, str(grid_file), status


def sample_alone(app: AppState, shown_file: str, caption: str) -> str:
    """One sample of the gallery (its file, written by `generate`, never a client's path) → a PNG of it alone,
    enlarged by a whole factor to at least 256 px (nearest-neighbour: each generated pixel stays a square of
    one colour) and captioned, named after its seed and class (nestgen-sample-seed42-cat.png)."""
    with Image.open(shown_file) as opened:
        image = np.asarray(opened.convert("RGB"))  # (S', S', 3): the sample, already enlarged by a whole factor
    cell = image.shape[1] * max(1, -(-ALONE // image.shape[1]))
    seed, name = parse_caption(caption)
    stem = f"nestgen-sample-seed{seed}" + (f"-{file_safe(name, 'class')}" if name != ANY_CLASS else "")
    picture = captioned_grid(image[None], [caption], columns=1, cell=cell)
    return str(save_png(picture, app.scratch.path(stem, ".png")))


def new_seeds(app: AppState, class_value, count, truncation, progress=gr.Progress()):  # noqa: B008
    """A random first seed, and its samples."""
    seed = secrets.randbelow(MAX_SEED - app.predictor.limits.max_samples)
    return (seed, *generate(app, class_value, seed, count, truncation, progress))


def class_grid(app: AppState, seed, count, truncation, progress=gr.Progress()):  # noqa: B008
    """first seed, seeds per class, ψ → one row per class (the model card's picture, live), the PNG, status."""
    service = app.predictor.need("generator", progress)
    start = time.perf_counter()
    progress(0, desc="sampling every class")
    images, seeds = service.class_grid(seed, count, truncation)
    names, note = drawable_labels(service.sampler.class_names)  # '#3' for a name the label font cannot draw
    picture = labelled_grid(images, names, [f"seed {s}" for s in seeds], cell=96, corner="class / seed")
    path = save_png(picture, app.scratch.path(f"nestgen-class-grid-{file_span(seeds)}", ".png"))
    status = (f"{len(images)} classes × {plural(len(seeds), 'seed')} ({seed_span(seeds)}), "
              f"ψ = {float(truncation):g} ({time.perf_counter() - start:.2f} s)" + (f"; {note}" if note else ""))
    return str(path), str(path), status


def _end(seed, w) -> str:
    """One end of an interpolation in a file name."""
    return "projected" if w is not None else f"seed{int(float(seed))}" if seed is not None else "seed"


def _describe(seed, class_value, w) -> str:
    """One end of an interpolation in the status line."""
    return "the projected image" if w is not None else f"seed {seed} ({class_value or ANY_CLASS})"


def interpolate(app: AppState, seed_a, class_a, seed_b, class_b, frames, truncation, w_a=None, w_b=None,
                progress=gr.Progress()):  # noqa: B008
    """Two ends (seed, class) — or a projected w for either — → the frames on the straight line between their
    w, a looping GIF, the GIF and an MP4 to download, a status line."""
    step = "range of w" if w_a is not None or w_b is not None else None  # a projected w is checked against it
    service = app.predictor.need("generator", progress, step)
    start = time.perf_counter()
    progress(0, desc="interpolating")
    images = service.interpolate(seed_a, class_a, seed_b, class_b, frames, truncation, w_a, w_b)
    name = f"nestgen-interpolation-{_end(seed_a, w_a)}-{_end(seed_b, w_b)}"
    scale = max(1, 256 // images.shape[1])
    gif = save_gif(images, app.scratch.path(name, ".gif"), scale=scale)
    try:
        mp4 = str(save_mp4(images, app.scratch.path(name, ".mp4"), scale=scale))
    except ImportError:  # the encoder is part of the app extra; without it the GIF still works
        mp4 = None
    steps = np.linspace(0.0, 1.0, len(images))
    frames_out = app.save_all([(big(im), f"t = {t:.2f}") for im, t in zip(images, steps, strict=True)], "frame")
    ends = (_describe(seed_a, class_a, w_a), _describe(seed_b, class_b, w_b))
    status = (f"{plural(len(images), 'frame')} from {ends[0]} to {ends[1]}, ψ = {float(truncation):g} "
              f"({time.perf_counter() - start:.2f} s); the GIF plays forward and back")
    return frames_out, str(gif), str(gif), mp4, status


def mix_levels(app: AppState, coarse, fine, crossover, class_value, truncation, progress=gr.Progress()):  # noqa: B008
    """Coarse seeds (rows), fine seeds (columns), crossover level, class, ψ → the labelled grid, its PNG,
    a status line. Levels ≥ crossover (root included) come from the row's seed, finer levels from the column's."""
    service = app.predictor.need("generator", progress, "level mixing")
    start = time.perf_counter()
    progress(0, desc="mixing levels")
    images, rows, columns, crossover = service.mix(coarse, fine, crossover, class_value, truncation)
    top = service.num_levels - 1
    coarse, fine = level_span(top, crossover), level_span(crossover - 1, 0)
    picture = labelled_grid(images, [f"seed {s}" for s in rows], [f"seed {s}" for s in columns], cell=96,
                            corner=f"{coarse} / {fine}".replace("–", "-"))  # the caption font has no en dash
    path = save_png(picture, app.scratch.path(f"nestgen-level-mixing-{crossover}", ".png"))
    status = (f"{len(rows)} × {len(columns)} images: {coarse} (coarse: layout, colours) from the row's seed, "
              f"{fine} (fine: texture, detail) from the column's seed; class {class_value or ANY_CLASS}, "
              f"ψ = {float(truncation):g} ({time.perf_counter() - start:.2f} s)")
    return str(path), str(path), status


def project(app: AppState, image, class_value, steps, progress=gr.Progress()):  # noqa: B008
    """upload, class, steps → target | reconstruction side by side, the projected w (a list, for
    `interpolate`'s w_a / w_b), a status line with the distance."""
    service = app.predictor.need("generator", progress, "projection")
    source = upload(image, service.limits.max_upload_bytes)
    report = lambda done, total: progress((done, total), desc="projecting", unit="steps")  # noqa: E731
    projection, size = service.project(source, class_value, steps, progress=report)
    pair = np.concatenate([big(projection.target, 256), big(projection.image, 256)], axis=1)  # (S', 2S', 3)
    which = "" if projection.class_index is None else f" as {service.class_name(projection.class_index)}"
    status = (f"Projected your {size[0]}×{size[1]} image{which} in {projection.steps} steps "
              f"({projection.seconds:.1f} s): PSNR {projection.psnr:.1f} dB, mean absolute error "
              f"{projection.mae:.1f} / 255 per channel. Left: what the generator was shown; right: its best "
              "reconstruction.")
    return app.save(pair, "projection"), [float(v) for v in projection.w], status
