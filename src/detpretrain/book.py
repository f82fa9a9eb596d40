"""The book: execute the jupytext chapters with papermill, render them with Jupyter Book 1.

Chapters live in ``book/`` as jupytext "percent" text notebooks (``book/detection.py``), listed in ``_toc.yml``
(Jupyter Book 1 format: ``root: book/intro`` and ``chapters: [{file: book/pretraining}, ...]``). Every chapter has
one cell tagged ``parameters`` holding at least :data:`REQUIRED_PARAMETERS` (``profile = "mini"``,
``dataset = "synthetic"``, ``data_root = None``, ``seeds = None``, ``device = "auto"``, ``store = None``,
``data_cache = None``); papermill injects the chosen values after it.

The main job (one command)::

    python -m detpretrain book --profile mini            # corpora -> execute every chapter -> _build/html
    python -m detpretrain book --profile smoke --chapters detection --no-html
    python -m detpretrain book -p device cuda -p seeds "[0, 1, 2]"

Re-executing one chapter with parameters, through the project's thin wrapper::

    python -m detpretrain run detection -p profile smoke -p seeds "[0]"
    python -m detpretrain run detection -p dataset coco -p data_root ../shared/data/coco2017_subset -o coco.ipynb

or with the ecosystem's own tools (papermill cannot read the text form, so convert it first; the text form holds
no kernelspec, which papermill needs)::

    jupytext --to ipynb --set-kernel python3 book/detection.py     # -> book/detection.ipynb (no outputs)
    papermill book/detection.ipynb out.ipynb -p profile smoke -y "seeds: [0, 1]"

Chapters mark cells whose output is deterministic (dataset counts, config tables) with a first line
``# NBVAL_CHECK_OUTPUT`` (or the cell tag ``nbval-check-output``): ``pytest --nbval-lax`` on an executed chapter
compares those outputs against a re-execution (``tests/test_book.py`` explains the design).

Values given with ``-p KEY VALUE`` here are read as YAML, like papermill's ``-y``: ``0`` -> 0, ``None``/``null``
-> None, ``[0,1]`` -> a list, ``true`` -> True, anything else stays a string.

How a rebuild stays cheap
-------------------------
1. Every training goes through the run store (:mod:`detpretrain.runs`), so executing a chapter again loads
   checkpoints and metrics instead of training.
2. A chapter is not executed at all when its executed notebook ``book/<chapter>.ipynb`` is up to date: it carries
   ``metadata.detpretrain`` written after a *successful* execution with the sha256 of the chapter's source text,
   the hash of the package code (:func:`code_hash`, every ``src/detpretrain/**/*.py`` but the book driver and the
   command line) and the parameters (papermill's own ``metadata.papermill.parameters``); all three must equal the
   current ones. Content hashes are used instead of modification times: touching a file or switching branches back
   and forth does not force re-execution, while any edit of the chapter or of the package does. A failed execution
   records nothing, so it is always retried.
3. Jupyter Book does not execute (``execute_notebooks: "off"``); Sphinx re-renders only changed notebooks.

Cell execution timeouts are set on purpose per profile (:data:`CELL_TIMEOUT_S`): smoke cells take seconds, so
10 minutes means something is stuck; the whole mini book is meant to take under 45 minutes on 2 CPU cores, so one
cell over an hour is a fault too; paper cells train for hours on GPUs and have no limit. ``$DETPRETRAIN_CELL_TIMEOUT``
(seconds, or ``none``) overrides them. A stuck cell thus fails the build instead of hanging it (Jupyter Book's own
default of 30 s would be far too short for training cells, which is one more reason it does not execute).
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import hashlib
import json
import logging
import math
import os
import random
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from detpretrain.errors import ConfigError

#: per-cell execution timeout (seconds) of papermill, by profile; ``None`` = no limit (paper: hours per cell).
CELL_TIMEOUT_S: dict[str, int | None] = {"smoke": 600, "mini": 3600, "torchvision": None, "paper": None}
#: kernel used to execute chapters; jupyter_client starts it with the current interpreter (``sys.executable``).
KERNEL_NAME = "python3"
#: names every chapter's ``parameters`` cell must define.
REQUIRED_PARAMETERS = ("profile", "dataset", "data_root", "seeds", "device", "store", "data_cache")
#: the notebook metadata key holding the execution record used to skip up-to-date chapters.
METADATA_KEY = "detpretrain"
PACKAGE_DIR = Path(__file__).resolve().parent
# ipykernel >= 7 warns on every start that its TCP transport is unencrypted (local kernel): keep the kernel app's
# own log to errors; warnings raised by chapter code still reach the cells' stderr.
_KERNEL_ARGS = ["--IPKernelApp.log_level=ERROR"]
#: how often a chapter's kernel is started before its start failure is an error: kernels started at the same moment
#: by chapters executing at once can race for the same free port (jupyter_client picks ports before the kernel
#: binds them; nteract/papermill#511), which ends in one of :data:`KERNEL_START_FAILURES` before any cell ran
KERNEL_START_ATTEMPTS = 3
KERNEL_START_FAILURES = ("Kernel died before replying to kernel_info", "Kernel didn't respond")
_KERNELSPEC = {"name": KERNEL_NAME, "display_name": "Python 3 (ipykernel)", "language": "python"}


class ChapterError(Exception):
    """A chapter could not be executed: names the chapter, the failing cell and the error (no traceback)."""

    def __init__(self, chapter: str, message: str, *, cell_index: int | None = None, source: str = "",
                 ename: str = "", evalue: str = ""):
        self.chapter, self.cell_index, self.source, self.ename, self.evalue = chapter, cell_index, source, ename, evalue
        super().__init__(message)


class BookBuildError(Exception):
    """``jupyter-book build`` failed; the message holds the tail of its output."""


@dataclasses.dataclass
class ChapterResult:
    """Outcome of one chapter: ``status`` is ``"executed"`` or ``"up to date"``; ``seconds`` is wall time spent now,
    ``executed_seconds`` the wall time of the execution that produced the notebook."""

    name: str
    output: Path
    status: str
    seconds: float
    executed_seconds: float


@dataclasses.dataclass
class BookReport:
    """What :func:`build_book` did: chapter results in toc order, the HTML entry page (None without HTML)."""

    profile: str
    chapters: list[ChapterResult]
    html_index: Path | None = None
    html_seconds: float = 0.0
    corpus_seconds: float = 0.0
    plan_seconds: float = 0.0
    warnings: list[str] = dataclasses.field(default_factory=list)


# ----------------------------------------------------------------------------------------------------- the toc


def find_root(root: str | os.PathLike | None = None) -> Path:
    """The book's root folder (the one holding ``_toc.yml``): ``root``, else the current directory, else the
    source checkout this package is installed from (editable install).

    Raises:
        FileNotFoundError: no ``_toc.yml`` in any of them.
    """
    candidates = [Path(root)] if root is not None else [Path.cwd(), PACKAGE_DIR.parents[1]]
    for cand in candidates:
        if (cand / "_toc.yml").is_file():
            return cand.resolve()
    raise FileNotFoundError(f"no _toc.yml in {' or '.join(str(c) for c in candidates)}: run from the project root")


def toc_files(root: str | os.PathLike) -> list[str]:
    """Chapter entries of ``root/_toc.yml`` in reading order, e.g. ``["book/intro", "book/detection"]``.

    Reads Jupyter Book 1's ``jb-book`` format: ``root``, then ``chapters`` (or ``parts[].chapters``) and their
    nested ``sections``; entries without ``file`` (``url``, ``glob``) are not chapters and are left out.

    Raises:
        ConfigError: the toc has no ``root``.
    """
    path = Path(root) / "_toc.yml"
    toc = yaml.safe_load(path.read_text()) or {}
    if "root" not in toc:
        raise ConfigError(f"{path}: no 'root' entry (Jupyter Book 1 toc expected)")
    files = [_strip_suffix(toc["root"])]

    def walk(entries):
        for entry in entries or []:
            if "file" in entry:
                files.append(_strip_suffix(entry["file"]))
            walk(entry.get("sections"))

    for part in toc.get("parts") or [{"chapters": toc.get("chapters")}]:
        walk(part.get("chapters"))
    return files


def _strip_suffix(entry: str) -> str:
    return re.sub(r"\.(py|ipynb|md)$", "", str(entry))


def chapter_name(entry: str | os.PathLike) -> str:
    """``"book/detection"`` or ``book/detection.py`` -> ``"detection"``."""
    return Path(_strip_suffix(str(entry))).name


def chapter_source(root: str | os.PathLike, entry: str) -> Path:
    """The text form ``root/<entry>.py`` of a toc entry (or ``<entry>.md`` for a prose page without code)."""
    base = Path(root) / entry
    for suffix in (".py", ".md"):
        if base.with_suffix(suffix).is_file():
            return base.with_suffix(suffix)
    return base.with_suffix(".py")


def resolve_chapter(chapter: str, root: Path | None = None) -> Path:
    """A chapter given by name (``detection``, looked up in the toc, then ``book/<name>.py``) or by path.

    Raises:
        FileNotFoundError: a path that does not exist.
        ConfigError: a name that is no chapter (the message lists the chapters).
    """
    as_path = Path(chapter)
    if as_path.suffix in (".py", ".ipynb", ".md") or os.sep in chapter or "/" in chapter:
        if not as_path.is_file():
            raise FileNotFoundError(f"{as_path}: no such chapter file")
        return as_path
    root = root or find_root()
    entries = toc_files(root)
    for entry in entries:
        if chapter_name(entry) == chapter:
            return chapter_source(root, entry)
    if (root / "book" / f"{chapter}.py").is_file():
        return root / "book" / f"{chapter}.py"
    raise ConfigError(f"unknown chapter {chapter!r}; chapters in {root / '_toc.yml'}: "
                      f"{', '.join(chapter_name(e) for e in entries)}")


# ----------------------------------------------------------------------------------------------- parameters


def parse_value(text):
    """A ``-p KEY VALUE`` value read like papermill's ``-y`` (YAML): ``"0"`` -> 0, ``"0.5"`` -> 0.5,
    ``"None"``/``"null"`` -> None, ``"[0,1]"`` -> [0, 1], ``"true"``/``"True"`` -> True, else the string.

    Non-strings are returned unchanged. YAML 1.1's ``yes``/``no``/``on``/``off`` stay strings, and ``1e-3`` is a
    float (PyYAML alone would keep it a string).
    """
    if not isinstance(text, str):
        return text
    stripped = text.strip()
    if stripped in ("None", "null", "~", ""):
        return None
    try:
        value = yaml.safe_load(stripped)
    except yaml.YAMLError:
        return text
    if isinstance(value, bool) and stripped.lower() not in ("true", "false"):
        return text
    if isinstance(value, str) and re.fullmatch(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?", stripped):
        return float(stripped)
    if not _plain(value):
        return text
    return value


def _plain(value) -> bool:
    if value is None or isinstance(value, (bool, int, float, str)):
        return not (isinstance(value, float) and not math.isfinite(value))
    if isinstance(value, list):
        return all(_plain(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _plain(v) for k, v in value.items())
    return False


def chapter_parameters(notebook) -> dict[str, str]:
    """``{name: default source text}`` of the cell tagged ``parameters`` (papermill's own inspection).

    Raises:
        ConfigError: no cell is tagged ``parameters``.
    """
    return {p.name: p.default for p in chapter_parameter_specs(notebook)}


def chapter_parameter_specs(notebook) -> list:
    """papermill's inspection of the cell tagged ``parameters``: one ``Parameter(name, inferred_type_name, default,
    help)`` per assignment, in order (``default`` = the source text, ``help`` = the comment after it, or ``""``).

    Raises:
        ConfigError: no cell is tagged ``parameters``.
    """
    from papermill.translators import papermill_translators

    cells = [c for c in notebook.cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    if not cells:
        raise ConfigError("no cell tagged 'parameters' (jupytext: '# %% tags=[\"parameters\"]')")
    translator = papermill_translators.find_translator(KERNEL_NAME, "python")
    return list(translator.inspect(cells[0]))


# ----------------------------------------------------------------------------------------------- hashing


#: package modules that cannot change what a chapter computes (the book driver, the command line, and the run plan
#: and its executor, which only train runs that are content-addressed by their config).
NOT_HASHED = ("book.py", "cli.py", "__main__.py", "executor.py", "plan.py")


def code_hash(package_dir: str | os.PathLike = PACKAGE_DIR) -> str:
    """sha256 (hex, 16 chars) over the relative paths and bytes of every ``*.py`` below ``package_dir``
    (``src/detpretrain``) except :data:`NOT_HASHED` at its top: a chapter executed under another version of the
    package is stale. ``$DETPRETRAIN_CPU_BF16=1`` (:func:`detpretrain.profiles.cpu_bf16_requested`), which makes every
    run another one, is part of the hash, so a chapter executed in float32 is stale under it and vice versa; unset,
    the hash is the package code's alone."""
    from detpretrain.profiles import cpu_bf16_requested

    root = Path(package_dir)
    digest = hashlib.sha256()
    paths = [p for p in root.rglob("*.py")
             if "__pycache__" not in p.parts and p.relative_to(root).as_posix() not in NOT_HASHED]
    for path in sorted(paths):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    if cpu_bf16_requested():
        digest.update(b"cpu_bf16\0")
    return digest.hexdigest()[:16]


def _chapters_executed_by() -> dict[str, tuple[str, ...]]:
    """``{page: chapters it executes}``: the mechanisms page executes the chapters of its cue variants, so their
    sources are part of its own (:func:`source_hash`)."""
    from detpretrain.parameters import MECHANISM_CHAPTERS

    return {"mechanisms": MECHANISM_CHAPTERS}


def source_hash(path: str | os.PathLike) -> str:
    """sha256 (hex, 16 chars) of a chapter's source file bytes, and of the sources (same folder and suffix) of the
    chapters it executes itself (the mechanisms page: its cue variants), so that a change to those makes it stale."""
    path = Path(path)
    digest = hashlib.sha256(path.read_bytes())
    for other in _chapters_executed_by().get(chapter_name(path), ()):
        sibling = path.with_name(other + path.suffix)
        if sibling.is_file():
            digest.update(b"\0" + other.encode() + b"\0" + sibling.read_bytes())
    return digest.hexdigest()[:16]


def _canonical(params: dict) -> str:
    return json.dumps(params, sort_keys=True, default=str)


def execution_record(output: str | os.PathLike) -> dict | None:
    """``metadata.detpretrain`` of an executed notebook plus papermill's parameters, or None if absent/unreadable."""
    import nbformat

    try:
        nb = nbformat.read(str(output), as_version=4)
    except (OSError, ValueError):
        return None
    record = nb.metadata.get(METADATA_KEY)
    if not record:
        return None
    record = dict(record)
    record["parameters"] = nb.metadata.get("papermill", {}).get("parameters", {})
    return record


def is_up_to_date(source: str | os.PathLike, output: str | os.PathLike, parameters: dict,
                  code: str | None = None) -> tuple[bool, str]:
    """Whether ``output`` is a successful execution of the current ``source`` with ``parameters`` under the
    current package code. Returns ``(up_to_date, reason)``; the reason says what changed."""
    if not Path(output).is_file():
        return False, "never executed"
    record = execution_record(output)
    if record is None:
        return False, "no successful execution recorded"
    if record.get("source_hash") != source_hash(source):
        return False, "chapter source changed"
    if record.get("code_hash") != (code or code_hash()):
        return False, "package code changed"
    if _canonical(record["parameters"]) != _canonical(parameters):
        return False, "parameters changed"
    return True, "up to date"


# ----------------------------------------------------------------------------------------------- executing


def load_chapter(source: str | os.PathLike):
    """The chapter as an nbformat v4 notebook without outputs: jupytext reads the ``.py``/``.md`` text form,
    nbformat an ``.ipynb``. The kernelspec is set to :data:`KERNEL_NAME`."""
    import jupytext
    import nbformat

    source = Path(source)
    if source.suffix == ".ipynb":
        nb = nbformat.read(str(source), as_version=4)
    else:
        nb = jupytext.read(source)
    nb.metadata["kernelspec"] = dict(_KERNELSPEC)
    nb.metadata.setdefault("language_info", {"name": "python"})
    return nb


def execute_chapter(source: str | os.PathLike, output: str | os.PathLike, parameters: dict, *,
                    timeout: float | None = None, cwd: str | os.PathLike | None = None,
                    name: str | None = None, verbose: bool = False) -> float:
    """Execute one chapter with papermill and write the executed notebook.

    Args:
        source: the chapter (``.py`` jupytext text form or ``.ipynb``).
        output: the executed ``.ipynb`` to write (also written, with papermill's error markers, on failure).
        parameters: papermill parameters, injected after the cell tagged ``parameters``.
        timeout: per-cell execution timeout in seconds (None: no limit).
        cwd: the kernel's working directory (None: the current one).
        name: the chapter's name in messages (default: the source's stem).
        verbose: papermill's progress bar over the cells and its log of every cell's output (stderr).

    Returns:
        wall time in seconds.

    Raises:
        ChapterError: a cell raised (names the cell, its first lines and ``ename: evalue``), a cell exceeded
            ``timeout``, the kernel died, or the chapter has no ``parameters`` cell.
    """
    import nbclient.exceptions
    import nbformat
    import papermill
    from papermill.exceptions import PapermillExecutionError

    name = name or chapter_name(source)
    # hashes of what is executed, taken BEFORE execution: an edit made while a long chapter runs must make it stale
    executed_source_hash, executed_code_hash = source_hash(source), code_hash()
    nb = load_chapter(source)
    try:
        chapter_parameters(nb)
    except ConfigError as err:
        raise ChapterError(name, f"{source}: {err}") from None
    Path(output).parent.mkdir(parents=True, exist_ok=True)
    fd, kernel_log = tempfile.mkstemp(prefix=f"detpretrain-kernel-{name}-", suffix=".log")
    os.close(fd)
    kernel_log = Path(kernel_log)
    t0, succeeded = time.perf_counter(), False
    try:
        for attempt in range(1, KERNEL_START_ATTEMPTS + 1):
            try:
                # papermill logs "Passed unknown parameter" itself; the callers warn about unknown names in one line
                with (_papermill_log() if verbose else _quiet_logger("papermill")), _kernel_stderr(kernel_log):
                    executed = papermill.execute_notebook(
                        nb, str(output), parameters=copy.deepcopy(parameters), kernel_name=KERNEL_NAME,
                        language="python", progress_bar=verbose, log_output=verbose,
                        cwd=str(cwd) if cwd is not None else None, execution_timeout=timeout,
                        extra_arguments=_KERNEL_ARGS)
                break
            except RuntimeError as err:
                if isinstance(err, nbclient.exceptions.DeadKernelError) or not str(err).startswith(
                        KERNEL_START_FAILURES):
                    raise
                if attempt == KERNEL_START_ATTEMPTS:
                    tail = "\n".join(f"    {line}" for line in
                                     kernel_log.read_text(errors="replace").splitlines()[-15:])
                    raise ChapterError(name, f"chapter {name!r}: its kernel did not start ({err}; "
                                             f"{KERNEL_START_ATTEMPTS} attempts). Kernel log:\n{tail}",
                                       ename=type(err).__name__, evalue=str(err)) from None
                # no cell has run: another kernel starting at the same moment may have taken its port
                time.sleep(random.uniform(0.5, 2.0) * attempt)
        nb = executed
        succeeded = True
    except PapermillExecutionError as err:
        head = "\n".join(f"    {line}" for line in err.source.splitlines()[:4])
        raise ChapterError(name, f"chapter {name!r} failed in cell {err.cell_index} (In [{err.exec_count}]):\n"
                                 f"{head}\n  {err.ename}: {err.evalue}\n  executed notebook: {output}",
                           cell_index=err.cell_index, source=err.source, ename=err.ename,
                           evalue=err.evalue) from None
    except nbclient.exceptions.CellTimeoutError as err:
        detail = "\n".join(f"    {line}" for line in str(err).strip().splitlines()[:8])
        raise ChapterError(name, f"chapter {name!r}: a cell ran longer than the timeout of {timeout:g} s "
                                 f"(set $DETPRETRAIN_CELL_TIMEOUT to change it):\n{detail}",
                           ename="CellTimeoutError") from None
    except nbclient.exceptions.DeadKernelError as err:
        tail = "\n".join(f"    {line}" for line in kernel_log.read_text(errors="replace").splitlines()[-15:])
        raise ChapterError(name, f"chapter {name!r}: the kernel died ({err}); out of memory? Kernel log:\n{tail}",
                           ename="DeadKernelError") from None
    finally:
        kernel_log.unlink(missing_ok=True)
        if not succeeded and Path(output).is_file():
            _set_input_path(output, source)  # papermill wrote the NotebookNode it was given as the input path
    seconds = time.perf_counter() - t0
    nb.metadata.papermill["input_path"] = str(source)  # papermill recorded the NotebookNode it was given
    nb.metadata[METADATA_KEY] = {"source": str(source), "source_hash": executed_source_hash,
                                 "code_hash": executed_code_hash,
                                 "seconds": round(seconds, 1), "python": sys.executable,
                                 "executed_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    nbformat.write(nb, str(output))
    return seconds


def _set_input_path(output: str | os.PathLike, source: str | os.PathLike) -> None:
    import nbformat

    with contextlib.suppress(OSError, ValueError):
        written = nbformat.read(str(output), as_version=4)
        written.metadata.setdefault("papermill", {})["input_path"] = str(source)
        nbformat.write(written, str(output))


@contextlib.contextmanager
def _quiet_logger(name: str):
    logger = logging.getLogger(name)
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


@contextlib.contextmanager
def _papermill_log():
    """papermill's INFO log (cell outputs) to the terminal's stderr while a chapter executes (``--verbose``)."""
    logger = logging.getLogger("papermill")
    handler = logging.StreamHandler(os.fdopen(os.dup(2), "w"))
    handler.setFormatter(logging.Formatter("  %(message)s"))
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        handler.close()


@contextlib.contextmanager
def _kernel_stderr(path: Path):
    """Point file descriptor 2 at ``path`` while a kernel runs: the kernel process inherits it, so its own log
    (e.g. the ZMQ errors ipykernel prints when it is stopped after a timeout) stays out of the user's terminal.
    Cell output on stderr is unaffected (it travels to the notebook through the kernel protocol)."""
    sys.stderr.flush()
    saved = os.dup(2)
    with open(path, "wb") as log:
        os.dup2(log.fileno(), 2)
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)


def cell_timeout(profile: str | None) -> float | None:
    """Per-cell timeout in seconds for ``profile`` (:data:`CELL_TIMEOUT_S`; unknown -> mini's), or the value of
    ``$DETPRETRAIN_CELL_TIMEOUT`` (``none``/``0`` = no limit). None means no limit.

    Raises:
        ConfigError: ``$DETPRETRAIN_CELL_TIMEOUT`` is neither a number nor ``none``.
    """
    env = os.environ.get("DETPRETRAIN_CELL_TIMEOUT")
    if env is not None:
        if env.strip().lower() in ("none", "0", ""):
            return None
        try:
            return float(env)
        except ValueError:
            raise ConfigError(f"DETPRETRAIN_CELL_TIMEOUT={env!r}: expected seconds or 'none'") from None
    return CELL_TIMEOUT_S.get(str(profile), CELL_TIMEOUT_S["mini"])


def _parameters_of(source: Path) -> dict[str, str]:
    try:
        return chapter_parameters(load_chapter(source))
    except ConfigError as err:
        raise ConfigError(f"{source}: {err}") from None


def _timeout_for(parameters: dict, defaults: dict[str, str]) -> float | None:
    profile = parameters.get("profile")
    if profile is None and "profile" in defaults:
        profile = parse_value(defaults["profile"].strip("\"'"))
    return cell_timeout(profile)


def checked_parameters(name: str, values: dict, cell: dict[str, str]) -> dict:
    """A chapter's parameter values checked before it executes (:mod:`detpretrain.parameters`).

    A chapter declared in :data:`~detpretrain.parameters.CHAPTER_PARAMETERS` is checked against its declarations
    (names, types, ranges). Any other chapter (a user's own notebook) accepts the names of its parameters cell, and
    the values of the common parameters (:data:`REQUIRED_PARAMETERS`) are checked.

    Args:
        name: the chapter's name.  values: ``{name: value}`` (after YAML reading).
        cell: ``{name: default source text}`` of the chapter's parameters cell (:func:`chapter_parameters`).

    Returns:
        the values, coerced (e.g. ``seeds: 3`` -> ``[3]``).

    Raises:
        ParameterError: an unknown name (closest valid name and the list) or a value of the wrong type or range.
    """
    from detpretrain.parameters import (
        CHAPTER_PARAMETERS,
        GENERIC_PARAMETERS,
        check_parameters,
        unknown_parameter_message,
    )
    from detpretrain.errors import ParameterError

    if name in CHAPTER_PARAMETERS:
        return check_parameters(name, values)
    for key in values:
        if key not in cell:
            raise ParameterError(name, key, unknown_parameter_message(name, key, cell))
    generic = [p for p in GENERIC_PARAMETERS if p.name in values]
    return {**values, **check_parameters(name, {p.name: values[p.name] for p in generic}, generic)}


def _known_names(name: str, cell: dict[str, str]) -> list[str]:
    from detpretrain.parameters import CHAPTER_PARAMETERS

    return [p.name for p in CHAPTER_PARAMETERS[name]] if name in CHAPTER_PARAMETERS else list(cell)


def _checked_execution(source: Path, values: dict) -> tuple[dict, float | None]:
    """``(parameters, cell timeout)`` of executing the chapter ``source`` with ``values``: checked against its
    declarations or parameters cell (:func:`checked_parameters`), timeout by profile (:func:`_timeout_for`).
    Raises ParameterError before anything runs."""
    defaults = _parameters_of(source)
    parameters = checked_parameters(chapter_name(source), values, defaults)
    return parameters, _timeout_for(parameters, defaults)


def run_command(chapter: str, params: dict, output: str | None = None) -> int:
    """``python -m detpretrain run CHAPTER -p KEY VALUE ...``: execute one chapter with papermill parameters.

    Args:
        chapter: a chapter name from ``_toc.yml`` (``detection``) or a path to a ``.py``/``.ipynb`` chapter.
        params: ``{key: value}``; string values are read as YAML (:func:`parse_value`).
        output: the executed notebook (default: next to the chapter, ``book/<chapter>.ipynb``).

    Always executes (no up-to-date check); the per-cell timeout follows the ``profile`` parameter
    (:data:`CELL_TIMEOUT_S`). Returns 0, or 1 after printing the failing cell and error (no traceback).

    Raises:
        ParameterError: an unknown parameter name or a bad value (:func:`checked_parameters`), before anything is
            executed.  ConfigError: unknown chapter name.  FileNotFoundError: a chapter path that does not exist.
    """
    source = resolve_chapter(chapter)
    out = Path(output) if output else source.with_suffix(".ipynb")
    parameters, timeout = _checked_execution(source, {k: parse_value(v) for k, v in (params or {}).items()})
    try:
        root = find_root()
    except FileNotFoundError:
        root = None
    print(f"{chapter_name(source)} ... ", end="", flush=True)
    try:
        seconds = execute_chapter(source, out, parameters, timeout=timeout, cwd=root)
    except ChapterError as err:
        print("FAILED", flush=True)
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"done in {seconds:.0f} s -> {out}")
    return 0


def variant_notebook(folder: str | os.PathLike, chapter: str, cue: str) -> Path:
    """Where the executed notebook of a cue variant goes: ``<folder>/<chapter>-<cue>.ipynb`` (``+`` as ``_``)."""
    return Path(folder) / f"{chapter}-{cue.replace('+', '_')}.ipynb"


def execute_variants(variants, params: dict, folder: str | os.PathLike = "_build/variants", *,
                     root: str | os.PathLike | None = None, log=print, jobs: int | None = None) -> list[dict]:
    """The mechanisms page (issue 18): execute each ``chapter:condition`` of ``variants`` (a cue, or the SUN control
    ``shared-backgrounds``; :func:`detpretrain.parameters.parse_variants`) with papermill, with
    :func:`~detpretrain.parameters.variant_values` checked first (:func:`checked_parameters`), into
    :func:`variant_notebook` (``folder`` relative to the book's root). Each chapter saves its claims under its cue
    (:func:`detpretrain.analysis.mechanisms.save_claims`), which
    :func:`~detpretrain.analysis.mechanisms.claims_by_cue` reads back. ``jobs`` variants execute at once, each in
    its own process and kernel (:func:`chapter_layout`: by default one per CPU core up to 4, one on a GPU machine);
    they read only the run store and write their own notebooks, figures and claims (per cue).

    Returns:
        one ``{"chapter", "cue", "notebook", "seconds"}`` per variant, in order.

    Raises:
        ConfigError: a bad variant. ParameterError: a value the chapter refuses. ChapterError: a variant failed (the
            message starts with its cue, then names the failing cell and the error).
    """
    from detpretrain.parameters import parse_variants, variant_values

    book_root = find_root(root)
    sources = {(c, q): resolve_chapter(c, book_root) for c, q in parse_variants(variants)}
    checked = {(c, q): _checked_execution(source, variant_values(c, q, params))  # every variant before any runs
               for (c, q), source in sources.items()}
    outputs = {key: variant_notebook(folder if Path(folder).is_absolute() else book_root / folder, *key)
               for key in sources}
    n_jobs, _ = chapter_layout(jobs, str(params.get("device") or "auto"))
    if n_jobs > 1 and len(sources) > 1:
        by_name = {f"{c} (cue {q})": (c, q) for c, q in sources}
        seconds_of: dict[tuple[str, str], float] = {}

        def finished(job: _ChapterJob, seconds: float) -> None:
            chapter, cue = by_name[job.name]
            seconds_of[chapter, cue] = seconds
            log(f"{chapter} under cue {cue}: {seconds:.0f} s -> {job.output}")

        for out in outputs.values():
            out.parent.mkdir(parents=True, exist_ok=True)
        work = [_ChapterJob(name, sources[key], outputs[key], checked[key][0], "variant", f"{key[0]} under cue "
                            f"{key[1]} ...") for name, key in by_name.items()]
        timeout = max((checked[key][1] for key in sources), key=lambda t: math.inf if t is None else t)
        try:
            _execute_at_once(work, {}, n_jobs, timeout, book_root, finished, log)
        except ChapterError as err:
            cue = by_name.get(err.chapter, ("", "?"))[1]
            raise ChapterError(err.chapter, f"cue {cue}: {err}", cell_index=err.cell_index, source=err.source,
                               ename=err.ename, evalue=err.evalue) from None
        return [{"chapter": c, "cue": q, "notebook": str(outputs[c, q]), "seconds": seconds_of[c, q]}
                for c, q in sources]
    done = []
    for (chapter, cue), source in sources.items():
        parameters, timeout = checked[chapter, cue]
        out = outputs[chapter, cue]
        out.parent.mkdir(parents=True, exist_ok=True)
        try:
            seconds = execute_chapter(source, out, parameters, timeout=timeout, cwd=book_root,
                                      name=f"{chapter} (cue {cue})")
        except ChapterError as err:
            raise ChapterError(err.chapter, f"cue {cue}: {err}", cell_index=err.cell_index, source=err.source,
                               ename=err.ename, evalue=err.evalue) from None
        log(f"{chapter} under cue {cue}: {seconds:.0f} s -> {out}")
        done.append({"chapter": chapter, "cue": cue, "notebook": str(out), "seconds": seconds})
    return done


# ----------------------------------------------------------------------------------------------- the book


def _generate_corpora(profile: str, parameters: dict, root: Path, log) -> float:
    from detpretrain.data import synthetic
    from detpretrain.executor import cpu_count

    cache = parameters.get("data_cache") or os.environ.get("DETPRETRAIN_DATA") or root / "data" / "generated"
    cache = Path(cache) if Path(cache).is_absolute() else root / cache
    t0 = time.perf_counter()
    for role, spec in synthetic.profile_specs(profile).items():
        t1 = time.perf_counter()
        path = synthetic.generate(spec, cache, workers=max(1, min(cpu_count(), 8)))
        log(f"  corpus {role:<14} {path}  ({time.perf_counter() - t1:.1f} s)")
    return time.perf_counter() - t0


def copy_sources(dest: str | os.PathLike, root: str | os.PathLike | None = None) -> Path:
    """A copy of the book's sources in ``dest`` (created): ``_toc.yml``, ``_config.yml``, its bibliography files and
    ``book/`` without executed notebooks or caches; a scratch book to build without touching ``root``'s executed
    notebooks (the tests' smoke book, ``benchmarks/bench_chapters.py``).

    Raises:
        FileNotFoundError: ``root`` (default :func:`find_root`) lacks one of them.
    """
    import shutil

    root, dest = find_root(root), Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    config = yaml.safe_load((root / "_config.yml").read_text())
    for name in ("_toc.yml", "_config.yml", *config.get("bibtex_bibfiles", [])):
        shutil.copy(root / name, dest / name)
    shutil.copytree(root / "book", dest / "book", dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("*.ipynb", "__pycache__", ".ipynb_checkpoints", "_build"))
    return dest


def build_html(root: str | os.PathLike) -> tuple[Path, list[str]]:
    """``jupyter-book build ROOT`` with the current interpreter; returns ``(index.html, warning lines)``.

    Raises:
        BookBuildError: jupyter-book exited non-zero (the message holds the tail of its output).
    """
    root = Path(root)
    cmd = [sys.executable, "-c", "import sys; from jupyter_book.cli.main import main; sys.exit(main())",
           "build", str(root)]
    proc = subprocess.run(cmd, cwd=root, capture_output=True, text=True)
    text = re.sub(r"\x1b\[[0-9;]*m", "", proc.stdout + proc.stderr)  # no terminal colours in our messages
    if proc.returncode != 0:
        tail = "\n".join(text.strip().splitlines()[-25:])
        raise BookBuildError(f"jupyter-book build {root} failed (exit {proc.returncode}):\n{tail}")
    warnings = [line for line in text.splitlines() if "WARNING" in line or "ERROR" in line]
    return root / "_build" / "html" / "index.html", warnings


#: chapters executed at once by default on a CPU: one per core, at most this many (each holds a kernel, its runs'
#: models and features in memory)
MAX_CHAPTER_JOBS = 4
#: set by a book build in its chapters' kernels to its ``chapter_jobs``: the mechanisms page's variants
#: (:func:`execute_variants`) take the same number, so ``--chapter-jobs 1`` executes everything one at a time
CHAPTER_JOBS_ENV = "DETPRETRAIN_CHAPTER_JOBS"


def chapter_layout(jobs: int | None = None, device: str = "auto", verbose: bool = False) -> tuple[int, int]:
    """``(chapters at once, threads per chapter kernel when that many execute)`` of a book build: ``jobs``
    (default: the build's own number inside one of its chapters, :data:`CHAPTER_JOBS_ENV`; else one per CPU core, at
    most :data:`MAX_CHAPTER_JOBS`; one on a GPU machine, whose chapters share the GPU, and with ``verbose``, whose
    streamed cell output would interleave), each kernel with ``cores // jobs`` threads, at least one, or more when
    fewer can execute beside it (:func:`chapter_threads`). Inside a chapter, ``cores`` is the chapter's share
    (:func:`detpretrain.executor.cpu_count`): the mechanisms page's variants keep the build's number at once
    (single-threaded kernels beside other chapters only share the cores for a while; executing the variants one at
    a time would lengthen the build's last chapters), with threads from the page's share only.

    Raises:
        ConfigError: ``jobs`` < 1.
    """
    from detpretrain.executor import _cuda_available, cpu_count

    if jobs is not None and jobs < 1:
        raise ConfigError(f"chapter jobs must be at least 1, got {jobs}")
    cores = cpu_count()
    inherited = os.environ.get(CHAPTER_JOBS_ENV, "")
    if jobs is None and inherited.isdigit() and int(inherited) > 0:  # inside a chapter of a build: the build's N
        jobs = int(inherited)  # on the chapter's share of the cores (executor.CORES_ENV): cores // jobs threads
    if jobs is None:
        uses_gpu = device.startswith("cuda") or (device == "auto" and _cuda_available())
        jobs = 1 if uses_gpu or verbose else max(1, min(cores, MAX_CHAPTER_JOBS))
    return jobs, max(1, cores // jobs)


def chapter_dependencies(chapters: list[str], values: dict[str, dict]) -> dict[str, set[str]]:
    """``{chapter: the chapters of chapters it executes after}``: what a chapter reads besides the run store.

    * the introduction (:data:`detpretrain.plan.SUMMARY_CHAPTERS`) summarises every chapter's primary record
      (:func:`detpretrain.overview.primary_overview`): after all the others;
    * the mechanisms page compares the claims its variants' chapters saved under the reference cue
      (:func:`detpretrain.analysis.mechanisms.cue_contrasts`): after those chapters (``values["mechanisms"]
      ["variants"]``, :func:`detpretrain.parameters.parse_variants`).

    The others read only the run store, whose runs the build trained before any chapter executes, and write their
    own figures and records (per chapter and cue): they execute in any order.

    Args:
        chapters: the chapters to execute; values: each one's parameter values (:func:`chapter_values`).
    """
    from detpretrain.parameters import parse_variants
    from detpretrain.plan import SUMMARY_CHAPTERS

    wanted = set(chapters)
    after = {c: set() for c in chapters}
    for c in chapters:
        if c in SUMMARY_CHAPTERS:
            after[c] = wanted - {c}
        elif c == "mechanisms":
            after[c] = {chapter for chapter, _ in parse_variants(values.get(c, {}).get("variants"))} & wanted - {c}
    return after


def chapter_threads(cores: int, n_jobs: int, beside: int) -> int:
    """Threads for a chapter kernel that starts now: ``cores // min(n_jobs, 1 + beside)``, at least 1.

    ``beside`` counts the chapters that can execute while this one does (:func:`chapter_share`). Every chapter that
    ever executes beside this one was counted when it started, and no more than ``n_jobs`` execute at once, so the
    chapter kernels executing at any moment hold at most ``cores`` threads together (``n_jobs <= cores``): the
    introduction, alone at the end of a build, gets every core instead of ``cores // n_jobs``; two chapters with
    nothing else left get half each. Threads are fixed when a kernel starts (OpenMP's pool), so a chapter started
    beside others keeps its share. One exception: the mechanisms page executes the build's ``n_jobs`` cue variants
    at once on its share (:func:`chapter_layout`), so while chapters still execute beside it, single-threaded
    variant kernels time-share cores (e.g. 2 cores: the page given one beside another chapter, its 2 variants and
    that chapter: 3 single-threaded kernels; before, 2 variants of cores // N threads each whatever the page had).
    """
    return max(1, cores // max(1, min(n_jobs, 1 + beside)))


def chapter_share(name: str, running: int, waiting: list[str], later: dict[str, set[str]], cores: int,
                  n_jobs: int) -> int:
    """:func:`chapter_threads` of chapter ``name`` starting now beside ``running`` executing chapters, with
    ``waiting`` (names) still to start: those that do not execute after it (``later``, :func:`_executes_after`)
    may execute beside it."""
    beside = running + sum(w not in later.get(name, ()) for w in waiting)
    return chapter_threads(cores, n_jobs, beside)


def _executes_after(after: dict[str, set[str]]) -> dict[str, set[str]]:
    """``{chapter: every chapter that executes after it}``, following ``after`` (:func:`chapter_dependencies`)
    through: the introduction after the mechanisms page after the chapters it compares."""
    later: dict[str, set[str]] = {c: set() for c in after}
    for chapter, earlier in after.items():
        stack = list(earlier)
        seen: set[str] = set()
        while stack:
            e = stack.pop()
            if e in seen:
                continue
            seen.add(e)
            later.setdefault(e, set()).add(chapter)
            stack.extend(after.get(e, ()))
    return later


@dataclasses.dataclass
class _ChapterJob:
    """A chapter of a book build to execute."""

    name: str
    source: Path
    output: Path
    parameters: dict
    reason: str
    prefix: str
    #: where the chapter's kernel notes runs its plan did not list (``DETPRETRAIN_UNPLANNED_LOG``; None: inherited)
    unplanned: Path | None = None


def _chapter_done(job: _ChapterJob, seconds: float, results: dict, report: BookReport, log) -> None:
    results[job.name] = ChapterResult(job.name, job.output, "executed", seconds, seconds)
    log(f"{job.prefix} done in {seconds:.0f} s")
    if job.unplanned is not None and job.unplanned.is_file():
        extra = job.unplanned.read_text().split("\n")
        report.warnings.append(f"{job.name} trained runs its plan did not list: {', '.join(filter(None, extra))}")
        log(f"  warning: {report.warnings[-1]} (detpretrain.plan.CHAPTER_PLANNERS['{job.name}'] is out of date)")


def _execute_in_own_process(job: _ChapterJob, timeout: float | None, cwd: Path, env: dict[str, str]) -> dict:
    """One chapter in a worker process of :func:`_execute_at_once`: ``env`` set for its kernel (threads, the
    unplanned-runs note); returns ``{"seconds"}`` or ``{"error": ChapterError's fields}`` (picklable)."""
    os.environ.update(env)
    if job.unplanned is not None:
        job.unplanned.unlink(missing_ok=True)
    try:
        return {"seconds": execute_chapter(job.source, job.output, job.parameters, timeout=timeout, cwd=cwd,
                                           name=job.name)}
    except ChapterError as err:
        return {"error": {"chapter": err.chapter, "message": str(err), "cell_index": err.cell_index,
                          "source": err.source, "ename": err.ename, "evalue": err.evalue}}


def _execute_at_once(jobs: list[_ChapterJob], after: dict[str, set[str]], n_jobs: int,
                     timeout: float | None, root: Path, on_done, log) -> None:
    """Execute ``jobs``, ``n_jobs`` at once, each in a fresh process of its own (one kernel each, with the threads
    and cores :func:`chapter_threads` gives it; a process that dies takes no other chapter with it and is named),
    each once the chapters it depends on (``after``) have executed, in the order of ``jobs`` among those ready;
    ``on_done(job, seconds)`` after each.
    After a failure no other chapter starts, those executing finish (their notebooks are kept), then the first
    failure is raised.

    Raises:
        ChapterError: the first chapter that failed (a cell, its kernel, or its process: killed, out of memory).
    """
    import concurrent.futures as cf
    import multiprocessing
    from concurrent.futures.process import BrokenProcessPool

    from detpretrain.executor import CORES_ENV, cpu_count

    context = multiprocessing.get_context("spawn")
    cores, later = cpu_count(), _executes_after(after)
    waiting, running, done = list(jobs), {}, set()
    failure: ChapterError | None = None
    try:
        while waiting or running:
            while failure is None and len(running) < n_jobs:
                ready = next((j for j in waiting if after.get(j.name, set()) <= done), None)
                if ready is None:
                    break
                waiting.remove(ready)
                threads = chapter_share(ready.name, len(running), [j.name for j in waiting], later, cores, n_jobs)
                log(f"{ready.prefix} executing ({ready.reason}; {threads} thread(s))")
                env = {"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads),
                       "OPENBLAS_NUM_THREADS": str(threads), CORES_ENV: str(threads), CHAPTER_JOBS_ENV: str(n_jobs)}
                if ready.unplanned is not None:
                    env["DETPRETRAIN_UNPLANNED_LOG"] = str(ready.unplanned)
                pool = cf.ProcessPoolExecutor(max_workers=1, mp_context=context)
                running[pool.submit(_execute_in_own_process, ready, timeout, root, env)] = (ready, pool)
            if not running:
                break
            finished, _ = cf.wait(running, return_when=cf.FIRST_COMPLETED)
            for future in finished:
                job, pool = running.pop(future)
                pool.shutdown(wait=True)
                try:
                    outcome = future.result()
                except BrokenProcessPool as err:
                    outcome = {"error": {"chapter": job.name, "message": f"chapter {job.name!r}: its process died "
                                         f"({err}); killed, or out of memory? executed notebook: {job.output}",
                                         "ename": type(err).__name__, "evalue": str(err)}}
                except Exception as err:  # raised outside the cells (e.g. writing the executed notebook)
                    outcome = {"error": {"chapter": job.name, "message": f"chapter {job.name!r}: "
                                         f"{type(err).__name__}: {err}; executed notebook: {job.output}",
                                         "ename": type(err).__name__, "evalue": str(err)}}
                if "error" in outcome:
                    e = outcome["error"]
                    failure = failure or ChapterError(e["chapter"], e["message"], cell_index=e.get("cell_index"),
                                                      source=e.get("source", ""), ename=e.get("ename", ""),
                                                      evalue=e.get("evalue", ""))
                    log(f"{job.prefix} failed")
                    if running:
                        log(f"  waiting for {', '.join(j.name for j, _ in running.values())} to finish "
                            "(no other chapter starts)")
                    continue
                on_done(job, outcome["seconds"])
                done.add(job.name)
    finally:  # an interrupt: the chapters' processes got it too; wait for them to end
        for _, pool in running.values():
            pool.shutdown(wait=True, cancel_futures=True)
    if failure is not None:
        raise failure
    if waiting:  # cannot happen: dependencies are among the jobs and acyclic
        raise ConfigError(f"chapters never ready: {', '.join(j.name for j in waiting)}")


def build_book(profile: str = "mini", *, root: str | os.PathLike | None = None, chapters: list[str] | None = None,
               html: bool = True, params: dict | None = None, force: bool = False, log=print,
               execution: dict | None = None, verbose: bool = False,
               chapter_jobs: int | None = None) -> BookReport:
    """Generate the profile's corpora, train the run plan of the chapters to execute (:mod:`detpretrain.executor`),
    execute the chapters (skipping up-to-date ones; several at once with ``chapter_jobs``), render HTML.

    Args:
        profile: ``"smoke" | "mini" | "torchvision" | "paper"`` (the GPU profiles generate no corpora up front: they
            read real data, and their synthetic-only parts generate ``mini``'s corpora when they need them).
        root: the folder with ``_toc.yml``/``_config.yml`` (default: :func:`find_root`).
        chapters: names to execute (default: every toc chapter). The HTML needs every toc chapter executed once.
        params: papermill parameters for every chapter besides ``profile``; strings are read as YAML.
        force: execute even up-to-date chapters.
        log: where progress lines go (also written to the build log ``_build/logs/<time>-book-<profile>.log``).
        execution: keyword arguments of :func:`detpretrain.executor.execute` (``executor``, ``jobs``, ``threads``,
            ``gpus_per_job``, ...); the plan runs before the chapters, which then only read finished runs.
        verbose: stream papermill's cell progress and cell output (the chapters then execute one at a time).
        chapter_jobs: chapters executed at once, each in its own process and kernel with ``cores // chapter_jobs``
            threads, more when fewer chapters can execute beside it (:func:`chapter_layout`,
            :func:`chapter_threads`; default: one per CPU core up to 4, one on a GPU machine or with ``verbose``).
            A chapter that reads what others write waits for them (:func:`chapter_dependencies`). With one, the
            chapters execute in toc order in this process, the introduction last. The mechanisms page's cue
            variants take the same number (:data:`CHAPTER_JOBS_ENV`), their threads from the cores the page was
            given (:data:`detpretrain.executor.CORES_ENV`): with one (or ``verbose``) they execute one at a time too.

    A ``params`` name goes to the chapters whose parameters include it; names and values are checked for every
    chapter to execute before any corpus is generated or chapter executed (:func:`checked_parameters`).

    Raises:
        ParameterError: a name no chapter has, or a value a chapter refuses (a chapter without ``paper`` among its
            profiles, for instance): nothing is generated or executed.
        ConfigError: unknown profile or chapter, ``profile`` given in ``params``, or HTML asked for while a toc
            chapter was never executed.
        FileNotFoundError: a toc chapter's source file is missing.
        ChapterError: a chapter failed (the build starts no other chapter; those executing finish and are kept).
        BookBuildError: jupyter-book failed.
        ExecutionError: a run of the plan failed (the build stops; completed runs stay in the store).
    """
    if profile not in CELL_TIMEOUT_S:
        raise ConfigError(f"unknown profile {profile!r}; expected one of {', '.join(CELL_TIMEOUT_S)}")
    root = find_root(root)
    parameters = {k: parse_value(v) for k, v in (params or {}).items()}
    if "profile" in parameters:
        raise ConfigError("give the profile with --profile, not -p profile")
    parameters = {"profile": profile, **parameters}
    entries = toc_files(root)
    names = [chapter_name(e) for e in entries]
    sources, wanted = _wanted_sources(root, chapters)

    per_chapter = _book_parameters(parameters, {c: sources[c] for c in wanted if sources[c].suffix != ".md"})
    n_jobs, threads = chapter_layout(chapter_jobs, str(parameters.get("device") or "auto"), verbose)  # before work

    from detpretrain.executor import BuildLog
    from detpretrain.plan import environment

    build_log = BuildLog(root / "_build" / "logs", f"book-{profile}")
    log = build_log.tee(log)
    log(f"build log {build_log.path}")
    report = BookReport(profile=profile, chapters=[])
    from detpretrain.profiles import PROFILES

    if not PROFILES[profile].needs_gpu:  # GPU profiles read real data; synthetic-only parts generate mini's on demand
        log(f"corpora of profile {profile!r}")
        report.corpus_seconds = _generate_corpora(profile, parameters, root, log)
    code = code_hash()
    # The root page (the introduction) summarises the other chapters' runs: execute it last, so that on a cold
    # build it loads what the chapters trained instead of training first.
    order = names[1:] + names[:1]
    todo = [c for c in order if c in wanted]
    stale = [c for c in todo if sources[c].suffix != ".md"
             and (force or not is_up_to_date(sources[c], sources[c].with_suffix(".ipynb"), parameters, code)[0])]
    t0 = time.perf_counter()
    _execute_plan(profile, stale, parameters, root, execution or {}, log, build_log)
    report.plan_seconds = time.perf_counter() - t0
    results: dict[str, ChapterResult] = {}
    jobs: list[_ChapterJob] = []
    for i, name in enumerate(todo, 1):
        source = sources[name]
        output = source.with_suffix(".ipynb")
        prefix = f"[{i}/{len(todo)}] {name} ..."
        if source.suffix == ".md":  # a prose page: nothing to execute
            results[name] = ChapterResult(name, source, "text page", 0.0, 0.0)
            log(f"{prefix} text page")
            continue
        chapter_params = per_chapter[name]
        fresh, reason = is_up_to_date(source, output, chapter_params, code)
        if fresh and not force:
            record = execution_record(output) or {}
            results[name] = ChapterResult(name, output, "up to date", 0.0, float(record.get("seconds", 0)))
            log(f"{prefix} up to date (executed in {record.get('seconds', 0):.0f} s)")
            continue
        jobs.append(_ChapterJob(name, source, output, chapter_params, reason, prefix,
                                build_log.folder / f"unplanned-{name}.txt"))
    timeout = cell_timeout(profile)
    try:
        if n_jobs == 1 or len(jobs) < 2:
            for job in jobs:
                log(f"{job.prefix} executing ({job.reason})")
                job.unplanned.unlink(missing_ok=True)
                with environment(DETPRETRAIN_UNPLANNED_LOG=job.unplanned, **{CHAPTER_JOBS_ENV: n_jobs}):
                    seconds = execute_chapter(job.source, job.output, job.parameters, timeout=timeout, cwd=root,
                                              name=job.name, verbose=verbose)
                _chapter_done(job, seconds, results, report, log)
        else:
            log(f"chapters: {len(jobs)} to execute, {n_jobs} at once, {threads} thread(s) each while {n_jobs} "
                "execute, more for a chapter with fewer beside it")
            after = chapter_dependencies([j.name for j in jobs], {j.name: chapter_values(j.source, j.parameters)
                                                                 for j in jobs})
            _execute_at_once(jobs, after, n_jobs, timeout, root,
                             lambda job, seconds: _chapter_done(job, seconds, results, report, log), log)
    finally:
        report.chapters = [results[name] for name in todo if name in results]

    if html:
        never = [str(s.with_suffix(".ipynb")) for s in sources.values()
                 if s.suffix != ".md" and execution_record(s.with_suffix(".ipynb")) is None]
        if never:
            raise ConfigError(f"cannot render the book: not successfully executed: {', '.join(never)} "
                              f"(run the book without --chapters once)")
        for name, source in sources.items():
            if source.suffix == ".md":  # a prose page: never executed
                continue
            record = execution_record(source.with_suffix(".ipynb"))
            expected = per_chapter.get(name) or {k: v for k, v in parameters.items()
                                                 if k in _known_names(name, _parameters_of(source))}
            if record is not None and _canonical(record["parameters"]) != _canonical(expected):
                log(f"  warning: {name} is rendered as executed with other parameters: {record['parameters']}")
        log("jupyter-book build ...")
        t0 = time.perf_counter()
        report.html_index, report.warnings = build_html(root)
        report.html_seconds = time.perf_counter() - t0
        log(f"jupyter-book build ... done in {report.html_seconds:.0f} s"
            + (f" ({len(report.warnings)} warnings)" if report.warnings else ""))
        for line in report.warnings[:10]:
            log(f"  {line.strip()}")
    return report


def _wanted_sources(root: Path, chapters: list[str] | None) -> tuple[dict[str, Path], list[str]]:
    """``({chapter: source} of every toc chapter, the chapters asked for)``, ``chapters`` None meaning all.

    Raises:
        ConfigError: a chapter not in the toc (the message lists them). FileNotFoundError: a source is missing.
    """
    entries = toc_files(root)
    names = [chapter_name(e) for e in entries]
    wanted = list(chapters) if chapters else names
    unknown = [c for c in wanted if c not in names]
    if unknown:
        raise ConfigError(f"unknown chapter(s) {', '.join(unknown)}; chapters in {root / '_toc.yml'}: "
                          f"{', '.join(names)}")
    sources = {chapter_name(e): chapter_source(root, e) for e in entries}
    missing = [str(sources[c]) for c in wanted if not sources[c].is_file()]
    if missing:
        raise FileNotFoundError(f"chapter source(s) listed in {root / '_toc.yml'} do not exist: {', '.join(missing)}")
    return sources, wanted


def _book_parameters(parameters: dict, sources: dict[str, Path]) -> dict[str, dict]:
    """The parameters each chapter of a book build gets, checked before anything executes: a ``-p`` name is passed
    to the chapters that have it; a name no chapter has, or a bad value for any chapter, is a ParameterError."""
    from detpretrain.errors import ParameterError
    from detpretrain.parameters import unknown_parameter_message

    known = {name: _known_names(name, _parameters_of(source)) for name, source in sources.items()}
    everywhere = sorted({n for names in known.values() for n in names})
    for key in parameters:
        if not any(key in names for names in known.values()):
            raise ParameterError("book", key, unknown_parameter_message("the book", key, everywhere))
    checked = {}
    for name, source in sources.items():
        try:
            checked[name] = checked_parameters(name, {k: v for k, v in parameters.items() if k in known[name]},
                                               _parameters_of(source))
        except ParameterError as err:
            hint = " (leave the chapter out with --chapters)" if err.parameter == "profile" else ""
            raise ParameterError(err.chapter, err.parameter, f"{err}{hint}") from None
    return checked


def chapter_values(source: str | os.PathLike, params: dict | None = None) -> dict:
    """A chapter's parameter values: its ``parameters`` cell (Python literals) updated with ``params`` (names the
    chapter does not have are left out, as papermill leaves them unused)."""
    import ast

    values = {}
    for name, text in _parameters_of(Path(source)).items():
        try:
            values[name] = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            values[name] = parse_value(text)
    values.update({k: v for k, v in (params or {}).items() if k in values})
    return values


def _planned_by_default(profile: str, names: list[str]) -> list[str]:
    """The chapters of ``names`` a run plan covers when none are asked for: those with a planner, less the
    synthetic-only ones at a profile with published weights (:data:`detpretrain.parameters.SYNTHETIC_ONLY`)."""
    from detpretrain.parameters import PUBLISHED_PROFILES, SYNTHETIC_ONLY
    from detpretrain.plan import CHAPTER_PLANNERS

    skipped = SYNTHETIC_ONLY if profile in PUBLISHED_PROFILES else {}
    return [n for n in names if n in CHAPTER_PLANNERS and n not in skipped]


def book_plan(profile: str, chapters: list[str] | None = None, params: dict | None = None, *,
              root: str | os.PathLike | None = None, store=None, errors: dict[str, str] | None = None):
    """The run plan (:func:`detpretrain.plan.chapters_plan`) of ``chapters`` (default: every toc chapter with a
    planner, less the synthetic-only ones at a GPU profile: :data:`detpretrain.parameters.SYNTHETIC_ONLY`) at
    ``profile``, each with its notebook's parameter defaults updated with ``params``.

    Raises:
        ConfigError: an unknown chapter, or parameters refused by a chapter's experiments module (unless ``errors``
            collects them, see :func:`~detpretrain.plan.chapters_plan`).
    """
    from detpretrain.plan import CHAPTER_PLANNERS, book_data_cache, book_store, chapters_plan, missing_calls

    root = find_root(root)
    params = dict(params or {})
    names = [chapter_name(e) for e in toc_files(root)]
    wanted = list(chapters) if chapters else _planned_by_default(profile, names)
    unknown = [c for c in wanted if c not in CHAPTER_PLANNERS]
    if unknown:
        raise ConfigError(f"no run plan for chapter(s) {', '.join(unknown)}; chapters: {', '.join(CHAPTER_PLANNERS)}")
    values = {}
    for chapter in wanted:
        source = resolve_chapter(chapter, root)
        missing = missing_calls(chapter, source.read_text(encoding="utf-8"))
        if missing:  # another book's chapter of that name, or a chapter whose calls changed
            message = f"{source} does not call {', '.join(missing)}, which its run plan mirrors"
            if errors is None:
                raise ConfigError(f"chapter {chapter}: {message}")
            errors[chapter] = message
            continue
        values[chapter] = chapter_values(source, params)
    return chapters_plan(profile, values, store=store or book_store(params, root),
                         data_cache=book_data_cache(params, root), errors=errors)


def _execute_plan(profile: str, chapters: list[str], parameters: dict, root: Path, execution: dict, log,
                  build_log) -> None:
    """Train the run plan of ``chapters`` (:func:`book_plan`) with :func:`detpretrain.executor.execute`; a chapter
    that cannot be planned is left to train what it needs itself."""
    from detpretrain.executor import execute
    from detpretrain.plan import CHAPTER_PLANNERS, book_data_cache, book_store

    chapters = [c for c in chapters if c in CHAPTER_PLANNERS]
    if not chapters:
        return
    store = book_store(parameters, root)
    errors: dict[str, str] = {}

    def replan():
        return book_plan(profile, chapters, parameters, root=root, store=store, errors=errors)

    plan = replan()
    for chapter, error in errors.items():
        log(f"  warning: no run plan for {chapter} ({error}); it trains what it needs while it executes")
    if not len(plan):
        return
    log(f"run plan of {len(plan)} runs for {', '.join(c for c in chapters if c not in errors)}")
    execute(plan, store, device=str(parameters.get("device") or "auto"), data_cache=book_data_cache(parameters, root),
            log=log, replan=replan, build_log=build_log, **execution)


def _runs_command_setup(params: dict | None, store: str | None, profile: str,
                        chapters: list[str] | None = None):
    """``(book root, parameter values, run store)`` of a ``runs plan / execute / cost / prune`` command: the ``-p
    KEY VALUE`` pairs parsed as papermill would and checked as ``book`` checks them (a name no chapter of
    ``chapters`` has, or a bad value, is refused before anything is planned, trained or removed), ``--store`` as the
    ``store`` parameter.

    Raises:
        ParameterError: an unknown name or a bad value. ConfigError: ``-p profile`` or an unknown chapter.
    """
    from detpretrain.plan import book_store

    root = find_root()
    values = {k: parse_value(v) for k, v in (params or {}).items()}
    if "profile" in values:
        raise ConfigError("give the profile with --profile, not -p profile")
    sources, wanted = _wanted_sources(root, chapters)
    if chapters is None:  # the chapters book_plan plans by default
        wanted = _planned_by_default(profile, wanted)
    _book_parameters({"profile": profile, **values}, {c: sources[c] for c in wanted if sources[c].suffix != ".md"})
    if store:
        values["store"] = store
    return root, values, book_store(values, root)


def runs_plan_command(profile: str, *, chapters: list[str] | None = None, params: dict | None = None,
                      store: str | None = None, stream=None) -> int:
    """``python -m detpretrain runs plan --profile P [--chapters a,b] [-p KEY VALUE]``: print the book's run plan
    (:func:`detpretrain.plan.format_plan`)."""
    from detpretrain.plan import format_plan

    root, values, run_store = _runs_command_setup(params, store, profile, chapters)
    plan = book_plan(profile, chapters, values, root=root, store=run_store)
    print(format_plan(plan, run_store), file=stream or sys.stdout)
    return 0


def runs_cost_command(profile: str, *, chapters: list[str] | None = None, params: dict | None = None,
                      store: str | None = None, jobs: int | None = None, stream=None) -> int:
    """``python -m detpretrain runs cost --profile P [--chapters a,b] [--jobs N]``: the worker-seconds of the book's
    planned runs in the store, per part of the build and per chapter, and an estimate of what is left
    (:func:`detpretrain.plan.plan_cost`, :func:`~detpretrain.plan.format_cost`). ``jobs``: the workers of the
    wall-clock bound (default: :func:`detpretrain.executor.default_layout`'s, as ``runs execute`` would use).
    """
    from detpretrain.executor import default_layout
    from detpretrain.plan import format_cost, plan_cost

    root, values, run_store = _runs_command_setup(params, store, profile, chapters)
    errors: dict[str, str] = {}  # a chapter that cannot be planned (its data missing) is named, the others counted
    plan = book_plan(profile, chapters, values, root=root, store=run_store, errors=errors)
    jobs = jobs or default_layout(None, None, str(values.get("device") or "auto"))[0]
    out = stream or sys.stdout
    print(format_cost(plan_cost(plan, run_store), profile=profile, store=run_store, jobs=jobs), file=out)
    for chapter, why in errors.items():
        print(f"not counted: chapter {chapter} could not be planned ({why})", file=out)
    for note in plan.notes:
        print(f"not planned: {note}", file=out)
    return 0


def runs_prune_command(profile: str, *, params: dict | None = None, store: str | None = None,
                       dry_run: bool = False, stream=None) -> int:
    """``python -m detpretrain runs prune --profile P [-p KEY VALUE] [--store DIR] [--dry-run]``: remove every run
    of the store that the whole book's run plan at ``profile`` (with these chapter parameters) does not name, nor
    start from, and their feature caches (:func:`detpretrain.runs.prune_runs`): runs of older configurations or
    engine versions, other parameters and other profiles.

    Refused (exit 1, nothing removed) when a chapter cannot be planned: its runs would look unneeded.

    Returns:
        0, or 1 when refused.

    Raises:
        RunStoreError: ``store`` (or the default store) is not a folder.
    """
    from detpretrain.errors import RunStoreError
    from detpretrain.runs import prune_runs

    out = stream or sys.stdout
    root, values, run_store = _runs_command_setup(params, store, profile)
    if not run_store.root.is_dir():  # a mistyped --store would otherwise "remove nothing" and say no more
        raise RunStoreError(run_store.root, "no run store here", "give the folder that holds the runs (--store)")
    errors: dict[str, str] = {}
    plan = book_plan(profile, None, values, root=root, store=run_store, errors=errors)
    if errors:
        for chapter, why in errors.items():
            print(f"error: chapter {chapter} could not be planned ({why})", file=out)
        print(f"nothing removed from {run_store.root}: the runs of a chapter that cannot be planned would look "
              "unneeded", file=out)
        return 1
    parents = {r.config.init[len("run:"):] for r in plan if (r.config.init or "").startswith("run:")}
    removed, busy = prune_runs(run_store, set(plan.runs) | parents, dry_run=dry_run)
    verb = "would remove" if dry_run else "removed"
    for path, what, size in removed:
        print(f"{verb} {path.relative_to(run_store.root)} ({what}, {size / 1e6:.1f} MB)", file=out)
    for path in busy:
        print(f"kept {path.name}: being trained by another process", file=out)
    runs = sum(1 for path, _, _ in removed if path.parent == run_store.root)
    print(f"{verb} {runs} run(s) and {len(removed) - runs} feature cache(s), "
          f"{sum(s for _, _, s in removed) / 1e6:.1f} MB, from {run_store.root}; the plan of profile {profile} "
          f"names {len(plan.runs)} run(s)", file=out)
    return 0


def runs_execute_command(profile: str, *, chapters: list[str] | None = None, params: dict | None = None,
                         store: str | None = None, **execution) -> int:
    """``python -m detpretrain runs execute --profile P [--executor local|slurm] [--jobs N]``: the book's run plan,
    trained by :func:`detpretrain.executor.execute` (``execution``: its keyword arguments).

    Returns 0, or 1 after printing the failed run (name, logs, exception).
    """
    from detpretrain.executor import ExecutionError, execute
    from detpretrain.plan import book_data_cache

    root, values, run_store = _runs_command_setup(params, store, profile, chapters)

    def replan():
        return book_plan(profile, chapters, values, root=root, store=run_store)

    try:
        report = execute(replan(), run_store, device=str(values.get("device") or "auto"),
                         data_cache=book_data_cache(values, root), log_dir=root / "_build" / "logs",
                         name=f"runs-{profile}", log=lambda line: print(line, flush=True), replan=replan,
                         **execution)
    except ExecutionError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"log: {report.log_path}")
    return 0


def format_summary(report: BookReport) -> str:
    """The summary table ``chapter | seconds | status`` of a build, then the HTML path."""
    lines = [f"{'chapter':<24} {'seconds':>8}  status", f"{'-' * 24} {'-' * 8}  {'-' * 30}"]
    if report.corpus_seconds:
        lines.append(f"{'(corpora)':<24} {report.corpus_seconds:>8.1f}  generated or found cached")
    if report.plan_seconds:
        lines.append(f"{'(run plan)':<24} {report.plan_seconds:>8.1f}  trained or found in the run store")
    for ch in report.chapters:
        status = ch.status if ch.status != "up to date" else f"up to date (executed in {ch.executed_seconds:.0f} s)"
        lines.append(f"{ch.name:<24} {ch.seconds:>8.1f}  {status}")
    if report.html_index is not None:
        lines.append(f"{'(jupyter-book build)':<24} {report.html_seconds:>8.1f}  rendered")
        lines.append(f"HTML: {report.html_index}")
    return "\n".join(lines)


def book_command(profile: str, *, chapters: list[str] | None = None, html: bool = True,
                 params: dict | None = None, root: str | os.PathLike | None = None, execution: dict | None = None,
                 verbose: bool = False, chapter_jobs: int | None = None) -> int:
    """``python -m detpretrain book --profile {smoke,mini,paper}``: the main job (see the module docstring).

    Prints a progress line per chapter, then the summary table and the path of ``_build/html/index.html``.
    Returns 0, or 1 after printing the failing chapter, cell and error (no Python traceback).

    Raises:
        ConfigError, FileNotFoundError: bad profile/chapter/parameters or a missing chapter file (the CLI prints
            them as one line).
    """
    from detpretrain.executor import ExecutionError

    t0 = time.perf_counter()
    try:
        report = build_book(profile, root=root, chapters=chapters, html=html, params=params,
                            log=lambda line: print(line, flush=True), execution=execution, verbose=verbose,
                            chapter_jobs=chapter_jobs)
    except (ChapterError, ExecutionError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except BookBuildError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(format_summary(report))
    print(f"total {time.perf_counter() - t0:.0f} s")
    return 0
