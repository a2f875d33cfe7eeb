"""Links that reproduce a view: the open tab and its settings live in the page URL, so
`/?tab=generate&seed=123&class=cat&psi=0.7` opens exactly that view, and "Copy link" hands it on.

Each tab registers its widgets under URL parameter names (`Links.add`); `README.md` lists them. The address bar
follows every change (in the browser, no request); a visit with parameters sets the widgets before the tab draws,
each value checked against its widget's own bounds. A value that does not fit is left out with a warning that
names it and what it allows; the rest of the link still applies. What a link cannot hold (an upload, a projected
w) is not in it.
"""

from __future__ import annotations

import json
import math

from nestgen.serving import require_gradio

gr = require_gradio()

MAX_TEXT = 200  # characters of a text parameter (a class name, a list of seeds)
COPY = """navigator.clipboard?.writeText(url.toString()).catch(() => {});
  const button = document.querySelector("#copy-link");
  if (button) {
    button.textContent = "Link copied";
    setTimeout(() => { button.textContent = "Copy link"; }, 2000);
  }"""


class Links:
    """The URL parameters of every tab: tab id → {parameter: widget}, in the order the tabs were built."""

    def __init__(self) -> None:
        self.tabs: dict[str, dict[str, object]] = {}

    def add(self, tab: str, **widgets) -> None:
        self.tabs.setdefault(tab, {}).update(widgets)

    @property
    def widgets(self) -> list:
        return [w for params in self.tabs.values() for w in params.values()]

    def apply(self, query: dict[str, str], default_tab: str) -> tuple[str, list, list[str]]:
        """A visit's query parameters → (the tab to open, one value or gr.skip() per widget of `widgets`, the
        problems in words). Parameters of other tabs than the one opened are ignored; unknown ones are named."""
        tab = query.get("tab", default_tab)
        problems = []
        if tab not in self.tabs:
            problems.append(f"tab={_short(tab)} is no tab of this app (tabs: {', '.join(self.tabs)})")
            tab = default_tab
        params = self.tabs[tab]
        unknown = [k for k in query if k != "tab" and k not in params and not k.startswith("__")]
        if unknown:
            problems.append(f"{', '.join(map(_short, unknown))} is not a setting of the {tab} tab "
                            f"({', '.join(params) or 'it has none'})")
        values = []
        for shown_in, widgets in self.tabs.items():
            for name, widget in widgets.items():
                if shown_in != tab or name not in query:
                    values.append(gr.skip())
                    continue
                value, problem = _parse(query[name], widget)
                values.append(gr.skip() if problem else value)
                if problem:
                    problems.append(f"{name}={_short(query[name])}: {problem}")
        return tab, values, problems

    def script(self, copy: bool) -> str:
        """The browser-side function of the "Copy link" button (copy=True) and of every change (copy=False): its
        arguments are the open tab's id, then the values of `widgets`; it writes the URL into the address bar and,
        for the button, onto the clipboard."""
        spec = json.dumps([[tab, name] for tab, params in self.tabs.items() for name in params])
        return f"""(tab, ...values) => {{
  const spec = {spec};
  const url = new URL(window.location.href);
  url.search = "";
  url.searchParams.set("tab", tab || "generate");
  spec.forEach(([t, name], i) => {{
    const v = values[i];
    if (t === tab && v !== null && v !== undefined && v !== "" && typeof v !== "object") url.searchParams.set(name, v);
  }});
  window.history.replaceState(null, "", url);
  {COPY if copy else ""}
  return [];
}}"""


def _short(text: str) -> str:
    text = str(text)
    return repr(text if len(text) <= 40 else text[:37] + "…")


def _parse(text: str, widget) -> tuple[object, str | None]:
    """One parameter for one widget → (value, None) or (None, what the widget allows)."""
    if isinstance(widget, gr.Slider | gr.Number):
        low, high = widget.minimum, widget.maximum
        whole = isinstance(widget, gr.Number) and widget.precision == 0 or (
            isinstance(widget, gr.Slider) and float(widget.step).is_integer())
        kind = "a whole number" if whole else "a number"
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        ok = math.isfinite(value) and (not whole or value.is_integer()) and (
            low is None or value >= low) and (high is None or value <= high)
        if not ok:
            return None, f"must be {kind}" + (f" from {low:g} to {high:g}" if low is not None else "")
        return (int(value) if whole else value), None
    if len(text) > MAX_TEXT:
        return None, f"longer than {MAX_TEXT} characters"
    return text, None
