"""The eigenspectrum companion study as a chain of runs, on the book's backbones and run store.

**Eigenspectrum** (Shinya, Simo-Serra, Suzuki, ICCVW 2019): detectors fine-tuned from the IMAGENET-CLS backbone
  (``"imagenet-cls"``, their "I") and trained from scratch (``"scratch"``, "S") with a longer schedule, so that the
  two reach comparable accuracy (Shinya et al. compare at similar accuracy; ``scratch_factor`` x the fine-tuning
  epochs, milestones scaled alike). Every run keeps its model at initialisation and after each epoch
  (``optim.keep_epoch_checkpoints``) for the spectra's dynamics. Width determination then trains the narrower
  detector (``"scratch-narrow"``) from scratch on the same schedule (:func:`run_eigenspectrum_study`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from functools import partial

import numpy as np
import torch

from detpretrain.config import DataSpec, TrainConfig, config_hash
from detpretrain.errors import ConfigError
from detpretrain.experiments.common import (
    ChainPlan,
    chain_plan,
    pretrain_configs,
    pretrained_for,
    replicate_count,
    split_key,
    target_spec,
    train_chain,
)
from detpretrain.experiments.detection import finetune_config
from detpretrain.profiles import Profile, get_profile
from detpretrain.runs import RunStore
from detpretrain.analysis import eigenspectrum as eig



#: the eigenspectrum study's detectors: fine-tuned from IMAGENET-CLS ("I"), from scratch ("S"), and from scratch
#: with the widths the spectrum determines
EIGEN_DETECTORS = ("imagenet-cls", "scratch", "scratch-narrow")


def eigen_config(prof: Profile, detector: str, seed: int, target: DataSpec, pretrained, *, scratch_factor: int = 2,
                 widths: Sequence[int] | None = None) -> TrainConfig:
    """One detector of the eigenspectrum study (``detector`` in :data:`EIGEN_DETECTORS`, or ``imagenet-cls@r<k>``
    for a replicate of the IMAGENET-CLS pre-training), keeping epoch checkpoints.

    Raises:
        ConfigError: an unknown detector, ``scratch-narrow`` without ``widths``, or ``scratch_factor`` < 1.
    """
    name = split_key(detector)[0]
    if name not in EIGEN_DETECTORS or (name != "imagenet-cls" and detector != name):
        raise ConfigError(f"unknown detector {detector!r}; expected one of {EIGEN_DETECTORS}")
    if scratch_factor < 1:
        raise ConfigError(f"scratch_factor must be >= 1, got {scratch_factor}")
    base = finetune_config(prof, detector if name == "imagenet-cls" else "scratch", seed, target, pretrained)
    optim = dataclasses.replace(base.optim, keep_epoch_checkpoints=True)
    model = base.model
    if name != "imagenet-cls":
        optim = dataclasses.replace(optim, epochs=optim.epochs * scratch_factor,
                                    milestones=tuple(m * scratch_factor for m in optim.milestones))
    if detector == "scratch-narrow":
        if widths is None:
            raise ConfigError("scratch-narrow needs the widths determined from the eigenspectrum")
        model = dataclasses.replace(model, widths=tuple(int(w) for w in widths))
    return dataclasses.replace(base, name=f"eigen/{detector}", model=model, optim=optim)


def epoch_spectra(run, images: list[torch.Tensor], *, device: str = "cpu",
                  positions: dict | None = None) -> dict[int, dict[str, np.ndarray]]:
    """The eigenspectra of every layer at every kept epoch of a run: ``{epochs done: {layer: eigenvalues}}``.

    ``positions``, if given, receives the feature positions per layer (see
    :func:`~detpretrain.analysis.eigenspectrum.layer_second_moments`).

    Raises:
        ConfigError: the run kept no epoch checkpoints.
    """
    from detpretrain.runs import load_run_model

    model, _, _ = load_run_model(run, device)
    checkpoints = run.epoch_checkpoints()
    if not checkpoints:
        raise ConfigError(f"{run.path}: no epoch checkpoints (train with optim.keep_epoch_checkpoints)")
    out = {}
    for epoch, path in checkpoints.items():
        model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        out[epoch] = eig.spectra(eig.layer_second_moments(model, images, device=device, positions=positions))
    return out


def final_spectra(run, images: list[torch.Tensor], *, device: str = "cpu", centred: bool = True
                  ) -> dict[str, np.ndarray]:
    """The eigenspectra of every layer of a run's final weights (``model.pt``): of the centred covariance
    (``centred``; issue 18, beside Shinya et al.'s uncentred second moment) or of that second moment.

    Args:
        run: a complete detection run of the store.
        images: float [3, H, W] images in [0, 1] (:func:`probe_images`).

    Returns:
        ``{layer: eigenvalues}`` (descending).
    """
    from detpretrain.runs import load_run_model

    model, _, _ = load_run_model(run, device)
    return eig.spectra(eig.layer_second_moments(model, images, device=device, centred=centred))


def probe_images(target: DataSpec, n: int, data_cache=None) -> list[torch.Tensor]:
    """The first ``n`` evaluation images of the target (float [3, H, W] in [0, 1]): the spectra's fixed image set.
    ``data_cache``: the corpus cache of a synthetic target (default ``corpus_cache_dir()``)."""
    from detpretrain.data.builders import build_detection_dataset

    data = build_detection_dataset(target, target.eval_split, train=False, cache=data_cache)
    return [data[i][0].as_subclass(torch.Tensor) for i in range(min(n, len(data)))]


def model_cost(config: TrainConfig, num_classes: int) -> dict:
    """Parameters and MACs of a run's detector: the ResNet body (what Shinya et al. report for ResNet-50) and the
    whole detector on one ``model.max_size`` square image (RoI heads included, at the test-time proposal count)."""
    from detpretrain.models.build import build_model

    model = build_model(config, num_classes)
    size = config.model.max_size
    body = model.backbone.body  # torchvision's IntermediateLayerGetter: stem + layer1..layer4, no pooling or fc
    x = torch.zeros(1, 3, size, size)
    return {"body_params": eig.count_parameters(body), "detector_params": eig.count_parameters(model),
            "body_macs": eig.count_macs(body, x),
            "detector_macs": eig.count_macs(model, [torch.rand(3, size, size, generator=torch.Generator().manual_seed(0))])}


def eigen_chain(profile: str | Profile = "smoke", *, dataset: str = "synthetic", data_root: str | None = None,
                seeds=None, replicates: int | None = None, scratch_factor: int = 2,
                widths: Sequence[int] | None = None) -> ChainPlan:
    """The I and S detectors of the study (``widths`` given: the narrower S detector alone), without training; I
    once per pre-training replicate and seed, S (no pre-training) once per replicate and seed
    (:func:`~detpretrain.experiments.common.scratch_seed`)."""
    prof = get_profile(profile) if isinstance(profile, str) else profile
    make = partial(eigen_config, scratch_factor=scratch_factor, widths=widths)
    pretrains = ("imagenet-cls", "scratch") if widths is None else ("scratch-narrow",)
    count = replicate_count(prof, replicates)
    return chain_plan(prof, target_spec(prof, dataset, data_root), make, pretrains=pretrains,
                      pretrained=pretrained_for(prof, ("imagenet-cls",), replicates=count, with_detection=False),
                      seeds=seeds,
                      replicates=count)


def determined_widths(model, final_spectra: list[dict[str, np.ndarray]], threshold: float, normalisation: str,
                      multiple: int) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
    """The widths the S detectors' final spectra determine: per stage the largest intrinsic dimensionality over the
    seeds -> :func:`~detpretrain.analysis.eigenspectrum.widths_from_dimensionality`.

    Returns:
        ``(widths, original widths, dimensionalities)`` (4 ints each).
    """
    from detpretrain.models.backbones import ARCHS

    block, _, default_widths, _ = ARCHS[model.arch]
    original = tuple(model.widths) if model.widths else default_widths
    dims = [0, 0, 0, 0]
    for final in final_spectra:
        for k, stage in enumerate(eig.STAGES):
            dims[k] = max(dims[k], eig.intrinsic_dimensionality(final[stage], threshold, normalisation))
    widths = eig.widths_from_dimensionality(dims, expansion=block.expansion, original=original, multiple=multiple)
    return tuple(widths), tuple(original), tuple(dims)


#: the widths :func:`plan_eigenspectrum` determined, per store, S runs and rule: ``{key: (widths, original)}``
_PLANNED_WIDTHS: dict[tuple, tuple] = {}


def plan_eigenspectrum(profile: str | Profile = "smoke", *, dataset: str = "synthetic", data_root: str | None = None,
                       seeds=None, replicates: int | None = None, scratch_factor: int = 2, threshold: float = eig.DEFAULT_THRESHOLD,
                       normalisation: str = "none", n_images: int = 64, multiple: int = 8,
                       store: RunStore | None = None, device: str = "cpu") -> list[TrainConfig]:
    """Every run :func:`run_eigenspectrum_study` trains with these arguments, as far as it is known without training.

    The I and S detectors always; the narrower S detectors only once the S runs are complete in ``store`` (their
    widths come from the S detectors' final spectra, measured here as the study measures them) and only if those
    widths differ from the original ones. A plan executed and then planned again thus reaches the whole study.
    """
    from detpretrain.runs import Run, load_run_model

    prof = get_profile(profile) if isinstance(profile, str) else profile
    chain = eigen_chain(prof, dataset=dataset, data_root=data_root, seeds=seeds, replicates=replicates,
                        scratch_factor=scratch_factor)
    configs = chain.configs
    scratch = [cfg for pretrain, _, _, cfg in chain.finetunes if pretrain == "scratch"]
    if store is None or not scratch or not all(store.run_for(cfg).complete for cfg in scratch):
        return configs
    key = (str(store.root.resolve()), tuple(config_hash(cfg) for cfg in scratch), dataset, str(data_root),
           float(threshold), normalisation, int(n_images), int(multiple))
    if key not in _PLANNED_WIDTHS:  # complete runs never change: measured once per process (the executor plans
        images = probe_images(target_spec(prof, dataset, data_root), n_images)  # again after runs finish)
        finals = []
        for cfg in scratch:
            run: Run = store.run_for(cfg)
            model, _, _ = load_run_model(run, device)
            checkpoints = run.epoch_checkpoints()
            model.load_state_dict(torch.load(checkpoints[max(checkpoints)], map_location="cpu", weights_only=True))
            finals.append(eig.spectra(eig.layer_second_moments(model, images, device=device)))
        _PLANNED_WIDTHS[key] = determined_widths(scratch[0].model, finals, threshold, normalisation, multiple)[:2]
    widths, original = _PLANNED_WIDTHS[key]
    if widths == original:
        return configs
    narrow = eigen_chain(prof, dataset=dataset, data_root=data_root, seeds=seeds, replicates=replicates,
                         scratch_factor=scratch_factor, widths=widths)
    return configs + [cfg for *_, cfg in narrow.finetunes]


def run_eigenspectrum_study(profile: str | Profile = "smoke", *, dataset: str = "synthetic",
                            data_root: str | None = None, seeds=None, replicates: int | None = None,
                            store: RunStore | None = None, device: str = "auto", scratch_factor: int = 2, threshold: float = eig.DEFAULT_THRESHOLD,
                            normalisation: str = "none", n_images: int = 64, multiple: int = 8,
                            progress: bool = True, log=print) -> dict:
    """Train (or find) the I and S detectors, measure their spectra over training, determine the widths from the
    S detectors' final spectra (:func:`determined_widths`), train the narrower S detector, and count parameters and
    MACs. The runs are those of :func:`eigen_chain` (and :func:`plan_eigenspectrum`).

    Returns:
        ``{"profile", "dataset", "data", "runs": [...] (finetune_chain entries, the narrow ones included),
        "spectra": {run path: {epoch: {layer: eigenvalues}}}, "widths": (4 ints), "original_widths",
        "dims_for_widths": (4 ints), "narrow_is_scratch": bool (the widths equal the original ones; the
        ``scratch-narrow`` entries are then the S runs, relabelled, and nothing is trained), "cost": {detector:
        model_cost}, "positions": {layer: feature positions
        averaged over (Sigma's rank is at most that)}, "threshold", "normalisation", "n_images",
        "scratch_factor"}``.
    """
    from detpretrain.distributed import resolve_device

    prof = get_profile(profile) if isinstance(profile, str) else profile
    store = store or RunStore()
    target = target_spec(prof, dataset, data_root)
    pretrained = pretrain_configs(prof, with_detection=False)  # I and S only: no COCO root needed at paper
    chain = eigen_chain(prof, dataset=dataset, data_root=data_root, seeds=seeds, replicates=replicates,
                        scratch_factor=scratch_factor)
    result = train_chain(chain, prof, dataset, target, store=store, device=device, progress=progress, log=log)
    dev = resolve_device(device)
    images = probe_images(target, n_images, store.data_cache)
    spectra, positions = {}, {}
    for entry in result["runs"]:
        spectra[entry["run"]] = epoch_spectra(store.resolve(f"run:{entry['hash']}"), images, device=dev,
                                              positions=positions)
    centred = {e["run"]: final_spectra(store.resolve(f"run:{e['hash']}"), images, device=dev)
               for e in result["runs"]}  # I and S: the centred covariance beside the uncentred Sigma (issue 18)
    model = store.resolve(f"run:{result['runs'][0]['hash']}").config.model
    finals = [spectra[e["run"]][max(spectra[e["run"]])] for e in result["runs"] if e["pretrain"] == "scratch"]
    widths, original, dims = determined_widths(model, finals, threshold, normalisation, multiple)
    narrow_is_scratch = tuple(widths) == tuple(original)
    if narrow_is_scratch:  # nothing to prune: the "narrower" detector is S itself, and is not trained twice
        log(f"[{prof.name}] determined widths {widths} equal the original: scratch-narrow = scratch (not trained)")
        narrow = {"runs": [{**e, "pretrain": "scratch-narrow"} for e in result["runs"] if e["pretrain"] == "scratch"]}
    else:
        narrow = train_chain(eigen_chain(prof, dataset=dataset, data_root=data_root, seeds=seeds,
                                         replicates=replicates, scratch_factor=scratch_factor, widths=widths),
                             prof, dataset, target, store=store, device=device, progress=progress, log=log)
        for entry in narrow["runs"]:
            spectra[entry["run"]] = epoch_spectra(store.resolve(f"run:{entry['hash']}"), images, device=dev)
    num_classes = len(result["runs"][0]["metrics"]["classes"])
    cost = {}
    for detector in EIGEN_DETECTORS:
        cfg = eigen_config(prof, detector, 0, target, pretrained, scratch_factor=scratch_factor, widths=widths)
        cost[detector] = model_cost(cfg, num_classes)
    return {**result, "runs": result["runs"] + narrow["runs"], "spectra": spectra, "widths": widths,
            "original_widths": original, "dims_for_widths": tuple(dims), "narrow_is_scratch": narrow_is_scratch,
            "cost": cost, "positions": positions, "centred_spectra": centred, "threshold": threshold,
            "normalisation": normalisation,
            "n_images": len(images), "scratch_factor": scratch_factor}


def configuration_table(profile: Profile, dataset: str, data_root: str | None, seeds, *, scratch_factor: int,
                        threshold: float, normalisation: str, n_images: int):
    """The eigenspectrum chapter's configuration: target, detector, the I and S schedules, the layers measured, the
    count's threshold and normalisation, the images per matrix and the seeds, as a settings table."""
    from detpretrain.chapter import settings_frame

    target = target_spec(profile, dataset, data_root)
    pretrained = pretrain_configs(profile, with_detection=False)
    cfg_i, cfg_s = (eigen_config(profile, d, 0, target, pretrained, scratch_factor=scratch_factor)
                    for d in ("imagenet-cls", "scratch"))
    return settings_frame([
        ("profile", profile.name), ("target", target.describe()), ("detector", f"Faster R-CNN + FPN, {cfg_i.model.arch}"),
        ("I: epochs / lr steps after", f"{cfg_i.optim.epochs} / {', '.join(map(str, cfg_i.optim.milestones))}"),
        ("S: epochs / lr steps after", f"{cfg_s.optim.epochs} / {', '.join(map(str, cfg_s.optim.milestones))}"),
        ("layers", "layer1-layer4 (C2-C5) and FPN P2-P6"),
        ("threshold / normalisation", f"{threshold:g} / {normalisation}"),
        ("images per matrix", n_images), ("seeds", ", ".join(map(str, seeds))),
    ])
