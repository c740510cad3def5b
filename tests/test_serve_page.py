"""The served search page in headless Chromium: a user types a query and presses Enter, the results
appear as cards with the products' images, and a `<script>` in the query or in a title stays text."""

from __future__ import annotations

import base64
import json
from pathlib import Path

from gcl_vectordb.serve import ServeConfig, create_app, open_service
from tests.browser import DevTools, chromium_or_skip
from tests.ingest_fixtures import HOSTILE
from tests.serve_helpers import running_app

PAGE_STATE = """JSON.stringify({
  url: location.href,
  query: document.querySelector('input[name=q]').value,
  cards: document.querySelectorAll('article.card').length,
  images: Array.from(document.images).map(i => [i.getAttribute('src'), i.naturalWidth]),
  titles: Array.from(document.querySelectorAll('.card .title')).map(t => t.textContent),
  scripts: document.scripts.length,
  injected: typeof window.__gclInjected,
})"""
WAIT_FOR_IMAGES = ("Promise.all(Array.from(document.images).map(i => i.complete ? 0 : "
                   "new Promise(r => { i.onload = i.onerror = r; })))")


def test_typing_a_query_shows_results_and_scripts_stay_inert(hostile_store: Path, tmp_path: Path) -> None:
    from PIL import Image

    chromium = chromium_or_skip()
    config = ServeConfig(collection="gs", store=str(hostile_store))
    with running_app(create_app(open_service(config), config)) as url:
        browser = DevTools(chromium, tmp_path / "profile")
        try:
            browser.call("Page.navigate", session=True, url=f"{url}/")
            browser.wait_for("Page.loadEventFired")
            assert json.loads(browser.evaluate(PAGE_STATE))["cards"] == 0

            # the user types a query that is itself a script (with a marker it would set), then Enter
            typed = HOSTILE.replace("alert(1)", "window.__gclInjected = 1")
            browser.evaluate("document.querySelector('input[name=q]').focus()")
            browser.call("Input.insertText", session=True, text=typed)
            browser.evaluate("document.querySelector('select[name=mode]').value = 'title'")
            for kind in ("keyDown", "keyUp"):
                browser.call("Input.dispatchKeyEvent", session=True, type=kind, key="Enter", code="Enter",
                             windowsVirtualKeyCode=13, **({"text": "\r"} if kind == "keyDown" else {}))
            browser.wait_for("Page.loadEventFired")
            browser.evaluate(WAIT_FOR_IMAGES)
            state = json.loads(browser.evaluate(PAGE_STATE))
            shot = browser.call("Page.captureScreenshot", session=True, format="png")["data"]
            dialogs = [e for e in browser.events if e.get("method") == "Page.javascriptDialogOpening"]
        finally:
            browser.close()

    assert "q=%3Cscript%3E" in state["url"] and "mode=title" in state["url"]
    assert state["query"] == typed  # shown back as typed, as text
    assert state["cards"] == 24 and len(state["images"]) == 24
    assert all(src.startswith("images/") and width > 0 for src, width in state["images"]), state["images"]
    assert HOSTILE in state["titles"]  # the hostile title is displayed as text ...
    assert state["scripts"] == 0 and state["injected"] == "undefined" and not dialogs  # ... and nothing ran
    png = tmp_path / "page.png"
    png.write_bytes(base64.b64decode(shot))
    with Image.open(png) as image:
        colours = image.convert("RGB").getcolors(maxcolors=1 << 20)
    assert colours is not None and len(colours) > 500  # product photos drawn, not a blank page
