"""The app's event handlers: one method per event, taking what the UI components send and returning what they
show. The tests call them directly; `ui.py` wires them to the components. Invalid input raises gr.Error with a
one-line reason, and the server keeps serving. Imports Gradio (`pip install -e ".[app]"`).
"""

from __future__ import annotations

import base64
import binascii
import secrets
import time
from collections.abc import Sequence

import numpy as np
from PIL import Image

from nestgen.evaluation.sampling import grid, save_gif, save_png
from nestgen.explain.gradcat import Explanation
from nestgen.explain.overlay import draw_path, heat_map
from nestgen.serving import require_gradio
from nestgen.serving.inputs import MAX_SEED, InputError, Scratch
from nestgen.serving.predictor import ANY_CLASS, PREDICTED, Predictor

gr = require_gradio()

PANEL = 256  # pixels of every overlay / heat-map panel
PATH_HEADERS = ["level", "block", "top", "left", "bottom", "right", "score"]


def upload(value, max_bytes: int):
    """An image input as the handler receives it (events taking uploads run with Gradio's preprocessing off, so
    Gradio never decodes an upload itself: every file reaches `read_image` and its messages) → a path or bytes."""
    if not isinstance(value, dict):
        return value  # None, a path or bytes (direct calls)
    url = value.get("url") or ""
    if not value.get("path") and url.startswith("data:"):
        if len(url) > max_bytes * 4 // 3 + 1024:  # base64 is 4/3 of the bytes
            raise gr.Error(f"the pasted image is over the {max_bytes / 2**20:g} MiB limit", print_exception=False)
        try:
            return base64.b64decode(url.partition(",")[2], validate=True)
        except (binascii.Error, ValueError) as error:
            raise gr.Error("the pasted data is not a base64 image", print_exception=False) from error
    return value.get("path")


def _big(image: np.ndarray | Image.Image, size: int = 128) -> Image.Image:
    """Small samples enlarged with nearest-neighbour, so the browser shows pixels instead of blur."""
    image = image if isinstance(image, Image.Image) else Image.fromarray(image)
    scale = max(1, size // max(image.size))
    return image.resize((image.width * scale, image.height * scale), Image.Resampling.NEAREST)


def path_rows(path) -> list[list]:
    return [[n.level, n.block, *n.box, round(n.score, 6)] for n in path]


def level_maps(image: Image.Image, explanation: Explanation, negate: bool = False) -> list[tuple[Image.Image, str]]:
    """One heat map per level on the path, root first, captioned with the level and its block grid."""
    top = len(explanation.level_scores) - 1
    maps = []
    for node in explanation.path:
        scores = explanation.level_scores[node.level]
        role = " (root)" if node.level == top else " (leaf)" if node.level == 0 else ""
        caption = f"level {node.level}{role}: {scores.shape[0]}×{scores.shape[1]} blocks"
        maps.append((heat_map(image, -scores if negate else scores, PANEL), caption))
    return maps


class Handlers:
    """The event functions. Invalid input raises gr.Error with the reason; the server keeps serving."""

    def __init__(self, predictor: Predictor, scratch: Scratch | None = None):
        self.predictor, self.scratch = predictor, scratch or Scratch()

    def _need(self, role: str):
        service = getattr(self.predictor, role)
        if service is None:
            raise gr.Error(self.predictor.missing.get(role, f"no {role} is loaded"))
        return service

    def _file(self, image: np.ndarray | Image.Image, stem: str) -> str:
        """Every output image goes to Gradio as a PNG file of its own: Gradio copies files into its cache
        atomically, while the PIL images it saves itself are rewritten in place, and a visitor can download a
        half-written one when two requests produce the same picture (found by the load test)."""
        return str(save_png(np.asarray(image), self.scratch.path(stem, ".png")))

    def _files(self, captioned: Sequence[tuple[np.ndarray | Image.Image, str]], stem: str) -> list[tuple[str, str]]:
        return [(self._file(image, f"{stem}{i}"), caption) for i, (image, caption) in enumerate(captioned)]

    @staticmethod
    def _call(fn, *args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except InputError as error:
            raise gr.Error(str(error), print_exception=False) from error

    def classify(self, image, target=PREDICTED, progress=gr.Progress()):  # noqa: B008 - Gradio's progress hook
        """upload, target class → top-k label, GradCAT boxes, Grad-CAM, per-level maps, the path, a summary."""
        service = self._need("classifier")
        progress(0, desc="classifying and explaining")
        result = self._call(service.classify, upload(image, service.limits.max_upload_bytes), target)
        e = result.explanation
        leaf = e.leaf
        which = "the predicted class" if result.predicted else "the chosen class"
        summary = (f"GradCAT for **{e.class_name}** ({which}, p = {e.probability:.1%}): the path ends at block "
                   f"{leaf.block} of level 0, pixels rows {leaf.box[0]}–{leaf.box[2]}, columns {leaf.box[1]}–"
                   f"{leaf.box[3]} of the {e.image_size}×{e.image_size} input.")
        label = {name: probability for name, _, probability in result.top_k}
        return (label, self._file(draw_path(result.image, e, PANEL), "gradcat"),
                self._file(heat_map(result.image, result.gradcam, PANEL), "gradcam"),
                self._files(level_maps(result.image, e), "level"), path_rows(e.path), summary)

    def generate(self, class_value, seed, count, truncation, progress=gr.Progress()):  # noqa: B008
        """class, first seed, count, ψ → gallery captioned with seeds, the grid as a PNG file, a summary."""
        service = self._need("generator")
        start = time.perf_counter()
        images, seeds, labels = self._call(service.sample, seed, count, class_value, truncation,
                                           progress=lambda done, total: progress((done, total), unit="images"))
        captions = [f"seed {s}" + (f" · {service.class_name(y)}" if service.conditional else "")
                    for s, y in zip(seeds, labels, strict=True)]
        picture = save_png(grid(images, min(8, len(images))), self.scratch.path(f"grid-seed{seeds[0]}", ".png"))
        summary = (f"{len(seeds)} samples, seeds {seeds[0]}–{seeds[-1]}, class {class_value or ANY_CLASS}, "
                   f"ψ = {float(truncation):g} ({time.perf_counter() - start:.2f} s)")
        gallery = self._files([(_big(im), c) for im, c in zip(images, captions, strict=True)], "sample")
        return gallery, str(picture), summary

    def new_seeds(self, class_value, count, truncation, progress=gr.Progress()):  # noqa: B008
        """A random first seed, and its samples."""
        limit = MAX_SEED - self.predictor.limits.max_samples
        seed = secrets.randbelow(limit)
        return (seed, *self.generate(class_value, seed, count, truncation, progress))

    def interpolate(self, seed_a, class_a, seed_b, class_b, frames, truncation, progress=gr.Progress()):  # noqa: B008
        """Two (seed, class) ends → the frames on the straight line between their w, and a looping GIF."""
        service = self._need("generator")
        progress(0, desc="interpolating")
        images = self._call(service.interpolate, seed_a, class_a, seed_b, class_b, frames, truncation)
        scale = max(1, 128 // images.shape[1])
        gif = save_gif(images, self.scratch.path(f"interpolation-{int(seed_a)}-{int(seed_b)}", ".gif"), scale=scale)
        steps = np.linspace(0.0, 1.0, len(images))
        return self._files([(_big(im), f"t = {t:.2f}") for im, t in zip(images, steps, strict=True)], "frame"), str(gif)

    def discriminator_sample(self, seed, class_value):
        """A generated image to judge (the seed's own class for 'any'), and the class it was generated as."""
        generator = self._need("generator")
        names = generator.sampler.class_names if generator.conditional else []
        images, _, labels = self._call(generator.sample, seed, 1, class_value if class_value in names else None)
        return self._file(images[0], f"sample-seed{int(seed)}"), (generator.class_name(labels[0]) if names else
                                                                   class_value)

    def explain_discriminator(self, image, class_value):
        """image, class → D's verdict, the path of blocks that most look fake (and most real), per-level maps."""
        service = self._need("discriminator")
        verdict = self._call(service.explain, upload(image, service.limits.max_upload_bytes), class_value)
        as_class = f" as **{verdict.class_name}**" if service.conditional else ""
        real, fake = verdict.real.leaf, verdict.fake.leaf
        summary = (f"D scores this image{as_class} {verdict.score:+.3f}: P(real) = {verdict.p_real:.1%}. The blocks "
                   f"that most look fake end at block {fake.block} of level 0 (rows {fake.box[0]}–{fake.box[2]}, "
                   f"columns {fake.box[1]}–{fake.box[3]}); the most real-looking at block {real.block}.")
        return (summary, self._file(draw_path(verdict.image, verdict.fake, PANEL), "fake"),
                self._file(draw_path(verdict.image, verdict.real, PANEL), "real"),
                self._files(level_maps(verdict.image, verdict.fake, negate=True), "fake-level"),
                path_rows(verdict.fake.path))
