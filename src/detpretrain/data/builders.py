"""From a :class:`~detpretrain.config.DataSpec` to a dataset with the right transforms.

One function per task: :func:`build_detection_dataset` (VOC / COCO readers; the synthetic corpus is written in the
same layouts, so it goes through the same readers), :func:`build_classification_dataset` (class folders) and
:func:`build_segmentation_dataset` (VOC ``SegmentationClass`` PNGs, or COCO instances converted to VOC's classes).
Transforms are torchvision ``transforms.v2``; boxes travel as ``tv_tensors.BoundingBoxes`` so a horizontal flip
moves them with the image.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torchvision import tv_tensors
from torchvision.transforms import v2

from detpretrain.config import DataSpec
from detpretrain.errors import ConfigError, DataError

#: torchvision's ImageNet statistics; the detector's ``GeneralizedRCNNTransform`` uses the same ones internally.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def corpus_cache_dir() -> Path:
    """The user-level default of where generated corpora live: ``$DETPRETRAIN_DATA`` or ``data/generated``
    (git-ignored). Code that knows its cache passes it explicitly (``cache=`` below, ``RunStore.data_cache``)."""
    return Path(os.environ.get("DETPRETRAIN_DATA", "data/generated"))


def generate_command(profile: str, *, out: str | None = None, seed: int = 0) -> int:
    """``python -m detpretrain data generate``: write (or find cached) every synthetic corpus of a profile and print
    one line per corpus (role, folder, seconds)."""
    import time

    from detpretrain.data import synthetic

    cache = Path(out) if out else corpus_cache_dir()
    for role, spec in synthetic.profile_specs(profile, seed=seed).items():
        t0 = time.perf_counter()
        path = synthetic.generate(spec, cache)
        print(f"{role:<14} {path}  ({time.perf_counter() - t0:.1f} s)")
    return 0


def corpus_root(spec: DataSpec, cache: str | os.PathLike | None = None) -> Path:
    """The on-disk root of a data spec; generates the synthetic corpus on first use (cached by its spec).

    Args:
        cache: the corpus cache folder of a synthetic spec; None means :func:`corpus_cache_dir`.
    """
    if spec.kind != "synthetic":
        root = Path(spec.root).expanduser()
        if not root.exists():
            raise DataError(root, "data_root does not exist")
        return root
    from detpretrain.data import synthetic

    cache = cache if cache is not None else corpus_cache_dir()
    return Path(synthetic.generate(synthetic.CorpusSpec(**spec.corpus), cache))


def detection_transforms(train: bool, hflip: bool = True) -> v2.Compose:
    """uint8 image + target -> float image in [0, 1] (+ random horizontal flip for training)."""
    ops = [v2.RandomHorizontalFlip(0.5)] if (train and hflip) else []
    return v2.Compose([*ops, v2.ToDtype(torch.float32, scale=True)])


def classification_transforms(train: bool, size: int | None, hflip: bool = True):
    """uint8 image -> normalised float [3, size, size]; ``size=None`` keeps the image size (synthetic corpora).

    Training on real images uses ``RandomResizedCrop`` (the standard ImageNet recipe); evaluation resizes the short
    side to ``size / 0.875`` and centre-crops ``size``. Without resizing the chain is :class:`FlipToFloatNormalize`
    (the same v2 kernels and random draws without v2's per-call dispatch).
    """
    if size is None:
        return FlipToFloatNormalize(hflip=train and hflip)
    ops: list = [v2.RandomResizedCrop(size, antialias=True)] if train else [
        v2.Resize(int(round(size / 0.875)), antialias=True), v2.CenterCrop(size)]
    if train and hflip:
        ops.append(v2.RandomHorizontalFlip(0.5))
    ops += [v2.ToDtype(torch.float32, scale=True), v2.Normalize(IMAGENET_MEAN, IMAGENET_STD)]
    return v2.Compose(ops)


class FlipToFloatNormalize:
    """``v2.Compose([v2.RandomHorizontalFlip(0.5)] if hflip else [] + [v2.ToDtype(torch.float32, scale=True),
    v2.Normalize(IMAGENET_MEAN, IMAGENET_STD)])`` for one image, computed with the same ``v2.functional`` kernels and
    the same random draw (``torch.rand(1) < 0.5`` flips), so the values are identical; v2's dispatch over input
    types cost twice the JPEG decoding per synthetic image (``benchmarks/README.md``)."""

    def __init__(self, hflip: bool):
        self.hflip = hflip

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        from torchvision.transforms.v2 import functional as TF

        image = image.as_subclass(torch.Tensor)
        if self.hflip and not torch.rand(1) >= 0.5:
            image = TF.horizontal_flip_image(image)
        return TF.normalize_image(TF.to_dtype_image(image, torch.float32, scale=True), list(IMAGENET_MEAN),
                                  list(IMAGENET_STD))

    def __repr__(self) -> str:
        return f"FlipToFloatNormalize(hflip={self.hflip})"


class KeptDecoded:
    """An image loader that keeps what it decoded (path -> uint8 tensor) up to ``budget_mb`` in memory, so that a
    synthetic corpus is decoded once per run instead of once per epoch; beyond the budget it decodes again."""

    def __init__(self, loader, budget_mb: float = 512):
        self.loader, self.budget = loader, budget_mb * 2**20
        self.images: dict[str, torch.Tensor] = {}
        self.nbytes = 0

    def __call__(self, path):
        key = str(path)
        image = self.images.get(key)
        if image is None:
            image = self.loader(path)
            if self.nbytes + image.nbytes <= self.budget:
                self.images[key] = image
                self.nbytes += image.nbytes
        return image


def build_detection_dataset(spec: DataSpec, split: str, *, train: bool, hflip: bool = True, with_masks: bool = False,
                            cache: str | os.PathLike | None = None):
    """A detection dataset (VOC or COCO reader) for ``split`` of ``spec``.

    Synthetic corpora of role ``"voc"`` are in VOC layout, the others (``"coco"``, ``"imagenet_loc"``) in COCO
    layout. Real COCO roots hold ``annotations/instances_<split>.json`` and ``<split>/``. ``cache``: the corpus
    cache of a synthetic spec (:func:`corpus_root`).

    Raises:
        DataError: missing root, split or annotation file (from the readers).
    """
    from detpretrain.data.coco import CocoDetection
    from detpretrain.data.voc import VOCDetection

    root = corpus_root(spec, cache)
    tf = detection_transforms(train, hflip)
    layout = spec.kind
    if spec.kind == "synthetic":
        layout = "voc" if spec.corpus["role"] == "voc" else "coco"
    if layout == "voc":
        parts = []
        for part in split.split("+"):  # "2007:trainval+2012:trainval" = VOC 07+12 (the paper's training set)
            year, _, image_set = part.rpartition(":")
            parts.append(VOCDetection(root, image_set=image_set, year=year or spec.year, with_masks=with_masks,
                                      transforms=tf))
        return parts[0] if len(parts) == 1 else ConcatDetection(parts)
    if layout == "coco":
        ann = root / "annotations" / f"instances_{split}.json"
        return CocoDetection(root / split, ann, with_masks=with_masks, transforms=tf, strict=spec.strict_boxes)
    raise DataError(root, f"data kind {spec.kind!r} is not a detection format (voc or coco)")


def dropped_annotations(dataset) -> int:
    """How many degenerate annotations the readers under ``dataset`` left out (``CocoDetection.dropped``), looking
    through ``ConcatDataset`` parts and ``Subset``-style wrappers; 0 for readers that drop nothing."""
    if hasattr(dataset, "dropped"):
        return len(dataset.dropped)
    if hasattr(dataset, "datasets"):
        return sum(dropped_annotations(d) for d in dataset.datasets)
    inner = getattr(dataset, "dataset", None)
    return dropped_annotations(inner) if inner is not None else 0


class ConcatDetection(torch.utils.data.ConcatDataset):
    """Several detection datasets with the same classes as one (e.g. VOC 2007 + 2012 trainval).

    Raises:
        DataError: the parts disagree on the class list.
    """

    def __init__(self, datasets):
        super().__init__(datasets)
        self.classes = list(datasets[0].classes)
        for d in datasets[1:]:
            if list(d.classes) != self.classes:
                raise DataError(getattr(d, "root", "dataset"), "class lists of the concatenated datasets differ")


def build_classification_dataset(spec: DataSpec, split: str, *, train: bool, size: int | None, hflip: bool = True,
                                 cache: str | os.PathLike | None = None, keep_decoded: bool = False):
    """A classification dataset for ``split`` of ``spec`` (``cache``: the corpus cache, :func:`corpus_root`).

    Class folders (``<root>/<split>/<class>/*.jpg``) for folder data and the synthetic ImageFolder roles; the real
    transfer datasets (``flowers102``, ``pet``, ``caltech256``, ``sun397``) through
    :func:`~detpretrain.data.classification.real_classification` (never downloading: a run reads what is there); for a
    synthetic detection corpus in COCO layout (``imagenet_loc``) the same images with image-level labels only
    (IMAGENET-LOC (Cls), :class:`~detpretrain.data.classification.ImageLevelLabels`).

    ``keep_decoded``: a synthetic class-folder corpus keeps its decoded images in memory (:class:`KeptDecoded`),
    for a training set read once per epoch.
    """
    from detpretrain.config import CLASSIFICATION_KINDS
    from detpretrain.data.classification import ClassFolder, ImageLevelLabels, real_classification

    root = corpus_root(spec, cache)
    size = None if spec.kind == "synthetic" else size
    tf = classification_transforms(train, size, hflip)
    if spec.kind in CLASSIFICATION_KINDS:
        return real_classification(spec.kind, root, split, transforms=tf)
    if spec.kind == "synthetic" and spec.corpus["role"] == "imagenet_loc":
        return ImageLevelLabels(root / split, root / "annotations" / f"instances_{split}.json", transforms=tf)
    dataset = ClassFolder(root, split=split, transforms=tf)
    if keep_decoded and spec.kind == "synthetic":
        dataset.loader = KeptDecoded(dataset.loader)
    return dataset


def build_multilabel_dataset(spec: DataSpec, split: str, *, train: bool, hflip: bool = True,
                             cache: str | os.PathLike | None = None):
    """Image-level multi-label classification of a synthetic COCO-layout corpus (``coco``, ``imagenet_loc``):
    :class:`~detpretrain.data.classification.ImageMultiLabels` of ``split`` (Table 1's same-images control).

    Raises:
        ConfigError: not a synthetic COCO-layout corpus.
    """
    from detpretrain.data.classification import ImageMultiLabels

    if spec.kind != "synthetic" or spec.corpus["role"] not in ("coco", "imagenet_loc"):
        raise ConfigError(f"multi-label classification reads a synthetic COCO-layout corpus (coco, imagenet_loc), "
                          f"not {spec.describe()}")
    root = corpus_root(spec, cache)
    tf = classification_transforms(train, None, hflip)
    return ImageMultiLabels(root / split, root / "annotations" / f"instances_{split}.json", transforms=tf)


def collate_detection(batch):
    """List of (image, target) -> (tuple of images, tuple of targets): torchvision detectors take lists."""
    return tuple(zip(*batch))


def training_target(target: dict) -> dict:
    """The boxes and labels a torchvision detector trains on: plain tensors, ``ignore`` (difficult/crowd) removed."""
    boxes = target["boxes"].as_subclass(torch.Tensor)
    labels = target["labels"]
    keep = ~target["ignore"] if "ignore" in target else torch.ones(len(labels), dtype=torch.bool)
    return {"boxes": boxes[keep].reshape(-1, 4), "labels": labels[keep]}


# ---- semantic segmentation (Section 2.2, Table 4, Figure 2 of Li et al. 2019) ---------------------------------------

#: The COCO categories that are PASCAL VOC's 20 classes, COCO name -> VOC name (the mapping of torchvision's
#: segmentation reference, ``references/segmentation/coco_utils.py``, spelled by name instead of category id).
COCO_TO_VOC = {
    "airplane": "aeroplane", "bicycle": "bicycle", "bird": "bird", "boat": "boat", "bottle": "bottle", "bus": "bus",
    "car": "car", "cat": "cat", "chair": "chair", "cow": "cow", "dining table": "diningtable", "dog": "dog",
    "horse": "horse", "motorcycle": "motorbike", "person": "person", "potted plant": "pottedplant",
    "sheep": "sheep", "couch": "sofa", "train": "train", "tv": "tvmonitor",
}
#: width (pixels) of the void band drawn along instance outlines of converted COCO masks: VOC's band is about
#: 5 px wide on ~500-px images, and COCO images are of that size.
COCO_VOID_BAND_PX = 5
VOID = 255


def segmentation_transforms(train: bool, *, crop: int | None = None, hflip: bool = True) -> v2.Compose:
    """(uint8 image, uint8 ``tv_tensors.Mask``) -> (normalised float [3, h, w], int64 mask [h, w], 255 = void).

    Args:
        train: training (random flip, and for ``crop`` the random resize + crop) or evaluation (nothing
            geometric: evaluation runs at the image's full resolution).
        crop: for real photographs of different sizes, the square training crop ``S`` (pixels): a random
            short-side resize to ``[S/2, 2S)`` (``v2.RandomResize``, nearest for the mask), then a random
            ``S x S`` crop, padded where the image is smaller with 0 (image) and 255 (void, mask), so batches
            stack. ``None`` (synthetic images, all the same size): no resize or crop.
        hflip: random horizontal flip (p = 0.5) for training.
    """
    ops: list = []
    if train and crop is not None:
        ops += [v2.RandomResize(crop // 2, 2 * crop),
                v2.RandomCrop(crop, pad_if_needed=True, fill={tv_tensors.Image: 0, tv_tensors.Mask: VOID})]
    if train and hflip:
        ops.append(v2.RandomHorizontalFlip(0.5))
    ops += [v2.ToDtype({tv_tensors.Image: torch.float32, tv_tensors.Mask: torch.int64}, scale=True),
            v2.Normalize(IMAGENET_MEAN, IMAGENET_STD)]
    return v2.Compose(ops)


def build_segmentation_dataset(spec: DataSpec, split: str, *, train: bool, crop: int | None = None,
                               hflip: bool = True, cache: str | os.PathLike | None = None):
    """A semantic-segmentation dataset for ``split`` of ``spec`` (Table 4's VOC 2012 role).

    * synthetic VOC-like target and real VOC roots: :class:`~detpretrain.data.voc.VOCSegmentation` on
      ``ImageSets/Segmentation/<split>.txt`` (synthetic: ``trainval`` / ``test``; VOC 2012: ``train`` / ``val``;
      ``"2012:train"`` picks a year, ``a+b`` concatenates lists);
    * real COCO roots: :class:`CocoSemanticSegmentation` (instances -> VOC's 20 classes, :func:`coco_semantic_mask`).

    Items are ``(image, mask)``: float [3, H, W] ImageNet-normalised and int64 [H, W] (0 = background, k = class k
    of ``dataset.classes``, 255 = void), after :func:`segmentation_transforms`. ``dataset.classes`` includes
    ``"__background__"`` at index 0 (K = ``len(classes)`` logits). ``cache``: the corpus cache of a synthetic
    spec (:func:`corpus_root`).

    Raises:
        DataError: missing root / split list / JPEG / PNG (at construction), a mask whose size differs from its
            image or a class index out of range (at access) -- each naming the file; a synthetic corpus that is
            not the VOC-like one.
    """
    from detpretrain.data.voc import VOCSegmentation

    root = corpus_root(spec, cache)
    tf = segmentation_transforms(train, crop=crop, hflip=hflip)
    layout = spec.kind
    if spec.kind == "synthetic":
        if spec.corpus["role"] != "voc":
            raise DataError(root, f"synthetic role {spec.corpus['role']!r} has no segmentation masks (only 'voc')")
        layout = "voc"
    if layout == "voc":
        parts = []
        for part in split.split("+"):
            year, _, image_set = part.rpartition(":")
            parts.append(VOCSegmentation(root, image_set=image_set, year=year or spec.year, transforms=tf))
        return parts[0] if len(parts) == 1 else ConcatDetection(parts)
    if layout == "coco":
        return CocoSemanticSegmentation(root / split, root / "annotations" / f"instances_{split}.json", transforms=tf)
    raise DataError(root, f"data kind {spec.kind!r} has no segmentation masks (voc, coco or synthetic voc)")


def coco_semantic_mask(masks, labels, crowd, void_band: int = COCO_VOID_BAND_PX):
    """One image's COCO instance masks as a VOC-style semantic label map.

    The rule (documented choice, following torchvision's segmentation reference where it has one):

    1. every pixel starts as background (0): unannotated pixels and instances of the 60 COCO categories that are
       not VOC classes stay background, as objects of other classes are background in VOC;
    2. a pixel of a non-crowd instance of a VOC class takes the instance's label (1..20);
    3. a pixel covered by two or more such instances becomes void (255; torchvision's reference does the same);
    4. a crowd region (``iscrowd``) of a VOC class becomes void: its extent is not delineated per object;
    5. a void band ``void_band`` px wide is drawn along every outline of a non-crowd VOC-class instance (against
       background, another class or another instance), like VOC's band: the pixels whose
       ``(void_band + 1)``-square window holds two different instance indices (the rule the synthetic corpus
       uses). ``void_band = 0``: no band.

    Args:
        masks: [N, H, W] binary instance masks (numpy or torch, any integer/bool dtype).
        labels: [N] VOC label per instance, 0 for an instance of a non-VOC category.
        crowd: [N] bool, the annotations' ``iscrowd``.
        void_band: band width in pixels (>= 0).

    Returns:
        ``np.ndarray`` uint8 [H, W] with values 0..20 and 255.
    """
    import numpy as np
    from scipy import ndimage

    masks = np.asarray(masks).astype(bool)
    labels = np.asarray(labels, dtype=np.int64).reshape(-1)
    crowd = np.asarray(crowd, dtype=bool).reshape(-1)
    if masks.ndim != 3 or len(labels) != len(masks) or len(crowd) != len(masks):
        raise ValueError(f"masks [N, H, W], labels [N], crowd [N] expected; got {masks.shape}, {labels.shape}, "
                         f"{crowd.shape}")
    if void_band < 0:
        raise ValueError(f"void_band must be >= 0 pixels, got {void_band}")
    out = np.zeros(masks.shape[1:], dtype=np.uint8)
    keep = (labels > 0) & ~crowd
    owner = np.zeros(masks.shape[1:], dtype=np.int32)
    for k in np.flatnonzero(keep):
        out[masks[k]] = labels[k]
        owner[masks[k]] = k + 1
    if keep.any():
        out[masks[keep].sum(axis=0) > 1] = VOID
    for k in np.flatnonzero((labels > 0) & crowd):
        out[masks[k]] = VOID
    if void_band > 0 and keep.any():
        size = void_band + 1
        out[ndimage.maximum_filter(owner, size=size) != ndimage.minimum_filter(owner, size=size)] = VOID
    return out


class CocoSemanticSegmentation(torch.utils.data.Dataset):
    """A COCO split as a VOC-style semantic segmentation dataset (:func:`coco_semantic_mask`'s rule).

    Args:
        image_dir, ann_file: the COCO image folder and ``instances_*.json`` (read with
            :class:`~detpretrain.data.coco.CocoDetection`, ``with_masks=True``: polygons and RLE decoded with
            pycocotools).
        transforms: ``transforms(image, mask) -> (image, mask)`` (``tv_tensors.Image`` uint8, ``tv_tensors.Mask``).
        void_band: width in pixels of the void band along instance outlines (default 5, VOC-like).

    Attributes:
        classes: ``["__background__", *VOC_CLASSES]`` (21); ``image_ids``; ``coco`` (the detection dataset).

    Every image of the split is kept, also those without any VOC-class pixel (all background).

    Raises:
        DataError: as :class:`~detpretrain.data.coco.CocoDetection` (missing files, bad annotations or masks).
    """

    def __init__(self, image_dir, ann_file, *, transforms=None, void_band: int = COCO_VOID_BAND_PX):
        from detpretrain.data.coco import CocoDetection
        from detpretrain.data.voc import VOC_CLASSES

        self.coco = CocoDetection(image_dir, ann_file, with_masks=True)
        self.classes = ["__background__", *VOC_CLASSES]
        voc_label = {name: i for i, name in enumerate(self.classes)}
        #: our label of each detection label (index = CocoDetection label), 0 = not a VOC class
        self._to_voc = torch.tensor([voc_label.get(COCO_TO_VOC.get(name, ""), 0) for name in self.coco.classes])
        self.image_ids = list(self.coco.image_ids)
        self.transforms = transforms
        self.void_band = void_band

    def __len__(self) -> int:
        return len(self.coco)

    def image_path(self, i: int) -> Path:
        """Path of image ``i``."""
        return self.coco.image_path(i)

    def load_mask(self, i: int) -> tv_tensors.Mask:
        """The converted label map of image ``i``: ``tv_tensors.Mask`` uint8 [H, W] (0..20, 255 = void)."""
        target = self.coco.load_target(i)
        masks = self.coco.load_masks(i)
        sem = coco_semantic_mask(masks.numpy(), self._to_voc[target["labels"]].numpy(), target["ignore"].numpy(),
                                 self.void_band)
        return tv_tensors.Mask(torch.from_numpy(sem))

    def __getitem__(self, i: int):
        from detpretrain.data._io import check_image_size, decode_image

        image = decode_image(self.coco.image_path(i))
        check_image_size(self.coco.image_path(i), tuple(image.shape[-2:]), self.coco.image_size(i))
        mask = self.load_mask(i)
        if self.transforms is not None:
            image, mask = self.transforms(image, mask)
        return image, mask

    def __repr__(self) -> str:
        return f"CocoSemanticSegmentation(ann_file={str(self.coco.ann_file)!r}, images={len(self)}, classes=21)"
