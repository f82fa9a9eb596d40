"""Frozen vs fine-tuned backbones (Vasconcelos, Birodkar, Dumoulin, CVPR 2022): accuracy by class frequency and
training resources measured side by side.

* :func:`ap_by_frequency` splits a detection run's per-class AP into the rare and the frequent classes of a
  long-tailed target (:mod:`detpretrain.data.long_tail`); Vasconcelos et al. report LVIS's AP_r beside overall AP.
* :func:`training_resources` builds several detector configurations in one process and times their training
  steps round-robin on the same batch, so that the ratios are not confounded with machine load; it also counts the
  parameters trained, the bytes autograd saves for the backward pass (activation memory: what freezing saves
  besides gradients) and the gradient + momentum buffers, and on CUDA the peak allocated memory.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Mapping, Sequence

import torch

from detpretrain.config import TrainConfig
from detpretrain.errors import ConfigError


def ap_by_frequency(metrics: dict, rare: Sequence[str], thresholds: Sequence[float] = (0.5, 0.7)) -> dict:
    """Mean AP (percent) over all, rare and frequent classes of one detection run, at each IoU threshold.

    Args:
        metrics: a detection run's ``metrics.json`` (``per_class_AP``: class -> AP list over ``iou_thresholds``).
        rare: the rare class names.
        thresholds: IoU thresholds to report (each must be one of the run's).

    Returns:
        ``{"all@0.5": ..., "rare@0.5": ..., "frequent@0.5": ..., ...}``; classes without test objects (AP None or
        NaN) are left out of the means.

    Raises:
        ConfigError: a rare class the run does not know, or a threshold it was not evaluated at.
    """
    per_class = metrics["per_class_AP"]
    unknown = [c for c in rare if c not in per_class]
    if unknown:
        raise ConfigError(f"rare classes {unknown} are not classes of run {metrics.get('config_hash')} "
                          f"({sorted(per_class)})")
    from detpretrain.analysis.ablations import supercategory_ap

    ious = [round(t, 2) for t in metrics["iou_thresholds"]]
    groups = {"all": list(per_class), "rare": list(rare), "frequent": [c for c in per_class if c not in rare]}
    out = {}
    for t in thresholds:
        if round(t, 2) not in ious:
            raise ConfigError(f"run {metrics.get('config_hash')} has no AP at IoU {t} (has {ious})")
        for group, names in groups.items():
            out[f"{group}@{t:g}"] = supercategory_ap(metrics, names, t)
    return out


def _saved_tensor_bytes(fn) -> tuple[object, int]:
    """Run ``fn()`` and count the bytes of the distinct tensor storages autograd saves for backward."""
    storages: dict[int, int] = {}

    def pack(t: torch.Tensor):
        try:
            s = t.untyped_storage()
            storages[s.data_ptr()] = max(storages.get(s.data_ptr(), 0), s.nbytes())
        except (RuntimeError, NotImplementedError):
            storages[id(t)] = t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = fn()
    return out, sum(storages.values())


def training_resources(configs: Mapping[str, TrainConfig], *, store=None, iterations: int = 5, warmup: int = 1,
                       device: str = "cpu", batch=None) -> list[dict]:
    """Train-step cost of several detector configurations, measured side by side in one process.

    Every configuration gets the same batch (the first ``optim.batch_size`` images of the first configuration's
    training set, evaluation transforms, so no random flip differs). Steps (forward, backward, SGD step) run
    round-robin: ``warmup`` untimed rounds, then ``iterations`` timed rounds; the median is reported.

    Args:
        configs: ``{label: TrainConfig}`` of detection runs (their ``init`` is resolved through ``store``).
        store: the run store that resolves ``init="run:<hash>"``; its ``data_cache`` holds a synthetic target.
        batch: optional ``(images, targets)`` to use instead.

    Returns:
        one dict per configuration: ``label``, ``params_total``, ``params_trained``, ``trained_percent``,
        ``seconds_per_iteration`` (median), ``seconds_spread`` (max - min of the timed rounds),
        ``saved_activations_mb`` (autograd's saved tensors, MiB), ``grad_and_momentum_mb`` (4 bytes x 2 per
        trained float32 parameter, MiB), ``cuda_peak_mb`` (``torch.cuda.max_memory_allocated`` of one step, MiB,
        None on CPU).

    Raises:
        ConfigError: a configuration that is not a detection run, or ``iterations`` < 1.
    """
    from detpretrain.data.builders import build_detection_dataset
    from detpretrain.engine import detection_losses, make_optimizer
    from detpretrain.models.build import build_model
    from detpretrain.runs import RunStore

    if iterations < 1:
        raise ConfigError(f"iterations must be >= 1, got {iterations}")
    bad = [k for k, c in configs.items() if c.task != "detection"]
    if bad:
        raise ConfigError(f"training_resources measures detection runs; {bad} are not")
    dev = torch.device(device)
    store = store or RunStore()
    first = next(iter(configs.values()))
    data = build_detection_dataset(first.data, first.data.train_split, train=False, cache=store.data_cache)
    classes = len(data.classes)
    if batch is None:
        items = [data[i] for i in range(min(first.optim.batch_size, len(data)))]
        batch = (tuple(x[0] for x in items), tuple(x[1] for x in items))
    images, targets = batch
    states = {}
    for label, cfg in configs.items():
        torch.manual_seed(cfg.seed)
        model = build_model(cfg, classes, backbone_weights=store.backbone_weights(cfg.init)).to(dev).train()
        states[label] = {"model": model, "optimizer": make_optimizer(model, cfg.optim), "times": [],
                         "saved": 0, "peak": None}

    def step(state) -> None:
        model, optimizer = state["model"], state["optimizer"]
        losses, saved = _saved_tensor_bytes(lambda: detection_losses(model, images, targets, dev))
        state["saved"] = max(state["saved"], saved)
        optimizer.zero_grad(set_to_none=True)
        sum(losses.values()).backward()
        optimizer.step()

    for r in range(warmup + iterations):
        for state in states.values():
            if dev.type == "cuda":
                torch.cuda.synchronize(dev)
                torch.cuda.reset_peak_memory_stats(dev)
            t0 = time.perf_counter()
            step(state)
            if dev.type == "cuda":
                torch.cuda.synchronize(dev)
                state["peak"] = torch.cuda.max_memory_allocated(dev) / 2**20
            if r >= warmup:
                state["times"].append(time.perf_counter() - t0)
    rows = []
    for label, state in states.items():
        model = state["model"]
        total = sum(p.numel() for p in model.parameters())
        trained = sum(p.numel() for p in model.parameters() if p.requires_grad)
        rows.append({"label": label, "params_total": total, "params_trained": trained,
                     "trained_percent": 100.0 * trained / total,
                     "seconds_per_iteration": statistics.median(state["times"]),
                     "seconds_spread": max(state["times"]) - min(state["times"]),
                     "saved_activations_mb": state["saved"] / 2**20,
                     "grad_and_momentum_mb": 2 * 4 * trained / 2**20,
                     "cuda_peak_mb": state["peak"]})
    return rows


# ---- the chapter's tables (from experiments.frozen.run_frozen_study's result) -------------------------------------------------

def frozen_table(result: dict, metrics: Sequence[str] = ("all@0.5", "rare@0.5", "frequent@0.5", "all@0.7",
                                                          "rare@0.7")):
    """Mean and sd over seeds of each metric (percent) per detector capacity and backbone mode: a DataFrame indexed
    by (head, mode) in the study's order, with (metric, mean|std) columns."""
    import pandas as pd

    frame = pd.DataFrame(result["rows"])
    order = list(dict.fromkeys(zip(frame["head"], frame["mode"])))
    g = frame.groupby(["head", "mode"])[list(metrics)].agg(["mean", "std"])
    return g.loc[order]


def frozen_gain(result: dict, head: str, metric: str = "all@0.5") -> dict:
    """Frozen minus fine-tuned ``metric`` for one detector capacity, paired by seed, with its verdict
    (:func:`~detpretrain.analysis.ablations.paired_verdict`: ``holds`` = freezing helps beyond one standard error).

    Raises:
        ConfigError: a head the study did not run.
    """
    import pandas as pd

    from detpretrain.analysis.ablations import paired_verdict

    frame = pd.DataFrame(result["rows"])
    part = frame[frame["head"] == head]
    if part.empty:
        raise ConfigError(f"head {head!r} is not in this study ({sorted(set(frame['head']))})")
    wide = part.pivot_table(index="seed", columns="mode", values=metric)
    if "frozen" not in wide or "fine-tuned" not in wide:
        return paired_verdict([])
    return paired_verdict(wide["frozen"] - wide["fine-tuned"])


def resource_ratios(rows: list[dict]) -> list[dict]:
    """For each ``"<head> / frozen"`` row of :func:`training_resources`, the ratios frozen / fine-tuned of time per
    iteration, saved activations, gradient + momentum memory and (CUDA) peak memory, for the same head."""
    by = {r["label"]: r for r in rows}
    out = []
    for label, r in by.items():
        head, _, mode = label.rpartition(" / ")
        other = by.get(f"{head} / fine-tuned")
        if mode != "frozen" or other is None:
            continue
        ratio = {"head": head, "time per iteration": r["seconds_per_iteration"] / other["seconds_per_iteration"],
                 "saved activations": r["saved_activations_mb"] / other["saved_activations_mb"],
                 "gradients + momentum": r["grad_and_momentum_mb"] / other["grad_and_momentum_mb"],
                 "parameters trained": r["params_trained"] / other["params_trained"]}
        if r["cuda_peak_mb"] is not None and other["cuda_peak_mb"]:
            ratio["CUDA peak memory"] = r["cuda_peak_mb"] / other["cuda_peak_mb"]
        out.append(ratio)
    return out
