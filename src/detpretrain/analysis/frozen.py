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


def study_data(result: dict) -> str:
    """The data of the study for its provenance line: the target and its long tail."""
    return f"{result['data']}, long tail ≤ {result['max_images']} images per rare class"


def long_tail_table(result: dict):
    """Training images per class before and after the long-tail subsampling (an image counts for every class it
    contains), most frequent first: ``class``, ``images (full)``, ``images (long tail)``, ``rare``."""
    import pandas as pd

    frame = pd.DataFrame({"class": list(result["full_images_per_class"]),
                          "images (full)": list(result["full_images_per_class"].values()),
                          "images (long tail)": [result["images_per_class"][c] for c in result["full_images_per_class"]]})
    frame["rare"] = frame["class"].isin(result["rare"])
    return frame.sort_values(["images (full)", "class"], ascending=[False, True]).reset_index(drop=True)


def long_tail_sentence(result: dict) -> str:
    """How many training images the long tail keeps, and which classes are rare."""
    return (f"{result['train_images']} of {result['full_train_images']} training images kept; rare: "
            f"{', '.join(result['rare'])}")


#: the metrics of the frozen-minus-fine-tuned table: all, rare and frequent classes at IoU 0.5, all at 0.7
GAIN_METRICS = ("all@0.5", "rare@0.5", "frequent@0.5", "all@0.7")


def gain_table(result: dict, heads: Sequence[str], metrics: Sequence[str] = GAIN_METRICS):
    """:func:`frozen_gain` for every capacity and metric: ``capacity``, ``metric``, ``frozen − fine-tuned`` (AP
    points, mean over seeds), ``stderr``, ``seeds``, ``verdict`` (``holds`` = freezing better by more than one
    standard error)."""
    import pandas as pd

    rows = []
    for h in heads:
        for metric in metrics:
            v = frozen_gain(result, h, metric)
            rows.append({"capacity": h, "metric": metric, "frozen − fine-tuned": v["mean"], "stderr": v["stderr"],
                         "seeds": v["seeds"], "verdict": v["verdict"]})
    return pd.DataFrame(rows)


def claims_summary(result: dict, heads: Sequence[str]) -> str:
    """Vasconcelos et al.'s three claims on this study, written from its numbers: (1) freezing helps given capacity
    (frozen − fine-tuned mAP@0.5 at the smallest and the largest capacity of ``heads`` and how the gain changes),
    (2) most on rare classes (rare vs frequent at the largest capacity), (3) it saves compute and memory
    (:func:`resource_ratios`, averaged over capacities)."""
    first, last = heads[0], heads[-1]
    g_first, g_last = frozen_gain(result, first, "all@0.5"), frozen_gain(result, last, "all@0.5")
    r_last, f_last = frozen_gain(result, last, "rare@0.5"), frozen_gain(result, last, "frequent@0.5")
    ratios = resource_ratios(result["resources"])
    time_ratio = statistics.fmean(r["time per iteration"] for r in ratios) if ratios else float("nan")
    act_ratio = statistics.fmean(r["saved activations"] for r in ratios) if ratios else float("nan")
    return (
        f"*Claim 1 (freezing helps, given capacity)*: frozen − fine-tuned mAP@0.5 is {g_first['mean']:+.1f} ± "
        f"{g_first['stderr']:.1f} with `{first}` and {g_last['mean']:+.1f} ± {g_last['stderr']:.1f} with `{last}` "
        f"(verdicts: {g_first['verdict']}, {g_last['verdict']}); the gain changes by "
        f"{g_last['mean'] - g_first['mean']:+.1f} points from the smallest to the largest capacity. *Claim 2 (largest "
        f"on rare classes)*: with `{last}`, frozen − fine-tuned is {r_last['mean']:+.1f} ± {r_last['stderr']:.1f} on "
        f"rare and {f_last['mean']:+.1f} ± {f_last['stderr']:.1f} on frequent classes. *Claim 3 (resources)*: a "
        f"frozen step takes {time_ratio:.2f}x the time of a fine-tuned one and keeps {act_ratio:.2f}x the "
        f"activations for backward, on average over capacities.")


# ---- issue 18: the claims as interactions (differences of differences) ----------------------------------------------

def _gains_by_seed(frame, head: str, metric: str):
    part = frame[frame["head"] == head].pivot_table(index="seed", columns="mode", values=metric)
    if "frozen" not in part or "fine-tuned" not in part:
        return part.iloc[:, :0].sum(axis=1) * float("nan")
    return part["frozen"] - part["fine-tuned"]


def interaction_verdicts(result: dict, heads: Sequence[str], *, metric: str = "all@0.5", rare: str = "rare@0.5",
                         frequent: str = "frequent@0.5") -> dict:
    """Vasconcelos et al.'s claims as differences of differences, paired by fine-tuning seed, with
    :func:`~detpretrain.analysis.stats.verdict` intervals (one pre-training run: conditional on that backbone):

    * ``capacity``: (frozen - fine-tuned) with the largest head minus the same with the smallest (``metric``);
      the paper: the gain of freezing grows with the detector's capacity.
    * ``rare vs frequent`` (per head): (frozen - fine-tuned) on rare classes minus the same on frequent ones; the
      paper: freezing helps rare classes most.

    Returns:
        ``{claim: Verdict}`` in AP points.
    """
    import pandas as pd

    from detpretrain.analysis.stats import conditional_verdict

    frame = pd.DataFrame(result["rows"])
    out = {}
    if len(heads) >= 2:
        d = (_gains_by_seed(frame, heads[-1], metric) - _gains_by_seed(frame, heads[0], metric)).dropna()
        out[f"freezing gain, {heads[-1]} minus {heads[0]} ({metric})"] = conditional_verdict(
            d.to_numpy(), unit="fine-tuning seed")
    for h in heads:
        d = (_gains_by_seed(frame, h, rare) - _gains_by_seed(frame, h, frequent)).dropna()
        out[f"freezing gain, rare minus frequent ({h})"] = conditional_verdict(d.to_numpy(), unit="fine-tuning seed")
    return out
