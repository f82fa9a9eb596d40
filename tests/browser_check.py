"""Check a rendered book in a real browser: headless Chromium driven by Selenium (Debian chromium + chromium-driver).

For every page: serve the HTML folder on 127.0.0.1 (Python's http.server in a thread), load the page, make lazy
images eager and wait until every ``<img>`` has finished loading, then report

* images whose ``naturalWidth`` is 0 (missing file, broken PNG, blocked URL),
* signs of an error output: the text ``Traceback (most recent call last)``, a rendered error/traceback output
  block (myst-nb's ``output traceback`` / ``highlight-ipythontb``), or papermill's error banner,

and save a full-page screenshot.

:func:`check_links` follows the book's links: every table-of-contents link of the sidebar (from the entry page, then
from each page it reaches), every citation link to the bibliography (its target must exist), the launch buttons
(Binder, Colab) and the download buttons (fetched: the file must be served).

Used by ``tests/test_browser.py``; also a command to check a built book by hand::

    python tests/browser_check.py _build/html --toc _toc.yml --screenshots _build/screenshots
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import dataclasses
import functools
import http.server
import os
import shutil
import sys
import tempfile
import threading
from pathlib import Path

CHROMIUM_CANDIDATES = ("chromium", "chromium-browser", "google-chrome")
CHROMEDRIVER_CANDIDATES = ("chromedriver",)
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage", "--window-size=1280,1000")
TRACEBACK_TEXT = ("Traceback (most recent call last)", "encountered an exception here and stopped")
# myst-nb renders an error output as <div class="output traceback highlight-ipythontb">; pytb for python tracebacks
ERROR_SELECTORS = ("div.output.traceback", "div.highlight-ipythontb", "div.highlight-pytb",
                   "[id='papermill-error-cell']")


def find_browser() -> tuple[str, str] | None:
    """``(chromium, chromedriver)`` executables, or None where either is not installed."""
    browser = next((shutil.which(c) for c in CHROMIUM_CANDIDATES if shutil.which(c)), None)
    driver = next((shutil.which(c) for c in CHROMEDRIVER_CANDIDATES if shutil.which(c)), None)
    return (browser, driver) if browser and driver else None


@dataclasses.dataclass
class PageReport:
    """One page: ``images`` counted, ``broken`` image URLs (naturalWidth 0), ``errors`` (traceback evidence)."""

    page: str
    title: str
    images: int
    broken: list[str]
    errors: list[str]
    screenshot: Path | None

    @property
    def ok(self) -> bool:
        return not self.broken and not self.errors


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # no request log on stderr
        pass


class _QuietServer(http.server.ThreadingHTTPServer):
    def handle_error(self, request, client_address):  # the browser closing a connection early is no error
        if not isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            super().handle_error(request, client_address)


@contextlib.contextmanager
def serve(directory: str | os.PathLike):
    """Serve ``directory`` on ``http://127.0.0.1:<free port>/`` in a daemon thread; yields the base URL."""
    handler = functools.partial(_QuietHandler, directory=str(directory))
    server = _QuietServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@contextlib.contextmanager
def chromium_driver(browser: str | None = None, driver: str | None = None):
    """A Selenium Chrome WebDriver on headless Chromium with a fresh profile folder (removed afterwards).

    Raises:
        RuntimeError: chromium or chromedriver not installed.
    """
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    found = find_browser()
    if (browser is None or driver is None) and found is None:
        raise RuntimeError("chromium and chromedriver are needed (Debian: apt-get install chromium chromium-driver)")
    browser, driver = browser or found[0], driver or found[1]
    os.environ.setdefault("SE_OFFLINE", "true")  # never let Selenium Manager try to download a driver
    profile = tempfile.mkdtemp(prefix="detpretrain-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    web = webdriver.Chrome(options=options, service=Service(executable_path=driver))
    try:
        web.set_page_load_timeout(60)
        yield web
    finally:
        web.quit()
        shutil.rmtree(profile, ignore_errors=True)


# Makes lazy images eager, then resolves once every image has loaded or failed (or after 20 s).
_WAIT_FOR_IMAGES = """
const done = arguments[arguments.length - 1];
const imgs = Array.from(document.images);
imgs.forEach(img => { if (img.loading === 'lazy') { img.loading = 'eager'; } });
const pending = imgs.filter(img => !img.complete).map(img => new Promise(resolve => {
  img.addEventListener('load', resolve, {once: true});
  img.addEventListener('error', resolve, {once: true});
}));
Promise.race([Promise.all(pending), new Promise(r => setTimeout(r, 20000))]).then(() => done(
  imgs.map(img => ({src: img.currentSrc || img.src, width: img.naturalWidth}))));
"""


def _full_page_screenshot(web, path: Path) -> None:
    height = web.execute_script("return Math.min(document.documentElement.scrollHeight, 16000);")
    shot = web.execute_cdp_cmd("Page.captureScreenshot", {
        "format": "png", "captureBeyondViewport": True,
        "clip": {"x": 0, "y": 0, "width": 1280, "height": max(int(height), 100), "scale": 1}})
    path.write_bytes(base64.b64decode(shot["data"]))


def _load(web, url: str) -> None:
    """Load ``url`` and wait until it is complete; a redirect page (Jupyter Book's index.html:
    ``<meta http-equiv="Refresh">``) is followed to its target."""
    from selenium.webdriver.support.ui import WebDriverWait

    web.get(url)
    WebDriverWait(web, 30).until(lambda d: d.execute_script(
        "return document.readyState === 'complete' && document.body !== null"
        " && !document.querySelector('meta[http-equiv=\"refresh\" i]');"))


def check_page(web, url: str, page: str, screenshots: Path | None = None) -> PageReport:
    """Load ``url`` in ``web`` and report broken images and traceback evidence (see the module docstring)."""
    from selenium.webdriver.common.by import By

    _load(web, url)
    web.set_script_timeout(30)
    images = web.execute_async_script(_WAIT_FOR_IMAGES)
    broken = [img["src"] for img in images if not img["width"]]
    text = web.find_element(By.TAG_NAME, "body").text
    errors = [f"text {needle!r}" for needle in TRACEBACK_TEXT if needle in text]
    for selector in ERROR_SELECTORS:
        found = web.find_elements(By.CSS_SELECTOR, selector)
        if found:
            errors.append(f"{len(found)} element(s) {selector}: {found[0].text.strip()[:200]!r}")
    shot = None
    if screenshots is not None:
        screenshots.mkdir(parents=True, exist_ok=True)
        shot = screenshots / (page.replace("/", "__").removesuffix(".html") + ".png")
        _full_page_screenshot(web, shot)
    return PageReport(page=page, title=web.title, images=len(images), broken=broken, errors=errors, screenshot=shot)


def check_site(html_dir: str | os.PathLike, pages: list[str], screenshots: str | os.PathLike | None = None,
               ) -> list[PageReport]:
    """Serve ``html_dir`` and check every page of ``pages`` (paths relative to it, e.g. ``book/intro.html``).

    Raises:
        FileNotFoundError: a page that is not in ``html_dir``.  RuntimeError: no chromium/chromedriver.
    """
    html_dir = Path(html_dir)
    for page in pages:
        if not (html_dir / page).is_file():
            raise FileNotFoundError(f"{html_dir / page}: page not built")
    shots = Path(screenshots) if screenshots is not None else None
    with serve(html_dir) as base, chromium_driver() as web:
        return [check_page(web, base + page, page, shots) for page in pages]


@dataclasses.dataclass
class LinkReport:
    """The links of one page, as the browser sees them.

    Attributes:
        page: the page (relative to the site root), as loaded; ``url`` is where it ended (after redirects).
        error_page: the server answered with an error page (e.g. 404) instead of the page.
        toc: the pages the sidebar's table of contents links to (relative to the site root, no fragment).
        launch: ``{"binder": href, "colab": href}`` of the launch buttons present.
        repository: ``{"repository": href, "issues": href}`` of the repository buttons present.
        downloads: ``{raw href: HTTP status}`` of the download buttons that link to a file (fetched by the page).
        downloaded: ``{raw href: text}`` of the downloads that were served (status 200).
        citations: ``{href: resolved}`` of the links into the bibliography page; resolved = the target element
            exists on the loaded target page.
        bibliography_entries: the number of bibliography entries (``div.citation``) on the page.
    """

    page: str
    url: str
    error_page: bool
    toc: list[str]
    launch: dict[str, str]
    repository: dict[str, str]
    downloads: dict[str, int]
    downloaded: dict[str, str]
    citations: dict[str, bool]
    bibliography_entries: int


_REPOSITORY_SELECTORS = {"repository": "a.btn-source-repository-button", "issues": "a.btn-source-issues-button"}
# fetch() every URL from the page (same origin) and hand back status and text
_FETCH = """
const done = arguments[arguments.length - 1];
Promise.all(arguments[0].map(u => fetch(u).then(r => r.text().then(t => [u, r.status, t]))
                                        .catch(() => [u, 0, ''])))
  .then(done);
"""


def _site_path(base: str, url: str) -> str:
    return url.split("#", 1)[0].removeprefix(base)


def _page_links(web, base: str, page: str, bibliography: str) -> LinkReport:
    from selenium.webdriver.common.by import By

    _load(web, base + page)
    url = web.current_url
    error_page = web.title.startswith("Error response") or not web.find_elements(By.CSS_SELECTOR, "main h1, h1")
    toc = sorted({_site_path(base, a.get_attribute("href"))
                  for a in web.find_elements(By.CSS_SELECTOR, "nav.bd-docs-nav a.reference.internal")
                  if a.get_attribute("href")} - {""})
    found = {key: [a.get_attribute("href") for a in web.find_elements(By.CSS_SELECTOR, sel)]
             for key, sel in _REPOSITORY_SELECTORS.items()}
    # the launch dropdown's entries are named by their text (Bootstrap moves the title into a tooltip)
    launch = web.execute_script(
        "return Array.from(document.querySelectorAll('.dropdown-launch-buttons a[href]'))"
        ".map(a => [a.textContent.trim().toLowerCase(), a.getAttribute('href')]);")
    raw_downloads = web.execute_script(
        "return Array.from(document.querySelectorAll('.dropdown-download-buttons a[href]'))"
        ".map(a => a.getAttribute('href')).filter(h => !h.startsWith('javascript') && h !== '#');")
    web.set_script_timeout(30)
    fetched = web.execute_async_script(_FETCH, raw_downloads) if raw_downloads else []
    cites = sorted({href for a in web.find_elements(By.CSS_SELECTOR, ".bd-article a.reference.internal")
                    if (href := a.get_attribute("href") or "").split("#", 1)[0].endswith(bibliography)
                    and href.split("#", 1)[-1] and "#" in href})
    entries = len(web.find_elements(By.CSS_SELECTOR, "div.citation"))
    citations = {}
    for href in cites:
        web.get(href)
        fragment = href.split("#", 1)[1]
        citations[href] = bool(web.execute_script("return document.getElementById(arguments[0]) !== null;",
                                                  fragment))
    return LinkReport(page=page, url=url, error_page=error_page, toc=toc,
                      launch=dict(launch), repository={k: v[0] for k, v in found.items() if v},
                      downloads={href: status for href, status, _ in fetched},
                      downloaded={href: text for href, status, text in fetched if status == 200},
                      citations=citations, bibliography_entries=entries)


def check_links(html_dir: str | os.PathLike, start: str = "index.html",
                bibliography: str = "book/references.html") -> dict[str, LinkReport]:
    """Follow the table of contents of a built book from ``start`` and report every page's links.

    Every page the sidebar's table of contents links to, on any page reached, is loaded in turn (breadth first),
    so a ToC link to a page that was not built shows up as a report with ``error_page`` set.

    Returns:
        ``{page: LinkReport}`` for ``start`` and every page reached (pages relative to ``html_dir``).

    Raises:
        RuntimeError: no chromium/chromedriver.
    """
    reports: dict[str, LinkReport] = {}
    with serve(html_dir) as base, chromium_driver() as web:
        queue = [start]
        while queue:
            page = queue.pop(0)
            if page in reports:
                continue
            reports[page] = report = _page_links(web, base, page, bibliography)
            queue += [p for p in report.toc if p not in reports]
    return reports


def toc_pages(toc: str | os.PathLike) -> list[str]:
    """The HTML pages of a Jupyter Book 1 toc: ``index.html`` and ``<entry>.html`` for every chapter entry."""
    from detpretrain.book import toc_files

    return ["index.html"] + [f"{entry}.html" for entry in toc_files(Path(toc).parent)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("html_dir")
    parser.add_argument("--toc", default="_toc.yml")
    parser.add_argument("--screenshots", default=None)
    args = parser.parse_args(argv)
    reports = check_site(args.html_dir, toc_pages(args.toc), args.screenshots)
    for r in reports:
        status = "ok" if r.ok else "FAIL"
        print(f"{status:<4} {r.page:<32} {r.images:>3} images  {r.title!r}")
        for src in r.broken:
            print(f"     broken image: {src}")
        for err in r.errors:
            print(f"     error output: {err}")
        if r.screenshot:
            print(f"     screenshot: {r.screenshot}")
    return 0 if all(r.ok for r in reports) else 1


if __name__ == "__main__":
    sys.exit(main())
