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
from typing import TYPE_CHECKING

import torch

from detpretrain.config import TrainConfig
from detpretrain.errors import ConfigError

if TYPE_CHECKING:
    import pandas as pd


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
    round-robin: ``warmup`` untimed rounds, then ``iterations`` timed rounds; the median is reported. Each step runs
    in the precision its run trains in (:func:`detpretrain.engine.run_autocast_dtype`: float32, or CUDA mixed
    precision with ``optim.amp``, or CPU bfloat16 with ``optim.cpu_bf16``).

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
    from detpretrain.engine import detection_losses, make_optimizer, mixed_precision, run_autocast_dtype
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
                         "saved": 0, "peak": None, "dtype": run_autocast_dtype(cfg, dev)}  # as the run trains

    def step(state) -> None:
        model, optimizer = state["model"], state["optimizer"]
        with mixed_precision(model, dev, state["dtype"]):
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


def frozen_units(result: dict, head: str, metric: str = "all@0.5") -> pd.DataFrame:
    """Frozen minus fine-tuned ``metric`` (AP points) for one detector capacity, paired by pre-training replicate and
    fine-tuning seed: columns ``replicate, seed, diff``.

    Raises:
        ConfigError: a head the study did not run.
    """
    import pandas as pd

    from detpretrain.analysis.claims import paired_units

    frame = pd.DataFrame(result["rows"])
    part = frame[frame["head"] == head]
    if part.empty:
        raise ConfigError(f"head {head!r} is not in this study ({sorted(set(frame['head']))})")
    part = part.assign(replicate=part["replicate"] if "replicate" in part else 0)
    return paired_units(part.rename(columns={metric: "value"}), "frozen", "fine-tuned", key="mode")


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
    """Frozen minus fine-tuned for every capacity and metric (:func:`frozen_units`), with the 95 % interval over
    pre-training runs (:func:`~detpretrain.analysis.claims.unit_verdict`): ``capacity``, ``metric``, ``frozen −
    fine-tuned`` (AP points), ``95% CI low``, ``95% CI high``, ``n``, ``unit``, ``label (unadjusted)`` (each cell's
    own interval, before the Holm adjustment of the chapter's claims table: a cell reading "reversed" is not a claim;
    the column's name says so wherever the table is shown)."""
    import pandas as pd

    from detpretrain.analysis.claims import UNADJUSTED_LABEL, unit_verdict

    rows = []
    for h in heads:
        for metric in metrics:
            v = unit_verdict(frozen_units(result, h, metric))
            rows.append({"capacity": h, "metric": metric, "frozen − fine-tuned": v.estimate, "95% CI low": v.ci_low,
                         "95% CI high": v.ci_high, "n": v.n, "unit": v.unit, UNADJUSTED_LABEL: v.shown_label})
    return pd.DataFrame(rows)


def frozen_claims(result: dict, heads: Sequence[str]) -> dict:
    """Vasconcelos et al.'s claims on this study, primary first (:data:`~detpretrain.analysis.claims.
    PRIMARY_CLAIMS` ``["frozen_backbone"]``: freezing helps, all classes mAP@0.5, at the largest capacity of
    ``heads``), each a verdict over pre-training runs: freezing helps at each smaller capacity; the gain grows from
    the smallest to the largest capacity; at the largest, freezing helps rare classes, and more than frequent ones.

    Returns:
        ``{claim: Verdict}`` for :func:`~detpretrain.analysis.claims.claims_frame`.
    """
    from detpretrain.analysis.claims import PRIMARY_CLAIMS, unit_verdict

    first, last = heads[0], heads[-1]
    primary = PRIMARY_CLAIMS["frozen_backbone"]
    claims = {primary.name: unit_verdict(frozen_units(result, last, "all@0.5"), claim=primary)}
    for h in heads[:-1]:
        claims[f"freezing helps with {h}"] = unit_verdict(frozen_units(result, h, "all@0.5"))
    if first != last:
        grow = _unit_difference(frozen_units(result, last, "all@0.5"), frozen_units(result, first, "all@0.5"))
        claims[f"the gain grows from {first} to {last}"] = unit_verdict(grow)
    rare, frequent = frozen_units(result, last, "rare@0.5"), frozen_units(result, last, "frequent@0.5")
    claims[f"freezing helps rare classes ({last})"] = unit_verdict(rare)
    claims[f"the gain is larger on rare than on frequent classes ({last})"] = unit_verdict(
        _unit_difference(rare, frequent))
    return claims


def exclusion_claims(result: dict, control: dict, head: str, metric: str = "rare@0.5") -> dict:
    """The exclusion control's claims (issue 18): every rare class of the study is otherwise an IMAGENET-CLS class,
    so a frozen backbone may help rare classes because it was trained to separate them. ``control`` is the study
    re-run at ``head`` from IMAGENET-CLS runs pre-trained without the rare classes (or their super-categories).

    * ``"control: freezing helps rare classes never seen in pre-training (<head>)"``: frozen - fine-tuned
      ``metric`` in the control, over its pre-training runs;
    * ``"control: the rare-class gain shrinks without them in pre-training (<head>)"``: that gain in ``result``
      minus in ``control`` (:func:`~detpretrain.analysis.stats.difference_verdict`: different pre-training runs, so
      independent up to the shared test images, whose positive correlation makes the interval conservative).

    Returns:
        ``{claim: Verdict}`` in AP points (empty when ``control`` is None).

    Raises:
        ConfigError: ``head`` missing from either study.
    """
    from detpretrain.analysis.claims import unit_verdict
    from detpretrain.analysis.stats import difference_verdict

    if control is None:
        return {}
    seen, unseen = unit_verdict(frozen_units(result, head, metric)), unit_verdict(frozen_units(control, head, metric))
    return {f"control: freezing helps rare classes never seen in pre-training ({head})": unseen,
            f"control: the rare-class gain shrinks without them in pre-training ({head})":
                difference_verdict(seen, unseen, what="gain with the rare classes in pre-training minus without")}


def _unit_difference(a, b):
    """Per unit (replicate, seed), ``a.diff - b.diff`` of two paired-difference frames."""
    merged = a.merge(b, on=["replicate", "seed"], suffixes=("_a", "_b"))
    return merged.assign(diff=merged["diff_a"] - merged["diff_b"])[["replicate", "seed", "diff"]]


def frozen_regime(result: dict, head: str):
    """The regime check of the long-tailed study (:func:`~detpretrain.analysis.claims.detection_regime`): its
    fine-tuned ``head`` detector on the frequent classes (those that keep their full training data)."""
    import pandas as pd

    from detpretrain.analysis.claims import detection_regime

    frame = pd.DataFrame(result["rows"])
    part = frame[(frame["head"] == head) & (frame["mode"] == "fine-tuned")]
    part = part.assign(pretrain="fine-tuned").rename(columns={"frequent@0.5": "mAP@0.5", "frequent@0.7": "mAP@0.7"})
    return detection_regime(part, arm="fine-tuned", what=f"the fine-tuned {head} detector, on the frequent classes")


def resources_summary(result: dict) -> str:
    """Claim 3 (freezing saves compute and memory) as measured: the frozen / fine-tuned ratios of
    :func:`resource_ratios`, averaged over capacities (a measurement of one process, no interval)."""
    ratios = resource_ratios(result["resources"])
    time_ratio = statistics.fmean(r["time per iteration"] for r in ratios) if ratios else float("nan")
    act_ratio = statistics.fmean(r["saved activations"] for r in ratios) if ratios else float("nan")
    return (f"*Claim 3 (resources)*: a frozen step takes {time_ratio:.2f}x the time of a fine-tuned one and keeps "
            f"{act_ratio:.2f}x the activations for backward, on average over capacities (measured side by side in "
            "one process; no interval).")


# ---- issue 18: the claims as interactions (differences of differences) ----------------------------------------------

def interaction_verdicts(result: dict, heads: Sequence[str], *, metric: str = "all@0.5", rare: str = "rare@0.5",
                         frequent: str = "frequent@0.5") -> dict:
    """Vasconcelos et al.'s claims as differences of differences, paired by pre-training replicate and fine-tuning
    seed (:func:`frozen_units`), each a :func:`~detpretrain.analysis.claims.unit_verdict` (over pre-training runs
    with two or more replicates; with one, conditional on that backbone, over the fine-tuning seeds):

    * ``capacity``: (frozen - fine-tuned) with the largest head minus the same with the smallest (``metric``);
      the paper: the gain of freezing grows with the detector's capacity.
    * ``rare vs frequent`` (per head): (frozen - fine-tuned) on rare classes minus the same on frequent ones; the
      paper: freezing helps rare classes most.

    Returns:
        ``{claim: Verdict}`` in AP points.
    """
    from detpretrain.analysis.claims import unit_verdict

    out = {}
    if len(heads) >= 2:
        d = _unit_difference(frozen_units(result, heads[-1], metric), frozen_units(result, heads[0], metric))
        out[f"freezing gain, {heads[-1]} minus {heads[0]} ({metric})"] = unit_verdict(d)
    for h in heads:
        d = _unit_difference(frozen_units(result, h, rare), frozen_units(result, h, frequent))
        out[f"freezing gain, rare minus frequent ({h})"] = unit_verdict(d)
    return out
