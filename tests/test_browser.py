"""The rendered book in a real browser (headless Chromium through Selenium and chromedriver).

The smoke build of the book (``test_book.smoke_book``: a copy of the book built in a temporary folder, shared with
test_book.py) is served on 127.0.0.1; every page of the toc is opened; every ``<img>`` must have loaded
(``naturalWidth > 0``) and no page may show a Python traceback or an error output. Screenshots go to
``_build/screenshots/`` (or ``$DETPRETRAIN_SCREENSHOTS``). Skipped, with the reason, only where chromium or
chromedriver is not installed (``.ci/run`` installs the Debian packages chromium and chromium-driver).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from browser_check import check_site, find_browser, toc_pages
from conftest import PROJECT_ROOT
from detpretrain import book
from test_book import TOC_ENTRIES, TOC_NAMES, smoke_book

pytestmark = pytest.mark.skipif(
    find_browser() is None,
    reason="chromium/chromedriver not installed (Debian: apt-get install chromium chromium-driver; .ci/run does it)")

SCREENSHOTS = Path(os.environ.get("DETPRETRAIN_SCREENSHOTS", PROJECT_ROOT / "_build" / "screenshots"))


def test_checker_flags_broken_images_and_tracebacks(tmp_path):
    """The check can fail: a missing image, a corrupt one and a traceback output are reported; a good page is ok."""
    Image.fromarray(np.full((20, 30, 3), 200, np.uint8)).save(tmp_path / "ok.png")
    (tmp_path / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    tall = '<div style="height:3000px">spacer</div>'
    (tmp_path / "good.html").write_text(
        f'<html><body><p>fine</p>{tall}<img src="ok.png" loading="lazy"></body></html>')  # lazy, below the fold
    (tmp_path / "broken.html").write_text(
        '<html><body><img src="ok.png"><img src="missing.png"><img src="corrupt.png"></body></html>')
    (tmp_path / "trace.html").write_text(
        '<html><body><div class="cell_output"><div class="output traceback highlight-ipythontb"><pre>'
        'Traceback (most recent call last):\n  File "x.py", line 1\nValueError: boom</pre></div></div></body></html>')
    reports = {r.page: r for r in check_site(tmp_path, ["good.html", "broken.html", "trace.html"],
                                             screenshots=tmp_path / "shots")}
    good, broken, trace = reports["good.html"], reports["broken.html"], reports["trace.html"]
    assert good.ok and good.images == 1
    assert broken.images == 3 and sorted(Path(s).name for s in broken.broken) == ["corrupt.png", "missing.png"]
    assert not trace.ok and any("Traceback" in e for e in trace.errors)
    assert any("output.traceback" in e for e in trace.errors)
    assert good.screenshot.is_file() and good.screenshot.stat().st_size > 1000
    with pytest.raises(FileNotFoundError, match="page not built"):
        check_site(tmp_path, ["nope.html"])


@pytest.mark.slow
def test_every_chapter_page_loads_its_figures_without_tracebacks(tmp_path_factory):
    missing = [e for e in TOC_ENTRIES if not book.chapter_source(PROJECT_ROOT, e).is_file()]
    assert not missing, f"_toc.yml lists chapters that do not exist: {missing}"
    root, report, _ = smoke_book(tmp_path_factory.getbasetemp())
    html = root / "_build" / "html"
    pages = toc_pages(root / "_toc.yml")
    assert len(pages) == len(TOC_NAMES) + 1
    reports = check_site(html, pages, screenshots=SCREENSHOTS)
    problems = [f"{r.page}: broken images {r.broken}; errors {r.errors}" for r in reports if not r.ok]
    assert not problems, "\n".join(problems)
    assert sum(r.images for r in reports[1:]) > 0, "no chapter shows a single figure"
    for r in reports:
        assert r.screenshot is not None and r.screenshot.is_file()
        assert "detpretrain" in r.title
