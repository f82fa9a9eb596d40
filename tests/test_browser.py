"""The rendered book in a real browser (headless Chromium through Selenium and chromedriver).

The smoke build of the book (``test_book.smoke_book``: a copy of the book built in a temporary folder, shared with
test_book.py) is served on 127.0.0.1; every page of the toc is opened; every ``<img>`` must have loaded
(``naturalWidth > 0``) and no page may show a Python traceback or an error output. Then every table-of-contents
link is followed from the entry page, every citation must resolve into the bibliography, and the launch (Binder,
Colab), download and repository buttons must point at the right files. Screenshots go to
``_build/screenshots/`` (or ``$DETPRETRAIN_SCREENSHOTS``). Skipped, with the reason, only where chromium or
chromedriver is not installed (``.ci/run`` installs the Debian packages chromium and chromium-driver).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from browser_check import check_links, check_site, find_browser, toc_pages
from conftest import PROJECT_ROOT
from detpretrain import book, rerun
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


def _nav(*pages: str) -> str:
    links = "".join(f'<li><a class="reference internal" href="{p}">{p}</a></li>' for p in pages)
    return f'<nav class="bd-docs-nav"><ul>{links}</ul></nav>'


def test_link_checker_flags_missing_pages_citations_and_downloads(tmp_path):
    """The link check can fail: a ToC link to a page that was not built, a citation whose target does not exist
    and a download that is not served are all reported; good links are followed and resolve."""
    nav = _nav("a.html", "b.html", "missing.html")
    (tmp_path / "index.html").write_text('<html><head><meta http-equiv="Refresh" content="0; url=a.html"></head>'
                                         "<body></body></html>")
    (tmp_path / "a.html").write_text(
        f"<html><head><title>A</title></head><body>{nav}<main><h1>A</h1><div class='bd-article'>"
        '<a class="reference internal" href="refs.html#good">[1]</a>'
        '<a class="reference internal" href="refs.html#gone">[2]</a></div></main>'
        '<div class="dropdown-download-buttons"><a href="a.ipynb">.ipynb</a><a href="lost.ipynb">.ipynb</a>'
        '<a href="javascript:window.print()">.pdf</a></div>'
        '<div class="dropdown-launch-buttons"><a href="https://mybinder.org/x"><span>Binder</span></a></div>'
        "</body></html>")
    (tmp_path / "a.ipynb").write_text('{"cells": []}')
    (tmp_path / "b.html").write_text(f"<html><body>{nav}<main><h1>B</h1></main></body></html>")
    (tmp_path / "refs.html").write_text('<html><body><main><h1>R</h1><div class="citation" id="good">x</div>'
                                        "</main></body></html>")
    reports = check_links(tmp_path, bibliography="refs.html")
    assert set(reports) == {"index.html", "a.html", "b.html", "missing.html"}
    start = reports["index.html"]
    assert start.url.endswith("/a.html") and not start.error_page  # the redirect was followed
    assert start.toc == ["a.html", "b.html", "missing.html"]
    assert reports["missing.html"].error_page and not reports["b.html"].error_page
    assert sorted(start.citations.values()) == [False, True]
    assert start.downloads == {"a.ipynb": 200, "lost.ipynb": 404} and start.downloaded == {"a.ipynb": '{"cells": []}'}
    assert start.launch == {"binder": "https://mybinder.org/x"}


@pytest.mark.slow
def test_toc_links_bibliography_and_buttons_of_the_smoke_book(tmp_path_factory):
    """Follow every ToC link of the smoke book; the bibliography resolves; launch and download buttons point at
    the chapter's notebook (Binder and Colab: ``<entry>.ipynb`` on the launch branch, which the book workflow fills
    from ``<entry>.py``; download: the executed notebook of this build)."""
    from pybtex.database import parse_file

    root, _, _ = smoke_book(tmp_path_factory.getbasetemp())
    reports = check_links(root / "_build" / "html")
    chapters = toc_pages(root / "_toc.yml")[1:]
    assert sorted(set(reports) - {"index.html"}) == sorted(chapters), "ToC links and toc pages differ"
    for page, report in reports.items():
        assert not report.error_page, f"{page}: the ToC link leads to an error page"
        assert report.toc == sorted(chapters), f"{page}: its ToC differs from _toc.yml"

    entries = parse_file(str(root / "references.bib")).entries
    assert reports["book/references.html"].bibliography_entries == len(entries)
    citations = {href: ok for r in reports.values() for href, ok in r.citations.items()}
    assert citations and all(citations.values()), f"unresolved citations: {[h for h, ok in citations.items() if not ok]}"

    repo = rerun.repository(root)
    for entry in book.toc_files(root):
        report, source = reports[f"{entry}.html"], book.chapter_source(root, entry)
        expected = rerun.launch_urls(repo, entry)
        assert report.repository["repository"] == repo.url
        assert report.repository["issues"].startswith(repo.issues_url + "/")
        if source.suffix == ".md":  # a prose page: nothing to launch; its download is its source
            assert report.launch == {}
            assert report.downloaded[f"../_sources/{entry}.md"] == source.read_text()
            continue
        assert report.launch == {"binder": expected["binder"], "colab": expected["colab"]}, entry
        assert (PROJECT_ROOT / entry).with_suffix(".py").is_file()  # what the launch branch's .ipynb is made of
        assert report.downloads.get(expected["download"]) == 200, f"{entry}: {report.downloads}"
        notebook = json.loads(report.downloaded[expected["download"]])
        assert Path(notebook["metadata"]["papermill"]["input_path"]).resolve() == source.resolve()
        assert any(cell.get("outputs") for cell in notebook["cells"]), f"{entry}: the download is not executed"
