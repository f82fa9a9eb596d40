"""Atomic writes: every file the package keeps (run artefacts, metrics, caches, figures) goes through here.

A file is written to a temporary name in its destination folder and then ``os.replace``-d onto the final name, so a
crash, a kill or a full disk never leaves a half-written file under a final name: readers see the old file or the new
one. Folders (generated corpora) are built under a temporary name and renamed the same way.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, suffix: str = ".tmp") -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on a clean exit it replaces ``path``, on an exception it is removed.

    For writers that want a file name (``torch.save``, ``fig.savefig``, ``np.savez``). The parent folder is created.

    Raises:
        OSError: the folder cannot be written (the temporary file is removed first).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically, flushed to disk (``fsync``) before the rename."""
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write UTF-8 ``text`` to ``path`` atomically (see :func:`atomic_write_bytes`)."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any, *, allow_nan: bool = True) -> None:
    """Write ``obj`` as indented, key-sorted JSON (one trailing newline) to ``path`` atomically.

    Raises:
        ValueError: ``allow_nan=False`` and ``obj`` holds NaN or infinity (nothing is written).
    """
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, allow_nan=allow_nan) + "\n")


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> None:
    """``torch.save(obj)`` to ``path`` atomically."""
    import torch

    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


@contextlib.contextmanager
def atomic_directory(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary folder next to ``path``; on a clean exit it is renamed to ``path``.

    If another writer created ``path`` meanwhile, its folder is kept and ours is discarded (both are complete, and a
    folder of that name always is). On an exception the temporary folder is removed.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.tmp-", dir=path.parent))
    try:
        yield tmp
        os.chmod(tmp, 0o755)
        try:
            os.replace(tmp, path)
        except OSError:
            if not path.is_dir():  # not a concurrent writer that finished first
                raise
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
