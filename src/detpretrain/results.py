"""The results table of a run store: headline numbers of every finished run, with config hashes and dates.

``python -m detpretrain results-table --store runs`` prints it as Markdown; ``--readme README.md`` writes it into
the README between the markers :data:`BEGIN` and :data:`END` (the README's "Results" section), so the numbers
there are always those of one store, never typed by hand. The book workflow runs it after the ``mini`` build.

One row per arm: run name without its pre-training replicate (``finetune/detection@r2`` counts as
``finetune/detection``) and data, e.g. ``finetune/detection`` on the synthetic VOC-like target. The pre-training
replicates and fine-tuning seeds of one arm are one row, with the mean and the sample standard deviation of the
headline metric over them (at ``mini``: over the 3 pre-training replicates, the unit of every verdict). Above it,
:func:`primary_markdown` gives every chapter's primary claim with its label, computed from the same store by the
chapters' own functions (:func:`detpretrain.overview.primary_overview`). The headline metrics are those
``engine.fit`` records in ``metrics.json``: mAP@0.5 and mAP@0.7 (VOC07 11-point AP, %) for detection runs, top-1 (%) for classification runs, mIoU (%) for segmentation runs. The date is
when the last ``metrics.json`` of the row was written (file time, UTC).
"""

from __future__ import annotations

import datetime as dt
import math
import os
import statistics
from pathlib import Path

import pandas as pd

from detpretrain.errors import ConfigError
from detpretrain.io import atomic_write_text
from detpretrain.markdown import markdown_table
from detpretrain.runs import RunStore

BEGIN = "<!-- results-table:begin (written by `python -m detpretrain results-table --readme README.md`) -->"
END = "<!-- results-table:end -->"


def headline_metrics(metrics: dict) -> dict[str, float]:
    """``{metric: value}`` of one run's ``metrics.json``: ``mAP@0.5``/``mAP@0.7`` (detection), ``top-1``
    (classification) or ``mIoU`` (segmentation); metrics a run lacks are left out."""
    task = metrics.get("task")
    if task == "detection":
        by_iou = {round(float(t), 2): v for t, v in zip(metrics.get("iou_thresholds", []), metrics.get("mAP", []))}
        return {f"mAP@{t}": float(by_iou[t]) for t in (0.5, 0.7) if by_iou.get(t) is not None}
    if task == "classification" and metrics.get("top1") is not None:
        return {"top-1": float(metrics["top1"])}
    if task == "multilabel" and metrics.get("mAP") is not None:
        return {"mAP (multi-label)": float(metrics["mAP"])}
    if task == "segmentation" and metrics.get("mIoU") is not None:
        return {"mIoU": float(metrics["mIoU"])}
    return {}


def arm_name(name: str) -> str:
    """A run name without its pre-training replicate (:func:`detpretrain.experiments.common.replicate_key`):
    ``frozen/imagenet-cls@r2/FPN/frozen`` -> ``frozen/imagenet-cls/FPN/frozen``; other names unchanged."""
    from detpretrain.experiments.common import split_key

    return "/".join(split_key(part)[0] for part in name.split("/"))


def initialised_from(config, names_by_hash: dict[str, str]) -> str:
    """What a run starts from, as its row shows it: the arm (:func:`arm_name`) of the run its ``init`` names
    (``"run:<hash>"``; ``"run <hash>"`` when that run is not in the store), else the ``init`` itself (``"scratch"``,
    a torchvision weight name, ...), ``"—"`` for none."""
    init = str(config.init or "")
    if init.startswith("run:"):
        ref = init[len("run:"):]
        return names_by_hash.get(ref, f"run {ref[:8]}")
    return init or "—"


def results_table(store: RunStore | str | os.PathLike | None = None, hashes=None) -> pd.DataFrame:
    """The finished runs of ``store`` (only those whose config hash is in ``hashes``, when given) grouped by run name,
    data and what they start from, one row per group and headline metric.

    Rows are also split by training epochs, so a schedule check (the same arm at twice the epochs) is its own row,
    and by the arm of the run they are initialised from (:func:`initialised_from`), so that two studies whose
    fine-tunings share a name but start from different pre-trainings (stores written before the frozen-backbone
    control named its detectors for their backbone, :func:`detpretrain.experiments.frozen.backbone_label`) are never
    averaged together; and by every other setting of the configuration (e.g. ``train --set optim.lr=0.05`` beside
    the default run), so that only an arm's pre-training replicates and fine-tuning seeds share a row.

    Returns:
        columns ``run, from, data, epochs, setting, metric, runs, mean, sd, config hashes, finished`` sorted by run
        name (``setting``: how a row's configuration differs from the other rows of its run, from, data and epochs,
        e.g. ``"optim.lr=0.05"``; empty where there are none; ``sd`` NaN for a single run; ``config hashes`` = the
        first 8 characters of each run's hash, comma-separated; ``finished`` = UTC date of the newest
        ``metrics.json``). Empty when the store has no finished run.
    """
    store = store if isinstance(store, RunStore) else RunStore(store)
    stored = store.runs()
    names = {run.hash: arm_name(run.config.name) for run in stored}
    groups: dict[tuple, list] = {}
    wanted = None if hashes is None else set(hashes)
    for run in (run for run in stored if run.complete and (wanted is None or run.hash in wanted)):
        key = (arm_name(run.config.name), initialised_from(run.config, names), run.config.data.describe(),
               run.config.optim.epochs, tuple(sorted(_setting(run.config).items())))
        groups.setdefault(key, []).append(run)
    settings = _setting_labels(groups)
    rows = []
    for (name, origin, data, epochs, setting), runs in sorted(groups.items()):
        values: dict[str, list[float]] = {}
        for run in runs:
            for metric, value in headline_metrics(run.metrics).items():
                values.setdefault(metric, []).append(value)
        newest = max((run.path / "metrics.json").stat().st_mtime for run in runs)
        for metric, vals in values.items():
            rows.append({"run": name, "from": origin, "data": data, "epochs": epochs,
                         "setting": settings[name, origin, data, epochs, setting], "metric": metric,
                         "runs": len(vals),
                         "mean": statistics.fmean(vals), "sd": statistics.stdev(vals) if len(vals) > 1 else math.nan,
                         "config hashes": ", ".join(sorted(run.hash[:8] for run in runs)),
                         "finished": dt.datetime.fromtimestamp(newest, dt.timezone.utc).strftime("%Y-%m-%d")})
    return pd.DataFrame(rows, columns=["run", "from", "data", "epochs", "setting", "metric", "runs", "mean", "sd",
                                       "config hashes", "finished"])


def _setting(config) -> dict[str, str]:
    """Everything a run's configuration sets, flattened to dotted keys (``optim.lr``), less what differs between the
    replicates and seeds of one arm (its name's replicate key, ``seed``, and ``init``, the replicate it starts from,
    whose arm is the row's ``from``): runs whose settings differ are never averaged as replicates."""
    from detpretrain.config import to_dict

    def flat(d: dict, prefix: str = "") -> dict[str, str]:
        out = {}
        for key, value in d.items():
            out.update(flat(value, f"{prefix}{key}.") if isinstance(value, dict) else {f"{prefix}{key}": str(value)})
        return out

    return {k: v for k, v in flat(to_dict(config)).items() if k not in ("name", "seed", "init")}


def _setting_labels(groups: dict[tuple, list]) -> dict[tuple, str]:
    """For each group key ``(name, from, data, epochs, setting)``: ``""`` when it is the only setting of its
    ``(name, from, data, epochs)``; else the keys in which its setting differs from the others', e.g.
    ``"optim.lr=0.05"`` (so two rows that would look alike say how they differ)."""
    by_arm: dict[tuple, list[tuple]] = {}
    for key in groups:
        by_arm.setdefault(key[:4], []).append(key)
    labels = {}
    for keys in by_arm.values():
        settings = [dict(key[4]) for key in keys]
        differing = sorted({k for a in settings for b in settings for k in set(a) | set(b) if a.get(k) != b.get(k)})
        for key, setting in zip(keys, settings):
            labels[key] = ", ".join(f"{k}={setting.get(k, '—')}" for k in differing)
    return labels


def to_markdown(table: pd.DataFrame, store: str | os.PathLike, scope: str = "") -> str:
    """The table as a GitHub Markdown table with a caption line naming the store (and ``scope``, e.g. "runs of the
    book's plan at profile mini"), the number of finished runs and the newest date; a one-line note when the store
    holds no finished run."""
    if table.empty:
        return f"No finished run in `{store}`: build the book first (`python -m detpretrain book --profile mini`)."
    setting = {"setting": table["setting"]} if table["setting"].astype(bool).any() else {}  # only where runs differ
    shown = pd.DataFrame({
        "run": "`" + table["run"] + "`", "from": table["from"], "data": table["data"], "epochs": table["epochs"],
        **setting, "metric": table["metric"], "runs": table["runs"],
        "mean ± sd": [f"{m:.1f}" + (f" ± {s:.1f}" if not math.isnan(s) else "") for m, s in zip(table["mean"], table["sd"])],
        "config hashes": table["config hashes"], "finished": table["finished"]})
    caption = (f"Finished runs of the store `{store}`{f' ({scope})' if scope else ''} (newest "
               f"{table['finished'].max()}); mean ± sample standard "
               "deviation over the runs of a row (an arm's pre-training replicates and fine-tuning seeds), in %.")
    return caption + "\n\n" + markdown_table(shown)


def replace_section(text: str, body: str) -> str:
    """``text`` with everything between the lines :data:`BEGIN` and :data:`END` replaced by ``body``.

    Raises:
        ValueError: the markers are missing or out of order.
    """
    start, end = text.find(BEGIN), text.find(END)
    if start < 0 or end < start:
        raise ValueError(f"no results section: expected the lines {BEGIN!r} ... {END!r}")
    return text[:start + len(BEGIN)] + "\n" + body.strip() + "\n" + text[end:]


def primary_markdown(store: RunStore, profile: str = "mini") -> str:
    """Every chapter's primary claim at ``profile`` as read from ``store`` (:func:`detpretrain.overview.
    primary_overview`: the paper's number, ours with its 95 % interval and n, the label) as a Markdown table with a
    caption line. Nothing is trained; a chapter whose runs are missing says "not run in this store".

    Raises:
        ConfigError: an unknown profile.
    """
    from detpretrain.overview import primary_overview
    from detpretrain.profiles import get_profile

    frame = primary_overview(get_profile(profile), store)
    caption = (f"Primary claims at profile `{profile}` (declared in `detpretrain.analysis.claims` before the runs), "
               "from the store below; each chapter shows its secondary claims.")
    return caption + "\n\n" + markdown_table(frame)


def results_command(store: str | None = None, readme: str | None = None, profile: str | None = None,
                    planned: bool = False) -> int:
    """``python -m detpretrain results-table [--store DIR] [--readme README.md] [--profile P [--planned]]``: print the
    Markdown table (with ``profile``, the primary claims at that profile above it: :func:`primary_markdown`; with
    ``planned`` too, only the runs of the book's current plan at that profile, :func:`detpretrain.book.book_plan`),
    or write it into the README's results section. Returns 0.

    Raises:
        ConfigError: ``planned`` without ``profile``.
    """
    run_store = RunStore(store)
    hashes, scope = None, ""
    if planned:
        if profile is None:
            raise ConfigError("results-table --planned needs --profile (the plan is a profile's)")
        from detpretrain.book import book_plan

        errors: dict[str, str] = {}
        plan = book_plan(profile, store=run_store, errors=errors)
        hashes, scope = set(plan.runs), f"the runs of the book's plan at profile {profile}, default parameters"
        if errors:
            scope += "; not planned, so not shown: " + "; ".join(f"{c} ({why})" for c, why in errors.items())
    table = results_table(run_store, hashes)
    if table.empty and planned:
        body = (f"No finished run of the book's plan at profile {profile} in `{store or run_store.root}` "
                f"({scope}): build the book first (`python -m detpretrain book --profile {profile}`).")
    else:
        body = to_markdown(table, store or run_store.root, scope)
    if profile is not None:
        body = primary_markdown(run_store, profile) + "\n\n" + body
    if readme is None:
        print(body)
        return 0
    path = Path(readme)
    atomic_write_text(path, replace_section(path.read_text(encoding="utf-8"), body))
    print(f"wrote the results table of {run_store.root} into {path}")
    return 0
