"""The reader's book: build it and check every page in headless Chromium.

What this module does (marker ``browser``; CI runs it with the rest of the tests):

1. builds the book exactly as the README says, ``jupyter-book build . -W -n --keep-going``
   (into ``_build/``; chapters already in ``_build/.jupyter_cache`` are not re-executed), and
   requires exit status 0 and no ``WARNING`` line in the build log;
2. serves ``_build/html`` on ``127.0.0.1`` (an ``http.server`` thread on a free port) and opens
   every page of ``_toc.yml`` in headless Chromium (Debian packages ``chromium`` and
   ``chromium-driver``, driven by Selenium with the system chromedriver; the session fixture
   installs the packages with ``apt-get`` when ``/usr/bin/chromium`` is missing). Chromium may
   reach 127.0.0.1 only, so everything a page needs, MathJax included, must be served by the book;
3. checks on every page: the maths was typeset by MathJax (no raw TeX left, no MathJax errors,
   no undefined macros), every figure has a caption and its image loads, every link into the book
   resolves (the file exists and so does the anchor), no request failed, no Sphinx/MyST
   error text (system messages, "Unknown directive", WARNING/ERROR) is rendered, and nothing
   needs horizontal scrolling in the 1280-px window (the document is no wider than the window;
   no code block, output, display equation, table or image is wider than its box or sticks out
   of the article);
4. checks the reader features: equation references between chapters, author-year citations and
   the bibliography, the execution-status table, the ``.ipynb`` and ``.md`` downloads of each
   chapter, and the teaching blocks of each chapter (at least two exercises, "Prerequisites",
   "Expected run time");
5. saves a screenshot of every page to ``_build/screenshots/<page>.png``.
"""
from __future__ import annotations

import functools
import html.parser
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
import yaml

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[1]
BUILD_DIR = ROOT / "_build"
HTML_DIR = BUILD_DIR / "html"
SCREENSHOT_DIR = BUILD_DIR / "screenshots"
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage", "--window-size=1280,1000",
    # nothing but the book's own server can be reached: a page that needs a CDN fails its checks
    "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
]
SCREENSHOT_MAX_HEIGHT = 8000   # CSS px: the top of long chapters is enough to see maths and figures
BUILD_TIMEOUT = 1800           # s; about 5 min from scratch on 2 cores
# ipykernel >= 7 prints this on every kernel start (stderr of the kernel, not a Sphinx warning)
BENIGN_LOG_LINE = re.compile(r"^\[IPKernelApp\] WARNING \| Kernel is running over TCP without encryption\.")


def toc_pages(toc: Path = ROOT / "_toc.yml") -> list[str]:
    """Docnames of the book in reading order (root, then every file of every part)."""
    data = yaml.safe_load(toc.read_text())
    pages = [data["root"]]

    def walk(entries):
        for entry in entries or []:
            if "file" in entry:
                pages.append(entry["file"])
            walk(entry.get("sections"))

    for part in data.get("parts", []):
        walk(part.get("chapters"))
    walk(data.get("chapters"))
    return pages


PAGES = toc_pages()
CHAPTERS = [p for p in PAGES if p.startswith("chapters/")]


def page_id(page: str) -> str:
    return Path(page).name


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def chromium():
    """Paths of Chromium and chromedriver; installs the Debian packages when they are missing."""
    if not (CHROMIUM.is_file() and CHROMEDRIVER.is_file()):
        apt = shutil.which("apt-get")
        if apt is None or os.geteuid() != 0:
            pytest.skip("headless Chromium is not installed (/usr/bin/chromium) and cannot be "
                        "installed here: " + ("no apt-get" if apt is None else "not root")
                        + "; install the Debian packages chromium and chromium-driver")
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        for cmd in ([apt, "update", "-q"], [apt, "install", "-y", "-q", "chromium", "chromium-driver"]):
            proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
            assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        assert CHROMIUM.is_file() and CHROMEDRIVER.is_file(), "apt-get installed chromium but not /usr/bin/chromium(driver)"
    return CHROMIUM, CHROMEDRIVER


@dataclass
class Build:
    returncode: int
    log: str
    seconds: float

    @property
    def warnings(self) -> list[str]:
        return [line for line in self.log.splitlines() if "WARNING" in line and not BENIGN_LOG_LINE.search(line)]


@pytest.fixture(scope="session")
def book() -> Build:
    """Build the book with the README's command (``-W -n --keep-going``) into ``_build/``."""
    exe = Path(sys.executable).with_name("jupyter-book")
    cmd = [str(exe) if exe.is_file() else "jupyter-book", "build", str(ROOT), "-W", "-n", "--keep-going"]
    env = dict(os.environ)
    env.pop("MPLBACKEND", None)   # chapters use the inline backend, as in the regression tests
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, timeout=BUILD_TIMEOUT)
    build = Build(proc.returncode, proc.stdout, time.perf_counter() - start)
    print(f"\n[browser] jupyter-book build: exit {build.returncode}, {build.seconds:.0f} s, "
          f"{len(build.warnings)} warning line(s)")
    return build


class _Handler(SimpleHTTPRequestHandler):
    requests: list = []   # replaced per server: (path, status)

    def log_request(self, code="-", size="-"):
        self.requests.append((self.path, int(code) if str(code).isdigit() else code))

    def log_message(self, format, *args):   # quiet
        pass


@pytest.fixture(scope="session")
def server(book):
    assert (HTML_DIR / "index.html").is_file(), f"the build wrote no {HTML_DIR}/index.html:\n{book.log[-5000:]}"
    shutil.rmtree(SCREENSHOT_DIR, ignore_errors=True)   # only this run's screenshots
    requests: list = []
    handler = functools.partial(type("Handler", (_Handler,), {"requests": requests}), directory=str(HTML_DIR))
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", requests
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(scope="session")
def driver(chromium, tmp_path_factory):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    os.environ.setdefault("SE_OFFLINE", "true")   # Selenium Manager must never download anything
    browser, chromedriver = chromium
    options = webdriver.ChromeOptions()
    options.binary_location = str(browser)
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    drv = webdriver.Chrome(options=options, service=Service(executable_path=str(chromedriver)))
    drv.set_page_load_timeout(120)
    drv.set_script_timeout(120)
    yield drv
    drv.quit()


# --------------------------------------------------------------------------- page inspection

_INSPECT_JS = r"""
const article = document.querySelector('article.bd-article') || document.querySelector('main') || document.body;
const clone = article.cloneNode(true);
clone.querySelectorAll('pre, code, .highlight, mjx-container, script, style, .cell_output, .output')
     .forEach(e => e.remove());
const figures = [...article.querySelectorAll('figure')].map(f => {
  const cap = f.querySelector('figcaption');
  return {id: f.id || (f.querySelector('[id]') || {}).id || '',
          caption: cap ? cap.textContent.trim() : null,
          images: [...f.querySelectorAll('img')].map(i => ({src: i.getAttribute('src'), ok: i.complete && i.naturalWidth > 0}))};
});
const outputImages = [...article.querySelectorAll('.cell_output img, .output img')]
    .filter(i => !i.closest('figure')).map(i => i.getAttribute('src'));
const images = [...document.querySelectorAll('img')].map(i => ({src: i.getAttribute('src'), ok: i.complete && i.naturalWidth > 0}));
const links = [...document.querySelectorAll('a[href]')].map(a => ({href: a.href, raw: a.getAttribute('href'), text: a.textContent.trim(),
                                                                 headerlink: a.classList.contains('headerlink')}));
const resources = [...document.querySelectorAll('script[src], link[href][rel~="stylesheet"], link[href][rel~="preload"], img[src], iframe[src]')]
    .map(e => e.src || e.href);
const downloads = [...document.querySelectorAll('.dropdown-download-buttons a[href]')]
    .map(a => ({href: a.href, text: a.textContent.trim()}));
// horizontal overflow at the window width: the page itself, and every code block, output,
// display equation, table or image that is wider than its box or sticks out of the article
const articleRight = article.getBoundingClientRect().right;
const overflowing = [];
for (const e of article.querySelectorAll('pre, mjx-container[display="true"], div.math, table, img')) {
  const rect = e.getBoundingClientRect();
  if (rect.width === 0 || rect.height === 0) continue;   // not displayed (closed dropdown)
  if (e.scrollWidth > e.clientWidth + 1 || rect.right > articleRight + 1) {
    overflowing.push({element: e.tagName.toLowerCase(), scrollWidth: e.scrollWidth,
                      clientWidth: e.clientWidth, right: Math.round(rect.right),
                      text: e.textContent.trim().replace(/\s+/g, ' ').slice(0, 80)});
  }
}
// words of text broken across lines inside a table cell ("Foun datio ns"): a word laid out on
// two lines has client rects on two lines (code, which may break anywhere, is left out; a line
// may break after a hyphen, a dash or a slash)
const brokenWords = [];
for (const cell of article.querySelectorAll('td, th')) {
  const walker = document.createTreeWalker(cell, NodeFilter.SHOW_TEXT);
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    if (node.parentElement.closest('code, pre, mjx-container, .math')) continue;
    for (const m of node.textContent.matchAll(/[^\s\u200b\u2013\u2014\/-]+/g)) {
      const range = document.createRange();
      range.setStart(node, m.index);
      range.setEnd(node, m.index + m[0].length);
      const tops = new Set([...range.getClientRects()].filter(r => r.width > 0)
                           .map(r => Math.round(r.top)));
      if (tops.size > 1) brokenWords.push(m[0]);
    }
  }
}
const widths = {scrollWidth: document.documentElement.scrollWidth,
                clientWidth: document.documentElement.clientWidth,
                articleRight: Math.round(articleRight), overflowing: overflowing,
                brokenWords: brokenWords};
let mathjax = null;
if (window.MathJax && MathJax.startup && MathJax.startup.document) {
  const items = [...MathJax.startup.document.math];
  const bad = [];
  for (const m of items) {
    // TeX errors give <merror>; undefined macros (noundefined extension) give red <mtext>
    let isBad = false;
    m.root.walkTree(node => {
      if (node.isKind('merror') || node.attributes.getExplicit('mathcolor') === 'red') isBad = true;
    });
    if (isBad) bad.push(m.math.slice(0, 200));
  }
  mathjax = {version: MathJax.version, items: items.length, errors: bad,
             macros: Object.keys(((MathJax.config || {}).tex || {}).macros || {})};
}
return {
  title: document.title,
  text: clone.textContent,
  fullText: article.innerText,
  mathSources: article.querySelectorAll('.math').length,
  mjxContainers: document.querySelectorAll('mjx-container').length,
  mathjaxScript: [...document.querySelectorAll('script[src]')].map(s => s.src).filter(s => /mathjax/i.test(s)),
  mathjax: mathjax,
  figures: figures,
  outputImages: outputImages,
  images: images,
  links: links,
  resources: resources,
  downloads: downloads,
  exercises: article.querySelectorAll('.exercise').length,
  citations: [...article.querySelectorAll('.bibtex-citation')].map(e => e.textContent.trim()),
  bibEntries: [...article.querySelectorAll('.citation')].map(e => e.textContent.trim()),
  tableRows: [...article.querySelectorAll('table tbody tr')].map(tr => [...tr.querySelectorAll('td')].map(td => td.textContent.trim())),
  systemMessages: [...document.querySelectorAll('.system-message, .problematic')].map(e => e.textContent.trim().slice(0, 200)),
  stderr: [...article.querySelectorAll('.output.stderr, .stderr')].map(e => e.textContent.trim().slice(0, 200)),
  widths: widths,
};
"""

_WAIT_MATHJAX_JS = r"""
const done = arguments[arguments.length - 1];
const t0 = Date.now();
(function poll() {
  if (window.MathJax && MathJax.startup && MathJax.startup.promise) {
    MathJax.startup.promise.then(() => done('ok'), e => done('error: ' + e));
  } else if (Date.now() - t0 > 60000) {
    done('MathJax did not start within 60 s');
  } else {
    setTimeout(poll, 100);
  }
})();
"""


class _IdCollector(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.ids: set[str] = set()

    def handle_starttag(self, tag, attrs):
        for name, value in attrs:
            if name == "id" or (name == "name" and tag == "a"):
                self.ids.add(value)


@functools.lru_cache(maxsize=None)
def anchors_of(path: Path) -> frozenset:
    parser = _IdCollector()
    parser.feed(path.read_text(encoding="utf-8", errors="replace"))
    return frozenset(parser.ids)


def local_target(url: str, base: str) -> tuple[Path, str] | None:
    """``(file, fragment)`` for a URL into the served book, None for anything else."""
    parts = urlsplit(url)
    if f"{parts.scheme}://{parts.netloc}" != base:
        return None
    path = unquote(parts.path).lstrip("/")
    target = HTML_DIR / path
    if path == "" or path.endswith("/"):
        target = target / "index.html"
    return target, unquote(parts.fragment)


def broken_links(links: list[dict], base: str) -> list[str]:
    broken = []
    for link in links:
        target = local_target(link["href"], base)
        if target is None:
            continue
        file, fragment = target
        if not file.is_file():
            broken.append(f"{link['raw']!r} ({link['text'][:40]!r}): no file {file.relative_to(HTML_DIR)}")
        elif fragment and file.suffix == ".html" and fragment not in anchors_of(file):
            broken.append(f"{link['raw']!r} ({link['text'][:40]!r}): no anchor #{fragment} in {file.relative_to(HTML_DIR)}")
    return broken


# TeX that MathJax did not typeset: display delimiters, environments, common commands, and a
# "$" directly followed by a letter, backslash or brace (e.g. inline maths cut by a table's "|")
RAW_TEX = re.compile(r"\$\$|\\begin\{|\\end\{|\\\(|\\\)|\\\[|\\\]|\$[A-Za-z\\{]|\\frac|\\mathrm|\\ell\b")
SPHINX_ERRORS = re.compile(r"\b(WARNING|ERROR)\b|Unknown directive|Unknown interpreted text role|"
                           r"System Message|Docutils System|Undefined substitution")
# Known, harmless console errors of the pinned toolchain (not of the book):
# * Sphinx 7.4 emits the inline script of sphinx-thebe twice (a body-only script added after
#   builder-inited is registered twice), and the second ``const THEBE_JS_URL`` is a SyntaxError;
#   Thebe is not used by this book (launch_buttons.thebe: false).
# * pydata-sphinx-theme logs "Got invalid theme mode" on the first page of a fresh browser
#   profile (nothing stored yet) and falls back to "auto".
# * a missing /favicon.ico (the book has no favicon).
KNOWN_CONSOLE_ERRORS = re.compile(r"Identifier 'THEBE_JS_URL' has already been declared|"
                                  r"Got invalid theme mode|favicon\.ico")
_inspected: dict[str, dict] = {}


def inspect_page(page: str, driver, server) -> dict:
    """Load ``page`` once per session, wait for MathJax, collect everything, save a screenshot."""
    if page in _inspected:
        return _inspected[page]
    base, requests = server
    first_request = len(requests)
    driver.get(f"{base}/{page}.html")
    has_mathjax = driver.execute_script(
        "return [...document.querySelectorAll('script[src]')].some(s => /mathjax/i.test(s.src))")
    mathjax_state = driver.execute_async_script(_WAIT_MATHJAX_JS) if has_mathjax else "no MathJax on this page"
    time.sleep(0.3)   # let fonts and late images settle
    info = driver.execute_script(_INSPECT_JS)
    info["mathjax_state"] = mathjax_state
    info["failed_requests"] = [f"{path} -> {status}" for path, status in requests[first_request:]
                               if isinstance(status, int) and status >= 400 and path != "/favicon.ico"]
    info["console_errors"] = [entry["message"] for entry in driver.get_log("browser")
                              if entry.get("level") == "SEVERE" and not KNOWN_CONSOLE_ERRORS.search(entry["message"])]
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    info["screenshot"] = _screenshot(driver, SCREENSHOT_DIR / f"{page_id(page)}.png")
    _inspected[page] = info
    return info


def _screenshot(driver, path: Path) -> Path:
    """PNG of the page from the top, 1280 px wide, as tall as the page (at most SCREENSHOT_MAX_HEIGHT)."""
    import base64

    height = min(int(driver.execute_script("return document.documentElement.scrollHeight")), SCREENSHOT_MAX_HEIGHT)
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                           {"width": 1280, "height": height, "deviceScaleFactor": 1, "mobile": False})
    try:
        time.sleep(0.3)   # re-layout at the new viewport height
        shot = driver.execute_cdp_cmd("Page.captureScreenshot", {"format": "png"})
    finally:
        driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
    path.write_bytes(base64.b64decode(shot["data"]))
    return path


# --------------------------------------------------------------------------- tests


def test_book_builds_without_warnings(book):
    assert book.returncode == 0, f"jupyter-book build exited {book.returncode}:\n{book.log[-8000:]}"
    assert not book.warnings, "the build printed warnings:\n" + "\n".join(book.warnings[:50])


@pytest.mark.parametrize("page", PAGES, ids=page_id)
def test_page_renders(page, driver, server):
    base, _ = server
    assert (HTML_DIR / f"{page}.html").is_file(), f"{page}.html was not built"
    info = inspect_page(page, driver, server)
    problems = []
    # maths: MathJax ran, typeset every formula, left no raw TeX and no errors
    if info["mathSources"]:
        if info["mathjax_state"] != "ok":
            problems.append(f"MathJax: {info['mathjax_state']}")
        if not info["mathjax"]:
            problems.append("MathJax did not start")
        else:
            if info["mathjax"]["errors"]:
                problems.append(f"MathJax errors or undefined macros in: {info['mathjax']['errors'][:5]}")
            if info["mathjax"]["items"] < info["mathSources"]:
                problems.append(f"MathJax typeset {info['mathjax']['items']} of {info['mathSources']} formulas")
        if info["mjxContainers"] < info["mathSources"]:
            problems.append(f"{info['mjxContainers']} mjx-container for {info['mathSources']} formulas")
        if any(not urlsplit(src).path.startswith("/_static/mathjax/") for src in info["mathjaxScript"]):
            problems.append(f"MathJax is not the vendored copy: {info['mathjaxScript']}")
    raw = sorted({m.group(0) for m in RAW_TEX.finditer(info["text"])})
    if raw:
        snippets = [info["text"][max(0, m.start() - 40):m.end() + 40].replace("\n", " ")
                    for m in list(RAW_TEX.finditer(info["text"]))[:3]]
        problems.append(f"raw TeX visible ({raw}): {snippets}")
    # figures: captioned, images loaded
    for fig in info["figures"]:
        if not fig["caption"]:
            problems.append(f"figure {fig['id'] or '?'} has no caption")
        for img in fig["images"]:
            if not img["ok"]:
                problems.append(f"figure {fig['id'] or '?'}: image {img['src']} did not load")
    for img in info["images"]:
        if not img["ok"]:
            problems.append(f"image {img['src']} did not load")
    # links and resources
    problems += [f"broken link {b}" for b in broken_links(info["links"], base)]
    external = [r for r in info["resources"] if r and urlsplit(r).scheme in ("http", "https")
                and not r.startswith(base)]
    if external:
        problems.append(f"resources from outside the book (not available offline): {external}")
    problems += [f"failed request {r}" for r in info["failed_requests"]]
    problems += [f"browser console error: {m[:300]}" for m in info["console_errors"]]
    # no Sphinx / MyST error rendered into the page
    problems += [f"system message rendered: {m!r}" for m in info["systemMessages"]]
    for m in SPHINX_ERRORS.finditer(info["fullText"]):
        problems.append(f"error text rendered: {info['fullText'][max(0, m.start() - 60):m.end() + 60]!r}")
    # nothing needs horizontal scrolling at the 1280-px window (code and output lines of about
    # 88 characters, display equations broken over lines)
    widths = info["widths"]
    if widths["scrollWidth"] > widths["clientWidth"]:
        problems.append(f"the page scrolls horizontally: {widths['scrollWidth']} px of content "
                        f"in a {widths['clientWidth']} px window")
    for e in widths["overflowing"]:
        problems.append(f"<{e['element']}> needs horizontal scrolling ({e['scrollWidth']} px in "
                        f"{e['clientWidth']} px, right edge {e['right']} px, article ends at "
                        f"{widths['articleRight']} px): {e['text']!r}")
    if widths["brokenWords"]:
        problems.append(f"words broken across lines inside a table: {widths['brokenWords'][:10]}")
    assert info["screenshot"].is_file()
    assert not problems, f"{page}:\n  " + "\n  ".join(problems)


@pytest.mark.parametrize("chapter", CHAPTERS, ids=page_id)
def test_chapter_teaching_blocks(chapter, driver, server):
    """Each chapter opens with prerequisites and its run time and closes with exercises."""
    info = inspect_page(chapter, driver, server)
    problems = []
    if info["exercises"] < 2:
        problems.append(f"{info['exercises']} exercise(s) (.exercise), need at least 2")
    for phrase in ("Prerequisites", "Expected run time"):
        if phrase not in info["fullText"]:
            problems.append(f"no {phrase!r} text")
    if info["outputImages"]:
        problems.append(f"{len(info['outputImages'])} plot output(s) outside a captioned figure: {info['outputImages']}")
    assert not problems, f"{chapter}:\n  " + "\n  ".join(problems)


@pytest.mark.parametrize("chapter", CHAPTERS, ids=page_id)
def test_chapter_downloads(chapter, driver, server):
    """The download button offers the executed notebook (.ipynb) and the MyST source (.md)."""
    import nbformat

    base, _ = server
    info = inspect_page(chapter, driver, server)
    by_text = {d["text"]: d["href"] for d in info["downloads"]}
    assert ".ipynb" in by_text and ".md" in by_text, f"{chapter}: download menu has {sorted(by_text)}"
    md_file, _ = local_target(by_text[".md"], base)
    nb_file, _ = local_target(by_text[".ipynb"], base)
    assert md_file == HTML_DIR / "_sources" / f"{chapter}.md"
    assert md_file.read_text() == (ROOT / f"{chapter}.md").read_text(), ".md download is not the chapter source"
    assert nb_file == HTML_DIR / "_sources" / f"{chapter}.ipynb"
    nb = nbformat.read(nb_file, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and any(c.outputs for c in code), f"{nb_file.name} has no outputs"


def test_equation_references_between_chapters(driver, server):
    """{eq} references resolve, also across chapters, and show the target's number."""
    base, _ = server
    cross, checked = [], 0
    for page in PAGES:
        info = inspect_page(page, driver, server)
        for link in info["links"]:
            target = local_target(link["href"], base)
            if target is None or not target[1].startswith("equation-") or link["headerlink"]:
                continue
            file, fragment = target
            checked += 1
            if file != HTML_DIR / f"{page}.html":
                cross.append((page, link["raw"]))
            assert file.is_file() and fragment in anchors_of(file), f"{page}: broken equation link {link['raw']}"
            number = _equation_number(file, fragment)
            assert re.fullmatch(r"\(\d+(\.\d+)*\)", link["text"]), f"{page}: equation link text {link['text']!r}"
            assert link["text"] == number, f"{page}: {link['raw']} shows {link['text']} but the equation is {number}"
    assert checked, "no equation references found"
    assert cross, "no equation reference between chapters"
    print(f"\n[browser] {checked} equation references, {len(cross)} between pages")


@functools.lru_cache(maxsize=None)
def _equation_number(file: Path, fragment: str) -> str:
    text = file.read_text(encoding="utf-8")
    m = re.search(r'id="' + re.escape(fragment) + r'"[^>]*>\s*<span class="eqno">\s*(\(.*?\))', text, re.S)
    return m.group(1) if m else "?"


def test_citations_are_author_year(driver, server):
    """Citations read "Author and Author [2019]" / "[Author, 2019]", and the bibliography lists them."""
    cited = [(page, text) for page in PAGES for text in inspect_page(page, driver, server)["citations"]]
    assert cited, "no citations found"
    not_author_year = [c for c in cited if not re.search(r"[A-Z][a-z]+.*\b(19|20)\d{2}[a-z]?\b", c[1], re.S)]
    assert not not_author_year, f"citations that are not author-year: {not_author_year[:5]}"
    entries = inspect_page("bibliography", driver, server)["bibEntries"]
    assert entries, "the bibliography page lists no entries"
    assert any("Mertsch" in e and "2019" in e for e in entries), "Mertsch & Ahlers (2019) is not in the bibliography"
    print(f"\n[browser] {len(cited)} citations (e.g. {cited[0][1]!r}), {len(entries)} bibliography entries")


def test_execution_status_page(driver, server):
    """The execution table lists every chapter, executed successfully, with its run time."""
    rows = inspect_page("execution_status", driver, server)["tableRows"]
    table = {r[0]: r for r in rows if r}
    missing = [c for c in CHAPTERS if c not in table]
    assert not missing, f"chapters missing from the execution table: {missing}; rows: {list(table)}"
    print("\n[browser] chapter run times (execution cache):")
    total = 0.0
    for chapter in CHAPTERS:
        doc, modified, method, runtime, status = table[chapter][:5]
        print(f"  {chapter:32s} {runtime:>8s} s  {status}")
        assert status == "✅", f"{chapter} did not execute successfully"
        assert re.fullmatch(r"\d+(\.\d+)?", runtime), f"{chapter}: run time {runtime!r}"
        total += float(runtime)
    print(f"  {'total':32s} {total:8.1f} s")


def test_mathjax_served_offline(driver, server):
    """MathJax and its fonts came from the book's own _static/mathjax/, and the macros applied."""
    _, requests = server
    for page in PAGES:
        inspect_page(page, driver, server)
    paths = [p for p, status in requests if status == 200]
    assert any(p.startswith("/_static/mathjax/tex-chtml.js") for p in paths), "tex-chtml.js was not served"
    assert any(p.startswith("/_static/mathjax/output/chtml/fonts/woff-v2/") for p in paths), "no MathJax font was served"
    macros = set(_inspected["notation"]["mathjax"]["macros"])
    expected = set(yaml.safe_load((ROOT / "_config.yml").read_text())["sphinx"]["config"]["mathjax3_config"]["tex"]["macros"])
    assert expected <= macros, f"macros of _config.yml missing in MathJax: {sorted(expected - macros)}"


def test_screenshots_written(driver, server):
    for page in PAGES:
        inspect_page(page, driver, server)
    shots = sorted(SCREENSHOT_DIR.glob("*.png"))
    names = {p.stem for p in shots}
    assert {page_id(p) for p in PAGES} <= names
    print("\n[browser] screenshots: " + ", ".join(str(p.relative_to(ROOT)) for p in shots))
    report = {page: {k: info[k] for k in ("title", "mathSources", "mjxContainers", "exercises")}
              | {"figures": len(info["figures"])} for page, info in _inspected.items()}
    (SCREENSHOT_DIR / "pages.json").write_text(json.dumps(report, indent=1))
