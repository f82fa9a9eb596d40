"""What the book's "Re-run it yourself" chapter shows: parameter tables, profiles, the published links.

Everything here is read from the project's own files, so the chapter cannot drift from them:

* :func:`parameter_table` -- every chapter's papermill parameters from their declarations
  (:mod:`detpretrain.parameters`): name, what it accepts, default and meaning; :func:`split_parameters` separates
  those every chapter shares;
* :func:`profile_table` -- the data, backbone and weights of each profile (:mod:`detpretrain.profiles`);
* :func:`repository` and :func:`launch_urls` -- the repository's address (``repository.url`` in ``_config.yml``,
  the one place it is written) and the Binder / Colab / download links the rendered book shows for a chapter,
  built the way sphinx-book-theme builds them.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pandas as pd
import yaml

from detpretrain import book
from detpretrain.profiles import PROFILE_NAMES, get_profile
from detpretrain.results import markdown_table

#: GitHub Actions artifacts uploaded by ``.github/workflows/book.yml`` (the chapter tells readers their names).
ARTIFACTS = {
    "run store (`runs export` archive `runs-mini.tar.gz`)": "run-store-mini",
    "executed notebooks": "executed-notebooks-mini",
    "print figures": "figures-mini",
    "results table": "results-mini",
}


def book_root(start: str | os.PathLike | None = None) -> Path:
    """The folder holding ``_toc.yml``: ``start`` (default: the current directory) or its parent, else the source
    checkout (:func:`detpretrain.book.find_root`). A chapter's kernel runs in the book root when the book is built
    and in ``book/`` under nbval; both find the same root.

    Raises:
        FileNotFoundError: no ``_toc.yml`` anywhere.
    """
    here = Path(start) if start is not None else Path.cwd()
    for cand in (here, here.parent):
        if (cand / "_toc.yml").is_file():
            return cand.resolve()
    return book.find_root()


def parameter_table(root: str | os.PathLike | None = None) -> pd.DataFrame:
    """Every papermill parameter of every notebook chapter of ``root/_toc.yml``, in toc order, from the one place
    they are declared (:data:`detpretrain.parameters.CHAPTER_PARAMETERS`; ``tests/test_parameters.py`` keeps the
    declarations and the notebooks' parameters cells in step).

    A chapter without declarations (a reader's own notebook added to the toc) is listed from its parameters cell:
    default = the source text, meaning = the comment after it, accepts empty.

    Returns:
        columns ``chapter, parameter, accepts, default, meaning``. Prose pages (``.md``) have no parameters and no rows.
    """
    from detpretrain.parameters import CHAPTER_PARAMETERS, rerun_table

    root = book_root(root)
    frames = []
    for entry in book.toc_files(root):
        source = book.chapter_source(root, entry)
        if source.suffix != ".py":
            continue
        name = book.chapter_name(entry)
        if name in CHAPTER_PARAMETERS:
            frames.append(rerun_table([name]))
        else:
            frames.append(pd.DataFrame([{"chapter": name, "parameter": s.name, "accepts": "", "default": s.default,
                                         "meaning": s.help}
                                        for s in book.chapter_parameter_specs(book.load_chapter(source))]))
    columns = ["chapter", "parameter", "accepts", "default", "meaning"]
    return pd.concat(frames, ignore_index=True)[columns] if frames else pd.DataFrame(columns=columns)


def split_parameters(table: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split :func:`parameter_table` into what every chapter shares and what differs, losing nothing.

    Returns:
        ``(shared, per_chapter)``: ``shared`` has one row (``parameter, accepts, default, meaning``) per parameter
        that every chapter has alike (same accepted values, default and meaning); ``per_chapter`` holds all other
        rows (``chapter, parameter, accepts, default, meaning``), in toc order.
    """
    chapters = table["chapter"].nunique()
    variants = table.groupby("parameter", sort=False)[["chapter", "accepts", "default", "meaning"]].nunique()
    same = variants[(variants["chapter"] == chapters) & (variants["accepts"] == 1) & (variants["default"] == 1)
                    & (variants["meaning"] == 1)]
    is_shared = table["parameter"].isin(same.index)
    shared = table[is_shared].drop_duplicates("parameter")[["parameter", "accepts", "default", "meaning"]]
    return shared.reset_index(drop=True), table[~is_shared].reset_index(drop=True)


def parameters_markdown(table: pd.DataFrame) -> str:
    """Rows of :func:`parameter_table` (or of :func:`split_parameters`) as a Markdown table: defaults as code, and
    the chapter named once, on the first of its rows."""
    shown = table.assign(default="`" + table["default"] + "`")
    if "chapter" in shown:
        shown["chapter"] = shown["chapter"].where(shown["chapter"] != shown["chapter"].shift(), "")
    return markdown_table(shown)


def profile_table() -> pd.DataFrame:
    """One row per profile of :mod:`detpretrain.profiles`: description, backbone, input size, fine-tuning seeds,
    pre-training replicates, fine-tuning schedule and the downloaded weights (``None``: every backbone is trained by
    the book itself)."""
    rows = []
    for name in PROFILE_NAMES:
        prof = get_profile(name)
        rows.append({"profile": name, "description": prof.description,
                     "backbone": f"{prof.model.arch} ({prof.model.norm})",
                     "input size (px)": (f"{prof.model.min_size}" if prof.model.min_size == prof.model.max_size
                                         else f"{prof.model.min_size}-{prof.model.max_size}"),
                     "seeds": len(prof.seeds), "pre-training replicates": prof.pretrain_replicates,
                     "fine-tuning epochs": prof.finetune.epochs,
                     "downloaded weights": (", ".join(f"{k}: torchvision {v}" for k, v in prof.published.items())
                                            or "none (all trained here)")})
    return pd.DataFrame(rows)


@dataclasses.dataclass(frozen=True)
class Repository:
    """The repository the book is published from, as ``_config.yml`` names it.

    Attributes:
        url: ``repository.url`` (``https://github.com/<org>/<name>``).
        branch: ``repository.branch``: the branch the launch buttons open.
        path_to_book: ``repository.path_to_book`` (the book's folder inside the repository; ``""`` = its root).
        binderhub_url, colab_url: ``launch_buttons.binderhub_url`` / ``colab_url`` (``""``: no such button).
    """

    url: str
    branch: str
    path_to_book: str = ""
    binderhub_url: str = ""
    colab_url: str = ""

    @property
    def org(self) -> str:
        """The GitHub owner."""
        return self._parts()[0]

    @property
    def name(self) -> str:
        """The repository's name."""
        return self._parts()[1]

    @property
    def pages_url(self) -> str:
        """Where GitHub Pages serves the book: ``https://<org>.github.io/<name>/``."""
        return f"https://{self.org.lower()}.github.io/{self.name}/"

    @property
    def issues_url(self) -> str:
        """The issue tracker (what the book's issues button opens)."""
        return f"{self.url}/issues"

    def _parts(self) -> tuple[str, str]:
        prefix = "https://github.com/"
        parts = self.url.removeprefix(prefix).strip("/").split("/")
        if not self.url.startswith(prefix) or len(parts) != 2 or not all(parts):
            raise ValueError(f"repository.url {self.url!r} is not https://github.com/<org>/<name>")
        return parts[0], parts[1]


def repository(root: str | os.PathLike | None = None) -> Repository:
    """The :class:`Repository` of ``root/_config.yml`` (the only place the address is written)."""
    config = yaml.safe_load((book_root(root) / "_config.yml").read_text())
    repo, launch = config.get("repository") or {}, config.get("launch_buttons") or {}
    return Repository(url=str(repo.get("url", "")).rstrip("/"), branch=str(repo.get("branch", "")),
                      path_to_book=str(repo.get("path_to_book") or "").strip("/"),
                      binderhub_url=str(launch.get("binderhub_url") or "").rstrip("/"),
                      colab_url=str(launch.get("colab_url") or "").rstrip("/"))


def launch_urls(repo: Repository, entry: str) -> dict[str, str]:
    """The links the rendered page of toc ``entry`` (e.g. ``book/detection``) carries, as sphinx-book-theme 1.x
    builds them from ``_config.yml``.

    Returns:
        ``{"binder": ..., "colab": ..., "download": ...}``: the Binder and Colab launch URLs (both open
        ``<entry>.ipynb`` on ``repo.branch``) and the download link of the executed notebook, relative to the
        page (``_sources/<entry>.ipynb`` under the site root).
    """
    path = f"{repo.path_to_book}/{entry}.ipynb" if repo.path_to_book else f"{entry}.ipynb"
    depth = entry.count("/")
    return {
        "binder": f"{repo.binderhub_url}/v2/gh/{repo.org}/{repo.name}/{repo.branch}?urlpath=tree/{path}",
        "colab": f"{repo.colab_url}/github/{repo.org}/{repo.name}/blob/{repo.branch}/{path}",
        "download": "../" * depth + f"_sources/{entry}.ipynb",
    }
