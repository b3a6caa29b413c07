"""The docs site as a reader sees it: built, served on loopback, rendered in headless Chromium.

The site is built (``mkdocs build --strict``) into a temporary directory, a checker script
is added to the key pages of that build only, and an ``http.server`` on 127.0.0.1 serves
it. Each key page is rendered by Debian's ``chromium`` in a 1280 px wide window
(``--dump-dom``, with virtual time so the page settles without waiting); the checker
writes its findings as JSON into an attribute of ``<html>``, read back from the dumped DOM.

A page fails on:

* a picture that did not load (``naturalWidth`` 0) or a figure missing from its page;
* an overflowing element: anything wider than the content area (or the window) that is
  not inside a scroll container of its own (code blocks and tables may scroll inside
  their box, never push the page wider);
* an identifier broken across lines in a table cell (``min_refres`` / ``h``): a line
  break between two characters of one inline ``code``, or inside a word of prose;
* code blocks that cannot show ``CODE_COLUMNS`` characters without scrolling;
* a request the page made that the server answered with an error (a missing asset).

The figures (``docs/_figures/figures.py``) are also inlined into one page of the test
build, where each label must fit the room the drawing gave it (``data-fit``), measured
with the browser's own fonts.

Chromium runs with no network beyond loopback in mind: ``--disable-background-networking``
and friends keep it from calling home; each run gets a fresh ``--user-data-dir``, a time
limit, and its own process group, killed if it overruns.
"""

from __future__ import annotations

import contextlib
import functools
import html.parser
import http.server
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
FIGURES_DIR = ROOT / "docs" / "_figures"

#: The pages checked (URL path under the site root) and the figures each must show.
KEY_PAGES: dict[str, tuple[str, ...]] = {
    "": (),
    "getting-started/": ("data-flow.svg",),
    "concepts/": ("data-flow.svg",),
    "service/": ("lifecycle.svg", "refresh-timeline.svg"),
    "tuning/": ("refresh-timeline.svg",),
    "strategies/": ("which-strategy.svg", "sticky-ring.svg"),
    "leader-routing/": ("leader-map.svg",),
    "connecting/": (),
    "testing/": (),
    "cli/": (),
    "reliability/": (),
    "api/": (),
    # The recipe pages: each shows a complete program from examples/, no wider than the page.
    "grpc/": (),
    "requests/": (),
    "aiohttp/": (),
    "httpx/": (),
    "postgres/": (),
    "redis/": (),
    "kafka/": (),
    "performance/": (),
    "kubernetes/": (),
}
WINDOW = (1280, 900)
#: Characters of code a code block shows at that width before it scrolls.
CODE_COLUMNS = 100
BUILD_TIMEOUT = 300.0
BROWSER_TIMEOUT = 60.0
#: Virtual milliseconds Chromium lets the page run (load, fonts, the checker's timer).
VIRTUAL_TIME_MS = 10_000
CHECK_SCRIPT = "_docs_check.js"
CHECK_ATTRIBUTE = "data-docs-check"

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-crash-reporter",
    "--disable-extensions",
    "--mute-audio",
)

# The checker, run in each key page once it has loaded and its fonts are ready.
PAGE_CHECK_JS = r"""
(function () {
  "use strict";
  var SLACK = 1; // px of sub-pixel rounding
  function describe(el) {
    var text = (el.textContent || "").replace(/\s+/g, " ").trim().slice(0, 70);
    var cls = typeof el.className === "string" && el.className.trim()
      ? "." + el.className.trim().split(/\s+/).join(".") : "";
    return el.tagName.toLowerCase() + cls + (text ? ' "' + text + '"' : "");
  }
  function scrolls(el) {
    var o = getComputedStyle(el).overflowX;
    return o !== "visible" && o !== "";
  }
  function insideScroller(el, area) {
    for (var a = el.parentElement; a && a !== area; a = a.parentElement) {
      if (scrolls(a)) return true;
    }
    return false;
  }
  // Elements reaching past the content area or the window, outside any scroll container.
  function overflowing(area) {
    var box = area.getBoundingClientRect();
    var left = Math.max(box.left, 0);
    var right = Math.min(box.right, document.documentElement.clientWidth);
    var found = [];
    var all = area.querySelectorAll("*");
    for (var i = 0; i < all.length; i++) {
      var el = all[i];
      var r = el.getBoundingClientRect();
      if (r.width === 0 || r.height === 0) continue;
      if (r.right <= right + SLACK && r.left >= left - SLACK) continue;
      if (insideScroller(el, area)) continue;
      if (found.some(function (f) { return f.contains(el); })) continue;
      found.push(el);
    }
    return found.map(function (el) {
      var r = el.getBoundingClientRect();
      return {what: describe(el), left: Math.round(r.left), right: Math.round(r.right),
              area: [Math.round(left), Math.round(right)]};
    });
  }
  // Scroll containers whose content is wider than they are (allowed; reported).
  function scrolling(area) {
    var found = [];
    var all = area.querySelectorAll("pre > code, table, .md-typeset__scrollwrap");
    for (var i = 0; i < all.length; i++) {
      var el = all[i];
      if (scrolls(el) && el.scrollWidth > el.clientWidth + SLACK) {
        found.push({what: describe(el), scrollWidth: el.scrollWidth, clientWidth: el.clientWidth});
      }
    }
    return found;
  }
  // Line breaks inside one inline code, or inside a word, in table cells.
  function brokenWords(area) {
    var found = [];
    var cells = area.querySelectorAll("td, th");
    var range = document.createRange();
    for (var c = 0; c < cells.length; c++) {
      var walker = document.createTreeWalker(cells[c], NodeFilter.SHOW_TEXT);
      var prev = null, space = false;
      for (var node = walker.nextNode(); node; node = walker.nextNode()) {
        var code = node.parentElement.closest("code");
        var text = node.data;
        for (var i = 0; i < text.length; i++) {
          var ch = text[i];
          if (/\s/.test(ch)) { space = true; continue; }
          range.setStart(node, i);
          range.setEnd(node, i + 1);
          var rects = range.getClientRects();
          if (!rects.length) continue;
          var r = rects[0];
          if (prev && !space && r.top >= prev.bottom - 1) {
            var sameCode = code !== null && code === prev.code;
            var inWord = code === null && prev.code === null && /\w/.test(ch) && /\w/.test(prev.ch);
            if (sameCode || inWord) {
              found.push({cell: describe(cells[c]), at: prev.word + "|" + text.slice(i, i + 12)});
            }
          }
          var word = prev && !space && prev.node === node ? prev.word + ch : ch;
          prev = {ch: ch, bottom: r.bottom, code: code, node: node, word: word.slice(-16)};
          space = false;
        }
      }
    }
    return found;
  }
  function images() {
    var found = [];
    var imgs = document.querySelectorAll(".md-content img");
    for (var i = 0; i < imgs.length; i++) {
      var img = imgs[i];
      found.push({src: img.getAttribute("src"), complete: img.complete, naturalWidth: img.naturalWidth,
                  width: Math.round(img.getBoundingClientRect().width)});
    }
    return found;
  }
  // How many characters a code block of this page shows before it scrolls.
  function codeColumns(article) {
    var pre = document.createElement("pre");
    var code = document.createElement("code");
    var probe = "x".repeat(400);
    code.textContent = probe;
    pre.appendChild(code);
    article.appendChild(pre);
    var style = getComputedStyle(code);
    var inner = code.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight);
    var columns = Math.floor(inner / (code.scrollWidth - parseFloat(style.paddingLeft) -
                                      parseFloat(style.paddingRight)) * probe.length);
    article.removeChild(pre);
    return columns;
  }
  function verdict() {
    var area = document.querySelector(".md-content") || document.body;
    var article = document.querySelector(".md-content article") || area;
    var out = {
      path: location.pathname,
      innerWidth: window.innerWidth,
      clientWidth: document.documentElement.clientWidth,
      pageScrollWidth: document.documentElement.scrollWidth,
      images: images(),
      overflowing: overflowing(area),
      scrolling: scrolling(area),
      broken: brokenWords(area),
      codeColumns: codeColumns(article)
    };
    document.documentElement.setAttribute("data-docs-check", JSON.stringify(out));
  }
  function settle() {
    var fonts = document.fonts ? document.fonts.ready : Promise.resolve();
    fonts.then(function () { setTimeout(verdict, 250); });
  }
  if (document.readyState === "complete") settle(); else window.addEventListener("load", settle);
})();
"""

# The checker of the figures, inlined into one page: every label against its room.
FIGURE_CHECK_JS = r"""
(function () {
  var out = {};
  var figures = document.querySelectorAll("section[data-figure]");
  for (var f = 0; f < figures.length; f++) {
    var labels = figures[f].querySelectorAll("text[data-fit]");
    var found = [];
    for (var i = 0; i < labels.length; i++) {
      found.push({text: labels[i].textContent, width: labels[i].getComputedTextLength(),
                  fit: parseFloat(labels[i].getAttribute("data-fit"))});
    }
    out[figures[f].getAttribute("data-figure")] = found;
  }
  document.documentElement.setAttribute("data-docs-check", JSON.stringify(out));
})();
"""
FIGURE_PAGE = "_figure_check.html"

# A page with one defect of each kind, to show the checker finds them (and only them).
SAMPLE_PAGE = "_checker_sample.html"
SAMPLE_HTML = f"""<!doctype html>
<html><head><link rel="icon" href="data:,"><style>
  body {{ margin: 0; }}
  .md-content {{ width: 600px; margin: 0 auto; }}
  td {{ width: 50px; }}
  td code {{ word-break: break-all; }}
</style></head>
<body><div class="md-content"><article>
  <div style="width: 1100px">wider than the page</div>
  <pre><code style="display: block; overflow: auto">{"a long line that scrolls in its box " * 9}</code></pre>
  <img src="/no-such-figure.svg" alt="a picture that is not there">
  <table><tr><td><code>min_refresh_and_more</code></td><td>fine words</td></tr></table>
</article></div>
<script src="/{CHECK_SCRIPT}"></script></body></html>
"""


# --------------------------------------------------------------------------------------------
# The site, its server, the browser
# --------------------------------------------------------------------------------------------


def _figure_names() -> list[str]:
    sys.path.insert(0, str(FIGURES_DIR))
    try:
        import figures  # docs/_figures/figures.py

        return list(figures.FIGURES)
    finally:
        sys.path.remove(str(FIGURES_DIR))


@pytest.fixture(scope="module")
def chromium() -> str:
    path = shutil.which("chromium")
    if path is None:
        pytest.fail("chromium is not installed: run scripts/install/chromium.sh", pytrace=False)
    return path


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The site, built strictly into a temporary directory, with the checker on key pages."""
    out = tmp_path_factory.mktemp("site")
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
        "NO_MKDOCS_2_WARNING": "1",
    }
    build = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT,
        check=False,
    )
    assert build.returncode == 0, f"mkdocs build --strict failed:\n{build.stdout}\n{build.stderr}"
    (out / CHECK_SCRIPT).write_text(PAGE_CHECK_JS, encoding="utf-8")
    for page in KEY_PAGES:
        index = out / page / "index.html"
        assert index.is_file(), f"key page {page or '/'} is not in the site: fix KEY_PAGES"
        text = index.read_text(encoding="utf-8")
        index.write_text(
            text.replace("</body>", f'<script src="/{CHECK_SCRIPT}"></script></body>'), encoding="utf-8"
        )
    sections = "".join(
        f'<section data-figure="{svg.name}">{svg.read_text(encoding="utf-8")}</section>'
        for svg in sorted((out / "figures").glob("*.svg"))
    )
    (out / SAMPLE_PAGE).write_text(SAMPLE_HTML, encoding="utf-8")
    (out / FIGURE_PAGE).write_text(
        f"<!doctype html><html><body>{sections}<script>{FIGURE_CHECK_JS}</script></body></html>",
        encoding="utf-8",
    )
    return out


@dataclass
class Server:
    """The built site on loopback, and every request that got an error status."""

    base: str
    errors: list[tuple[str, int]]


@pytest.fixture(scope="module")
def server(site: Path) -> Iterator[Server]:
    errors: list[tuple[str, int]] = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
            if isinstance(code, int) and code >= 400:
                errors.append((self.path, code))

        def log_message(self, format: str, *args: Any) -> None:  # quiet
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(site)))
    thread = threading.Thread(target=httpd.serve_forever, name="docs-site-server", daemon=True)
    thread.start()
    try:
        yield Server(f"http://127.0.0.1:{httpd.server_address[1]}/", errors)
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=10)


class _Verdict(html.parser.HTMLParser):
    """The checker's JSON, from the attribute it set on the document element."""

    def __init__(self) -> None:
        super().__init__()
        self.value: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self.value is None and tag == "html":
            self.value = dict(attrs).get(CHECK_ATTRIBUTE)


def render(chromium: str, url: str, profile: Path) -> dict[str, Any]:
    """Load *url* in headless Chromium at ``WINDOW`` and return the checker's verdict."""
    argv = [
        chromium,
        *CHROMIUM_FLAGS,
        f"--user-data-dir={profile}",
        f"--window-size={WINDOW[0]},{WINDOW[1]}",
        f"--virtual-time-budget={VIRTUAL_TIME_MS}",
        "--dump-dom",
        url,
    ]
    proc = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        out, err = proc.communicate(timeout=BROWSER_TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        pytest.fail(f"chromium did not render {url} within {BROWSER_TIMEOUT:g}s", pytrace=False)
    finally:
        with contextlib.suppress(ProcessLookupError):  # helpers left behind, if any
            os.killpg(proc.pid, signal.SIGKILL)
    parser = _Verdict()
    parser.feed(out)
    if parser.value is None:
        tail = "\n".join(err.splitlines()[-15:])
        pytest.fail(f"no verdict from {url} (exit {proc.returncode}); chromium said:\n{tail}", pytrace=False)
    verdict: dict[str, Any] = json.loads(parser.value)
    return verdict


# --------------------------------------------------------------------------------------------
# Tests
# --------------------------------------------------------------------------------------------


@pytest.mark.chromium
def test_the_checker_finds_each_defect(chromium: str, server: Server, tmp_path: Path) -> None:
    """On a page made with one defect of each kind, the checker reports those and no more."""
    before = len(server.errors)
    verdict = render(chromium, server.base + SAMPLE_PAGE, tmp_path / "profile")
    assert [o["what"].split(" ")[0] for o in verdict["overflowing"]] == ["div"]
    assert "wider than the page" in verdict["overflowing"][0]["what"]
    assert [(i["src"], i["naturalWidth"]) for i in verdict["images"]] == [("/no-such-figure.svg", 0)]
    assert len(verdict["broken"]) >= 1 and all("min_refresh" in b["cell"] for b in verdict["broken"])
    assert [s["what"].split(" ")[0] for s in verdict["scrolling"]] == ["code"]  # allowed, reported
    assert verdict["pageScrollWidth"] > verdict["clientWidth"]
    assert server.errors[before:] == [("/no-such-figure.svg", 404)]


def test_every_figure_is_on_a_key_page() -> None:
    """Each figure the docs build draws is shown, and checked, on at least one key page."""
    shown = {name for names in KEY_PAGES.values() for name in names}
    assert shown == set(_figure_names())


@pytest.mark.chromium
@pytest.mark.parametrize("page", list(KEY_PAGES), ids=lambda p: p.rstrip("/") or "home")
def test_page_reads_well_at_1280px(page: str, chromium: str, server: Server, tmp_path: Path) -> None:
    """The page's pictures load, nothing is wider than the page, no identifier is broken."""
    before = len(server.errors)
    verdict = render(chromium, server.base + page, tmp_path / "profile")
    where = f"/{page} at {WINDOW[0]} px"

    assert verdict["innerWidth"] == WINDOW[0], f"{where}: the window is {verdict['innerWidth']} px wide"
    broken_images = [i for i in verdict["images"] if not i["complete"] or i["naturalWidth"] == 0]
    assert not broken_images, f"{where}: pictures that did not load: {broken_images}"
    sources = [i["src"] for i in verdict["images"]]
    missing = [f for f in KEY_PAGES[page] if not any(s.endswith(f"figures/{f}") for s in sources)]
    assert not missing, f"{where}: figures missing from the page: {missing} (it shows {sources})"
    assert not verdict["overflowing"], (
        f"{where}: elements wider than the page, outside any scroll box:\n"
        + "\n".join(json.dumps(o) for o in verdict["overflowing"])
    )
    assert verdict["pageScrollWidth"] <= verdict["clientWidth"], (
        f"{where}: the page scrolls sideways ({verdict['pageScrollWidth']} px)"
    )
    assert not verdict["broken"], f"{where}: identifiers broken across lines in table cells:\n" + "\n".join(
        json.dumps(b) for b in verdict["broken"]
    )
    assert verdict["codeColumns"] >= CODE_COLUMNS, (
        f"{where}: a code block shows {verdict['codeColumns']} characters, fewer than {CODE_COLUMNS}"
    )
    errors = server.errors[before:]
    assert not errors, f"{where}: requests that failed: {errors}"


@pytest.fixture(scope="module")
def figure_labels(chromium: str, server: Server, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Every figure's labels as the browser measures them: {figure: [{text, width, fit}]}."""
    return render(chromium, server.base + FIGURE_PAGE, tmp_path_factory.mktemp("profile"))


@pytest.mark.chromium
@pytest.mark.parametrize("figure", _figure_names())
def test_figure_labels_fit(figure: str, figure_labels: dict[str, Any]) -> None:
    """Every label of the figure fits the room the drawing gave it, in the browser's fonts."""
    labels = figure_labels.get(figure)
    assert labels, f"{figure}: no labels found: was the figure drawn?"
    too_wide = [label for label in labels if label["width"] > label["fit"] + 0.5]
    assert not too_wide, f"{figure}: labels wider than their room: {too_wide}"
