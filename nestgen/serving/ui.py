"""The Gradio app's layout: Generate, Class grid, Interpolate, Level mixing, Project, Classify & explain, Explain the
discriminator (when a NesT discriminator is loaded), Models. Every public event is named with `api_name`; every
tab has a status line that shows progress, the result and failures (its outputs keep their labels and last
values when a request fails). `launch` adds the queue, the bounds and the style sheet. A tab whose model is
missing shows the command that produces one instead of its controls.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from types import SimpleNamespace

from nestgen.serving import require_gradio
from nestgen.serving.cards import card_files, model_cards
from nestgen.serving.events import AppState
from nestgen.serving.explain_tabs import classify_tab, discriminator_tab, explain_samples
from nestgen.serving.generation_tabs import class_grid_tab, generate_tab, interpolate_tab, mixing_tab, project_tab
from nestgen.serving.links import Links
from nestgen.serving.predictor import Predictor
from nestgen.serving.widgets import missing, on

gr = require_gradio()

ENDPOINTS = ("generate", "new_seeds", "class_grid", "interpolate", "mix_levels", "project", "classify",
             "explain_sample", "discriminator_sample", "explain_discriminator")
CSS = (Path(__file__).with_name("app.css")).read_text()
# Enter in a slider's number box ends the edit as a release would (Gradio's slider only reacts to blur there);
# the example thumbnails are named after their files (a tooltip, and a name for screen readers and tests)
JS = """() => {
  document.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && event.target.matches("#seed input[type=number]")) event.target.blur();
  });
  const stem = (src) => decodeURIComponent(src.split("/").pop()).replace(/[.][^.]*$/, "").replace(/_/g, " ");
  new MutationObserver(() => document.querySelectorAll("#examples button.gallery-item").forEach((button) => {
    const img = button.querySelector("img");
    if (img && !button.title) { button.title = stem(img.src); button.setAttribute("aria-label", stem(img.src)); }
  })).observe(document.body, { childList: true, subtree: true });
  // a file that is not an image is refused by the page itself (a toast), before any request: say it on the tab's
  // status line too, until the status line changes again
  const statusOf = { "upload": "classify-status", "project-upload": "project-status",
                     "discriminator-upload": "discriminator-status" };
  document.addEventListener("change", (event) => {
    const box = event.target.closest?.("#upload, #project-upload, #discriminator-upload");
    const refused = box && [...(event.target.files || [])].find((file) => !file.type.startsWith("image/"));
    const status = refused && document.getElementById(statusOf[box.id]);
    if (!status) return;
    status.querySelector(".nestgen-note")?.remove();
    const note = document.createElement("p");
    note.className = "nestgen-note";
    note.textContent = `⚠ ${refused.name} is not an image file: upload a PNG, JPEG, WebP, GIF or BMP image ` +
      "(what is shown is still the earlier image's)";
    status.classList.add("nestgen-noted");
    status.append(note);
    const watch = new MutationObserver((changes) => {
      if (changes.every((c) => [...c.addedNodes, ...c.removedNodes].includes(note))) return;
      note.remove();
      status.classList.remove("nestgen-noted");
      watch.disconnect();
    });
    watch.observe(status, { childList: true, subtree: true, characterData: true });
  }, true);
}"""


def _warm_up_banner(predictor: Predictor) -> None:
    """While the models compile (app.py serves the page first), a line that says what is compiling and what is
    done, refreshed every second, hidden once everything is warm (`warmup.WarmUp`)."""
    warmth = predictor.warmth
    banner = gr.Markdown(warmth.banner(), visible=not warmth.ready, elem_id="warm-up", elem_classes=["status"])
    timer = gr.Timer(1.0, active=not warmth.ready)

    def tick():
        text = warmth.banner()
        return gr.Markdown(text, visible=bool(text)), gr.Timer(active=bool(text))

    timer.tick(tick, None, [banner, timer], queue=False, api_visibility="private", show_progress="hidden")


def _links(demo, page, tabs):
    """The page URL holds the open tab and its settings (`links.py`): a visit applies its link (→ the event, for
    what follows it), every change rewrites the address bar, "Copy link" copies it."""
    links = page.links

    def apply(request: gr.Request):
        query = dict(getattr(request, "query_params", None) or {})
        tab, values, problems = links.apply(query, "generate")
        for problem in problems:
            gr.Warning(f"link: {problem}; left as it was", duration=12)
        if "tab" not in query:  # a plain visit: the page opened on its first tab, and a tab the visitor clicked
            return gr.skip(), "", *values  # while this event was queued stays open
        return gr.Tabs(selected=tab), tab, *values

    # the tab opens once its settings are in place (set with the tab, its first view would use the old ones);
    # queued, so the warnings reach the page
    linked = gr.Textbox("generate", visible=False)
    opened = demo.load(apply, None, [tabs, linked, *links.widgets], api_visibility="private")
    # without a link's tab: the tab the page shows (one clicked before the page's events were wired changed the
    # view but not page.opened)
    shown = "document.querySelector('[role=tab][aria-selected=true]')?.dataset.tabId"
    opened = opened.then(None, [linked, page.opened], page.opened, js=f"(tab, current) => tab || {shown} || current",
                         queue=False, api_visibility="private")
    watched = [page.opened, *links.widgets]
    gr.on([w.change for w in watched], None, watched, None, js=links.script(copy=False), queue=False,
          api_visibility="private")
    page.copy.click(None, watched, None, js=links.script(copy=True), queue=False, api_visibility="private")
    return opened


def build_app(predictor: Predictor, examples: Sequence[str | Path] = (), app: AppState | None = None):
    """The Blocks of the app for the loaded models; examples are image files offered on the Classify tab. `app`:
    the handlers' state (default: a new one for `predictor`; tests pass theirs to read its `errors`)."""
    app = app or AppState(predictor)
    g, c, d = predictor.generator, predictor.classifier, predictor.discriminator
    with gr.Blocks(title="nestgen", delete_cache=(1800, 3600)) as demo:  # Gradio's cache: files older than 1 h go
        with gr.Row():
            gr.Markdown("# nestgen: NesT image models\nSample the NesT generator, mix its levels, project images "
                        "into it, classify images and explain the decision with GradCAT (the nested blocks of the "
                        "hierarchy that support the class).")
            copy = gr.Button("Copy link", size="sm", elem_id="copy-link", scale=0, min_width=120)
        _warm_up_banner(predictor)
        # the open tab's id (a tab's click or a link sets it; the tabs draw themselves when it becomes theirs)
        page = SimpleNamespace(opened=gr.Textbox("generate", visible=False, elem_id="opened-tab"), links=Links(),
                               copy=copy)
        with gr.Tabs(overflow_behavior="wrap") as tabs:
            generate = classify = None
            if g is None:  # one tab says how to get a generator; its other tabs would say the same
                with gr.Tab("Generate", id="generate"):
                    missing(predictor, "generator")
            else:
                with gr.Tab("Generate", id="generate"):
                    generate = generate_tab(app, g, predictor.limits, page)
                with gr.Tab("Class grid", id="class-grid", visible=g.conditional):
                    class_grid_tab(app, g, predictor.limits, page)
                with gr.Tab("Interpolate", id="interpolate"):
                    ends = interpolate_tab(app, g, predictor.limits, page)
                with gr.Tab("Level mixing", id="mixing"):
                    mixing_tab(app, g, predictor.limits, page)
                with gr.Tab("Project", id="project"):
                    project_tab(app, g, predictor.limits, tabs, ends, page, examples[0] if examples else None)
            with gr.Tab("Classify & explain", id="classify"):
                if c is None:
                    missing(predictor, "classifier")
                else:
                    classify = classify_tab(app, c, examples)
                    page.links.add("classify", **{"class": classify[1]})  # the upload is no link's
            if d is not None:
                with gr.Tab("Explain the discriminator", id="discriminator"):
                    discriminator_tab(app, d, g is not None, page)
            with gr.Tab("Models", id="models"):
                gr.Markdown(model_cards(predictor), elem_id="cards")
                page.links.add("models")
        for tab in tabs.children:  # a click on a tab makes it the open one (in the browser: no request)
            tab.select(None, None, page.opened, js=f"() => {json.dumps(tab.id)}", queue=False,
                       api_visibility="private")
        if generate and classify:
            explain_samples(app, generate, classify, tabs)
        opened = _links(demo, page, tabs)
        if generate:  # the first view shows samples, not an empty box (with a link's settings, once applied)
            fn, inputs, outputs = generate.load
            first = on(app, opened.then, fn, inputs, outputs, generate.status, api_visibility="private")
            first.success(*generate.ready, queue=False, api_visibility="private")
    return demo


def launch(demo, predictor: Predictor, *, host: str = "127.0.0.1", port: int | None = 7860, concurrency: int = 2,
           queue_size: int = 64, **kwargs):
    """Queue (`concurrency` requests run at once, `queue_size` wait) and serve; only Gradio's cache and the
    pictures the model cards show are served."""
    demo.queue(default_concurrency_limit=concurrency, max_size=queue_size)
    return demo.launch(server_name=host, server_port=port, max_file_size=predictor.limits.max_upload_bytes,
                       footer_links=["api"], ssr_mode=False, show_error=False, css=CSS, js=JS,
                       allowed_paths=[str(p) for p in card_files(predictor)], **kwargs)


__all__ = ["ENDPOINTS", "build_app", "launch"]
