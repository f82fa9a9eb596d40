"""What the pre-training runs are and how they trained (the pre-training chapter; the IMAGENET-LOC pre-trainings of the
ablations chapter).

Runs are given as ``{name: run}`` where a run is a :class:`~detpretrain.runs.Run` or its folder (``config.json`` and
``metrics.json`` are read from it; the run must be complete).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path

import pandas as pd


def _files(run) -> tuple[Path, dict, dict]:
    path = Path(getattr(run, "path", run))
    config = json.loads((path / "config.json").read_text(encoding="utf-8"))
    metrics = json.loads((path / "metrics.json").read_text(encoding="utf-8"))
    return path, config, metrics


def _describe(config: dict) -> str:
    from detpretrain.config import from_dict

    return from_dict(config).data.describe()


def pretraining_table(runs: Mapping[str, object | str | os.PathLike]) -> pd.DataFrame:
    """One row per pre-training run: what it trained on and what it reached.

    Returns:
        columns ``backbone`` (the name), ``run`` (folder name: task and config hash), ``task``, ``data``
        (``DataSpec.describe()``), ``init`` (``run:<hash>`` of the run it continues, or ``random``), ``epochs``,
        ``train images``, ``classes`` (background excluded), ``result`` (the run's headline: top-1 or mAP on its
        validation split) and ``train time (s)`` (the epochs' seconds, evaluation excluded).
    """
    rows = []
    for name, run in runs.items():
        path, config, m = _files(run)
        rows.append({"backbone": name, "run": path.name, "task": config["task"], "data": _describe(config),
                     "init": config.get("init") or "random", "epochs": config["optim"]["epochs"],
                     "train images": m["num_train_images"],
                     "classes": len([c for c in m["classes"] if c != "__background__"]),
                     "result": m["headline"] or "–",
                     "train time (s)": round(sum(h["seconds"] for h in m["history"]), 1)})
    return pd.DataFrame(rows)


def loss_curves(runs: Mapping[str, object | str | os.PathLike]) -> pd.DataFrame:
    """The training loss per epoch of each run (the sum of the task's losses, mean over the epoch's batches).

    Returns:
        columns ``backbone``, ``epoch`` (1-based), ``training loss``, ``lr`` (at the epoch's end).
    """
    rows = []
    for name, run in runs.items():
        _, _, m = _files(run)
        for h in m["history"]:
            rows.append({"backbone": name, "epoch": h["epoch"] + 1, "training loss": h["loss"], "lr": h["lr"]})
    return pd.DataFrame(rows, columns=["backbone", "epoch", "training loss", "lr"])


def corpus_table(specs: Mapping) -> pd.DataFrame:
    """The synthetic corpora of a profile (``{role: CorpusSpec}``, :func:`detpretrain.data.synthetic.profile_specs`):
    image size (px) and images per split, indexed by role, with each corpus's cache key."""
    return pd.DataFrame([{"role": role, "image size (px)": s.image_size, "train": s.n_train, "val": s.n_val,
                          "test": s.n_test, "key": s.key()} for role, s in specs.items()]).set_index("role")
