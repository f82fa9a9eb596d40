"""The project's error types.

Policy for bad input (documented in data/README.md): readers *raise* on the first bad item they meet, with a
:class:`DataError` whose message starts with the offending file and states the problem. Nothing is skipped
silently. Annotation problems (boxes, class names, split files) are found when a dataset is constructed, because
that only parses text; a corrupt or truncated image is found when it is decoded (``__getitem__``), and
``python -m detpretrain data check`` decodes every image so that it is found before any training starts.
"""

from __future__ import annotations

import os


class DataError(ValueError):
    """Bad input data: names the file and the problem.

    Attributes:
        path: the offending file or directory (str).
        problem: a short human-readable description of what is wrong.
    """

    def __init__(self, path: str | os.PathLike, problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class ConfigError(ValueError):
    """An experiment configuration or profile that cannot be run (unknown name, inconsistent values)."""


class ParameterError(ConfigError):
    """A chapter parameter that cannot be run: an unknown name or a value of the wrong type or range.

    Raised by :func:`detpretrain.parameters.check_parameters` before anything executes; the command line exits
    with status 2 (a usage error, like argparse's) on it.

    Attributes:
        chapter: the chapter's name.  parameter: the parameter's name (as given).
    """

    def __init__(self, chapter: str, parameter: str, message: str):
        self.chapter = chapter
        self.parameter = parameter
        super().__init__(message)

    def __reduce__(self):  # picklable (e.g. across submitit / multiprocessing) despite the extra arguments
        return type(self), (self.chapter, self.parameter, str(self))


class RunStoreError(RuntimeError):
    """The run store cannot give or keep a run: a damaged or missing artefact, a full disk, a bad archive.

    The message names the run store or run, the file, what was expected and found, and the remedy.

    Attributes:
        path: the file or folder concerned (str).
        remedy: what the user can do about it (also the end of the message).
    """

    def __init__(self, path: str | os.PathLike, problem: str, remedy: str = ""):
        self.path = str(path)
        self.problem = problem
        self.remedy = remedy
        super().__init__(f"{self.path}: {problem}" + (f"; {remedy}" if remedy else ""))

    def __reduce__(self):  # picklable (e.g. across submitit / multiprocessing) despite the extra arguments
        return type(self), (self.path, self.problem, self.remedy)


class DiskFullError(RunStoreError):
    """No space (``ENOSPC``) or no quota (``EDQUOT``) left while writing a file.

    Attributes:
        path: the file being written.  folder: the folder (run store) named as the device's holder.
        needed_bytes: about how many bytes the write needed (None if unknown).  free_bytes: free bytes for
            unprivileged users on that device when the write failed (None if unknown).
    """

    def __init__(self, path: str | os.PathLike, folder: str | os.PathLike, needed_bytes: int | None,
                 free_bytes: int | None, remedy: str = ""):
        self.folder = str(folder)
        self.needed_bytes = needed_bytes
        self.free_bytes = free_bytes
        needed = f"about {_amount(needed_bytes)} needed" if needed_bytes is not None else "size unknown"
        free = f", {_amount(free_bytes)} free" if free_bytes is not None else ""
        remedy = remedy or "free space on that device or point the run store elsewhere ($DETPRETRAIN_RUNS / --store)"
        RuntimeError.__init__(self, f"no space left on the device holding {self.folder} while writing {path} "
                                    f"({needed}{free}); {remedy}")
        self.path, self.problem, self.remedy = str(path), "no space left on the device", remedy

    def __reduce__(self):
        return type(self), (self.path, self.folder, self.needed_bytes, self.free_bytes, self.remedy)


def _amount(n: int) -> str:
    """Bytes in words: ``4.8 MB`` from 0.1 MB up, else ``13 bytes``."""
    return f"{n / 1e6:.1f} MB" if n >= 100_000 else f"{n:,} bytes"
