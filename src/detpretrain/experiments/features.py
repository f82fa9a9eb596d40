"""Frozen-backbone features for the classification-transfer and feature-space chapters (Tables 5, 6; Figures 3, 6, 7).

Li et al. 2019 (Section 2.3, appendix 6.1) study the pre-trained networks *without* fine-tuning: average-pooled
Conv5 features of the IMAGENET-CLS and OPENIMAGES backbones under a linear classifier (Table 6), the layers of the
detection head of the OPENIMAGES detector (Table 5: Conv5, ConvProj blob and its average pools, FC1, FC2), and the
geometry of the Conv5 space (Figures 3, 6, 7). This module extracts those features and caches them in the run store.

Backbones (:func:`load_backbone`) are the pre-training runs of the other chapters (``imagenet-cls``, ``detection``,
``imagenet-loc``, ...; found in the store, trained through it if missing), torchvision's published weights where the
profile takes a backbone from them (:func:`published_weights`: the ``torchvision`` profile's ResNet-50 IMAGENET1K_V1
and COCO Faster R-CNN body, the ``paper`` profile's ResNet-101), and ``scratch``: a randomly initialised
backbone of the same architecture, one per seed, the reference point of features that learned nothing.

Conv5 is ``layer4`` of the torchvision ResNet, read with torchvision's feature-extraction utility
(``create_feature_extractor``) and average-pooled over positions: [N, C5]. Images are those of the classification
datasets (:func:`probe_datasets`) after the evaluation transforms (ImageNet mean/std normalisation; real images are
resized and centre-cropped to the profile's ``image_size``), which is what the detectors see too: their
``GeneralizedRCNNTransform`` normalises with the same statistics, and at ``min_size = image_size`` it does not resize
the square synthetic images.

The detection-head features (:func:`head_feature_sets`) feed each whole image as ONE RoI to the detector (the
paper's protocol for Table 5), through :func:`detpretrain.models.detection.head_features`: ConvProj is the RoI-aligned
FPN feature [C_fpn, 7, 7] of that box (our detector has an FPN; the paper's ConvProj is a 1x1 projection of Conv5 to
256 channels at 14 x 14; both are the last spatial blob before the fully connected layers), FC1 and FC2 the box head's
two fully connected layers (after ReLU).

Cache: ``<store>/features/<backbone id>/<key>.npz`` (written atomically), where the backbone id is the run's config
hash (``scratch-<model hash>-s<seed>`` for random backbones) and the key hashes the dataset description, the split,
the feature set and :data:`FEATURE_VERSION`. A re-execution loads instead of recomputing; deleting the folder is safe.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader, Dataset, Subset

from detpretrain.distributed import resolve_device
from detpretrain.errors import ConfigError, DataError

#: bump when the extraction changes what a cached array holds
FEATURE_VERSION = 1
#: synthetic classification targets (roles of :mod:`detpretrain.data.synthetic`) and the paper's dataset they stand for
SYNTHETIC_PROBE_DATASETS = {"caltech": "CALTECH-256", "sun": "SUN-397", "flowers": "OXFORD-102 FLOWERS"}
#: real classification datasets read from a data_root (torchvision's datasets and the other layouts of
#: :func:`detpretrain.data.classification.real_classification`), and the paper's name of each
REAL_PROBE_DATASETS = {"flowers102": "OXFORD-102 FLOWERS", "pet": "OXFORD-IIIT PET", "caltech256": "CALTECH-256",
                       "sun397": "SUN-397"}
#: Table 5's feature sets of the detection head, in the paper's order
HEAD_FEATURES = ("conv5", "convproj", "convproj_4x4", "convproj_2x2", "convproj_1x1", "fc1", "fc2")
#: the paper's names of :data:`HEAD_FEATURES` (with our shapes filled in by :func:`head_feature_names`)
HEAD_FEATURE_PAPER = {"conv5": "Conv5", "convproj": "ConvProj blob (256,14,14)", "convproj_4x4": "ConvProj blob (256,4,4)",
                      "convproj_2x2": "ConvProj blob (256,2,2)", "convproj_1x1": "ConvProj blob (256)",
                      "fc1": "FC1 (1024)", "fc2": "FC2 (1024)"}
#: share of a train split held out for choosing the probe's L2 strength when a dataset has no validation split
HELD_OUT_FRACTION = 0.2


@dataclasses.dataclass
class ProbeData:
    """A classification dataset's three splits for a linear probe, with provenance.

    ``train``/``val``/``test`` are map-style datasets yielding ``(image [3, S, S] normalised float, label int)``;
    ``val`` is carved from ``train`` (stratified, :data:`HELD_OUT_FRACTION`, fixed seed) when the dataset has no
    validation split (``val_from_train`` says so). ``key`` identifies the data for the feature cache.
    """

    name: str
    paper_name: str
    classes: list[str]
    train: Dataset
    val: Dataset
    test: Dataset
    describe: str
    key: str
    val_from_train: bool = False
    #: corpus root of a synthetic dataset (its ``annotations.json`` describes every image's objects), else None
    root: Path | None = None

    def split(self, name: str) -> Dataset:
        return {"train": self.train, "val": self.val, "test": self.test}[name]


def _targets(dataset) -> list[int]:
    if isinstance(dataset, Subset):
        base = _targets(dataset.dataset)
        return [base[i] for i in dataset.indices]
    for attr in ("targets", "labels"):
        if hasattr(dataset, attr):
            return [int(t) for t in getattr(dataset, attr)]
    return [int(dataset[i][1]) for i in range(len(dataset))]


def _image_path(dataset, i: int) -> Path:
    """Path of image ``i`` of a reader or of a ``Subset`` of one."""
    if isinstance(dataset, Subset):
        return _image_path(dataset.dataset, dataset.indices[i])
    return Path(dataset.image_path(i))


def held_out_split(dataset: Dataset, fraction: float = HELD_OUT_FRACTION, seed: int = 0) -> tuple[Subset, Subset]:
    """Stratified ``(train, val)`` subsets of ``dataset`` (scikit-learn ``train_test_split``), for datasets that ship
    only train / test (Oxford-IIIT Pet): Kornblith et al. 2019 choose the L2 strength on such a held-out part.
    The held-out part holds at least one image per class (more than ``fraction`` of a very small dataset).

    Raises:
        DataError: a class with fewer than 2 images (it cannot be on both sides).
    """
    from sklearn.model_selection import train_test_split

    targets = np.asarray(_targets(dataset))
    counts = np.bincount(targets)
    if (counts[counts > 0] < 2).any():
        raise DataError(getattr(dataset, "root", "dataset"),
                        f"class {int(np.flatnonzero((counts > 0) & (counts < 2))[0])} has a single image; a held-out "
                        "validation part needs at least 2 per class")
    idx = np.arange(len(targets))
    n_classes = int((counts > 0).sum())
    size = fraction if np.ceil(fraction * len(idx)) >= n_classes else n_classes  # at least one image per class
    tr, va = train_test_split(idx, test_size=size, random_state=seed, stratify=targets)
    return Subset(dataset, sorted(tr.tolist())), Subset(dataset, sorted(va.tolist()))


def _digest(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def probe_datasets(profile, dataset: str = "caltech", data_root: str | None = None, *, data_cache=None,
                   corpus: dict | None = None, download: bool = False) -> ProbeData:
    """The train / val / test splits of a classification dataset for the probes and the feature-space figures.

    Args:
        profile: a :class:`~detpretrain.profiles.Profile` or its name (fixes the synthetic corpus and, for real
            images, the input size ``real_model.image_size`` in pixels).
        dataset: a synthetic role (:data:`SYNTHETIC_PROBE_DATASETS`: ``caltech``, ``sun``, ``flowers``; splits
            train / val / test of the embedded corpus) or a real dataset (:data:`REAL_PROBE_DATASETS`) read by
            :func:`detpretrain.data.classification.real_classification`: ``flowers102`` (torchvision ``Flowers102``,
            official train / val / test; or the Udacity class folders ``{train,valid,test}/<class>/``), ``pet``
            (torchvision ``OxfordIIITPet``, or the archives extracted by hand: ``images/``, ``annotations/``),
            ``caltech256`` and ``sun397`` (torchvision ``Caltech256`` / ``SUN397``, train / test drawn per class:
            :data:`~detpretrain.data.classification.DRAWN_SPLITS`). Where a dataset has no validation split, the
            probe's validation part is held out of train (:func:`held_out_split`).
        data_root: root of a real dataset.
        data_cache: the corpus cache of the synthetic datasets (default ``corpus_cache_dir()``).
        corpus: the corpus variant of a synthetic dataset (:func:`detpretrain.experiments.common.corpus_overrides`;
            ``{"cue": "distributed"}``, ``{"sun_backgrounds": "shared"}``); default the default corpus.
        download: a real dataset missing from ``data_root`` is fetched by torchvision (internet needed); otherwise
            it is an error.

    Raises:
        ConfigError: unknown dataset, a real one without ``data_root``, or a corpus variant for a real one.
        DataError: a missing / malformed root (from the readers).
    """
    from detpretrain.data.builders import (
        build_classification_dataset,
        classification_transforms,
        corpus_root,
    )
    from detpretrain.data.classification import real_classification, real_classification_splits
    from detpretrain.experiments.common import is_default_corpus, synthetic_spec
    from detpretrain.profiles import get_profile

    prof = get_profile(profile) if isinstance(profile, str) else profile
    if dataset in SYNTHETIC_PROBE_DATASETS:
        spec = synthetic_spec(prof.name, dataset, corpus=corpus)
        splits = {s: build_classification_dataset(spec, s, train=False, size=None, cache=data_cache)
                  for s in ("train", "val", "test")}
        root = corpus_root(spec, data_cache)
        return ProbeData(dataset, SYNTHETIC_PROBE_DATASETS[dataset], list(splits["train"].classes), splits["train"],
                         splits["val"], splits["test"], f"synthetic {dataset} ({root.name})",
                         _digest(["synthetic", spec.corpus]), root=root)
    if dataset not in REAL_PROBE_DATASETS:
        raise ConfigError(f"unknown classification dataset {dataset!r}; expected one of "
                          f"{', '.join([*SYNTHETIC_PROBE_DATASETS, *REAL_PROBE_DATASETS])}")
    if not data_root:
        raise ConfigError(f"dataset {dataset!r} needs a data_root")
    if not is_default_corpus(corpus):
        raise ConfigError(f"corpus variant {corpus} applies to the synthetic datasets, not to {dataset!r}")
    root = Path(data_root).expanduser().resolve()
    if not root.exists() and not download:
        raise DataError(root, "data_root does not exist (pass download=True to fetch the dataset there)")
    size = prof.real_model.image_size
    tf = classification_transforms(False, size)
    names = real_classification_splits(dataset, root, download)
    train = real_classification(dataset, root, names["train"], transforms=tf, download=download)
    test = real_classification(dataset, root, names["test"], transforms=tf)
    if names["val"] is not None:
        val, from_train = real_classification(dataset, root, names["val"], transforms=tf), False
    else:
        (train, val), from_train = held_out_split(train), True
    classes = list(test.classes)
    layout = {"ClassFolder": "class folders", "OxfordPet": "Pet list files"}.get(type(test).__name__, "torchvision")
    return ProbeData(dataset, REAL_PROBE_DATASETS[dataset], classes, train, val, test,
                     f"{dataset} {root.name} ({layout}, {size} px)", _digest([dataset, str(root), size]),
                     val_from_train=from_train)


def plan_features(profile, pretrains, removed=None, corpus: dict | None = None) -> list:
    """The pre-training runs that the features of backbones ``pretrains`` read, dependencies first (what
    :func:`pretrain_run` / :func:`load_backbone` train when missing): ``scratch`` and torchvision weights need none.

    Raises:
        ConfigError: an unknown pre-training.
    """
    from detpretrain.experiments.common import REMOVED_SUPERCATEGORIES, pretrain_order, pretrained_for
    from detpretrain.profiles import get_profile

    prof = get_profile(profile) if isinstance(profile, str) else profile
    pretrained = pretrained_for(prof, tuple(pretrains), tuple(removed or REMOVED_SUPERCATEGORIES), corpus=corpus)
    unknown = [p for p in pretrains if p != "scratch" and p not in pretrained]
    if unknown:
        raise ConfigError(f"unknown pre-training {unknown[0]!r}; expected scratch or one of {sorted(pretrained)}")
    return [pretrained[name] for name in pretrain_order(pretrains, pretrained)]


def replicate_pairs(a: str, b: str, replicates: int = 1) -> list[tuple[str, str]]:
    """The backbone pairs of a two-space comparison over pre-training replicates: ``(a@rK, b@rK)`` for K < ``replicates``
    (:func:`~detpretrain.experiments.common.replicate_key`; replicate 0 is the plain name). ``scratch`` has no
    pre-training replicates and stays ``scratch`` in every pair (its random backbone is a seed). Used by the primary
    claims of Figure 7 (feature space) and Figure 4 (activation maps), Li et al. 2019, Appendix 6."""
    from detpretrain.experiments.common import replicate_key

    def key(name: str, r: int) -> str:
        return name if name == "scratch" else replicate_key(name, r)

    return [(key(a, r), key(b, r)) for r in range(max(1, int(replicates)))]


def published_weights(pretrain: str, profile) -> str | None:
    """The torchvision weight enum name that backbone ``pretrain`` is taken from at ``profile`` (``torchvision``:
    IMAGENET-CLS and detection; ``paper``: IMAGENET-CLS), or None where it is a run of ours, ``scratch`` or unknown
    (:attr:`~detpretrain.profiles.Profile.published`)."""
    from detpretrain.profiles import get_profile

    prof = get_profile(profile) if isinstance(profile, str) else profile
    return prof.published.get(pretrain)


def pretrain_run(pretrain: str, profile, *, store=None, device="auto", removed=None, progress: bool = False,
                 log=print, corpus: dict | None = None):
    """The pre-training config and complete run of backbone ``pretrain`` (trained through the store if missing,
    dependencies first: :func:`detpretrain.experiments.common.ensure_pretrained`).

    Returns:
        ``(TrainConfig, Run)``.

    Raises:
        ConfigError: unknown pre-training, or one the profile takes from torchvision weights (there is no run: read
            its features with :func:`load_backbone` / :func:`detector_head_features`, which load the weights).
    """
    from detpretrain.experiments.common import REMOVED_SUPERCATEGORIES, ensure_pretrained, pretrained_for
    from detpretrain.profiles import get_profile
    from detpretrain.runs import RunStore

    prof = get_profile(profile) if isinstance(profile, str) else profile
    weights = published_weights(pretrain, prof)
    if weights is not None:
        raise ConfigError(f"profile {prof.name!r} takes {pretrain} from torchvision weights ({weights}); there is no "
                          "run (load_backbone and detector_head_features load the weights)")
    pretrained = pretrained_for(prof, (pretrain,), tuple(removed or REMOVED_SUPERCATEGORIES), corpus=corpus)
    if pretrain not in pretrained:
        raise ConfigError(f"unknown pre-training {pretrain!r}; expected scratch or one of {sorted(pretrained)}")
    runs = ensure_pretrained((pretrain,), pretrained, store or RunStore(), device=resolve_device(device).type,
                             progress=progress, log=log)
    return pretrained[pretrain], runs[pretrain]


def load_backbone(pretrain: str, profile, *, store=None, seed: int = 0, device: str = "auto", removed=None,
                  progress: bool = False, log=print, corpus: dict | None = None):
    """A pre-trained (or random, ``scratch``) ResNet backbone in eval mode and the id of its source.

    Args:
        pretrain: ``scratch`` or a pre-training key of :func:`detpretrain.experiments.common.pretrain_configs` /
            :func:`~detpretrain.experiments.common.loc_pretrain_configs` (``imagenet-cls``, ``detection``, ``imagenet-loc``,
            ...). Its run is found in the store, or trained through it (dependencies first).
        seed: for ``scratch`` only, the seed of the random initialisation (torchvision's ResNet init).
        corpus: the corpus variant the pre-training ran on (a variant backbone is another run).

    Returns:
        ``(resnet, source_id, run)``: the ``torchvision.models.ResNet`` (Conv5 = ``layer4``), the cache id (run hash,
        ``scratch-<model hash>-s<seed>``, or ``torchvision-<weights>`` for a backbone the profile takes from
        published weights: :func:`published_weights`, loaded by torchvision from its cache or the internet) and the
        pre-training :class:`~detpretrain.runs.Run` (None for scratch and published weights).

    Raises:
        ConfigError: unknown pre-training, or published weights torchvision does not know.
    """
    from detpretrain.models.backbones import build_backbone
    from detpretrain.profiles import get_profile

    prof = get_profile(profile) if isinstance(profile, str) else profile
    spec = prof.model
    device = resolve_device(device)
    if pretrain == "scratch":
        with torch.random.fork_rng(devices=[]):  # seeded init without touching the caller's RNG state
            torch.manual_seed(seed)
            model = build_backbone(spec.arch, norm=spec.norm, widths=spec.widths)
        source = f"scratch-{_digest([spec.arch, spec.norm, spec.widths])[:8]}-s{seed}"
        return model.eval().to(device), source, None
    weights = published_weights(pretrain, prof)
    if weights is not None:  # torchvision's published backbone (a detector's ResNet body for detection weights)
        model = build_backbone(spec.arch, norm=spec.norm, widths=spec.widths, weights=weights)
        return model.eval().to(device), published_source(weights), None
    _, run = pretrain_run(pretrain, prof, store=store, device=device, removed=removed, progress=progress, log=log,
                          corpus=corpus)
    model = build_backbone(spec.arch, norm=spec.norm, widths=spec.widths, weights=run.verified("backbone.pt"))
    return model.eval().to(device), run.hash, run


def _loader(dataset: Dataset, batch_size: int) -> DataLoader:
    return DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=0)


@torch.no_grad()
def conv5_features(backbone: torch.nn.Module, dataset: Dataset, *, device: str = "auto",
                   batch_size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Average-pooled Conv5 (``layer4``) features of every image of ``dataset`` (Table 6, Figures 3, 6, 7).

    Args:
        backbone: a torchvision ResNet (or anything with ``layer4``), used in eval mode.
        dataset: yields ``(normalised image [3, H, W], label)``.

    Returns:
        ``(features [N, C5] float32, labels [N] int64)`` in dataset order.
    """
    from torchvision.models.feature_extraction import create_feature_extractor

    device = resolve_device(device)
    extractor = create_feature_extractor(backbone.eval(), return_nodes={"layer4": "conv5"})
    feats, labels = [], []
    for images, targets in _loader(dataset, batch_size):
        conv5 = extractor(images.to(device))["conv5"]
        feats.append(conv5.mean(dim=(2, 3)).float().cpu())
        labels.append(torch.as_tensor(targets))
    if not feats:
        raise DataError(getattr(dataset, "root", "dataset"), "no images to extract features from")
    return torch.cat(feats).numpy(), torch.cat(labels).numpy().astype(np.int64)


def _denormalise(images: torch.Tensor) -> list[torch.Tensor]:
    from detpretrain.data.builders import IMAGENET_MEAN, IMAGENET_STD

    mean = torch.tensor(IMAGENET_MEAN, device=images.device)[:, None, None]
    std = torch.tensor(IMAGENET_STD, device=images.device)[:, None, None]
    return [(img * std + mean).clamp(0, 1) for img in images]


@torch.no_grad()
def head_feature_sets(detector, dataset: Dataset, *, device: str = "auto", batch_size: int = 32,
                      level: str | None = None) -> dict:
    """Table 5: the detection head's features of every image, the whole image fed as one RoI.

    The dataset's normalised images are mapped back to [0, 1] (the detector normalises them itself) and passed to
    :func:`detpretrain.models.detection.head_features` with its default whole-image box; ``level`` (an FPN key,
    ``"3"`` = P5) pools that box from one level instead of the one ``MultiScaleRoIAlign`` picks by its size.

    Returns:
        ``{name: [N, D] float32 for name in HEAD_FEATURES, "labels": [N] int64}``: ``conv5`` average-pooled [C5];
        ``convproj`` the RoI blob flattened [C_fpn * 7 * 7]; ``convproj_4x4`` / ``_2x2`` / ``_1x1`` its adaptive
        average pools (``torch.nn.functional.adaptive_avg_pool2d``) flattened; ``fc1``, ``fc2`` [representation].
    """
    import torch.nn.functional as F

    from detpretrain.models.detection import head_features

    out: dict[str, list] = {k: [] for k in (*HEAD_FEATURES, "labels")}
    device = resolve_device(device)
    detector = detector.eval().to(device)
    for images, targets in _loader(dataset, batch_size):
        f = head_features(detector, _denormalise(images.to(device)), level=level)
        blob = f["convproj"]
        out["conv5"].append(f["conv5"].mean(dim=(2, 3)))
        out["convproj"].append(blob.flatten(1))
        for s in (4, 2, 1):
            out[f"convproj_{s}x{s}"].append(F.adaptive_avg_pool2d(blob, s).flatten(1))
        out["fc1"].append(f["fc1"])
        out["fc2"].append(f["fc2"])
        out["labels"].append(torch.as_tensor(targets))
    if not out["labels"]:
        raise DataError(getattr(dataset, "root", "dataset"), "no images to extract features from")
    arrays = {k: torch.cat(v).float().cpu().numpy() for k, v in out.items() if k != "labels"}
    arrays["labels"] = torch.cat(out["labels"]).numpy().astype(np.int64)
    return arrays


def head_feature_names(arrays: dict) -> dict[str, str]:
    """Our names for Table 5's rows with the dimensions we actually have, e.g. ``ConvProj blob (64,7,7)``."""
    spatial = 7
    c = arrays["convproj"].shape[1] // (spatial * spatial)
    return {"conv5": f"Conv5 ({arrays['conv5'].shape[1]}, avg-pooled)", "convproj": f"ConvProj blob ({c},7,7)",
            "convproj_4x4": f"ConvProj blob ({c},4,4)", "convproj_2x2": f"ConvProj blob ({c},2,2)",
            "convproj_1x1": f"ConvProj blob ({c})", "fc1": f"FC1 ({arrays['fc1'].shape[1]})",
            "fc2": f"FC2 ({arrays['fc2'].shape[1]})"}


def feature_cache_path(store, source_id: str, data_key: str, split: str, feature_set: str) -> Path:
    """``<store>/features/<source_id>/<feature_set>-<split>-<hash>.npz`` (module docstring)."""
    root = Path(getattr(store, "root", store))
    key = _digest([data_key, split, feature_set, FEATURE_VERSION])
    return root / "features" / source_id / f"{feature_set}-{split}-{key}.npz"


def cached_arrays(path: Path, compute: Callable[[], dict]) -> dict[str, np.ndarray]:
    """Load ``path`` (``.npz``) if it exists, else ``compute()`` and write it atomically (temp file + rename).

    A corrupt cache file is recomputed and replaced, not trusted.
    """
    from detpretrain.io import atomic_write_bytes

    if path.is_file():
        try:
            with np.load(path) as data:
                return {k: data[k] for k in data.files}
        except (OSError, ValueError, EOFError):
            path.unlink(missing_ok=True)
    arrays = compute()
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    atomic_write_bytes(path, buffer.getvalue())
    return arrays


def backbone_features(pretrain: str, data: ProbeData, profile, *, store=None, seed: int = 0, device: str = "auto",
                      splits=("train", "val", "test"), removed=None, log=print, corpus: dict | None = None) -> dict:
    """Cached Conv5 features of ``data``'s splits under backbone ``pretrain`` (Table 6, Figures 3, 6, 7), pre-trained
    on the ``corpus`` variant.

    Returns:
        ``{"source": id, "run": Run or None, split: {"features": [N, C5], "labels": [N]} for each split}``.
    """
    from detpretrain.runs import RunStore

    store = store or RunStore()
    backbone, source, run = load_backbone(pretrain, profile, store=store, seed=seed, device=device, removed=removed,
                                          log=log, corpus=corpus)
    out: dict = {"source": source, "run": run}
    for split in splits:
        path = feature_cache_path(store, source, data.key, split, "conv5")

        def compute(split=split):
            x, y = conv5_features(backbone, data.split(split), device=device)
            return {"features": x, "labels": y}

        out[split] = cached_arrays(path, compute)
    return out


def stacked_features(pretrain: str, data: ProbeData, profile, *, store=None, seed: int = 0, device: str = "auto",
                     splits=("train", "val", "test"), removed=None, log=print, corpus: dict | None = None) -> dict:
    """:func:`backbone_features` of ``splits`` stacked in that order (the feature-space chapter fits nothing on labels,
    so it takes every image).

    Returns:
        ``{"features": [N, C5], "labels": [N], "source": backbone id}``.
    """
    arrays = backbone_features(pretrain, data, profile, store=store, seed=seed, device=device, splits=splits,
                               removed=removed, log=log, corpus=corpus)
    return {"features": np.concatenate([arrays[s]["features"] for s in splits]),
            "labels": np.concatenate([arrays[s]["labels"] for s in splits]), "source": arrays["source"]}


def split_attributes(data: ProbeData, splits=("train", "val", "test")) -> pd.DataFrame:
    """:func:`image_attributes` of ``splits`` stacked in that order, with a ``split`` column (the rows of
    :func:`stacked_features`)."""
    return pd.concat([image_attributes(data, s).assign(split=s) for s in splits], ignore_index=True)


def stacked_images(data: ProbeData, attributes: pd.DataFrame, indices) -> list[np.ndarray]:
    """:func:`images_for_display` of images given by their row in :func:`split_attributes` (the stacked order)."""
    split_of = attributes["split"].to_numpy()
    offsets = {s: int(np.flatnonzero(split_of == s)[0]) for s in dict.fromkeys(split_of)}
    return [images_for_display(data, split_of[k], [int(k) - offsets[split_of[k]]])[0] for k in indices]


def published_source(weights: str) -> str:
    """The feature-cache id of published torchvision weights: ``torchvision-<enum name>``."""
    return f"torchvision-{weights}"


def published_detector(weights: str, *, min_size: int | None = None, max_size: int | None = None) -> torch.nn.Module:
    """torchvision's detector with published weights ``weights`` (e.g. ``FasterRCNN_ResNet50_FPN_Weights.COCO_V1``
    -> ``fasterrcnn_resnet50_fpn`` with its COCO weights: backbone, FPN, RPN and box head as published), in eval mode.

    Args:
        min_size, max_size: the input resize of its ``GeneralizedRCNNTransform`` in pixels (shorter side, cap on the
            longer); None keeps torchvision's (800, 1333).

    Raises:
        ConfigError: ``weights`` is not a torchvision detector weight enum.
    """
    from torchvision import models

    builder = weights.partition(".")[0].removesuffix("_Weights").lower()
    if builder not in models.list_models(module=models.detection):
        raise ConfigError(f"{weights!r} is not a torchvision detector's weights (detectors: "
                          f"{', '.join(models.list_models(module=models.detection))})")
    sizes = {k: v for k, v in (("min_size", min_size), ("max_size", max_size)) if v is not None}
    try:
        return models.get_model(builder, weights=models.get_weight(weights), **sizes).eval()
    except (ValueError, KeyError, AttributeError, TypeError) as err:  # TypeError: a builder without min/max_size
        raise ConfigError(f"unknown torchvision weights {weights!r} or sizes {sizes} ({err})") from None


def detector_head_features(pretrain: str, data: ProbeData, profile, *, store=None, device: str = "auto",
                           splits=("train", "val", "test"), removed=None, level: str | None = None,
                           log=print, corpus: dict | None = None) -> dict:
    """Cached Table 5 features of ``data``'s splits from the detector of pre-training run ``pretrain``
    (``level``: pool the whole-image RoI from that FPN level, :func:`head_feature_sets`; cached apart).

    The detector is the pre-training run's own model (``model.pt``: backbone, FPN, RPN and box head as pre-trained,
    :func:`detpretrain.runs.load_run_model`), or, where the profile takes the detection pre-training from published
    weights (``torchvision``: ``FasterRCNN_ResNet50_FPN_Weights.COCO_V1``), that whole published detector
    (:func:`published_detector`; its head is the COCO detector's, as the paper probes the OPENIMAGES detector's),
    at the profile's detection input size (``real_model.min_size`` / ``max_size``: 600 / 1000 px at ``torchvision``,
    the size its fine-tunings see; torchvision's 800 / 1333 would cost 1.8x the pixels of every image).

    Returns:
        ``{"source", "run" (None for published weights), "names": {feature: row label}, split: {feature: [N, D],
        "labels": [N]}}``.

    Raises:
        ConfigError: ``pretrain`` is not a detection pre-training (its run is a classifier).
    """
    from detpretrain.experiments.common import REMOVED_SUPERCATEGORIES, pretrained_for
    from detpretrain.profiles import get_profile
    from detpretrain.runs import RunStore, load_run_model

    prof = get_profile(profile) if isinstance(profile, str) else profile
    store = store or RunStore()
    device = resolve_device(device)
    weights = prof.detection_weights if pretrain == "detection" else None
    feature_set = "head" if level is None else f"head-{level}"
    if weights is not None:
        size = prof.real_model
        detector = published_detector(weights, min_size=size.min_size, max_size=size.max_size).to(device)
        source, run = published_source(weights), None
        feature_set += f"-{size.min_size}-{size.max_size}px"  # cached per input size
    else:
        cfg = pretrained_for(prof, (pretrain,), tuple(removed or REMOVED_SUPERCATEGORIES), corpus=corpus).get(pretrain)
        if cfg is None or cfg.task != "detection":
            raise ConfigError(f"{pretrain!r} is not a detection pre-training; Table 5 reads a detector's head")
        _, run = pretrain_run(pretrain, prof, store=store, device=device, removed=removed, log=log, corpus=corpus)
        detector, _, _ = load_run_model(run, device=device)
        source = run.hash
    out: dict = {"source": source, "run": run}
    for split in splits:
        path = feature_cache_path(store, source, data.key, split, feature_set)
        out[split] = cached_arrays(path, lambda split=split: head_feature_sets(detector, data.split(split),
                                                                               device=device, level=level))
    out["names"] = head_feature_names(out[splits[0]])
    return out


def corpus_annotations(root) -> tuple[dict[str, dict], dict[int, list[dict]]]:
    """``annotations.json`` of a synthetic ImageFolder corpus as ``({file_name: image record}, {image id:
    [annotation]})``.

    Raises:
        DataError: the file is missing or not JSON with ``images`` and ``annotations``.
    """
    path = Path(root) / "annotations.json"
    try:
        coco = json.loads(path.read_text(encoding="utf-8"))
        images = {img["file_name"]: img for img in coco["images"]}
        anns: dict[int, list[dict]] = {}
        for a in coco["annotations"]:
            anns.setdefault(a["image_id"], []).append(a)
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise DataError(path, f"not a readable annotations.json ({type(err).__name__}: {err})") from err
    return images, anns


def image_attributes(data: ProbeData, split: str) -> pd.DataFrame:
    """What each image of a synthetic split shows, in dataset order (Figure 3: do nearest pairs match in size?).

    Read from the corpus's ``annotations.json`` (module :mod:`detpretrain.data.synthetic`).

    Returns:
        one row per image: ``file_name``, ``label``, ``scene``, ``n_objects`` (annotated instances),
        ``area_fraction`` (the largest instance's visible box area over the image area, 0-1) and ``log_area``
        (its natural log), ``aspect`` (log of that box's width / height).

    A real dataset (``data.root`` None) annotates no objects here: its rows hold the file name and the class name,
    ``scene`` None and NaN for the object attributes (so Figure 3's size comparison is empty, not invented).

    Raises:
        DataError: an image of the split is missing from ``annotations.json``.
    """
    if data.root is None:
        dataset = data.split(split)
        targets = _targets(dataset)
        nan = float("nan")
        return pd.DataFrame([{"file_name": _image_path(dataset, i).name, "label": data.classes[targets[i]],
                              "scene": None, "n_objects": nan, "area_fraction": nan, "log_area": nan, "aspect": nan}
                             for i in range(len(dataset))])
    ann_path = Path(data.root) / "annotations.json"
    by_name, anns = corpus_annotations(data.root)
    boxes = {iid: [a["bbox"] for a in found] for iid, found in anns.items()}
    dataset = data.split(split)
    rows = []
    for i in range(len(dataset)):
        path = Path(dataset.image_path(i))
        name = path.relative_to(Path(data.root)).as_posix()
        if name not in by_name:
            raise DataError(ann_path, f"image {name} is not listed")
        img = by_name[name]
        own = boxes.get(img["id"], [])
        w, h = max(own, key=lambda b: b[2] * b[3])[2:] if own else (float("nan"), float("nan"))
        frac = w * h / (img["width"] * img["height"])
        rows.append({"file_name": name, "label": img.get("label"), "scene": img.get("scene"), "n_objects": len(own),
                     "area_fraction": frac, "log_area": float(np.log(frac)) if own else float("nan"),
                     "aspect": float(np.log(w / h)) if own else float("nan")})
    return pd.DataFrame(rows)


def images_for_display(data: ProbeData, split: str, indices) -> list[np.ndarray]:
    """Images ``indices`` of a split as [H, W, 3] float arrays in [0, 1] for plotting (normalisation undone)."""
    dataset = data.split(split)
    return [_denormalise(dataset[int(i)][0][None])[0].permute(1, 2, 0).numpy() for i in indices]
