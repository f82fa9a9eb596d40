"""The book pipeline: toc, parameters, papermill execution, up-to-date skipping, nbval, the smoke build.

Two kinds of tests:

* on small chapters written here into ``tmp_path`` (the mechanics: parameters, failures, timeouts, skipping,
  nbval's comparison), and
* on the project's own chapters listed in ``_toc.yml`` (parametrised over the toc, so a chapter the toc lists but
  ``book/`` lacks FAILS with its path): the smoke build of a copy of the book in a temporary folder (its own run
  store and corpus cache, so the repository is not touched), nbval on every executed chapter, and a re-execution
  of the detection chapter with non-default parameters.

How nbval compares deterministic outputs (``test_nbval_on_chapter``)
--------------------------------------------------------------------
``pytest --nbval-lax`` re-executes a notebook and compares, for cells marked ``# NBVAL_CHECK_OUTPUT`` (or tagged
``nbval-check-output``) only, the outputs it gets against the outputs *stored in the notebook*. A notebook fresh
from jupytext has no outputs, so nbval would have nothing to compare. Hence: the smoke build executes each chapter
once with papermill (``profile="smoke"``, run store and corpus cache in a temporary folder, injected as papermill
parameters); that executed notebook -- injected-parameters cell included -- is the reference, and nbval executes
it a second time in a fresh kernel with the same parameters. Every cell must run without error; marked cells
must reproduce their outputs exactly (text/plain, text/html; images are not compared by nbval). The second
execution loads the runs trained by the first from the run store, so the comparison also checks that a rebuild
from the store gives the same numbers as the training that produced them. ``test_nbval_detects_changed_output``
shows on a hand-made chapter that the comparison is live: a tampered stored output makes nbval fail.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import nbformat
import pytest

from conftest import PROJECT_ROOT
from detpretrain import book
from detpretrain.plan import environment
from detpretrain.cli import main as cli_main
from detpretrain.errors import ConfigError

PARAMETERS_CELL = '''\
# %% tags=["parameters"]
profile = "mini"
dataset = "synthetic"
data_root = None
seeds = None
device = "auto"
store = None
data_cache = None
'''


def write_chapter(path: Path, *cells: str, title: str = "A test chapter") -> Path:
    """A jupytext percent chapter: a title, the contract's parameters cell, then ``cells`` (code, dedented)."""
    body = [f"# %% [markdown]\n# # {title}\n", PARAMETERS_CELL]
    body += [f"# %%\n{textwrap.dedent(c).strip()}\n" for c in cells]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(body))
    return path


def write_book(root: Path, chapters: dict[str, list[str]]) -> Path:
    """A book folder: the project's _config.yml, a toc over ``chapters`` (first = root), one file per chapter."""
    shutil.copy(PROJECT_ROOT / "_config.yml", root / "_config.yml")
    names = list(chapters)
    toc = f"format: jb-book\nroot: book/{names[0]}\n"
    if names[1:]:
        toc += "chapters:\n" + "".join(f"  - file: book/{n}\n" for n in names[1:])
    (root / "_toc.yml").write_text(toc)
    for name, cells in chapters.items():
        write_chapter(root / "book" / f"{name}.py", *cells, title=f"Chapter {name}")
    return root


def run_nbval(notebook: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    """``pytest --nbval-lax`` on one notebook in a subprocess (the venv's kernel, its folder as rootdir)."""
    cmd = [sys.executable, "-m", "pytest", "--nbval-lax", "--nbval-current-env", "--nbval-cell-timeout=600",
           "-p", "no:cacheprovider", "-q", "--rootdir", str(notebook.parent), str(notebook)]
    base = {k: v for k, v in os.environ.items() if k != "PYTEST_ADDOPTS"}  # the outer run's options are not ours
    return subprocess.run(cmd, cwd=notebook.parent, capture_output=True, text=True, timeout=900,
                          env={**base, **(env or {})})


def outputs_text(nb) -> str:
    """All stream and text/plain outputs of a notebook, joined."""
    parts = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            parts.append(out.get("text", "") or out.get("data", {}).get("text/plain", ""))
    return "\n".join(parts)


# ----------------------------------------------------------------------------------------- parameters, toc


def test_parse_value_reads_values_like_papermill_yaml():
    assert book.parse_value("0") == 0 and isinstance(book.parse_value("0"), int)
    assert book.parse_value("0.5") == 0.5
    assert book.parse_value("1e-3") == pytest.approx(0.001)
    assert book.parse_value("None") is None and book.parse_value("null") is None
    assert book.parse_value("[0,1]") == [0, 1]
    assert book.parse_value("[0, 1, 2]") == [0, 1, 2]
    assert book.parse_value("true") is True and book.parse_value("False") is False
    assert book.parse_value("{a: 1}") == {"a": 1}
    assert book.parse_value("cuda") == "cuda"
    assert book.parse_value("yes") == "yes"  # YAML 1.1 boolean words stay strings
    assert book.parse_value("../shared/data/coco2017_subset") == "../shared/data/coco2017_subset"
    assert book.parse_value("~/data") == "~/data"
    assert book.parse_value("nan") == "nan"
    assert book.parse_value(3) == 3  # non-strings untouched


def test_toc_files_reads_root_parts_chapters_and_sections(tmp_path):
    (tmp_path / "_toc.yml").write_text(textwrap.dedent("""\
        format: jb-book
        root: book/intro
        parts:
          - caption: One
            chapters:
              - file: book/a.py
                sections:
                  - file: book/a1
              - url: https://example.org
          - caption: Two
            chapters:
              - file: book/b
        """))
    assert book.toc_files(tmp_path) == ["book/intro", "book/a", "book/a1", "book/b"]
    (tmp_path / "_toc.yml").write_text("format: jb-book\nchapters:\n  - file: book/a\n")
    with pytest.raises(ConfigError, match="no 'root' entry"):
        book.toc_files(tmp_path)


def test_unknown_chapter_is_named_with_the_list_of_chapters(tmp_path):
    write_book(tmp_path, {"intro": [], "detection": []})
    assert book.resolve_chapter("detection", tmp_path) == tmp_path / "book" / "detection.py"
    with pytest.raises(ConfigError, match=r"unknown chapter 'detecton'.*intro, detection"):
        book.resolve_chapter("detecton", tmp_path)
    with pytest.raises(FileNotFoundError, match="no such chapter file"):
        book.resolve_chapter(str(tmp_path / "book" / "missing.py"), tmp_path)
    with pytest.raises(ConfigError, match="unknown chapter"):
        book.build_book("smoke", root=tmp_path, chapters=["nope"], html=False)
    with pytest.raises(ConfigError, match="unknown profile"):
        book.build_book("huge", root=tmp_path, html=False)
    with pytest.raises(ConfigError, match="with --profile"):
        book.build_book("smoke", root=tmp_path, html=False, params={"profile": "mini"})
    (tmp_path / "book" / "intro.py").write_text("# %%\nprint('no parameters cell')\n")
    with pytest.raises(ConfigError, match=r"intro\.py: no cell tagged 'parameters'"):
        book.run_command(str(tmp_path / "book" / "intro.py"), {})
    with pytest.raises(ConfigError, match=r"intro\.py: no cell tagged 'parameters'"):
        book.build_book("paper", root=tmp_path, html=False)

def test_jupyter_book_failure_is_reported(tmp_path):
    write_book(tmp_path, {"intro": []})  # never executed: no book/intro.ipynb for Sphinx to read
    with pytest.raises(book.BookBuildError, match=r"jupyter-book build .* failed \(exit \d+\):"):
        book.build_html(tmp_path)


def test_code_hash_follows_package_code_but_not_the_book_driver(tmp_path):
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "a.py").write_text("x = 1\n")
    (pkg / "sub" / "b.py").write_text("y = 2\n")
    (pkg / "book.py").write_text("z = 3\n")
    first = book.code_hash(pkg)
    (pkg / "book.py").write_text("z = 4\n")
    assert book.code_hash(pkg) == first
    (pkg / "sub" / "b.py").write_text("y = 3\n")
    assert book.code_hash(pkg) != first


# ------------------------------------------------------------------------ execution on hand-made chapters

ECHO = """\
import sys
print(f"profile={profile!r} seeds={seeds!r} ({type(seeds).__name__}) device={device!r}")
print("python", sys.executable)
"""


def test_run_command_injects_parameters_and_they_take_effect(tmp_path, capsys):
    """``python -m detpretrain run`` = papermill with YAML-read -p values, in the venv's own interpreter."""
    src = write_chapter(tmp_path / "echo.py", ECHO)
    out = tmp_path / "out" / "echo.ipynb"
    rc = cli_main(["run", str(src), "-p", "profile", "smoke", "-p", "seeds", "[0, 1]", "-p", "device", "cpu",
                   "-o", str(out)])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    nb = nbformat.read(out, as_version=4)
    injected = [c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert len(injected) == 1
    assert "profile = \"smoke\"" in injected[0].source and "seeds = [0, 1]" in injected[0].source
    text = outputs_text(nb)
    assert "profile='smoke' seeds=[0, 1] (list) device='cpu'" in text
    kernel_python = text.split("python ", 1)[1].split()[0]
    assert Path(kernel_python).resolve() == Path(sys.executable).resolve()
    assert nb.metadata.papermill.parameters == {"profile": "smoke", "seeds": [0, 1], "device": "cpu"}
    assert nb.metadata.detpretrain.source_hash == book.source_hash(src)
    assert nb.metadata.papermill.input_path == str(src)


def test_failing_chapter_stops_the_book_with_its_name_and_cell(tmp_path, monkeypatch, capsys, vocdevkit):
    write_book(tmp_path, {"intro": ["print('never')"],
                          "first": ["a = 1", "b = a + 1\nraise ValueError(f'bad value {b}')"],
                          "second": ["print('never')"]})
    monkeypatch.chdir(tmp_path)
    # paper: no corpora to generate; it fine-tunes on real data, so a real target is named (nothing is read from it:
    # these hand-made chapters have no run plan)
    rc = cli_main(["book", "--profile", "paper", "--no-html", "--chapters", "first,second", "--chapter-jobs", "1",
                   "-p", "dataset", "voc", "-p", "data_root", str(vocdevkit)])
    captured = capsys.readouterr()
    assert rc == 1
    assert "chapter 'first' failed in cell" in captured.err
    assert "raise ValueError(f'bad value {b}')" in captured.err  # the failing cell's source
    assert "ValueError: bad value 2" in captured.err
    assert "Traceback (most recent call last)" not in captured.err + captured.out
    assert "[1/2] first" in captured.out and "[2/2]" not in captured.out
    assert not (tmp_path / "book" / "second.ipynb").exists()
    failed = nbformat.read(tmp_path / "book" / "first.ipynb", as_version=4)
    assert failed.metadata.papermill.input_path == str(tmp_path / "book" / "first.py")
    assert book.execution_record(tmp_path / "book" / "first.ipynb") is None  # a failed run is never "up to date"
    # the failed chapter's notebook (error included) is never rendered
    with pytest.raises(ConfigError, match=r"not successfully executed: .*first\.ipynb"):
        book.build_book("paper", root=tmp_path, chapters=["second"], log=lambda line: None)
    assert book.execution_record(tmp_path / "book" / "second.ipynb") is not None



# Each chapter notes in a shared file when it starts and ends (time.time()), and what its kernel was given.
_STAMP = ("import json, os, time\n"
          "def stamp(what):\n"
          "    with open(os.environ['STAMPS'], 'a') as f:\n"
          "        f.write(json.dumps([CHAPTER, what, time.time(), os.environ.get('OMP_NUM_THREADS'),\n"
          "                            os.environ.get('DETPRETRAIN_CHAPTER_JOBS'),\n"
          "                            os.environ.get('DETPRETRAIN_CORES')]) + '\\n')")


def _stamped(name: str, *body: str, meet: str | None = None) -> list[str]:
    """A chapter that stamps its start and end; with ``meet``, it waits (up to 120 s) until chapter ``meet`` has
    started before it ends: the two overlap whenever they execute at once, however slowly kernels start."""
    wait = (f"deadline = time.time() + 120\nwhile time.time() < deadline and "
            f"{meet!r} + '\", \"start' not in open(os.environ['STAMPS']).read():\n    time.sleep(0.2)"
            if meet else "time.sleep(3)")
    return [f"CHAPTER = {name!r}\n{_STAMP}\nstamp('start')", *body, f"{wait}\nstamp('end')"]


def _stamps(path: Path) -> dict[tuple[str, str], tuple[float, str, str, str]]:
    """``{(chapter, "start" | "end"): (time, OMP_NUM_THREADS, DETPRETRAIN_CHAPTER_JOBS, DETPRETRAIN_CORES)}``."""
    return {(c, what): (t, threads, jobs, cores) for c, what, t, threads, jobs, cores in
            map(json.loads, path.read_text().splitlines())}


def test_chapters_execute_at_once_each_after_what_it_reads(tmp_path, monkeypatch, capsys, vocdevkit):
    """Two independent chapters overlap; the introduction (it summarises the others) starts after both ended,
    though a third job was free; each kernel's threads and cores are its share of the machine (the two with
    nothing else beside them half each, the introduction alone every core, not cores // 3); the summary lists the
    chapters in toc order with the introduction last."""
    from detpretrain.executor import cpu_count

    write_book(tmp_path, {"intro": _stamped("intro"), "first": _stamped("first", meet="second"),
                          "second": _stamped("second", meet="first")})
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("STAMPS", str(tmp_path / "stamps.jsonl"))
    monkeypatch.setenv("OMP_NUM_THREADS", "7")  # the kernels get their share whatever the caller had
    # three at once: without its dependencies the introduction would start beside the other two
    rc = cli_main(["book", "--profile", "paper", "--no-html", "--chapter-jobs", "3",
                   "-p", "dataset", "voc", "-p", "data_root", str(vocdevkit)])
    out = capsys.readouterr().out
    assert rc == 0, out
    stamps = _stamps(tmp_path / "stamps.jsonl")
    assert stamps[("first", "start")][0] < stamps[("second", "end")][0]  # the two overlapped
    assert stamps[("second", "start")][0] < stamps[("first", "end")][0]
    assert stamps[("intro", "start")][0] >= max(stamps[("first", "end")][0], stamps[("second", "end")][0])
    half, every = str(max(1, cpu_count() // 2)), str(cpu_count())
    # the build's N reaches its chapters' variants, which share the chapter's cores
    assert {stamps[c, what][1:] for c in ("first", "second") for what in ("start", "end")} == {(half, "3", half)}
    assert {stamps["intro", what][1:] for what in ("start", "end")} == {(every, "3", every)}
    assert f"3 to execute, 3 at once, {max(1, cpu_count() // 3)} thread(s) each while 3 execute" in out
    assert f"intro ... executing (never executed; {every} thread(s))" in out
    rows = [line.split()[0] for line in out[out.index("chapter "):].splitlines()[2:] if line.strip()]
    assert [r for r in rows if r in ("intro", "first", "second")] == ["first", "second", "intro"]
    for name in ("intro", "first", "second"):
        assert book.execution_record(tmp_path / "book" / f"{name}.ipynb") is not None


def test_a_failed_chapter_starts_nothing_more_and_the_one_executing_beside_it_is_kept(tmp_path, monkeypatch, capsys,
                                                                                      vocdevkit):
    """``first`` fails while ``second`` executes: ``third`` (independent, a free job after the failure) never
    starts, ``second`` ends and keeps its notebook, the error names ``first``. Then a chapter whose process is
    killed (the kernel's parent) is named as such, and the chapter beside it is unaffected."""
    # second ends only once the build log says first failed (up to 120 s): never before the scheduler has seen the
    # failure, however slowly first's kernel starts or its process ends (a fixed 3 s after first's start was not
    # enough on a loaded CI machine: second ended first and third took its job), so a free job after second would
    # show a third chapter starting
    logs = tmp_path / "_build" / "logs"
    second = _stamped("second")
    # it stamps 'end' only if it saw the line (else 'end unseen', and the assertion on ('second', 'end') fails)
    second[-1] = (f"import glob\ndeadline, seen = time.time() + 120, False\n"
                  f"while time.time() < deadline and not seen:\n"
                  f"    seen = any('first ... failed' in open(f).read() for f in glob.glob({str(logs / '*.log')!r}))\n"
                  f"    time.sleep(0 if seen else 0.2)\nstamp('end' if seen else 'end unseen')")
    write_book(tmp_path, {"intro": _stamped("intro"), "first": _stamped("first", "raise ValueError('bad value')"),
                          "second": second, "third": _stamped("third")})
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("STAMPS", str(tmp_path / "stamps.jsonl"))
    args = ["book", "--profile", "paper", "--no-html", "--chapter-jobs", "2", "-p", "dataset", "voc",
            "-p", "data_root", str(vocdevkit)]
    rc = cli_main(args)
    captured = capsys.readouterr()
    assert rc == 1
    assert "chapter 'first' failed in cell" in captured.err and "ValueError: bad value" in captured.err
    assert "Traceback (most recent call last)" not in captured.err + captured.out
    assert "waiting for second to finish (no other chapter starts)" in captured.out
    stamps = _stamps(tmp_path / "stamps.jsonl")
    assert ("second", "end") in stamps  # finished, not killed
    assert book.execution_record(tmp_path / "book" / "second.ipynb") is not None  # kept: not re-executed next time
    assert not {("intro", "start"), ("third", "start")} & set(stamps) and "third ..." not in captured.out
    assert book.execution_record(tmp_path / "book" / "first.ipynb") is None

    write_book(tmp_path, {"intro": _stamped("intro"),
                          "first": ["import os, signal\nos.kill(os.getppid(), signal.SIGKILL)"],
                          "second": _stamped("second"), "third": _stamped("third")})
    (tmp_path / "stamps.jsonl").unlink()
    rc = cli_main([*args, "--chapters", "first,third"])
    captured = capsys.readouterr()
    assert rc == 1 and "chapter 'first': its process died" in captured.err
    assert "Traceback (most recent call last)" not in captured.err + captured.out
    assert ("third", "end") in _stamps(tmp_path / "stamps.jsonl")
    assert book.execution_record(tmp_path / "book" / "third.ipynb") is not None



def test_chapters_one_at_a_time_give_their_variants_one_too(tmp_path, monkeypatch, capsys, vocdevkit):
    """``--chapter-jobs 1``: the chapters execute in this process in toc order, each kernel told the build's 1
    (the mechanisms page's variants then execute one at a time), and the variable is gone after the build."""
    monkeypatch.delenv(book.CHAPTER_JOBS_ENV, raising=False)
    write_book(tmp_path, {"intro": _stamped("intro"), "first": _stamped("first"), "second": _stamped("second")})
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("STAMPS", str(tmp_path / "stamps.jsonl"))
    assert cli_main(["book", "--profile", "paper", "--no-html", "--chapter-jobs", "1",
                     "-p", "dataset", "voc", "-p", "data_root", str(vocdevkit)]) == 0
    stamps = _stamps(tmp_path / "stamps.jsonl")
    assert {v[2] for v in stamps.values()} == {"1"}
    assert stamps[("first", "end")][0] <= stamps[("second", "start")][0] <= stamps[("second", "end")][0] \
        <= stamps[("intro", "start")][0]
    assert book.CHAPTER_JOBS_ENV not in os.environ and "at once" not in capsys.readouterr().out


def test_chapter_dependencies_and_layout(monkeypatch):
    from detpretrain import executor

    monkeypatch.delenv(book.CHAPTER_JOBS_ENV, raising=False)  # as outside any book build

    deps = book.chapter_dependencies(
        ["detection", "classification", "visualisations", "mechanisms", "intro"],
        {"mechanisms": {"variants": ["classification:distributed", "feature_space:distributed"]}})
    assert deps == {"detection": set(), "classification": set(), "visualisations": set(),
                    "mechanisms": {"classification"},  # feature_space is not executed in this build
                    "intro": {"detection", "classification", "visualisations", "mechanisms"}}
    monkeypatch.setattr(executor, "cpu_count", lambda: 16)
    monkeypatch.setattr(executor, "_cuda_available", lambda: False)
    assert book.chapter_layout() == (book.MAX_CHAPTER_JOBS, 16 // book.MAX_CHAPTER_JOBS)
    assert book.chapter_layout(verbose=True) == (1, 16) and book.chapter_layout(3) == (3, 5)
    assert book.chapter_layout(device="cuda") == (1, 16)
    monkeypatch.setattr(executor, "cpu_count", lambda: 2)
    assert book.chapter_layout() == (2, 1)
    monkeypatch.setenv(book.CHAPTER_JOBS_ENV, "1")  # inside a chapter of a build with --chapter-jobs 1
    assert book.chapter_layout() == (1, 2) and book.chapter_layout(2) == (2, 1)
    with pytest.raises(ConfigError, match="at least 1"):
        book.chapter_layout(0)


def test_cpu_count_is_at_most_the_share_a_build_gave_the_chapter(monkeypatch):
    from detpretrain import executor

    monkeypatch.setattr(executor.os, "sched_getaffinity", lambda pid: set(range(8)), raising=False)
    monkeypatch.delenv(executor.CORES_ENV, raising=False)
    assert executor.cpu_count() == 8
    for share, cores in (("3", 3), ("16", 8), ("0", 8), ("", 8), ("two", 8)):
        monkeypatch.setenv(executor.CORES_ENV, share)
        assert executor.cpu_count() == cores, share
    monkeypatch.setenv(executor.CORES_ENV, "1")
    monkeypatch.setenv(book.CHAPTER_JOBS_ENV, "2")  # the build's N inside a chapter given one core
    # its variants: the build's N at once, one thread each (single-threaded kernels time-sharing the page's core
    # while another chapter executes beside it: the exception chapter_threads documents)
    assert book.chapter_layout() == (2, 1)
    monkeypatch.setenv(executor.CORES_ENV, "4")
    monkeypatch.setenv(book.CHAPTER_JOBS_ENV, "4")  # 8 cores, 4 chapters at once; this one given 4 (not 8 // 4 ...)
    assert book.chapter_layout() == (4, 1)  # ... so 4 variants of 1 thread, not 4 of 2
    monkeypatch.setenv(executor.CORES_ENV, "1")
    assert executor.default_layout() == (1, 1)  # a run the chapter trains itself: one worker, one thread


def test_chapter_threads_never_hold_more_than_the_cores(monkeypatch):
    """chapter_threads by hand, then by simulation: random dependency graphs (like the book's: a chapter after
    some earlier ones), random durations, n_jobs at once, each given chapter_share as _execute_at_once gives it; at
    every moment the chapter kernels executing hold at most the cores, and a chapter alone at the end gets them
    all."""
    import random

    assert book.chapter_threads(2, 2, 0) == 2 and book.chapter_threads(2, 2, 1) == 1
    assert book.chapter_threads(16, 4, 2) == 5 and book.chapter_threads(16, 4, 9) == 4
    assert book.chapter_threads(2, 4, 3) == 1  # more chapters at once than cores: one thread each
    later = book._executes_after({"a": set(), "b": set(), "m": {"a"}, "intro": {"a", "b", "m"}})
    assert later == {"a": {"m", "intro"}, "b": {"intro"}, "m": {"intro"}, "intro": set()}

    rng = random.Random(0)
    for trial in range(300):
        cores = rng.choice([2, 4, 8, 16])
        n_jobs = rng.randint(1, min(cores, book.MAX_CHAPTER_JOBS))
        names = [f"c{i}" for i in range(rng.randint(1, 9))]
        after = {c: {e for e in names[:i] if rng.random() < 0.25} for i, c in enumerate(names)}
        later = book._executes_after(after)
        waiting, running, done, now = list(names), {}, set(), 0.0
        while waiting or running:
            while len(running) < n_jobs:
                ready = next((c for c in waiting if after[c] <= done), None)
                if ready is None:
                    break
                waiting.remove(ready)
                running[ready] = (now + rng.random(), book.chapter_share(ready, len(running), waiting, later, cores,
                                                                         n_jobs))
                assert sum(t for _, t in running.values()) <= cores, (trial, running)
                if not waiting and len(running) == 1:
                    assert running[ready][1] == cores
            first = min(running, key=lambda c: running[c][0])
            now = running.pop(first)[0]
            done.add(first)



def test_a_kernel_that_fails_to_start_is_started_again_then_named(tmp_path, monkeypatch):
    """Kernels started at the same moment by chapters executing at once can race for a port: the start is retried
    (no cell has run), and a kernel that never starts is a ChapterError naming the chapter, not a traceback."""
    import papermill

    src = write_chapter(tmp_path / "book" / "one.py", "print('ran')")
    real, calls = papermill.execute_notebook, []

    def flaky(*args, **kwargs):
        calls.append(1)
        if len(calls) < 3:
            raise RuntimeError("Kernel died before replying to kernel_info")
        return real(*args, **kwargs)

    monkeypatch.setattr(papermill, "execute_notebook", flaky)
    monkeypatch.setattr(book.random, "uniform", lambda a, b: 0.0)
    book.execute_chapter(src, tmp_path / "one.ipynb", {"profile": "smoke"})
    assert len(calls) == 3 and "ran" in outputs_text(nbformat.read(tmp_path / "one.ipynb", as_version=4))

    def never(*args, **kwargs):
        raise RuntimeError("Kernel didn't respond in 60 seconds")

    monkeypatch.setattr(papermill, "execute_notebook", never)
    with pytest.raises(book.ChapterError, match=r"chapter 'one': its kernel did not start \(Kernel didn't respond "
                                                r"in 60 seconds; 3 attempts\)"):
        book.execute_chapter(src, tmp_path / "two.ipynb", {"profile": "smoke"})

    def other(*args, **kwargs):
        raise RuntimeError("something else")

    monkeypatch.setattr(papermill, "execute_notebook", other)  # not a start failure: not retried, not renamed
    with pytest.raises(RuntimeError, match="something else"):
        book.execute_chapter(src, tmp_path / "three.ipynb", {"profile": "smoke"})


def test_cell_timeouts_per_profile_and_override(monkeypatch):
    monkeypatch.delenv("DETPRETRAIN_CELL_TIMEOUT", raising=False)
    assert (book.cell_timeout("smoke"), book.cell_timeout("mini"), book.cell_timeout("paper")) == (600, 3600, None)
    monkeypatch.setenv("DETPRETRAIN_CELL_TIMEOUT", "12")
    assert book.cell_timeout("paper") == 12.0
    monkeypatch.setenv("DETPRETRAIN_CELL_TIMEOUT", "none")
    assert book.cell_timeout("smoke") is None
    monkeypatch.setenv("DETPRETRAIN_CELL_TIMEOUT", "soon")
    with pytest.raises(ConfigError, match="DETPRETRAIN_CELL_TIMEOUT='soon'"):
        book.cell_timeout("smoke")


def test_cell_timeout_fails_the_chapter(tmp_path):
    src = write_chapter(tmp_path / "slow.py", "import time\ntime.sleep(60)")
    t0 = time.perf_counter()
    with pytest.raises(book.ChapterError, match="longer than the timeout of 2 s"):
        book.execute_chapter(src, tmp_path / "slow.ipynb", {"profile": "smoke"}, timeout=2)
    assert time.perf_counter() - t0 < 50


def test_dead_kernel_fails_the_chapter(tmp_path, capsys):
    src = write_chapter(tmp_path / "die.py", "import os\nos._exit(3)")
    assert book.run_command(str(src), {"profile": "smoke"}, output=str(tmp_path / "die.ipynb")) == 1
    err = capsys.readouterr().err
    assert "chapter 'die': the kernel died" in err and "Traceback" not in err


def test_up_to_date_chapters_are_skipped_and_stale_ones_reexecuted(tmp_path, monkeypatch):
    write_book(tmp_path, {"only": ["print(profile, seeds)"]})
    src = tmp_path / "book" / "only.py"

    def statuses(**kwargs):
        report = book.build_book("paper", root=tmp_path, html=False, log=lambda line: None, **kwargs)
        return [c.status for c in report.chapters]

    assert statuses() == ["executed"]
    assert statuses() == ["up to date"]
    assert book.is_up_to_date(src, src.with_suffix(".ipynb"), {"profile": "paper"}) == (True, "up to date")
    assert statuses(params={"seeds": "[1]"}) == ["executed"]  # other parameters
    assert statuses(params={"seeds": "[1]"}) == ["up to date"]
    os.utime(src)  # touching is no change: content hashes, not mtimes
    assert statuses(params={"seeds": "[1]"}) == ["up to date"]
    src.write_text(src.read_text() + "\n# %%\nprint('one more cell')\n")
    assert book.is_up_to_date(src, src.with_suffix(".ipynb"), {"profile": "paper", "seeds": [1]}) == (
        False, "chapter source changed")
    assert statuses(params={"seeds": "[1]"}) == ["executed"]
    monkeypatch.setattr(book, "code_hash", lambda *a: "another-version")
    assert statuses(params={"seeds": "[1]"}) == ["executed"]  # package code changed


def test_chapter_edited_while_it_executes_is_stale_afterwards(tmp_path):
    """The recorded hashes describe what ran, not what is on disk when the execution ends."""
    src = tmp_path / "book" / "self_editing.py"
    # the chapter appends a cell to its own source while it runs (as an author editing during a long build)
    write_chapter(src, f"from pathlib import Path\np = Path({str(src)!r})\np.write_text(p.read_text() + '\\n# %%\\n1\\n')")
    out = src.with_suffix(".ipynb")
    book.execute_chapter(src, out, {"profile": "paper"}, timeout=60)
    assert book.is_up_to_date(src, out, {"profile": "paper"}) == (False, "chapter source changed")


def test_nbval_detects_changed_output(tmp_path):
    """The comparison is live: a marked cell must reproduce its stored output; unmarked cells may differ."""
    src = write_chapter(tmp_path / "chap.py",
                        "# NBVAL_CHECK_OUTPUT\nprint(sum(range(10)), profile)",
                        "import random\nprint(random.random())")  # not marked: not compared
    nb_path = tmp_path / "chap.ipynb"
    book.execute_chapter(src, nb_path, {"profile": "smoke"}, timeout=60)
    ok = run_nbval(nb_path)
    assert ok.returncode == 0, ok.stdout[-3000:]
    nb = nbformat.read(nb_path, as_version=4)
    marked = next(c for c in nb.cells if "NBVAL_CHECK_OUTPUT" in c.source)
    assert marked.outputs[0].text == "45 smoke\n"
    marked.outputs[0].text = "46 smoke\n"
    nbformat.write(nb, nb_path)
    bad = run_nbval(nb_path)
    assert bad.returncode != 0
    assert "46 smoke" in bad.stdout and "45 smoke" in bad.stdout


# ------------------------------------------------------------------------------- the project's own chapters

TOC_ENTRIES = book.toc_files(PROJECT_ROOT)
TOC_NAMES = [book.chapter_name(e) for e in TOC_ENTRIES]
#: the toc entries that are notebooks (``book/<name>.py``); the others are prose pages (``.md``: the references)
NOTEBOOK_NAMES = [n for n, e in zip(TOC_NAMES, TOC_ENTRIES) if book.chapter_source(PROJECT_ROOT, e).suffix != ".md"]


@functools.lru_cache(maxsize=1)
def smoke_book(tmp_root: Path) -> tuple[Path, book.BookReport, float]:
    """Copy the book (toc, config, book/) to ``tmp_root`` and build it at the smoke profile, HTML included, with
    its own run store and corpus cache there. Shared by test_book.py and test_browser.py (built once per session).

    Returns ``(root, report, seconds)``.
    """
    root = tmp_root / "book-root"
    root.mkdir()
    book.copy_sources(root, PROJECT_ROOT)
    if (PROJECT_ROOT / "docs").is_dir():
        (root / "docs").symlink_to(PROJECT_ROOT / "docs")
    env = smoke_env(tmp_root)
    with environment(**env):  # also for code that ignores the store/data_cache parameters
        t0 = time.perf_counter()
        # one cue variant on the mechanisms page (its default, four chapter executions, is the mini book's)
        report = book.build_book("smoke", root=root, params={"store": env["DETPRETRAIN_RUNS"],
                                                             "data_cache": env["DETPRETRAIN_DATA"],
                                                             "variants": ["visualisations:part+decoy"]},
                                 log=lambda line: print(line, flush=True))
        seconds = time.perf_counter() - t0
    return root, report, seconds


def smoke_env(tmp_root: Path) -> dict[str, str]:
    return {"DETPRETRAIN_RUNS": str(tmp_root / "runs"), "DETPRETRAIN_DATA": str(tmp_root / "data")}


@pytest.fixture(scope="session")
def built_book(tmp_path_factory):
    missing = [str(book.chapter_source(PROJECT_ROOT, e).relative_to(PROJECT_ROOT)) for e in TOC_ENTRIES
               if not book.chapter_source(PROJECT_ROOT, e).is_file()]
    if missing:
        pytest.fail(f"_toc.yml lists chapters that do not exist: {', '.join(missing)}")
    return smoke_book(tmp_path_factory.getbasetemp())


@pytest.mark.parametrize("name", NOTEBOOK_NAMES)
def test_chapter_follows_the_parameter_contract(name):
    entry = TOC_ENTRIES[TOC_NAMES.index(name)]
    source = book.chapter_source(PROJECT_ROOT, entry)
    assert source.is_file(), f"_toc.yml lists {entry}, but {source} does not exist"
    params = book.chapter_parameters(book.load_chapter(source))
    missing = [p for p in book.REQUIRED_PARAMETERS if p not in params]
    assert not missing, f"{source}: the parameters cell lacks {missing}"
    assert params["profile"].strip("'\"") == "mini", "chapters default to the mini profile"


@pytest.mark.slow
def test_smoke_book_builds_every_chapter_and_a_warm_rebuild_executes_nothing(built_book):
    root, report, seconds = built_book
    print(f"cold smoke build: {seconds:.0f} s (jupyter-book {report.html_seconds:.0f} s); "
          + ", ".join(f"{c.name} {c.seconds:.0f} s" for c in report.chapters))
    # chapters in toc order, then the root page (the introduction summarises their runs)
    assert [c.name for c in report.chapters] == TOC_NAMES[1:] + TOC_NAMES[:1]
    assert all(c.status == ("executed" if c.name in NOTEBOOK_NAMES else "text page") for c in report.chapters)
    assert report.html_index == root / "_build" / "html" / "index.html" and report.html_index.is_file()
    for entry in TOC_ENTRIES:
        assert (root / "_build" / "html" / f"{entry}.html").is_file(), entry
    env = smoke_env(root.parent)
    t0 = time.perf_counter()
    warm = book.build_book("smoke", root=root, params={"store": env["DETPRETRAIN_RUNS"],
                                                       "data_cache": env["DETPRETRAIN_DATA"],
                                                       "variants": ["visualisations:part+decoy"]}, log=lambda s: None)
    print(f"warm rebuild: {time.perf_counter() - t0:.1f} s (jupyter-book {warm.html_seconds:.1f} s)")
    assert [c.status for c in warm.chapters] == [
        "up to date" if c.name in NOTEBOOK_NAMES else "text page" for c in warm.chapters]
    assert len(warm.chapters) == len(TOC_NAMES)


@pytest.mark.slow
def test_every_figure_cell_of_the_smoke_book_shows_its_figure(built_book):
    """A cell that draws with ``plt.show()`` has an image among its outputs in the executed smoke chapter: a library
    call that switches the kernel's backend (``matplotlib.use``) once made the pre-training chapter's loss curves
    vanish without an error. Cells that only define functions are left out."""
    root, _, _ = built_book
    missing = []
    for name in NOTEBOOK_NAMES:
        notebook = nbformat.read((root / TOC_ENTRIES[TOC_NAMES.index(name)]).with_suffix(".ipynb"), as_version=4)
        for i, cell in enumerate(notebook.cells):
            if cell.cell_type != "code" or "plt.show()" not in cell.source or "def " in cell.source:
                continue
            if not any("image/png" in out.get("data", {}) for out in cell.get("outputs", [])):
                missing.append(f"{name} cell {i}: {cell.source.splitlines()[0]}")
    assert not missing, "figure cells without a figure:\n" + "\n".join(missing)


@pytest.mark.slow
@pytest.mark.parametrize("name", NOTEBOOK_NAMES)
def test_nbval_on_chapter(name, built_book):
    """nbval --nbval-lax on the papermill-executed smoke chapter (see the module docstring)."""
    root, _, _ = built_book
    notebook = root / TOC_ENTRIES[TOC_NAMES.index(name)]
    notebook = notebook.with_suffix(".ipynb")
    assert notebook.is_file(), f"{notebook} was not executed"
    result = run_nbval(notebook, env=smoke_env(root.parent))
    assert result.returncode == 0, f"nbval failed on {name}:\n{result.stdout[-6000:]}"
    assert " passed" in result.stdout


@pytest.mark.slow
def test_detection_chapter_reexecuted_with_other_parameters(built_book, tmp_path):
    """papermill re-execution with non-default parameters: the injected values reach the runs it trains."""
    assert "detection" in TOC_NAMES, "_toc.yml has no detection chapter"
    root, _, _ = built_book
    env = smoke_env(root.parent)
    source = book.chapter_source(root, TOC_ENTRIES[TOC_NAMES.index("detection")])
    out = tmp_path / "detection-seed7.ipynb"
    rc = book.run_command(str(source), {"profile": "smoke", "seeds": "[7]", "store": env["DETPRETRAIN_RUNS"],
                                        "data_cache": env["DETPRETRAIN_DATA"]}, output=str(out))
    assert rc == 0
    nb = nbformat.read(out, as_version=4)
    injected = next(c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", []))
    assert "seeds = [7]" in injected.source
    configs = [json.loads(p.read_text()) for p in Path(env["DETPRETRAIN_RUNS"]).glob("*/config.json")]
    seeds = {c.get("seed") for c in configs if str(c.get("name", "")).startswith("finetune")}
    assert 7 in seeds, f"no fine-tuning run with seed 7 in the store; seeds there: {seeds}"
