"""The explaining handlers: Classify & explain (an upload, an example or a generated sample), the explanation drawn
over the upload, and Explain the discriminator. Each takes the app's state (`events.AppState`) and what the tab's
widgets send, and returns what they show; bad input raises the services' `InputError` (a missing model
`ModelMissing`), which `events.as_event` turns into the visitor's message. `explain_tabs.py` wires them.
"""

from __future__ import annotations

from PIL import Image

from nestgen.explain.gradcat import Explanation
from nestgen.explain.overlay import draw_path, heat_map, on_source
from nestgen.serving.classifier_service import PREDICTED
from nestgen.serving.events import AppState, gr, remember, session, upload
from nestgen.serving.inputs import check_fraction, read_image

PANEL = 256  # pixels of every overlay / heat-map panel
ON_UPLOAD = 1024  # longest side (pixels) of the explanation drawn over the upload; larger uploads are scaled down


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


def classify(app: AppState, image, target=PREDICTED, progress=gr.Progress(),  # noqa: B008 - Gradio's progress hook
             request: gr.Request = None):
    """upload, target class → status line, top-5, summary, GradCAT panels (path, per-level maps, Grad-CAM),
    the path table in the upload's pixels. The explanation is kept for the session (`on_upload`)."""
    service = app.predictor.need("classifier", progress)
    progress(0, desc="classifying and explaining")
    source = upload(image, service.limits.max_upload_bytes)
    result = service.classify(source, target)
    e, leaf = result.explanation, result.explanation.leaf
    photo = read_image(source, service.limits, target_size=ON_UPLOAD)  # for `on_upload`; read once more: it was
    remember(app.explained, session(request), (photo, e, result.source_box), keep=64)  # decoded above: readable
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
    return (status, label, summary, app.save_all(panels, "gradcat"), path_rows(e.path, result.source_box))


def on_upload(app: AppState, opacity, request: gr.Request = None):
    """The session's last explanation drawn over its image at the image's own resolution (up to 1024 px on the
    longer side): the leaf level's block scores blended at `opacity` (0–1) and the path's nested boxes → a PNG
    file; nothing (gr.skip) before the session's first explanation."""
    opacity = check_fraction(opacity, "heat-map opacity")
    kept = app.explained.get(session(request))
    if kept is None:
        return gr.skip()
    photo, explanation, to_source = kept
    width, height = photo.info.get("source_size", photo.size)
    return app.save(on_source(photo, explanation, lambda box: _scaled(to_source(box), photo, width), opacity,
                              ON_UPLOAD), "gradcat-on-upload")


def explain_sample(app: AppState, seed, class_value, truncation, progress=gr.Progress()):  # noqa: B008
    """A generated sample (seed, class, ψ) → the sample's file and the classifier's view of it: the outputs of
    `classify`, the summary starting with whether the classifier sees the class it was generated as."""
    generator, _ = app.predictor.need("generator", progress), app.predictor.need("classifier", progress)
    images, seeds, labels = generator.sample(seed, 1, class_value, truncation)
    path = app.save(images[0], f"sample-seed{seeds[0]}")
    # no request: as before the redesign, the sample's explanation is not kept for the session's `on_upload`
    status, label, summary, panels, rows = classify(app, path, PREDICTED, progress)
    if generator.conditional:
        asked, seen = generator.class_name(labels[0]), next(iter(label))
        verdict = "agrees" if asked == seen else f"sees **{seen}** instead"
        summary = f"Generated as **{asked}** (seed {seeds[0]}); the classifier {verdict}.\n\n{summary}"
    return path, status, label, summary, panels, rows


def discriminator_sample(app: AppState, seed, class_value):
    """A generated image to judge as one of the discriminator's classes (of that class when the generator has
    it, else the seed's own), and the class it was generated as."""
    generator, judge = app.predictor.need("generator"), app.predictor.need("discriminator")
    wanted = judge.class_names[judge.class_index(class_value)]
    names = generator.sampler.class_names if generator.conditional else []
    images, seeds, labels = generator.sample(seed, 1, wanted if wanted in names else None)
    return app.save(images[0], f"sample-seed{seeds[0]}"), generator.class_name(labels[0]) if names else wanted


def explain_discriminator(app: AppState, image, class_value):
    """image, class → D's verdict, the path of blocks that most look fake (and most real), per-level maps."""
    service = app.predictor.need("discriminator")
    verdict = service.explain(upload(image, service.limits.max_upload_bytes), class_value)
    as_class = f" as **{verdict.class_name}**" if service.conditional else ""
    real, fake = verdict.real.leaf, verdict.fake.leaf
    top, left, bottom, right = verdict.source_box(fake.box)
    width, height = verdict.source_size or verdict.image.size
    summary = (f"D scores this image{as_class} {verdict.score:+.3f}: P(real) = {verdict.p_real:.1%}. The blocks "
               f"that most look fake end at block {fake.block} of level 0 (rows {top}–{bottom}, columns "
               f"{left}–{right} of your {width}×{height} image); the most real-looking at block {real.block}.")
    return (summary, app.save(draw_path(verdict.image, verdict.fake, PANEL), "fake"),
            app.save(draw_path(verdict.image, verdict.real, PANEL), "real"),
            app.save_all(level_maps(verdict.image, verdict.fake, negate=True), "fake-level"),
            path_rows(verdict.fake.path, verdict.source_box))
