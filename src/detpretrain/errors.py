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
