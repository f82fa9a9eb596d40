"""Experiment configuration: frozen dataclasses that map one-to-one to run directories.

A :class:`TrainConfig` describes ONE training run (a backbone pre-training, a detection pre-training or a
fine-tuning). Its hash (:func:`config_hash`) names the run directory in the run store; a fine-tuning run refers to
its pre-trained backbone as ``init="run:<hash>"``, so the parent's hash is part of the child's and the chain is
content-addressed end to end.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass, field
from typing import Any

from detpretrain.errors import ConfigError

#: Bump when a change to the training/evaluation code changes results, so old runs are not reused.
ENGINE_VERSION = "1"
#: The mixed-precision policy (``engine.mixed_precision``: a detector's feature layers in the autocast dtype, its
#: predictors and boxes in float32), part of the identity of every run that trains in mixed precision (``optim.amp``
#: or ``optim.cpu_bf16``) and of no other: a float32 run keeps its hash. Bump when the policy changes. (Before it, the
#: ``amp`` runs autocast the whole model; none was ever trained, the GPU profiles have not run yet.)
MIXED_PRECISION_POLICY = "detector-layers-1"

TASKS = ("classification", "detection", "segmentation", "multilabel")
#: real image-classification datasets (the classification transfer, Tables 5, 6, 8), read in torchvision's layouts
#: or the others :func:`detpretrain.data.classification.real_classification` supports
CLASSIFICATION_KINDS = ("flowers102", "pet", "caltech256", "sun397")
DATA_KINDS = ("synthetic", "coco", "voc", "folder", *CLASSIFICATION_KINDS)

#: fields of the synthetic ``CorpusSpec`` (:mod:`detpretrain.data.synthetic`) added after its first corpora were
#: stored, with the value that reproduces the corpus from before they existed. Neither the corpus key
#: (``CorpusSpec.key``) nor a :class:`DataSpec`'s ``corpus`` dict holds such a field while it has that value, so
#: the corpora, run hashes and feature caches written before the field existed keep their names; any other value
#: names a different corpus.
CORPUS_LATER_FIELDS: dict[str, Any] = {"cue": "part", "sun_backgrounds": "style", "exclude_categories": ()}


def neutral_corpus_dict(corpus: dict) -> dict:
    """``corpus`` without the :data:`CORPUS_LATER_FIELDS` that hold their neutral value (an empty list counts as the
    empty tuple, as after a JSON round trip); the other keys in their order."""
    out = {}
    for name, value in corpus.items():
        if name in CORPUS_LATER_FIELDS:
            neutral = CORPUS_LATER_FIELDS[name]
            if value == neutral or (isinstance(neutral, tuple) and isinstance(value, list) and tuple(value) == neutral):
                continue
        out[name] = value
    return out
PAPER_IOU_THRESHOLDS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)


@dataclass(frozen=True)
class DataSpec:
    """Where a run's images come from.

    Attributes:
        kind: ``"synthetic"`` (the embedded corpus; ``corpus`` names it), ``"coco"`` (a COCO root with
            ``annotations/instances_<split>.json`` and ``<split>/`` image folders), ``"voc"`` (a VOCdevkit or
            VOC20xx folder), ``"folder"`` (class folders ``<root>/<split>/<class>/``) or a real classification
            dataset of :data:`CLASSIFICATION_KINDS` (``flowers102``, ``pet``, ``caltech256``, ``sun397``; splits as
            :func:`detpretrain.data.classification.real_classification_splits` names them).
        root: the data_root of a real dataset (``None`` for synthetic).
        corpus: for synthetic data, the ``CorpusSpec`` of :mod:`detpretrain.data.synthetic` as a dict.
        train_split, eval_split: split names (COCO ``train2017``/``val2017``; VOC ``trainval``/``test``; ...).
        year: VOC year when ``root`` is a VOCdevkit holding several.
    """

    kind: str
    root: str | None = None
    corpus: dict | None = None
    train_split: str = "train"
    eval_split: str = "val"
    year: str | None = None
    #: a long-tailed training split (Vasconcelos et al. 2022's rare categories), e.g.
    #: ``{"rare": ["cow", "sofa"], "max_images": 8, "seed": 0}``: each rare class appears in at most ``max_images``
    #: training images (see :func:`detpretrain.data.builders.long_tail_indices`); the evaluation split is untouched.
    long_tail: dict | None = None
    #: COCO readers: a box with zero width or height is an error instead of a counted drop
    #: (:class:`detpretrain.data.coco.CocoDetection`'s ``strict``)
    strict_boxes: bool = False
    #: real data: :func:`detpretrain.data.fingerprint.dataset_fingerprint` of the split lists and annotations. When
    #: set, the run hash records it instead of ``root``, so a run store moves between machines with the same data.
    fingerprint: str | None = None

    def __post_init__(self):
        if self.kind not in DATA_KINDS:
            raise ConfigError(f"unknown data kind {self.kind!r}; expected one of {DATA_KINDS}")
        if self.kind == "synthetic" and self.corpus is None:
            raise ConfigError("synthetic data needs a corpus spec")
        if self.corpus is not None:  # frozen: normalise in place (later corpus fields at their neutral value go)
            object.__setattr__(self, "corpus", neutral_corpus_dict(self.corpus))
        if self.kind != "synthetic" and not self.root:
            raise ConfigError(f"{self.kind} data needs a data_root")

    def describe(self) -> str:
        """A short human-readable name of the data, used in tables and figure titles."""
        if self.kind == "synthetic":
            c = self.corpus or {}
            extra = f", without {c['exclude_supercategory']}" if c.get("exclude_supercategory") else ""
            if c.get("exclude_categories"):
                extra += f", without {', '.join(c['exclude_categories'])}"
            if c.get("cue"):
                extra += f", cue {c['cue']}"
            if c.get("sun_backgrounds"):
                extra += f", {c['sun_backgrounds']} backgrounds"
            return f"synthetic {c.get('role')} ({c.get('image_size')} px{extra})"
        return f"{self.kind} {self.root} ({self.train_split} -> {self.eval_split})"


@dataclass(frozen=True)
class ModelSpec:
    """Backbone and detector hyper-parameters (see :func:`detpretrain.models.detection.build_faster_rcnn`)."""

    arch: str = "resnet_tiny"
    norm: str = "gn"
    widths: tuple[int, ...] | None = None
    fpn_channels: int = 64
    representation_size: int = 256
    anchor_sizes: tuple[int, ...] = (8, 16, 32, 64, 128)
    min_size: int = 128
    max_size: int = 128
    trainable_stages: int = 5
    rpn_pre_nms_top_n: tuple[int, int] = (600, 300)
    rpn_post_nms_top_n: tuple[int, int] = (300, 150)
    box_batch_size_per_image: int = 128
    #: detector capacity after the backbone (Vasconcelos et al. 2022): 3x3 conv + GroupNorm + ReLU layers applied,
    #: with a residual connection and shared weights, to every FPN level (0 = torchvision's plain FPN) ...
    fpn_extra_convs: int = 0
    #: ... the box head, ``"2mlp"`` (torchvision's ``TwoMLPHead``: FC1, FC2) or ``"4conv1fc"`` (``FastRCNNConvFCHead``,
    #: 4 convs + 1 FC, as in torchvision's ``fasterrcnn_resnet50_fpn_v2``) ...
    box_head: str = "2mlp"
    #: ... and the 3x3 convs of the RPN head (torchvision ``RPNHead(conv_depth=...)``; v2 uses 2).
    rpn_conv_depth: int = 1
    #: classification input size (pixels, square) for real folder datasets; synthetic images already have it
    image_size: int = 128


@dataclass(frozen=True)
class OptimSpec:
    """SGD with linear warm-up and a step schedule (the paper: 7 epochs, step at the end of epoch 5)."""

    epochs: int = 7
    #: the GLOBAL batch: under torchrun each of the W processes loads ``batch_size // W`` images per step (the
    #: learning rate is set for the global batch and does not change with W)
    batch_size: int = 8
    lr: float = 0.02
    momentum: float = 0.9
    weight_decay: float = 1e-4
    warmup_iters: int = 50
    milestones: tuple[int, ...] = (5,)
    gamma: float = 0.1
    hflip: bool = True
    #: DataLoader worker processes per training process, for training and for the evaluation after it
    num_workers: int = 0
    #: mixed precision on CUDA (bfloat16 autocast, or float16 + GradScaler on GPUs without bfloat16); ignored on CPU
    amp: bool = False
    #: keep the model after every epoch (and at initialisation) as ``checkpoints/epoch_<k>.pt`` for training
    #: dynamics (the eigenspectrum chapter, Shinya et al. 2019); otherwise only ``checkpoints/last.pt`` (resume).
    keep_epoch_checkpoints: bool = False
    #: bfloat16 autocast on the CPU (oneDNN's kernels: AMX or AVX512-BF16 where the CPU has them, emulated and slower
    #: elsewhere); the weights, optimizer and evaluation stay float32. Ignored on CUDA (see ``amp``). A different
    #: run from the float32 one (it is part of the config hash). Set for a whole profile with
    #: :func:`detpretrain.profiles.with_cpu_bf16` (``--cpu-bf16 book``, ``$DETPRETRAIN_CPU_BF16=1``).
    cpu_bf16: bool = False

    def __post_init__(self):
        """Refuse a schedule no run can train with (``--set optim.batch_size=0`` used to end in a ZeroDivisionError
        inside the engine, ``optim.epochs=-1`` in a "complete" run that never trained). ``epochs = 0`` is allowed
        here for a profile's unused specs; :class:`TrainConfig` asks for at least one epoch."""
        checks = [("epochs", isinstance(self.epochs, int) and self.epochs >= 0, "an integer >= 0"),
                  ("batch_size", isinstance(self.batch_size, int) and self.batch_size >= 1, "an integer >= 1"),
                  ("lr", _finite(self.lr) and self.lr > 0, "a number > 0"),
                  ("momentum", _finite(self.momentum) and 0 <= self.momentum < 1, "a number in [0, 1)"),
                  ("weight_decay", _finite(self.weight_decay) and self.weight_decay >= 0, "a number >= 0"),
                  ("warmup_iters", isinstance(self.warmup_iters, int) and self.warmup_iters >= 0, "an integer >= 0"),
                  ("milestones", all(isinstance(m, int) and m >= 1 for m in self.milestones),
                   "epochs >= 1 after which the learning rate steps"),
                  ("gamma", _finite(self.gamma) and self.gamma > 0, "a number > 0"),
                  ("num_workers", isinstance(self.num_workers, int) and self.num_workers >= 0, "an integer >= 0")]
        for name, ok, expects in checks:
            if not ok:
                raise ConfigError(f"optim.{name} must be {expects}; got {getattr(self, name)!r}")


def _finite(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


@dataclass(frozen=True)
class TrainConfig:
    """One training run.

    Attributes:
        name: a human label shown in tables (e.g. ``"pretrain/imagenet-cls"``); part of the hash.
        task: ``"classification"`` (IMAGENET-CLS-style pre-training or a classification fine-tuning),
            ``"detection"`` or ``"segmentation"`` (DeepLabV3, Table 4; its head width is ``model.fpn_channels``
            and its crop, ASPP rates and trimap bands follow from ``model`` and ``data``, see
            :func:`detpretrain.models.segmentation.segmentation_geometry`), or ``"multilabel"`` (image-level
            multi-label classification of a COCO-layout corpus: which categories an image holds; Table 1's
            same-images control).
        data, model, optim: see :class:`DataSpec`, :class:`ModelSpec`, :class:`OptimSpec`.
        init: backbone initialisation: ``None`` (from scratch), ``"run:<hash>"`` (the backbone of a run in the
            store), ``"torchvision:<WeightsEnum.MEMBER>"``, or a path to a backbone ``state_dict`` file.
        seed: seeds model initialisation, data order and augmentation.
        eval_iou_thresholds: IoU thresholds of the detection evaluation (Figure 1 uses 0.1 ... 0.9).
        eval_metric: ``"voc07"`` (the paper's 11-point AP), ``"voc"`` or ``"coco"``.
    """

    name: str
    task: str
    data: DataSpec
    model: ModelSpec = field(default_factory=ModelSpec)
    optim: OptimSpec = field(default_factory=OptimSpec)
    init: str | None = None
    seed: int = 0
    eval_iou_thresholds: tuple[float, ...] = PAPER_IOU_THRESHOLDS
    eval_metric: str = "voc07"

    def __post_init__(self):
        if self.task not in TASKS:
            raise ConfigError(f"unknown task {self.task!r}; expected one of {TASKS}")
        if self.optim.epochs < 1:
            raise ConfigError(f"{self.name}: optim.epochs must be >= 1 for a run that trains; got {self.optim.epochs}")


def to_dict(config: Any) -> dict:
    """A JSON-ready dict of a config dataclass (tuples become lists)."""
    return json.loads(json.dumps(dataclasses.asdict(config), default=list))


#: fields added after :data:`ENGINE_VERSION` "1" was fixed, with the value that reproduces the behaviour from before
#: they existed: :func:`config_hash` leaves a field out while it holds that value, so the runs of a store written
#: before the field existed keep their hashes (and are reused), while any other value makes a different run.
LATER_FIELDS: dict[str, dict[str, Any]] = {
    "data": {"long_tail": None, "strict_boxes": False, "fingerprint": None},
    "model": {"fpn_extra_convs": 0, "box_head": "2mlp", "rpn_conv_depth": 1},
    "optim": {"keep_epoch_checkpoints": False, "cpu_bf16": False},
}


def hashed_dict(config: TrainConfig) -> dict:
    """:func:`to_dict` without the :data:`LATER_FIELDS` that hold their backward-compatible value, and without the
    data ``root`` where a dataset fingerprint identifies the data instead (a store then moves between machines)."""
    d = to_dict(config)
    if d["data"].get("fingerprint"):
        del d["data"]["root"]
    for part, fields in LATER_FIELDS.items():
        for name, neutral in fields.items():
            if name in d[part] and d[part][name] == neutral:
                del d[part][name]
    return d


def config_hash(config: TrainConfig, length: int = 16) -> str:
    """Stable hex digest of a config (canonical JSON of :func:`hashed_dict`, sorted keys) and :data:`ENGINE_VERSION`,
    with :data:`MIXED_PRECISION_POLICY` for a run that trains in mixed precision."""
    identity = {"engine": ENGINE_VERSION, "config": hashed_dict(config)}
    if config.optim.amp or config.optim.cpu_bf16:
        identity["mixed_precision"] = MIXED_PRECISION_POLICY
    payload = json.dumps(identity, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(payload.encode()).hexdigest()[:length]


def from_dict(data: dict) -> TrainConfig:
    """Inverse of :func:`to_dict` (lists become tuples again)."""

    def tuples(d: dict, cls) -> dict:
        out = {}
        for f in dataclasses.fields(cls):
            if f.name in d:
                v = d[f.name]
                out[f.name] = tuple(tuple(x) if isinstance(x, list) else x for x in v) if isinstance(v, list) else v
        return out

    return TrainConfig(
        **{
            **tuples(data, TrainConfig),
            "data": DataSpec(**data["data"]),
            "model": ModelSpec(**tuples(data["model"], ModelSpec)),
            "optim": OptimSpec(**tuples(data["optim"], OptimSpec)),
        }
    )


def replace_path(config: TrainConfig, key: str, value: Any) -> TrainConfig:
    """``config`` with one (possibly nested, dotted) field replaced, e.g. ``"optim.epochs"``, or a key of a
    synthetic corpus spec, e.g. ``"data.corpus.n_train"`` (the schedule and target-size selection on val,
    ``profiles.py``).

    The value is converted to the field's current type (``"3"`` -> 3). Raises ConfigError for unknown keys.
    """
    head, _, rest = key.partition(".")
    names = {f.name for f in dataclasses.fields(config)}
    if head not in names:
        raise ConfigError(f"unknown config field {key!r} (fields of {type(config).__name__}: {sorted(names)})")
    current = getattr(config, head)
    if rest and isinstance(current, dict):  # a synthetic corpus spec: data.corpus.n_train=1600
        if "." in rest or rest not in current:
            raise ConfigError(f"unknown config field {key!r} (keys of {head}: {sorted(current)})")
        return dataclasses.replace(config, **{head: {**current, rest: _coerce(value, current[rest], key)}})
    if rest:
        if not dataclasses.is_dataclass(current):
            raise ConfigError(f"config field {head!r} has no sub-field {rest!r}")
        return dataclasses.replace(config, **{head: replace_path(current, rest, value)})
    return dataclasses.replace(config, **{head: _coerce(value, current, key)})


def _coerce(value: Any, current: Any, key: str) -> Any:
    if not isinstance(value, str):
        return value
    try:
        if isinstance(current, bool):
            flag = value.strip().lower()
            if flag not in ("1", "true", "yes", "0", "false", "no"):
                raise ValueError(flag)  # a misspelt switch must not silently mean False
            return flag in ("1", "true", "yes")
        if isinstance(current, int):
            return int(value)
        if isinstance(current, float):
            return float(value)
        if isinstance(current, tuple) or current is None and "," in value:
            parts = [p for p in value.split(",") if p]
            return tuple(int(p) if p.lstrip("-").isdigit() else float(p) for p in parts)
    except ValueError:
        raise ConfigError(f"cannot convert {value!r} for config field {key!r} (current value {current!r})") from None
    return None if value.lower() == "none" else value
