"""Eigenspectrum of detector feature maps and the widths it implies (Shinya, Simo-Serra, Suzuki, ICCVW 2019).

For a feature map with C channels, over n images (Shinya et al.'s definition; no mean subtraction)::

    Sigma = 1/n * sum_i 1/(W_i H_i) * sum_{x,y} F_{i,x,y} F_{i,x,y}^T        (C x C, symmetric, PSD)

Its eigenvalues (float64, ``torch.linalg.eigvalsh``) are the *eigenspectrum*; the *intrinsic dimensionality* is the
number of eigenvalues above a threshold (Shinya et al.: 1e-3, following Suzuki's spectral pruning, AISTATS 2018).
Whether the eigenvalues are normalised before thresholding is not stated, so :func:`intrinsic_dimensionality`
offers ``"none"`` (raw, the slide's literal reading), ``"max"`` (lambda / lambda_max) and ``"trace"``
(lambda / sum lambda), and :func:`threshold_sensitivity` shows how the count moves with the threshold.

Layers measured (:func:`layer_second_moments`): the four ResNet stages of the detector's body (``layer1`` ...
``layer4``: conv2_x ... conv5_x, C2-C5) and the FPN outputs (``fpn0`` ... ``fpn3`` = P2-P5, ``fpnpool`` = P6).
Images go through the detector's own ``GeneralizedRCNNTransform`` (normalise + resize), as in inference; positions
that only hold batch padding are cropped away, so every image contributes its own W_i H_i positions.

Width determination (:func:`widths_from_dimensionality`): each stage's width (planes) becomes its output's intrinsic
dimensionality divided by the block's expansion, rounded up to a multiple, never wider than the original.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np
import torch
from torch import nn

from detpretrain.errors import ConfigError
from detpretrain.paper import SHINYA_PARAMS_CHANGE, SHINYA_THRESHOLD

#: body stages then FPN levels, in the order of the chapter's tables
STAGES = ("layer1", "layer2", "layer3", "layer4")
FPN_LEVELS = ("fpn0", "fpn1", "fpn2", "fpn3", "fpnpool")
#: Shinya et al.'s eigenvalue threshold of the intrinsic dimensionality
DEFAULT_THRESHOLD = SHINYA_THRESHOLD
NORMALISATIONS = ("none", "max", "trace")
#: the study's detectors: I (fine-tuned from IMAGENET-CLS), S (from scratch), S with the determined widths
DETECTORS = ("imagenet-cls", "scratch", "scratch-narrow")
#: thresholds of the threshold-sensitivity curves (log-spaced, 1e-6 ... 1e-1) and of its table
SENSITIVITY_THRESHOLDS = tuple(float(t) for t in np.logspace(-6, -1, 11))
SENSITIVITY_TABLE_THRESHOLDS = (1e-3, 1e-2, 1e-1)
#: claim 1 compares I and S "at similar accuracy": equivalent when the 95 % interval of the paired mAP@0.5
#: difference I - S lies within +- this many points (two one-sided tests at 2.5 % each)
SIMILAR_ACCURACY_MARGIN = 2.0


class SecondMoment:
    """Running Sigma = mean over images of the per-image position average of F F^T, in float64.

    ``update(features)`` takes [B, C, H, W] (or a list of [C, H_i, W_i] maps of different sizes); ``matrix()``
    returns the C x C float64 tensor; ``count`` is the number of images seen.
    """

    def __init__(self, channels: int):
        self.sum = torch.zeros(channels, channels, dtype=torch.float64)
        self.count = 0
        #: feature positions summed over all images: Sigma's rank is at most min(C, positions)
        self.positions = 0

    def update(self, features) -> None:
        """Add images: a [B, C, H, W] tensor or an iterable of [C, H, W] tensors.

        Raises:
            ValueError: a map whose channel count differs from the accumulator's.
        """
        maps = features if not isinstance(features, torch.Tensor) else list(features)
        for f in maps:
            if f.ndim != 3 or f.shape[0] != self.sum.shape[0]:
                raise ValueError(f"expected a [C={self.sum.shape[0]}, H, W] map, got {tuple(f.shape)}")
            x = f.detach().to("cpu", torch.float64).reshape(f.shape[0], -1)
            self.sum += x @ x.T / x.shape[1]
            self.count += 1
            self.positions += x.shape[1]

    def matrix(self) -> torch.Tensor:
        """Sigma [C, C] float64. Raises ValueError before any image was added."""
        if self.count == 0:
            raise ValueError("no feature map was added")
        return self.sum / self.count


class Moments(SecondMoment):
    """:class:`SecondMoment` that also keeps the mean feature, for the centred covariance beside Shinya et al.'s
    uncentred Sigma (issue 18): ``mu = 1/n sum_i 1/(W_i H_i) sum_{x,y} F_{i,x,y}`` and
    ``covariance() = Sigma - mu mu^T`` (each image weighted equally, as in Sigma). The uncentred Sigma's top
    eigenvalue is dominated by the mean of post-ReLU features; the centred one measures variation only."""

    def __init__(self, channels: int):
        super().__init__(channels)
        self.first = torch.zeros(channels, dtype=torch.float64)

    def update(self, features) -> None:
        maps = features if not isinstance(features, torch.Tensor) else list(features)
        maps = list(maps)
        super().update(maps)
        for f in maps:
            self.first += f.detach().to("cpu", torch.float64).reshape(f.shape[0], -1).mean(dim=1)

    def mean(self) -> torch.Tensor:
        """mu [C] float64. Raises ValueError before any image was added."""
        if self.count == 0:
            raise ValueError("no feature map was added")
        return self.first / self.count

    def covariance(self) -> torch.Tensor:
        """Centred covariance [C, C] float64: ``Sigma - mu mu^T``."""
        mu = self.mean()
        return self.matrix() - torch.outer(mu, mu)


def eigenspectrum(sigma: torch.Tensor) -> np.ndarray:
    """Eigenvalues of a symmetric C x C matrix in float64, largest first (``torch.linalg.eigvalsh``): [C]."""
    s = torch.as_tensor(sigma, dtype=torch.float64)
    s = (s + s.T) / 2  # exact symmetry against accumulated rounding
    return torch.linalg.eigvalsh(s).flip(0).numpy()


def normalised(eigenvalues: np.ndarray, normalisation: str = "none") -> np.ndarray:
    """Eigenvalues divided by nothing, the largest or their sum.

    Raises:
        ConfigError: unknown normalisation.
    """
    ev = np.asarray(eigenvalues, dtype=np.float64)
    if normalisation == "none":
        return ev
    if normalisation == "max":
        return ev / ev.max() if ev.max() > 0 else ev
    if normalisation == "trace":
        total = np.clip(ev, 0, None).sum()
        return ev / total if total > 0 else ev
    raise ConfigError(f"unknown normalisation {normalisation!r}; expected one of {NORMALISATIONS}")


def intrinsic_dimensionality(eigenvalues: np.ndarray, threshold: float = DEFAULT_THRESHOLD,
                             normalisation: str = "none") -> int:
    """The number of (normalised) eigenvalues strictly greater than ``threshold`` (Shinya et al. 2019)."""
    return int((normalised(eigenvalues, normalisation) > threshold).sum())


def threshold_sensitivity(eigenvalues: np.ndarray, thresholds: Sequence[float],
                          normalisation: str = "none") -> np.ndarray:
    """Intrinsic dimensionality at each threshold: int array [len(thresholds)]."""
    ev = normalised(eigenvalues, normalisation)
    return np.array([int((ev > t).sum()) for t in thresholds])


def _valid_size(size: int, padded: int, feature: int) -> int:
    """Feature positions covering ``size`` real pixels of a ``padded``-pixel input mapped to ``feature`` cells."""
    return max(1, min(feature, math.ceil(size * feature / padded)))


@torch.no_grad()
def layer_second_moments(model, images: Iterable[torch.Tensor], *, batch_size: int = 16,
                         device: str | torch.device = "cpu", positions: dict | None = None,
                         centred: bool = False) -> dict[str, torch.Tensor]:
    """Sigma of every ResNet stage and FPN level of a torchvision Faster R-CNN over ``images``.

    Args:
        model: a ``FasterRCNN`` built by :func:`~detpretrain.models.detection.build_faster_rcnn` (put in eval mode
            for the duration).
        images: float [3, H, W] tensors in [0, 1] (the detection datasets' evaluation transform).
        batch_size: images per forward pass.
        positions: if a dict is given, it receives ``{layer: feature positions summed over the images}``; a layer
            with fewer positions than channels has a rank-limited Sigma, so its intrinsic dimensionality is capped
            by the sample, not by the features.
        centred: return the centred covariance (:meth:`Moments.covariance`) instead of the uncentred Sigma.

    Returns:
        ``{"layer1": [C2, C2], ..., "layer4": [C5, C5], "fpn0": [F, F], ..., "fpnpool": [F, F]}`` float64.

    Raises:
        ValueError: no image given.
    """
    model = getattr(model, "module", model)
    was_training = model.training
    model.eval().to(device)
    body = model.backbone.body
    captured: dict[str, torch.Tensor] = {}
    hooks = [getattr(body, name).register_forward_hook(lambda m, i, o, name=name: captured.__setitem__(name, o))
             for name in STAGES]
    acc: dict[str, SecondMoment] = {}
    try:
        batch: list[torch.Tensor] = []

        def flush():
            image_list, _ = model.transform([b.to(device) for b in batch])
            pyramid = model.backbone(image_list.tensors)
            maps = {**captured, **{f"fpn{k}": v for k, v in pyramid.items()}}
            padded_h, padded_w = image_list.tensors.shape[-2:]
            for name, fmap in maps.items():
                if name not in acc:
                    acc[name] = Moments(fmap.shape[1]) if centred else SecondMoment(fmap.shape[1])
                crops = [fmap[j, :, :_valid_size(h, padded_h, fmap.shape[-2]), :_valid_size(w, padded_w, fmap.shape[-1])]
                         for j, (h, w) in enumerate(image_list.image_sizes)]
                acc[name].update(crops)
            batch.clear()

        for img in images:
            batch.append(img)
            if len(batch) == batch_size:
                flush()
        if batch:
            flush()
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    if not acc:
        raise ValueError("no image given")
    order = [*STAGES, *FPN_LEVELS]
    if positions is not None:
        positions.update({name: acc[name].positions for name in acc})
    return {name: acc[name].covariance() if centred else acc[name].matrix()
            for name in sorted(acc, key=lambda n: order.index(n) if n in order else 99)}


def spectra(sigmas: dict[str, torch.Tensor]) -> dict[str, np.ndarray]:
    """:func:`eigenspectrum` of every matrix of :func:`layer_second_moments`."""
    return {name: eigenspectrum(s) for name, s in sigmas.items()}


def widths_from_dimensionality(dims: Sequence[int], *, expansion: int = 1, original: Sequence[int],
                               multiple: int = 8) -> tuple[int, int, int, int]:
    """Per-stage widths (planes) from the intrinsic dimensionalities of the four stage outputs (Shinya et al.'s
    width determination): ``ceil(d / expansion)`` rounded up to ``multiple`` (GroupNorm's groups and efficient
    kernels like multiples of 8), at least ``multiple``, at most the original width.

    Args:
        dims: intrinsic dimensionality of layer1 ... layer4 outputs (channels).
        expansion: the residual block's expansion (1 BasicBlock, 4 Bottleneck): output channels = planes x expansion.
        original: the original planes per stage.

    Raises:
        ConfigError: not four stages, or ``multiple`` < 1.
    """
    if len(dims) != 4 or len(original) != 4:
        raise ConfigError(f"need 4 stages, got dims {list(dims)} and original widths {list(original)}")
    if multiple < 1:
        raise ConfigError(f"multiple must be >= 1, got {multiple}")
    out = []
    for d, w in zip(dims, original):
        planes = math.ceil(max(int(d), 1) / expansion)
        planes = multiple * math.ceil(planes / multiple)
        out.append(int(min(max(planes, multiple), w)))
    return tuple(out)  # type: ignore[return-value]


def count_parameters(module: nn.Module, *, trainable_only: bool = False) -> int:
    """Number of parameters (elements) of ``module``; with ``trainable_only`` those with ``requires_grad``."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)


@torch.no_grad()
def count_macs(module: nn.Module, inputs) -> int:
    """Multiply-accumulates of one forward pass, counted with ``torch.utils.flop_counter.FlopCounterMode``.

    The counter reports FLOPs of convolutions and matrix products as 2 x MACs (one multiply, one add); this
    returns FLOPs / 2. Element-wise operations (normalisation, ReLU, additions) are not counted, as usual for MACs.

    Args:
        module: any module (put in eval mode for the count, restored after).
        inputs: the positional argument(s) of ``module`` (a tensor, or a tuple/list of them for a detector's image
            list, passed as one argument).
    """
    from torch.utils.flop_counter import FlopCounterMode

    was_training = module.training
    module.eval()
    try:
        with FlopCounterMode(display=False) as counter:
            module(inputs)
    finally:
        module.train(was_training)
    return counter.get_total_flops() // 2


# ---- the chapter's tables (from experiments.eigenspectrum.run_eigenspectrum_study's result) ------------------------------------------

def accuracy_frame(result: dict):
    """One row per run: detector, replicate, seed, epochs, mAP@0.5, mAP@0.7 (percent) -> ``pandas.DataFrame``."""
    import pandas as pd

    from detpretrain.analysis.claims import map_at

    return pd.DataFrame([{"detector": r["pretrain"], "replicate": int(r.get("replicate", 0)), "seed": r["seed"],
                          "epochs": len(r["metrics"]["history"]),
                          "mAP@0.5": map_at(r["metrics"], 0.5), "mAP@0.7": map_at(r["metrics"], 0.7),
                          "hash": r["hash"]} for r in result["runs"]])


def dimensionality_frame(result: dict, *, threshold: float | None = None, normalisation: str | None = None):
    """Intrinsic dimensionality per run, epoch and layer (long format): columns detector, replicate, seed, epoch,
    progress (epoch / run's epochs, 0..1), layer, channels, dim, dim_share (dim / channels)."""
    import pandas as pd

    threshold = result["threshold"] if threshold is None else threshold
    normalisation = result["normalisation"] if normalisation is None else normalisation
    rows = []
    for r in result["runs"]:
        per_epoch = result["spectra"][r["run"]]
        last = max(per_epoch)
        for epoch, layers in per_epoch.items():
            for layer, ev in layers.items():
                d = intrinsic_dimensionality(ev, threshold, normalisation)
                rows.append({"detector": r["pretrain"], "replicate": int(r.get("replicate", 0)), "seed": r["seed"],
                             "epoch": epoch,
                             "progress": epoch / last if last else 1.0, "layer": layer, "channels": len(ev),
                             "dim": d, "dim_share": d / len(ev)})
    return pd.DataFrame(rows)


def final_dimensionality_table(result: dict, **kw):
    """Final-epoch intrinsic dimensionality, mean ± sd over seeds, per layer (rows) and detector (columns)."""
    frame = dimensionality_frame(result, **kw)
    last = frame[frame["progress"] == 1.0]
    g = last.groupby(["layer", "detector"])["dim"].agg(["mean", "std"]).unstack("detector")
    order = [x for x in (*STAGES, *FPN_LEVELS) if x in g.index]
    g = g.loc[order]
    channels = last.groupby("layer")["channels"].max().loc[order]
    g.insert(0, ("channels", ""), channels)
    return g


def layer_dim_differences(result: dict, a: str = "imagenet-cls", b: str = "scratch", **kw) -> dict:
    """Per layer, the final intrinsic dimensionality ``a - b``, paired by replicate and seed (S, from scratch, has
    no pre-training, but its replicate ``r`` is an independent training run paired with I's replicate ``r``; with a
    single S run it pairs by seed with every replicate of I and the verdict says so), with its verdict over
    pre-training runs (:func:`~detpretrain.analysis.claims.unit_verdict`; ``holds`` = ``a`` higher, ``reversed`` = ``b``
    higher): ``{layer: Verdict}``."""
    from detpretrain.analysis.claims import paired_units, unit_verdict

    frame = dimensionality_frame(result, **kw)
    last = frame[frame["progress"] == 1.0].rename(columns={"dim": "value"})
    units = paired_units(last, a, b, keys=("layer",), key="detector")
    return {layer: unit_verdict(units[units["layer"] == layer])
            for layer in (*STAGES, *FPN_LEVELS) if layer in set(units["layer"])}


def cost_table(result: dict):
    """Parameters and MACs (Shinya et al.'s width-determination table) beside mAP, one row per detector:
    body / detector parameters and MACs, their change against ``scratch`` in percent, mAP@0.5 and @0.7 as
    mean ± sd over seeds."""
    import pandas as pd

    acc = accuracy_frame(result).groupby("detector")[["mAP@0.5", "mAP@0.7"]].agg(["mean", "std"])
    base = result["cost"]["scratch"]
    rows = []
    for det, c in result["cost"].items():
        row = {"detector": det, "widths": str(tuple(result["widths"] if det == "scratch-narrow"
                                                    else result["original_widths"])),
               "body params": c["body_params"], "body params vs scratch (%)": 100 * (c["body_params"] / base["body_params"] - 1),
               "body MMACs": c["body_macs"] / 1e6, "body MACs vs scratch (%)": 100 * (c["body_macs"] / base["body_macs"] - 1),
               "detector params": c["detector_params"], "detector MMACs": c["detector_macs"] / 1e6}
        if det in acc.index:
            for m in ("mAP@0.5", "mAP@0.7"):
                row[f"{m} mean"], row[f"{m} sd"] = acc.loc[det, (m, "mean")], acc.loc[det, (m, "std")]
        rows.append(row)
    return pd.DataFrame(rows)


def accuracy_units(result: dict, a: str, b: str, metric: str = "mAP@0.5"):
    """Paired differences ``a - b`` of a detection metric (points), one row per unit (replicate, seed; a detector
    without pre-training pairs by seed): columns ``replicate, seed, diff``."""
    from detpretrain.analysis.claims import paired_units

    return paired_units(accuracy_frame(result).rename(columns={metric: "value"}), a, b, key="detector")


# ---- what the chapter shows: curves, tables and the two claims (computed, not written by hand) -----------------------


def _final(result: dict, detector: str) -> list[dict[str, np.ndarray]]:
    """The final-epoch spectra ``{layer: eigenvalues}`` of every seed of ``detector``, in run order."""
    out = []
    for r in result["runs"]:
        if r["pretrain"] == detector:
            per_epoch = result["spectra"][r["run"]]
            out.append(per_epoch[max(per_epoch)])
    return out


def _final_replicates(result: dict, detector: str) -> list[int]:
    """The pre-training replicate (for a detector from scratch: its independent training run) of each run of
    :func:`_final`, in the same order."""
    return [int(r.get("replicate", 0)) for r in result["runs"] if r["pretrain"] == detector]


def mean_log_spectrum(result: dict, detector: str, layer: str) -> np.ndarray | None:
    """Figure data: the mean over seeds of ``log10(lambda / lambda_max)`` of a layer's final spectrum, largest
    eigenvalue first ([C]; eigenvalues clipped at 1e-30 before the log); None when ``detector`` has no run."""
    curves = []
    for final in _final(result, detector):
        ev = np.clip(final[layer], 1e-30, None)
        curves.append(np.log10(ev / ev.max()))
    return np.mean(curves, axis=0) if curves else None


def sensitivity_curve(result: dict, detector: str, layer: str, normalisation: str,
                      thresholds=SENSITIVITY_THRESHOLDS) -> np.ndarray | None:
    """Figure data: the final intrinsic dimensionality of a layer as a share of its channels (0-1) at each of
    ``thresholds`` (:func:`threshold_sensitivity`), mean over the seeds of ``detector``; None without runs."""
    counts = [threshold_sensitivity(final[layer], thresholds, normalisation) / len(final[layer])
              for final in _final(result, detector)]
    return np.mean(counts, axis=0) if counts else None


def sensitivity_table(result: dict, thresholds=SENSITIVITY_TABLE_THRESHOLDS, detectors=("imagenet-cls", "scratch")):
    """Final intrinsic dimensionality of every ResNet stage, mean over seeds, for each normalisation and threshold.

    Returns:
        a DataFrame, one row per (normalisation, threshold), columns ``normalisation``, ``threshold`` and
        ``"<detector> <stage>"`` (channels counted).
    """
    import pandas as pd

    rows = []
    for norm in NORMALISATIONS:
        for t in thresholds:
            frame = dimensionality_frame(result, threshold=t, normalisation=norm)
            last = frame[(frame["progress"] == 1.0) & frame["layer"].isin(STAGES)]
            rows.append({"normalisation": norm, "threshold": t,
                         **{f"{d} {s}": last[(last.detector == d) & (last.layer == s)]["dim"].mean()
                            for d in detectors for s in STAGES}})
    return pd.DataFrame(rows)


def dimensionality_table(result: dict):
    """:func:`final_dimensionality_table` with a ``positions`` column after ``channels``: the feature positions each
    layer's matrices average over (``result["positions"]``; Sigma's rank cannot exceed it)."""
    table = final_dimensionality_table(result)
    table.insert(1, ("positions", ""), [result["positions"].get(layer) for layer in table.index])
    return table


def rank_limited(result: dict) -> dict:
    """The layers whose matrices average over fewer positions than they have channels (their rank, so their count,
    is capped by the sample, not by the features).

    Returns:
        ``{"layers": [...], "sentence": str}``.
    """
    table = final_dimensionality_table(result)
    layers = [layer for layer in table.index
              if result["positions"].get(layer, 0) < table.loc[layer, ("channels", "")]]
    sentence = ("`positions` is the number of feature-map positions the matrices average over; Σ's rank cannot "
                "exceed it. " + (f"**Rank-limited here: {', '.join(layers)}** — raise `n_images`." if layers else
                                 "Every layer has more positions than channels, so no count is capped by the sample."))
    return {"layers": layers, "sentence": sentence}


def rule_comparison(result: dict) -> str:
    """A sentence: what Shinya et al.'s literal rule (raw eigenvalues > :data:`DEFAULT_THRESHOLD`) counts in the S
    detectors' stages, beside what this execution's rule (``result["normalisation"]``, ``result["threshold"]``)
    counts (means over seeds, final models)."""
    literal = sensitivity_table(result, thresholds=(DEFAULT_THRESHOLD,)).set_index("normalisation").loc["none"]
    table = final_dimensionality_table(result)
    channels = table[("channels", "")]
    literal_threshold = f"{DEFAULT_THRESHOLD:.0e}".replace("e-0", "e-")  # 1e-3, as the paper writes it
    return (f"With Shinya et al.'s literal rule (raw eigenvalues > {literal_threshold}) the S detectors count "
            + ", ".join(f"{s} {literal[f'scratch {s}']:.1f} of {int(channels[s])}" for s in STAGES)
            + f" channels; at this execution's rule ({result['normalisation']}, {result['threshold']:g}) "
            + ", ".join(f"{s} {table.loc[s, ('mean', 'scratch')]:.1f}" for s in STAGES) + ".")


def layer_dim_table(result: dict, a: str = "imagenet-cls", b: str = "scratch"):
    """:func:`layer_dim_differences` as a table (a description per layer; claim 1's test is
    :func:`spectral_claim1`): ``layer``, ``I − S``, ``95% CI low``, ``95% CI high``, ``n``, ``unit``,
    ``direction`` ("I higher" where the verdict is ``holds``, "S higher" where ``reversed``, else the label; before
    the chapter's Holm adjustment; with one S run, *not resolved* followed by what these networks show:
    :attr:`~detpretrain.analysis.stats.Verdict.shown_label`)."""
    import pandas as pd

    from detpretrain.analysis.stats import UNREPLICATED

    names = {"holds": "I higher", "reversed": "S higher"}

    def direction(v) -> str:  # unreplicated (one S run): not resolved, with what these networks show
        if v.replicated:
            return names.get(v.label, v.label)
        if v.label not in names:
            return v.shown_label
        return f"not resolved ({UNREPLICATED}; these networks alone: {names[v.label]})"

    return pd.DataFrame([{"layer": k, "I − S": v.estimate, "95% CI low": v.ci_low, "95% CI high": v.ci_high,
                          "n": v.n, "unit": v.unit, "direction": direction(v)}
                         for k, v in layer_dim_differences(result, a, b).items()])


def dynamics(result: dict, layers=STAGES):
    """Figure data: intrinsic dimensionality over training, mean and sd over seeds, per detector, layer and
    training progress (epoch / the run's epochs; 0 = initialisation).

    Returns:
        columns ``detector``, ``layer``, ``channels``, ``progress``, ``mean``, ``std`` (std NaN with one seed).
    """
    frame = dimensionality_frame(result)
    frame = frame[frame["layer"].isin(layers)]
    return (frame.groupby(["detector", "layer", "progress"])
            .agg(channels=("channels", "max"), mean=("dim", "mean"), std=("dim", "std")).reset_index())


def similar_accuracy(result: dict, a: str = "imagenet-cls", b: str = "scratch",
                     margin: float = SIMILAR_ACCURACY_MARGIN) -> tuple[bool, object]:
    """Whether ``a`` and ``b`` reach similar mAP@0.5: the 95 % interval of the paired difference (over pre-training
    runs) lies within ``+- margin`` points (equivalence by two one-sided tests). Returns ``(similar, Verdict)``."""
    from detpretrain.analysis.claims import unit_verdict

    v = unit_verdict(accuracy_units(result, a, b))
    return bool(not math.isnan(v.ci_low) and -margin < v.ci_low and v.ci_high < margin), v


def claim1_summary(result: dict, claims: dict) -> str:
    """Claim 1 (Shinya et al.: I and S differ, even at similar accuracy) in words: its single statistic from the
    chapter's claims (:data:`CLAIM1`, labelled after Holm's adjustment), the per-layer dimensionality differences
    as a description (:func:`layer_dim_differences`), :func:`similar_accuracy`, and the stages' dimensionality at
    initialisation."""
    from detpretrain.analysis.stats import adjust_claims

    primary = next(iter(claims))
    adjusted = adjust_claims(claims, primary)
    per_layer = layer_dim_differences(result)
    differing = [layer for layer, v in per_layer.items() if v.claim_label != "not resolved"]
    similar, gap = similar_accuracy(result)
    dyn = dimensionality_frame(result)
    start = dyn[(dyn.epoch == 0) & dyn.layer.isin(STAGES)].groupby(["detector", "layer"])["dim"].mean()
    start_i = ", ".join(f"{s} {start.get(('imagenet-cls', s), float('nan')):.0f}" for s in STAGES)
    start_s = ", ".join(f"{s} {start.get(('scratch', s), float('nan')):.0f}" for s in STAGES)
    c1 = adjusted.get(CLAIM1)
    return (("Claim 1, as one statistic (the spectra's distance between I and S minus the distance between two runs "
             "of one detector, mean over conv2-conv5): " + c1.sentence("TV distance", digits=3) + " "
             if c1 is not None else "")
            + f"Per layer, as a description without adjustment, the final dimensionality differs in "
            f"**{len(differing)} of {len(per_layer)}** layers ({', '.join(differing) or 'none'}); their mAP@0.5 "
            f"differs by "
            f"{gap.sentence('mAP@0.5 points (I − S)')} — accuracy "
            f"**{'similar' if similar else 'not shown similar'}** (the interval "
            f"{'lies' if similar else 'does not lie'} within ±{SIMILAR_ACCURACY_MARGIN:g} points). At "
            f"initialisation the stages of I (the IMAGENET-CLS backbone) count {start_i} dimensions, those of S "
            f"(random weights) {start_s}.")


#: claim 1's single statistic (issue 18; fixed before the 2026-12-04 build, after earlier builds had shown per-layer
#: results): :func:`spectral_claim1` over the four ResNet stages
CLAIM1 = "Claim 1: I and S spectra differ beyond seed-to-seed variation (TV distance, mean over conv2-conv5)"


def eigen_claims(result: dict) -> dict:
    """The eigenspectrum chapter's claims, primary first (:data:`~detpretrain.analysis.claims.PRIMARY_CLAIMS`
    ``["eigenspectrum"]``: the narrower detector keeps accuracy, non-inferiority of narrower S - S in mAP@0.5 with
    the declared margin, over from-scratch training runs since neither has a pre-training), then Shinya et al.'s claim 1 as
    one statistic (:data:`CLAIM1`, :func:`spectral_claim1`). The per-layer dimensionality differences
    (:func:`layer_dim_differences`) are a description beside it, not claims: testing 9 layers and calling the claim
    held if one passes is what issue 17 removed.

    Returns:
        ``{claim: Verdict}`` for :func:`~detpretrain.analysis.claims.claims_frame`.
    """
    from detpretrain.analysis.claims import PRIMARY_CLAIMS, unit_verdict

    primary = PRIMARY_CLAIMS["eigenspectrum"]
    return {primary.name: unit_verdict(accuracy_units(result, "scratch-narrow", "scratch"), claim=primary),
            CLAIM1: spectral_claim1(result)}


def claim2_summary(result: dict, claims: dict) -> str:
    """Claim 2 (widths from the spectrum) in words: the parameter and MAC change of the determined widths, and the
    accuracy verdict of :func:`eigen_claims`' primary claim -- or that it is not tested (the widths are unchanged)."""
    from detpretrain.analysis.claims import PRIMARY_CLAIMS

    if result["narrow_is_scratch"]:
        return (f"The determined widths {tuple(result['widths'])} equal the original ones: at this threshold every "
                "channel of every stage counts, there is nothing to prune, and the narrower detector is S itself "
                "(not trained again). **Claim 2 is not tested** at this threshold; a smaller count (a higher "
                "threshold, or a wider backbone) is needed to test it.")
    row = cost_table(result).set_index("detector").loc["scratch-narrow"]
    v = claims[PRIMARY_CLAIMS["eigenspectrum"].name]
    return (f"The determined widths {tuple(result['widths'])} (from {tuple(result['original_widths'])}) change the "
            f"backbone's parameters by **{float(row['body params vs scratch (%)']):+.1f} %** (Shinya et al.: about "
            f"{SHINYA_PARAMS_CHANGE:+.0f} % on ResNet-50) and its MACs by "
            f"**{float(row['body MACs vs scratch (%)']):+.1f} %**. Accuracy of the narrower S minus S: "
            f"{v.sentence('mAP@0.5 points')}.")


def accuracy_summary(result: dict):
    """Epochs, mAP@0.5 and mAP@0.7 per detector: mean and sd over seeds (columns (metric, mean|std))."""
    return accuracy_frame(result).groupby("detector")[["epochs", "mAP@0.5", "mAP@0.7"]].agg(["mean", "std"])


def widths_table(result: dict):
    """Width determination per stage: ``stage``, ``original width``, ``S intrinsic dim (max over seeds)``,
    ``determined width``."""
    import pandas as pd

    return pd.DataFrame({"stage": STAGES, "original width": result["original_widths"],
                         "S intrinsic dim (max over seeds)": result["dims_for_widths"],
                         "determined width": result["widths"]})


# ---- issue 18: claim 1 as one pre-specified statistic against seed-to-seed variation (claim 2: claims.PRIMARY_CLAIMS) ----

def participation_ratio(eigenvalues) -> float:
    """``(sum lambda)^2 / sum lambda^2`` of the non-negative eigenvalues: an effective number of dimensions without a
    threshold (1 for one direction, C for C equal ones)."""
    ev = np.clip(np.asarray(eigenvalues, dtype=np.float64), 0, None)
    sq = float((ev ** 2).sum())
    return float(ev.sum() ** 2 / sq) if sq > 0 else math.nan


def spectrum_distance(ev_a, ev_b) -> float:
    """Claim 1's pre-specified statistic: the total-variation distance ``1/2 sum_i |p_a,i - p_b,i|`` between two
    trace-normalised spectra (``p = lambda / sum lambda``, negatives clipped, sorted largest first, the shorter
    padded with zeros). 0 = the same shape of spectrum, 1 = disjoint; scale-free, threshold-free.

    Raises:
        ValueError: a spectrum with no positive eigenvalue.
    """
    ps = []
    for ev in (ev_a, ev_b):
        ev = np.sort(np.clip(np.asarray(ev, dtype=np.float64), 0, None))[::-1]
        if ev.sum() <= 0:
            raise ValueError("a spectrum with no positive eigenvalue has no normalised shape")
        ps.append(ev / ev.sum())
    n = max(len(p) for p in ps)
    a, b = (np.pad(p, (0, n - len(p))) for p in ps)
    return float(0.5 * np.abs(a - b).sum())


def spectral_separation(spectra_a: Sequence[np.ndarray], spectra_b: Sequence[np.ndarray], groups=None):
    """Claim 1 ("I and S differ") against seed-to-seed variation, for one layer.

    With seed s of each detector: ``between_s = D(a_s, b_s)`` and ``within_s`` the mean of ``D(a_s, a_t)`` and
    ``D(b_s, b_t)`` over the other seeds t (:func:`spectrum_distance`); the claim holds when ``between - within``
    is positive beyond its interval (:func:`~detpretrain.analysis.stats.verdict` over seeds; the within terms
    share seeds, so the seeds are not fully independent and the interval is optimistic).

    Args:
        spectra_a, spectra_b: the final spectra of the layer, one per seed, seeds in the same order.
        groups: the pre-training replicate of each pair (default: each pair its own): the pairs of one replicate
            (its fine-tuning seeds) are averaged before the interval, which is over the replicates.

    Returns:
        ``{"between", "within" (means over seeds), "pr_a", "pr_b" (mean participation ratios), "verdict"}``.
    """
    from detpretrain.analysis.stats import verdict

    n = min(len(spectra_a), len(spectra_b))
    between, within = _separation(spectra_a, spectra_b)
    diffs = between - within
    return {"between": float(np.mean(between)) if n else math.nan,
            "within": float(np.nanmean(within)) if n > 1 else math.nan,
            "pr_a": float(np.mean([participation_ratio(e) for e in spectra_a])) if len(spectra_a) else math.nan,
            "pr_b": float(np.mean([participation_ratio(e) for e in spectra_b])) if len(spectra_b) else math.nan,
            "verdict": _pairs_verdict(diffs, groups)}


def _pairs_verdict(values: np.ndarray, groups=None):
    """The verdict over run pairs: the pairs of one pre-training replicate averaged first, the interval over the
    replicates (:func:`~detpretrain.analysis.stats.verdict` with ``groups``); one replicate: conditional on it,
    over its fine-tuning seeds (``replicated=False``). Pairs with a NaN value are left out."""
    from detpretrain.analysis.claims import PRETRAINING_UNIT
    from detpretrain.analysis.stats import verdict

    values = np.asarray(values, float)
    groups = np.arange(values.size) if groups is None else np.asarray(groups)[:values.size]
    keep = np.isfinite(values)
    return verdict(values[keep], groups=groups[keep], unit="run pair", group_unit=PRETRAINING_UNIT)


def spectral_claim1(result: dict, a: str = "imagenet-cls", b: str = "scratch", layers=None):
    """Claim 1 (Shinya et al.: the spectra of I and S differ) as ONE statistic fixed in advance: per run pair ``s``
    (run ``s`` of each detector, in run order: I's pre-training replicates, S's independent runs), the mean over
    ``layers`` (default the four ResNet stages, :data:`STAGES`) of ``between_s - within_s`` of
    :func:`spectral_separation` (total-variation distance of the trace-normalised final spectra, minus the mean
    distance from that run to the other runs of the same detector). Tested over the run pairs
    (:func:`~detpretrain.analysis.stats.verdict`; the within terms share runs, so the pairs are not fully
    independent and the interval is somewhat optimistic). The pairs of one pre-training replicate of I (its
    fine-tuning seeds) are averaged first: the unit of replication is I's pre-training run (:func:`_pairs_verdict`).

    Returns:
        a :class:`~detpretrain.analysis.stats.Verdict` (TV-distance units; "not resolved" with fewer than 2 pairs).
    """
    from detpretrain.analysis.stats import verdict

    fa, fb = _final(result, a), _final(result, b)
    names = list(layers or STAGES)
    n = min(len(fa), len(fb))
    if n < 2 or not all(layer in fa[0] and layer in fb[0] for layer in names):
        return verdict(np.zeros(0), unit="run pair")
    per_layer = np.array([np.subtract(*_separation([f[layer] for f in fa[:n]], [f[layer] for f in fb[:n]]))
                          for layer in names])  # [layers, n]
    return _pairs_verdict(per_layer.mean(axis=0), _final_replicates(result, a)[:n])


def _separation(spectra_a, spectra_b) -> tuple[np.ndarray, np.ndarray]:
    """``(between, within)`` per run pair s of :func:`spectral_separation`, each [n]; ``within`` NaN with one run."""
    n = min(len(spectra_a), len(spectra_b))
    between = [spectrum_distance(spectra_a[s], spectra_b[s]) for s in range(n)]
    within = [np.mean([(spectrum_distance(spectra_a[s], spectra_a[t]) + spectrum_distance(spectra_b[s], spectra_b[t]))
                       / 2 for t in range(n) if t != s]) if n > 1 else math.nan for s in range(n)]
    return np.asarray(between, float), np.asarray(within, float)


def spectral_claim1_table(result: dict, a: str = "imagenet-cls", b: str = "scratch", layers=None):
    """:func:`spectral_separation` of the final spectra of every layer: ``layer``, ``distance I-S``, ``seed-to-seed
    distance``, ``participation ratio I`` / ``S``, and the verdict's ``excess``, ``ci_low``, ``ci_high`` and
    ``label (unadjusted)`` (each layer's own interval; the chapter's claim 1 is the mean over the stages, Holm-adjusted
    with its other claims)."""
    import pandas as pd

    from detpretrain.analysis.claims import UNADJUSTED_LABEL

    fa, fb = _final(result, a), _final(result, b)
    rows = []
    names = layers or [x for x in (*STAGES, *FPN_LEVELS) if fa and x in fa[0]]
    for layer in names:
        r = spectral_separation([f[layer] for f in fa], [f[layer] for f in fb], groups=_final_replicates(result, a))
        v = r["verdict"]
        rows.append({"layer": layer, "distance I-S": r["between"], "seed-to-seed distance": r["within"],
                     "participation ratio I": r["pr_a"], "participation ratio S": r["pr_b"],
                     "excess": v.estimate, "ci_low": v.ci_low, "ci_high": v.ci_high,
                     UNADJUSTED_LABEL: v.shown_label})
    return pd.DataFrame(rows)


def centring_table(result: dict, detectors=("imagenet-cls", "scratch"), layers=None):
    """Shinya et al.'s uncentred second moment against the centred covariance (issue 18), on the final weights of
    each run: per layer and detector, the mean over runs of the intrinsic dimensionality (the result's threshold and
    normalisation) and of the participation ratio of each matrix. The uncentred Sigma's top eigenvalue carries the
    mean of the post-ReLU features, so with ``normalisation="max"`` its count can differ from the centred one's.

    Args:
        result: :func:`~detpretrain.experiments.eigenspectrum.run_eigenspectrum_study`'s result, with
            ``centred_spectra`` (``{run: {layer: eigenvalues}}``).

    Returns:
        columns ``layer``, ``detector``, ``runs``, ``dim (uncentred)``, ``dim (centred)``, ``PR (uncentred)``,
        ``PR (centred)``; empty when the result has no centred spectra.
    """
    import pandas as pd

    columns = ["layer", "detector", "runs", "dim (uncentred)", "dim (centred)", "PR (uncentred)", "PR (centred)"]
    centred = result.get("centred_spectra") or {}
    threshold, norm = result["threshold"], result["normalisation"]
    rows = []
    for det in detectors:
        pairs = [(result["spectra"][r["run"]][max(result["spectra"][r["run"]])], centred[r["run"]])
                 for r in result["runs"] if r["pretrain"] == det and r["run"] in centred]
        if not pairs:
            continue
        names = layers or [x for x in (*STAGES, *FPN_LEVELS) if x in pairs[0][0] and x in pairs[0][1]]
        for layer in names:
            rows.append({"layer": layer, "detector": det, "runs": len(pairs),
                         "dim (uncentred)": float(np.mean([intrinsic_dimensionality(u[layer], threshold, norm)
                                                           for u, _ in pairs])),
                         "dim (centred)": float(np.mean([intrinsic_dimensionality(c[layer], threshold, norm)
                                                         for _, c in pairs])),
                         "PR (uncentred)": float(np.mean([participation_ratio(u[layer]) for u, _ in pairs])),
                         "PR (centred)": float(np.mean([participation_ratio(c[layer]) for _, c in pairs]))})
    return pd.DataFrame(rows, columns=columns)
