"""The explaining side of the app's events: Classify & explain (an upload, an example or a generated sample) and
Explain the discriminator. Each method takes what the UI components send and returns what they show; invalid
input raises gr.Error with a one-line reason. `legend_html` is the colour key shown beside the explanation.
"""

from __future__ import annotations

from PIL import Image

from nestgen.explain.gradcat import Explanation
from nestgen.explain.overlay import LEVEL_COLOURS, RAMP, draw_path, heat_map, on_source
from nestgen.serving.events import SESSION, BaseHandlers, gr, reports_failures, upload
from nestgen.serving.inputs import check_fraction, read_image
from nestgen.serving.predictor import PREDICTED

PANEL = 256  # pixels of every overlay / heat-map panel
ON_UPLOAD = 1024  # longest side (pixels) of the explanation drawn over the upload; larger uploads are scaled down
PATH_HEADERS = ["level", "block", "pixels (top, left, bottom, right)", "score"]
SCORE_WORDS = {
    "magnitude": "Σ |A ⊙ G| over the block's tokens and channels: how strongly the block's features (A) drive "
                 "the class score, through its gradient (G), whatever the sign",
    "signed": "Σ A ⊙ G over the block's tokens and channels (spec.md §4): positive blocks raise the class score, "
              "negative ones lower it",
}


def _css(colour) -> str:
    return "rgb({}, {}, {})".format(*(int(c) for c in colour))


def legend_html(score: str, num_levels: int) -> str:
    """The colour key of the explanation panels: box colour per level, the heat-map ramp, and what a score is."""
    top = num_levels - 1
    swatches = "".join(
        f'<span class="swatch" style="border-color:{_css(LEVEL_COLOURS[depth % len(LEVEL_COLOURS)])}"></span>'
        f"level {top - depth}{' (root)' if depth == 0 else ' (leaf)' if depth == top else ''} "
        for depth in range(num_levels))
    ramp = ", ".join(_css(c) for c in RAMP)
    return (f'<div class="legend"><p><b>Boxes</b> (path panel): {swatches}— GradCAT starts at the root block and at '
            "each level steps into the child block with the highest score; the smallest box is where it ends.</p>"
            f'<p><b>Heat maps</b>: block score, low <span class="ramp" style="background:linear-gradient(to right, '
            f'{ramp})"></span> high, scaled per panel (compare blocks within a panel, not across panels). The root '
            "level is one block, so it has no map.</p>"
            f"<p><b>Score</b> ({score}): {SCORE_WORDS.get(score, score)}. The numbers in the table are these sums; "
            "they compare blocks of one image and level, not different images.</p></div>")


def path_rows(path, to_source=None) -> list[list]:
    """The path as table rows: level, block, its pixel box (in the uploaded image when `to_source` maps it), score."""
    rows = []
    for node in path:
        box = to_source(node.box) if to_source else node.box
        rows.append([node.level, node.block, ", ".join(str(v) for v in box), float(f"{node.score:.3g}")])
    return rows


def level_maps(image: Image.Image, explanation: Explanation, negate: bool = False) -> list[tuple[Image.Image, str]]:
    """One heat map per level below the root (the root is one block: no map), captioned with the level, its block
    grid and the block the path took."""
    maps = []
    for node in explanation.path[1:]:
        scores = explanation.level_scores[node.level]
        role = " (leaf)" if node.level == 0 else ""
        caption = f"level {node.level}{role}: {scores.shape[0]}×{scores.shape[1]} blocks, path → {node.block}"
        maps.append((heat_map(image, -scores if negate else scores, PANEL), caption))
    return maps


def _scaled(box, photo, source_width: int) -> tuple[float, ...]:
    """A box in the upload's own pixels → the same box in `photo`'s pixels (a large JPEG is decoded reduced)."""
    return tuple(v * photo.width / source_width for v in box)


class ExplainHandlers(BaseHandlers):
    """Classify & explain, Explain a generated sample, Explain the discriminator."""

    @reports_failures
    def classify(self, image, target=PREDICTED, progress=gr.Progress()):  # noqa: B008 - Gradio's progress hook
        """upload, target class → status line, top-5, summary, GradCAT panels (path, per-level maps, Grad-CAM),
        the path table in the upload's pixels."""
        service = self._need("classifier", progress)
        progress(0, desc="classifying and explaining")
        source = upload(image, service.limits.max_upload_bytes)
        result = self._call(service.classify, source, target)
        e, leaf = result.explanation, result.explanation.leaf
        photo = read_image(source, service.limits, target_size=ON_UPLOAD)  # for `on_upload`; read once more: it
        self.keep_for_session((photo, e, result.source_box))  # decoded above, so it is a readable image
        which = "the predicted class" if result.predicted else "the chosen class"
        width, height = result.source_size
        top, left, bottom, right = result.source_box(leaf.box)
        summary = (f"GradCAT for **{e.class_name}** ({which}, p = {e.probability:.1%}): the path ends at block "
                   f"{leaf.block} of level 0, pixels {top}–{bottom} (rows) × {left}–{right} (columns) of your "
                   f"{width}×{height} image.")
        seen_top, seen_left, seen_bottom, seen_right = result.source_box((0, 0, e.image_size, e.image_size))
        if (seen_bottom - seen_top, seen_right - seen_left) != (height, width):  # the centre crop cut the sides
            summary += (f" The model sees only the centre of your image, rows {seen_top}–{seen_bottom} × columns "
                        f"{seen_left}–{seen_right} (it crops to a square, as in training); the rest was not looked "
                        "at.")
        for warning in result.warnings:
            gr.Warning(warning, duration=6)
            summary = f"**⚠ {warning[0].upper()}{warning[1:]}.**\n\n{summary}"
        panels = [(draw_path(result.image, e, PANEL), "path: nested boxes, root red → leaf"),
                  *level_maps(result.image, e),
                  (heat_map(result.image, result.gradcam, PANEL), "Grad-CAM (level 0), for comparison")]
        best = result.top_k[0]
        status = (f"{best[0]} ({best[2]:.1%}); explained {e.class_name}"
                  + (f" — ⚠ {len(result.warnings)} warning(s) in the explanation below" if result.warnings else ""))
        label = {name: probability for name, _, probability in result.top_k}
        return (status, label, summary, self._files(panels, "gradcat"), path_rows(e.path, result.source_box))

    @reports_failures
    def on_upload(self, opacity):
        """The session's last explanation drawn over its image at the image's own resolution (up to 1024 px on the
        longer side): the leaf level's block scores blended at `opacity` (0–1) and the path's nested boxes → a PNG
        file; nothing (gr.skip) before the session's first explanation."""
        opacity = self._call(check_fraction, opacity, "heat-map opacity")
        kept = self.explained.get(SESSION.get())
        if kept is None:
            return gr.skip()
        photo, explanation, to_source = kept
        width, height = photo.info.get("source_size", photo.size)
        return self._file(on_source(photo, explanation, lambda box: _scaled(to_source(box), photo, width),
                                    opacity, ON_UPLOAD), "gradcat-on-upload")

    @reports_failures
    def explain_sample(self, seed, class_value, truncation, progress=gr.Progress()):  # noqa: B008
        """A generated sample (seed, class, ψ) → the sample's file and the classifier's view of it: the outputs of
        `classify`, the summary starting with whether the classifier sees the class it was generated as."""
        generator, _ = self._need("generator", progress), self._need("classifier", progress)
        images, seeds, labels = self._call(generator.sample, seed, 1, class_value, truncation)
        path = self._file(images[0], f"sample-seed{seeds[0]}")
        status, label, summary, panels, rows = self.classify(path, PREDICTED, progress)
        if generator.conditional:
            asked, seen = generator.class_name(labels[0]), next(iter(label))
            verdict = "agrees" if asked == seen else f"sees **{seen}** instead"
            summary = f"Generated as **{asked}** (seed {seeds[0]}); the classifier {verdict}.\n\n{summary}"
        return path, status, label, summary, panels, rows

    @reports_failures
    def discriminator_sample(self, seed, class_value):
        """A generated image to judge as one of the discriminator's classes (of that class when the generator has
        it, else the seed's own), and the class it was generated as."""
        generator, judge = self._need("generator"), self._need("discriminator")
        wanted = judge.class_names[self._call(judge.class_index, class_value)]
        names = generator.sampler.class_names if generator.conditional else []
        images, seeds, labels = self._call(generator.sample, seed, 1, wanted if wanted in names else None)
        return self._file(images[0], f"sample-seed{seeds[0]}"), generator.class_name(labels[0]) if names else wanted

    @reports_failures
    def explain_discriminator(self, image, class_value):
        """image, class → D's verdict, the path of blocks that most look fake (and most real), per-level maps."""
        service = self._need("discriminator")
        verdict = self._call(service.explain, upload(image, service.limits.max_upload_bytes), class_value)
        as_class = f" as **{verdict.class_name}**" if service.conditional else ""
        real, fake = verdict.real.leaf, verdict.fake.leaf
        top, left, bottom, right = verdict.source_box(fake.box)
        width, height = verdict.source_size or verdict.image.size
        summary = (f"D scores this image{as_class} {verdict.score:+.3f}: P(real) = {verdict.p_real:.1%}. The blocks "
                   f"that most look fake end at block {fake.block} of level 0 (rows {top}–{bottom}, columns "
                   f"{left}–{right} of your {width}×{height} image); the most real-looking at block {real.block}.")
        return (summary, self._file(draw_path(verdict.image, verdict.fake, PANEL), "fake"),
                self._file(draw_path(verdict.image, verdict.real, PANEL), "real"),
                self._files(level_maps(verdict.image, verdict.fake, negate=True), "fake-level"),
                path_rows(verdict.fake.path, verdict.source_box))

