"""Atomic writes: every file the package keeps (run artefacts, metrics, caches, figures) goes through here.

A file is written to a temporary name in its destination folder and then ``os.replace``-d onto the final name, so a
crash, a kill or a full disk never leaves a half-written file under a final name: readers see the old file or the new
one. Folders (generated corpora) are built under a temporary name and renamed the same way.

A full disk is named: an ``ENOSPC`` / ``EDQUOT`` error while writing (also when torch wraps it in a RuntimeError) is
re-raised as :class:`~detpretrain.errors.DiskFullError` ("no space left on the device holding <folder> while writing
<file> (about N MB needed, M MB free)"); the file under the final name is the previous one, untouched, and the
temporary file is removed.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import pickle
import shutil
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from detpretrain.errors import DiskFullError

#: the errnos that mean "the device (or the user's quota) is full".
DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})


def disk_full_cause(err: BaseException) -> OSError | None:
    """The ``ENOSPC``/``EDQUOT`` :class:`OSError` behind ``err`` (itself, or in its ``__cause__``/``__context__``
    chain: torch's zip writer reports a failed write as a RuntimeError raised while handling it), else None."""
    seen: set[int] = set()
    current: BaseException | None = err
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno in DISK_FULL_ERRNOS:
            return current
        current = current.__cause__ or current.__context__
    return None


def free_bytes(folder: str | os.PathLike) -> int | None:
    """Bytes available to unprivileged users on the device holding ``folder`` (None if it cannot be asked)."""
    try:
        st = os.statvfs(folder)
    except OSError:
        return None
    return st.f_bavail * st.f_frsize


def raise_if_disk_full(err: BaseException, path: str | os.PathLike, needed_bytes=None,
                       folder: str | os.PathLike | None = None) -> None:
    """Raise :class:`~detpretrain.errors.DiskFullError` from ``err`` if it comes from a full disk; else return.

    Args:
        path: the file that was being written.
        needed_bytes: bytes the write needed: an int, a callable computing it (called only on a full disk), or None.
        folder: the folder to name as the device's holder (default: the file's folder).
    """
    if isinstance(err, DiskFullError) or disk_full_cause(err) is None:
        return  # already named (a nested write), or not a full disk
    folder = Path(folder) if folder is not None else Path(path).parent
    if callable(needed_bytes):
        try:
            needed_bytes = needed_bytes()
        except Exception:  # noqa: BLE001 - the size is a courtesy in the message; the disk-full error is the point
            needed_bytes = None
    raise DiskFullError(path, folder, needed_bytes, free_bytes(folder)) from err


def sha256_file(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file's bytes, read in 1 MiB chunks (run manifests, dataset fingerprints).

    Raises:
        OSError: the file cannot be read.
    """
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, suffix: str = ".tmp", needed_bytes=None) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on a clean exit it replaces ``path``, on an exception it is removed.

    For writers that want a file name (``torch.save``, ``fig.savefig``, ``np.savez``). The parent folder is created.
    The temporary name is ``.<name>.<random><suffix>`` (hidden; :func:`is_temporary` recognises it).

    Args:
        needed_bytes: the size of what is written (int, or a callable computing it), for the full-disk message.

    Raises:
        DiskFullError: the device is full (``ENOSPC``/``EDQUOT``); ``path`` keeps its previous content.
        OSError: the folder cannot be written otherwise (the temporary file is removed first).
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
        os.close(fd)
    except OSError as err:
        raise_if_disk_full(err, path, needed_bytes)
        raise
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException as err:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise_if_disk_full(err, path, needed_bytes)
        raise


def is_temporary(name: str) -> bool:
    """Whether a file or folder name is one of this module's temporary names (``.<name>.<random>.tmp`` of
    :func:`atomic_path`, ``.<name>.tmp-<random>`` of :func:`atomic_directory`)."""
    return name.startswith(".") and (name.endswith(".tmp") or ".tmp-" in name)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically, flushed to disk (``fsync``) before the rename.

    Raises:
        DiskFullError: no space left (``path`` keeps its previous content).
    """
    with atomic_path(path, needed_bytes=len(data)) as tmp, open(tmp, "wb") as f:
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


def atomic_write_npz(path: str | os.PathLike, arrays: dict) -> None:
    """Write ``{name: array}`` as an uncompressed ``.npz`` atomically (the arrays are already compact dtypes)."""
    import io as _io

    import numpy as np

    buffer = _io.BytesIO()
    np.savez(buffer, **{k: np.asarray(v) for k, v in arrays.items()})
    atomic_write_bytes(path, buffer.getvalue())


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> None:
    """``torch.save(obj)`` to ``path`` atomically, flushed to disk (``fsync``) before the rename.

    torch writes through a Python file object, so a full disk surfaces as an ``OSError`` that can be named.

    Raises:
        DiskFullError: no space left (``path`` keeps its previous content; the message gives the exact size).
    """
    import torch

    with atomic_path(path, needed_bytes=lambda: serialized_size(obj)) as tmp, open(tmp, "wb") as f:
        torch.save(obj, f)
        f.flush()
        os.fsync(f.fileno())


class _CountingSink:
    """A write-only file object that counts bytes (``torch.save`` into it measures a file without writing it)."""

    def __init__(self):
        self.size = 0

    def write(self, data) -> int:
        self.size += len(data)
        return len(data)

    def flush(self) -> None:
        pass


#: what ``torch.load(path, weights_only=True)`` raises on a file that is truncated, damaged or not a ``torch.save``
#: file of tensors (random bytes raise :class:`pickle.UnpicklingError`, a truncated zip :class:`zipfile.BadZipFile`)
TORCH_LOAD_ERRORS = (OSError, RuntimeError, ValueError, EOFError, KeyError, zipfile.BadZipFile,
                     pickle.UnpicklingError)


def torch_load_problem(err: BaseException) -> str:
    """One line saying why ``torch.load(weights_only=True)`` refused a file (for the messages of
    :class:`~detpretrain.errors.RunStoreError`): torch's own text for an unpicklable file advises
    ``weights_only=False``, which is not the remedy for a damaged file, so only its diagnosis is kept."""
    if isinstance(err, pickle.UnpicklingError):
        after = str(err).partition("WeightsUnpickler error:")[2]
        detail = next((line.strip() for line in after.splitlines() if line.strip()), "")
        detail = detail.split(" Please use")[0].rstrip(".")
        return "UnpicklingError: not a torch.save file of tensors" + (f" ({detail})" if detail else "")
    first = str(err).split(". ")[0].strip() or "end of file"
    if (isinstance(err, (EOFError, zipfile.BadZipFile)) or "zip archive" in first
            or (isinstance(err, OSError) and err.errno == errno.EINVAL)):  # how torch reports a cut-off archive
        return f"truncated or damaged: {type(err).__name__}: {first}"
    return f"{type(err).__name__}: {first}"


def serialized_size(obj: Any) -> int:
    """Bytes ``torch.save(obj)`` writes (serialises into a counting sink: no memory or disk used for the bytes)."""
    import torch

    sink = _CountingSink()
    torch.save(obj, sink)
    return sink.size


@contextlib.contextmanager
def atomic_directory(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary folder next to ``path``; on a clean exit it is renamed to ``path``.

    If another writer created ``path`` meanwhile, its folder is kept and ours is discarded (both are complete, and a
    folder of that name always is). On an exception the temporary folder is removed.

    Raises:
        DiskFullError: no space left while the folder was written (it is removed).
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.tmp-", dir=path.parent))
    except OSError as err:
        raise_if_disk_full(err, path)
        raise
    try:
        yield tmp
        os.chmod(tmp, 0o755)
        try:
            os.replace(tmp, path)
        except OSError:
            if not path.is_dir():  # not a concurrent writer that finished first
                raise
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException as err:
        shutil.rmtree(tmp, ignore_errors=True)
        raise_if_disk_full(err, path)
        raise
