"""Figures at print resolution, beside the book's inline ones.

Every chapter shows its figures inline (the rendered book) and also writes them with :func:`save_figure` as a vector
PDF and a 300-dpi PNG, under ``<figures root>/<profile>/<chapter>/<name>.{pdf,png}``. The root is
``$DETPRETRAIN_FIGURES`` or ``_build/figures`` (relative to the working directory, the project root when the book
is built). Files are written atomically (temporary file + rename), so an interrupted chapter never leaves a
half-written figure; the PDF's metadata ``Subject`` carries the figure's provenance line.
"""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib.pyplot as plt

from detpretrain.io import atomic_path

#: dots per inch of the PNG copies (print quality); the PDF is vector
PRINT_DPI = 300
FORMATS = ("pdf", "png")


def figures_root() -> Path:
    """``$DETPRETRAIN_FIGURES`` or ``_build/figures``."""
    return Path(os.environ.get("DETPRETRAIN_FIGURES", "_build/figures"))


def save_figure(fig, name: str, *, chapter: str, profile: str, provenance: str = "",
                root: str | os.PathLike | None = None, dpi: int = PRINT_DPI) -> list[Path]:
    """Write ``fig`` as ``<root>/<profile>/<chapter>/<name>.pdf`` and ``.png`` (``dpi``), atomically.

    Args:
        fig: a matplotlib ``Figure``.
        name: the file stem, e.g. ``"figure4_activation_maps"`` (letters, digits, ``-`` and ``_`` only).
        chapter, profile: the folder the figure goes to.
        provenance: the run / config-hash line, stored as the PDF's ``Subject``.
        root: default :func:`figures_root`.

    Returns:
        the written paths.

    Raises:
        ValueError: a ``name`` with other characters (it would be a path).
    """
    if not name or not all(c.isalnum() or c in "-_" for c in name):
        raise ValueError(f"figure name {name!r} must be letters, digits, '-' and '_' only")
    folder = Path(root if root is not None else figures_root()) / profile / chapter
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for fmt in FORMATS:
        target = folder / f"{name}.{fmt}"
        metadata = {"Subject": provenance, "Title": name} if fmt == "pdf" else {"Title": name}
        with atomic_path(target, suffix=f".{fmt}") as tmp:
            fig.savefig(tmp, format=fmt, dpi=dpi, bbox_inches="tight", metadata=metadata)
        written.append(target)
    return written


def show(fig, name: str, *, chapter: str, profile: str, provenance: str = "") -> None:
    """:func:`save_figure` (``provenance``: the chapter's :func:`detpretrain.chapter.provenance` line, kept in the
    PDF), then display the figure inline (``plt.show()``). Returns nothing, so that a chapter's last line shows the
    figure and no file list (:func:`save_figure` returns the paths)."""
    save_figure(fig, name, chapter=chapter, profile=profile, provenance=provenance)
    plt.show()
