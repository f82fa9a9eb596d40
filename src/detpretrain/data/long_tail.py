"""A long-tailed training split: some categories made rare (Vasconcelos et al. 2022, Section 5, "long-tail").

Vasconcelos et al. evaluate rare categories on LVIS, whose *rare* classes have 1-10 training images. Our targets
are balanced, so a long tail is made by subsampling: each *rare* class keeps at most ``max_images`` training images
that contain it. An image holding a rare class over its budget is dropped **whole**: dropping only the rare
objects' boxes would leave them in the image as unlabelled background, which teaches the detector to suppress them
(a different experiment). The frequent classes lose those images too; :func:`long_tail_counts` reports what is left.
The evaluation split is never touched, so rare-class AP is measured on as many test objects as before.

Which images survive is decided by a seeded permutation of the split (``seed``), visited in order: an image is kept
when every rare class in it is still under budget. The same spec always gives the same subset.

**Control: rare classes unseen in pre-training** (issue 18). In the embedded corpus every class of the VOC-like
target is also an IMAGENET-CLS class, so a frozen IMAGENET-CLS backbone has already been trained to separate the
"rare" classes: their rarity in the target is not rarity to the backbone. :func:`pretraining_exclusion` gives the
``CorpusSpec`` overrides of an IMAGENET-CLS corpus without them (``scope="category"``) or without their whole
super-categories (``scope="supercategory"``), for a control backbone pre-trained on it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from detpretrain.errors import ConfigError


def image_classes(dataset) -> list[set[int]]:
    """For each image of a detection reader (:class:`~detpretrain.data.voc.VOCDetection`, ``CocoDetection``), the
    set of labels (1..K) of its objects, ``difficult`` / ``iscrowd`` ones included; read from the annotations only
    (``load_target``), no image is decoded."""
    return [set(int(x) for x in dataset.load_target(i)["labels"].tolist()) for i in range(len(dataset))]


def rare_labels(classes: Sequence[str], rare: Sequence[str]) -> list[int]:
    """Labels (1..K) of the ``rare`` class names in ``classes`` (``["__background__", c1, ..., cK]``).

    Raises:
        ConfigError: a name that is not one of the classes (the message lists them), or background.
    """
    names = list(classes)[1:]
    unknown = [c for c in rare if c not in names]
    if unknown:
        raise ConfigError(f"long_tail: unknown rare class(es) {unknown}; the classes are {names}")
    return [names.index(c) + 1 for c in rare]


def long_tail_indices(labels_per_image: Sequence[set[int]], rare: Sequence[int], max_images: int,
                      seed: int = 0) -> list[int]:
    """Indices (ascending) of the images kept so that each label in ``rare`` occurs in at most ``max_images`` of them.

    Args:
        labels_per_image: per image, the set of labels it contains (:func:`image_classes`).
        rare: the labels to make rare.
        max_images: the budget of images per rare label (>= 0; LVIS's rare classes have 1-10).
        seed: the permutation in which images are visited (first come, first kept).

    Raises:
        ConfigError: a negative budget.
    """
    if max_images < 0:
        raise ConfigError(f"long_tail: max_images must be >= 0, got {max_images}")
    rare_set = set(int(r) for r in rare)
    used = dict.fromkeys(rare_set, 0)
    order = np.random.default_rng(seed).permutation(len(labels_per_image))
    kept = []
    for i in order.tolist():
        mine = labels_per_image[i] & rare_set
        if all(used[c] < max_images for c in mine):
            for c in mine:
                used[c] += 1
            kept.append(i)
    return sorted(kept)


def long_tail_counts(labels_per_image: Sequence[set[int]], indices: Sequence[int], num_labels: int) -> np.ndarray:
    """Images per label (index 0 unused) among ``indices``: int array [num_labels + 1]."""
    counts = np.zeros(num_labels + 1, dtype=int)
    for i in indices:
        for c in labels_per_image[i]:
            counts[c] += 1
    return counts


def alternate_rare_classes(classes: Sequence[str], labels_per_image: Sequence[set[int]],
                           fraction: float = 0.5) -> list[str]:
    """A default choice of rare classes: rank the classes by how many training images hold them and take every
    ``round(1 / fraction)``-th, starting with the second most frequent, so that rare and frequent classes span the
    same range of natural frequency (and object kinds) and the comparison is not confounded with it.

    Raises:
        ConfigError: ``fraction`` outside (0, 1].
    """
    if not 0 < fraction <= 1:
        raise ConfigError(f"long_tail: fraction must be in (0, 1], got {fraction}")
    names = list(classes)[1:]
    counts = long_tail_counts(labels_per_image, range(len(labels_per_image)), len(names))[1:]
    ranked = sorted(range(len(names)), key=lambda k: (-counts[k], names[k]))
    step = max(1, round(1 / fraction))
    return [names[k] for k in ranked[1::step]] if step > 1 else [names[k] for k in ranked]


class LongTailSubset(torch.utils.data.Subset):
    """The kept images of a detection reader, with its ``classes`` (and ``supercategories``) and the spec's report.

    Attributes:
        classes: the reader's class list (unchanged: rare classes are still predicted and evaluated).
        rare: the rare class names. images_per_class: ``{class: training images}`` after subsampling.
        full_images_per_class: the same before subsampling.
    """

    def __init__(self, dataset, spec: dict):
        rare = spec.get("rare")
        max_images = spec.get("max_images")
        if not rare or max_images is None:
            raise ConfigError(f"long_tail spec {spec} needs 'rare' (class names) and 'max_images'")
        per_image = image_classes(dataset)
        labels = rare_labels(dataset.classes, rare)
        indices = long_tail_indices(per_image, labels, int(max_images), int(spec.get("seed", 0)))
        super().__init__(dataset, indices)
        self.classes = list(dataset.classes)
        self.supercategories = getattr(dataset, "supercategories", None)
        self.rare = list(rare)
        k = len(self.classes) - 1
        names = self.classes[1:]
        self.images_per_class = dict(zip(names, long_tail_counts(per_image, indices, k)[1:].tolist()))
        self.full_images_per_class = dict(zip(names, long_tail_counts(per_image, range(len(dataset)), k)[1:].tolist()))

    def __repr__(self) -> str:
        return (f"LongTailSubset({len(self)} of {len(self.dataset)} images; rare {self.rare} with at most "
                f"{max(self.images_per_class[c] for c in self.rare)} images each)")


#: ``scope`` of :func:`pretraining_exclusion`
EXCLUSION_SCOPES = ("category", "supercategory")


def pretraining_exclusion(rare: Sequence[str], scope: str = "category") -> dict[str, tuple[str, ...]]:
    """``CorpusSpec`` overrides that keep the ``rare`` classes out of a synthetic pre-training corpus (the control of
    the frozen-backbone study: rare classes the classification pre-training never saw).

    Pass them to the corpus of the control's pre-training, e.g.
    ``synthetic_spec(profile, "imagenet_cls", **pretraining_exclusion(rare))`` (also honoured by the
    ``imagenet_loc`` and ``coco`` roles). Every other image of that corpus is drawn as before from the remaining
    classes; class-balanced roles cycle over them, so the corpus keeps its size.

    Args:
        rare: names of synthetic categories (:data:`~detpretrain.data.synthetic_taxonomy.TAXONOMY`), e.g. the
            ``rare`` of a :class:`LongTailSubset` of the VOC-like target.
        scope: ``"category"`` removes exactly the rare classes; ``"supercategory"`` every category of their
            super-categories (also their unlabelled siblings, so no near neighbour of a rare class is seen either).

    Returns:
        ``{"exclude_categories": (names, sorted)}``.

    Raises:
        ConfigError: an unknown scope, no rare class, a name that is not a synthetic category (real datasets have
            no generated pre-training corpus to remove it from), or a scope that leaves no category.
    """
    from detpretrain.data.synthetic_taxonomy import CATEGORY_BY_NAME, TAXONOMY

    if scope not in EXCLUSION_SCOPES:
        raise ConfigError(f"pretraining_exclusion: unknown scope {scope!r}; expected one of {EXCLUSION_SCOPES}")
    if isinstance(rare, str) or not rare:
        raise ConfigError(f"pretraining_exclusion: rare must name at least one class, got {rare!r}")
    unknown = [c for c in rare if c not in CATEGORY_BY_NAME]
    if unknown:
        raise ConfigError(f"pretraining_exclusion: {unknown} are not categories of the synthetic corpus (only its "
                          f"pre-training corpora can be regenerated without a class); categories: "
                          f"{[c.name for c in TAXONOMY]}")
    if scope == "category":
        names = set(rare)
    else:
        supers = {CATEGORY_BY_NAME[c].supercategory for c in rare}
        names = {c.name for c in TAXONOMY if c.supercategory in supers}
    if len(names) == len(TAXONOMY):
        raise ConfigError(f"pretraining_exclusion: scope {scope!r} of {sorted(rare)} removes every category")
    return {"exclude_categories": tuple(sorted(names))}
