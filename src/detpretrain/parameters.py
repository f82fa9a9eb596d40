"""Chapter parameters, declared once: name, type, allowed values, default and one-line meaning of each.

Every chapter of the book has a cell tagged ``parameters`` (papermill injects values after it). What each chapter
accepts is declared here, in :data:`CHAPTER_PARAMETERS`; ``tests/test_parameters.py`` keeps the declarations and the
notebooks' parameters cells in step (same names, same defaults). From the declarations:

* ``python -m detpretrain run`` and ``book`` refuse an unknown name (with the closest valid one and the list) and a
  value of the wrong type or range, before anything executes (:func:`check_parameters`; exit status 2);
* a chapter's first cell after the parameters can run the same checks under raw papermill
  (:func:`check_namespace` on the notebook's ``globals()``);
* the book's "Re-run it yourself" table is generated (:func:`rerun_table`, :func:`rerun_markdown`).

Value rules (what papermill's ``-p`` / ``-y`` give is read as YAML first, so ``-p seeds 3`` is the int 3):

=============  =====================================================================================================
kind           accepted
=============  =====================================================================================================
``str``        a string, one of ``choices`` (or matching ``pattern``) when given
``path``       a string or ``os.PathLike`` (returned as a string; existence is checked by the readers, later)
``int``        an integer (an integral float such as ``2.0`` is taken as 2; booleans are not integers)
``float``      a finite number (an integer is taken as a float)
``int list``   a non-empty list of integers; a single integer ``n`` is taken as ``[n]``
``str list``   a non-empty list of strings from ``choices``; a single string ``s`` is taken as ``[s]``
``str dict``   a mapping from names in ``choices`` to paths
``bool``       ``True`` or ``False`` (papermill's ``-p download true`` reads as YAML's true)
=============  =====================================================================================================

``minimum`` / ``maximum`` bound numbers and the items of number lists (inclusive); ``nullable`` allows None, whose
meaning the declaration's ``meaning`` states.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
import os
import re
from collections.abc import Mapping
from typing import Any

from detpretrain.errors import ConfigError, ParameterError
from detpretrain.profiles import PROFILE_NAMES, PROFILES

KINDS = ("str", "path", "int", "float", "int list", "str list", "str dict", "bool")


@dataclasses.dataclass(frozen=True)
class Parameter:
    """One chapter parameter.

    Attributes:
        name: the variable in the chapter's parameters cell.
        kind: one of :data:`KINDS` (module docstring).
        default: the value in the parameters cell.
        meaning: one line for the "Re-run it yourself" table.
        choices: allowed values (``str``), allowed items (``str list``) or allowed keys (``str dict``); empty: any.
        pattern: a regular expression a ``str`` value may match instead of being one of ``choices``.
        minimum, maximum: inclusive bounds of a number (or of each item of an ``int list``).
        nullable: None is allowed.
    """

    name: str
    kind: str
    default: Any
    meaning: str
    choices: tuple = ()
    pattern: str | None = None
    minimum: float | None = None
    maximum: float | None = None
    nullable: bool = False

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"parameter {self.name}: unknown kind {self.kind!r}; expected one of {KINDS}")

    def expects(self) -> str:
        """What the parameter accepts, in words (used in error messages and the table)."""
        bounds = _bounds(self.minimum, self.maximum)
        choices = " | ".join(map(str, self.choices))
        text = {
            "str": (f"one of {choices}" if self.choices else "a string") + (
                f" | {self.pattern.replace(chr(92) + 'd+', 'N')}" if self.pattern else ""),
            "path": "a path",
            "int": f"an integer{bounds}",
            "float": f"a number{bounds}",
            "int list": f"a list of distinct integers{bounds}, e.g. [0, 1, 2]",
            "str list": f"a list of distinct items from {choices}" if self.choices else "a list of distinct strings",
            "str dict": f"a mapping {{name: path}} with names from {choices}" if self.choices else "a mapping",
            "bool": "true or false",
        }[self.kind]
        return text + (", or None" if self.nullable else "")

    def check(self, value: Any, chapter: str = "") -> Any:
        """``value`` coerced to this parameter's kind (module docstring).

        Raises:
            ParameterError: wrong type or out of range; the message names the chapter, the parameter, what it
                expects and what it got.
        """
        if value is None:
            if self.nullable:
                return None
            raise self._error(chapter, value)
        try:
            return _COERCE[self.kind](self, value)
        except (TypeError, ValueError):
            raise self._error(chapter, value) from None

    def _error(self, chapter: str, value: Any) -> ParameterError:
        where = f"{chapter}: " if chapter else ""
        return ParameterError(chapter, self.name, f"{where}parameter {self.name!r} expects {self.expects()}; "
                                                  f"got {value!r} ({type(value).__name__})")


def _bounds(lo: float | None, hi: float | None) -> str:
    if lo is not None and hi is not None:
        return f" in [{lo:g}, {hi:g}]"
    if lo is not None:
        return f" >= {lo:g}"
    if hi is not None:
        return f" <= {hi:g}"
    return ""


def _in_range(p: Parameter, x: float) -> float:
    if (p.minimum is not None and x < p.minimum) or (p.maximum is not None and x > p.maximum):
        raise ValueError("out of range")
    return x


def _int(p: Parameter, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError
    if isinstance(value, float) and not (math.isfinite(value) and value.is_integer()):
        raise ValueError
    return int(_in_range(p, int(value)))


def _float(p: Parameter, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise TypeError
    return float(_in_range(p, float(value)))


def _str(p: Parameter, value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError
    if p.choices and value not in p.choices and not (p.pattern and re.fullmatch(p.pattern, value)):
        raise ValueError
    return value


def _path(p: Parameter, value: Any) -> str:
    if not isinstance(value, (str, os.PathLike)) or not str(value):
        raise TypeError
    return str(value)


def _list(p: Parameter, value: Any, item) -> list:
    if isinstance(value, (str, int, float)) and not isinstance(value, bool):
        value = [value]
    if not isinstance(value, (list, tuple)) or not value:
        raise TypeError
    out = [item(p, v) for v in value]
    if len(set(out)) != len(out):  # seeds [0, 0] would count one run twice: n = 2 and a zero-width interval
        raise ValueError("repeated item")
    return out


def _str_dict(p: Parameter, value: Any) -> dict:
    if not isinstance(value, Mapping):
        raise TypeError
    out = {}
    for k, v in value.items():
        if not isinstance(k, str) or (p.choices and k not in p.choices):
            raise ValueError
        out[k] = _path(p, v)
    return out


def _bool(p: Parameter, value: Any) -> bool:
    if not isinstance(value, bool):
        raise TypeError
    return value


_COERCE = {
    "bool": _bool, "str": _str, "path": _path, "int": _int, "float": _float, "str dict": _str_dict,
    "int list": lambda p, v: _list(p, v, _int), "str list": lambda p, v: _list(p, v, _str),
}

# ------------------------------------------------------------------------------------------------ declarations

DEVICE_PATTERN = r"cuda:\d+"
#: super-categories of the synthetic taxonomy (detpretrain.data.synthetic_taxonomy.SUPERCATEGORIES).
SUPERCATEGORIES = ("vehicle", "animal", "furniture", "plant", "appliance")
#: synthetic classification roles (CALTECH-256, SUN-397, OXFORD-102 FLOWERS).
CLASSIFICATION_ROLES = ("caltech", "sun", "flowers")
#: genuine classification datasets the classification chapter reads (detpretrain.features.REAL_PROBE_DATASETS).
REAL_PROBE_DATASETS = ("flowers102", "pet", "caltech256", "sun397")
#: the detector capacity ladder of the frozen-backbone chapter (detpretrain.companions.HEAD_LADDER).
HEADS = ("FPN", "FPN+2conv", "FPN+2conv+4conv1fc")
DETECTION_PRETRAINS = ("imagenet-cls", "detection", "scratch")
#: the detection chapter's backbones: those, plus Table 1's same-images control (issue 18; a multi-label classifier
#: trained on the detection pre-training's images, :data:`detpretrain.experiments.common.SAME_IMAGES`)
DETECTION_CHAPTER_PRETRAINS = (*DETECTION_PRETRAINS, "detection-multilabel")
#: where a synthetic object shows its category (detpretrain.data.synthetic.CUES; issue 18)
CUES = ("part", "distributed", "part+decoy")
_CUE_MEANING = "category cue of every synthetic corpus: part | distributed (no part) | part+decoy"
#: SUN-role backgrounds (detpretrain.data.synthetic.SUN_BACKGROUNDS; issue 18's scene control)
SUN_BACKGROUND_CHOICES = ("style", "shared")
SUN_BACKGROUNDS = Parameter("sun_backgrounds", "str", "style", "SUN-role scenes: style (a scene's own background "
                            "names it) | shared (one background distribution: the scene is which objects co-occur "
                            "and where)", choices=SUN_BACKGROUND_CHOICES)
#: the chapters with a ``cue`` parameter, which the mechanisms page executes again under other cues
#: (:func:`detpretrain.book.execute_variants`)
MECHANISM_CHAPTERS = ("classification", "feature_space", "visualisations")
#: the corpus conditions a variant can name after ``chapter:``, as the chapter parameters they set: the three cues,
#: and the SUN-role scene control (issue 18: scenes that share backgrounds, so that the scene class depends on which
#: objects co-occur and where; the cue stays ``part``)
CONDITIONS = {**{cue: {"cue": cue} for cue in CUES}, "shared-backgrounds": {"sun_backgrounds": "shared"}}
#: the chapters that take the SUN control: the classification chapter's Tables 6 and 8 have a SUN-397 column (the
#: feature-space chapter has the parameter too, but studies CALTECH-256 unless its ``target`` is changed)
SUN_CONTROL_CHAPTERS = ("classification",)
#: every ``"chapter:condition"`` variant the mechanisms page may ask for
VARIANT_CHOICES = (tuple(f"{chapter}:{cue}" for chapter in MECHANISM_CHAPTERS for cue in CUES)
                   + tuple(f"{chapter}:shared-backgrounds" for chapter in SUN_CONTROL_CHAPTERS))
#: the book's default variants: Tables 5, 6, 8 and Figures 3-8 without a part (``distributed``), Figures 4 and 5
#: with a decoy beside the part (issue 18: "at least part and distributed, and Figure 4 on the decoy"), and Tables 6
#: and 8 on SUN-role scenes that share their backgrounds (the scene control)
DEFAULT_VARIANTS = ("classification:distributed", "feature_space:distributed", "visualisations:distributed",
                    "visualisations:part+decoy", "classification:shared-backgrounds")
PROBE_PRETRAINS = ("imagenet-cls", "detection", "imagenet-loc", "imagenet-loc-cls", "scratch")
REAL_TARGETS = ("coco", "voc")
ALL_PROFILES = tuple(PROFILE_NAMES)
CPU_PROFILES = ("smoke", "mini")
#: profiles that take backbones from published torchvision weights and fine-tune on real data (GPU-sized)
PUBLISHED_PROFILES = tuple(name for name, prof in PROFILES.items() if prof.published)
#: chapters whose detection (or segmentation) target must be real at :data:`PUBLISHED_PROFILES`
REAL_TARGET_CHAPTERS = frozenset({"intro", "detection", "segmentation", "eigenspectrum", "frozen_backbone",
                                  "visualisations"})
#: chapters that exist on the synthetic corpora only, and why (said when a GPU profile is asked for)
SYNTHETIC_ONLY = {
    "mechanisms": "the category cue it moves is a property of the synthetic corpora (real photographs have their own "
                  "cues, which no parameter changes): the page runs at profiles smoke and mini only",
    "ablations": "Tables 2 and 7 pre-train on IMAGENET-LOC (3,130 classes; not distributed) from an IMAGENET-CLS run "
                 "of ours, and Table 3 needs per-object occlusion levels that VOC and COCO do not annotate (on VOC2007 "
                 "test, Hoiem et al.'s released levels can be given as occlusion_annotations at mini): the "
                 "chapter runs at profiles smoke and mini only",
}
#: chapters that read a real target from ``data_root`` when ``dataset`` is coco or voc.
NEEDS_DATA_ROOT = frozenset({"intro", "detection", "segmentation", "eigenspectrum", "frozen_backbone", "ablations",
                             "visualisations"})
STORE_MEANING = "run store folder; None means $DETPRETRAIN_RUNS or runs/"
#: the paper profile's COCO root (appended to the chapters whose runs may include its detection pre-training)
COCO_ROOT = Parameter("coco_root", "path", None, "paper profile: COCO 2017 root of its detection pre-training; None "
                      "means $DETPRETRAIN_COCO or ~/data/coco", nullable=True)
#: fetching the real classification datasets (appended to the chapters that read them)
DOWNLOAD = Parameter("download", "bool", False, "fetch an absent real classification dataset into its root with "
                     "torchvision (needs internet)")
CACHE_MEANING = "generated-corpus folder; None means $DETPRETRAIN_DATA or data/generated"
#: the genuine classification datasets of Table 6's probes and Table 8's fine-tunings (the classification chapter's,
#: and the mechanisms page's, which passes it to its classification variants: :data:`VARIANT_SHARED`)
REAL_DATA = Parameter("real_data", "str dict", {"flowers102": "../shared/data/flowers102_subset",
                                                "pet": "../shared/data/oxford_iiit_pet_subset"},
                      "genuine datasets probed and fine-tuned on, {name: root}; absent folders are skipped unless "
                      "download", choices=REAL_PROBE_DATASETS, nullable=True)


def _common(profiles: tuple[str, ...], datasets: tuple[str, ...], dataset: str, data_root: str,
            seeds: str) -> tuple[Parameter, ...]:
    """The seven parameters every chapter has (:data:`detpretrain.book.REQUIRED_PARAMETERS`), in cell order."""
    return (
        Parameter("profile", "str", "mini", f"size preset: {' | '.join(profiles)}", choices=profiles),
        Parameter("dataset", "str", "synthetic", dataset, choices=datasets),
        Parameter("data_root", "path", None, data_root, nullable=True),
        Parameter("seeds", "int list", None, seeds, minimum=0, nullable=True),
        Parameter("device", "str", "auto", "auto | cpu | cuda | cuda:N", choices=("auto", "cpu", "cuda"),
                  pattern=DEVICE_PATTERN),
        Parameter("store", "path", None, STORE_MEANING, nullable=True),
        Parameter("data_cache", "path", None, CACHE_MEANING, nullable=True),
    )


_TARGETS = ("synthetic", *REAL_TARGETS)
#: the pre-training replicates of a chapter that fine-tunes (crossed with its seeds)
_REPLICATES = Parameter("replicates", "int", None, "pre-training replicates per pre-trained backbone, crossed with "
                        "the seeds (the unit of every verdict); None means the profile's (mini: 3)", minimum=1,
                        nullable=True)
#: the replicates of a chapter whose primary claim compares two pre-trained backbones replicate by replicate
_PRIMARY_REPLICATES = Parameter("replicates", "int", None, "pre-training replicates per pre-trained backbone: the "
                                "unit of the claims (the figures show replicate 0); "
                                "None means the profile's (mini: 3)", minimum=1, nullable=True)
_FINETUNE_SEEDS = "fine-tuning seeds; None means the profile's (mini: 0, one per pre-training replicate)"
#: the seven common parameters as a chapter without declarations (a user's own notebook) is checked on them.
GENERIC_PARAMETERS = _common(ALL_PROFILES, _TARGETS, "the target dataset", "root of a real dataset",
                             "seeds; None means the profile's")

#: ``{chapter: (Parameter, ...)}`` in the order of each chapter's parameters cell.
CHAPTER_PARAMETERS: dict[str, tuple[Parameter, ...]] = {
    "intro": _common(ALL_PROFILES, _TARGETS, "the detection target whose results are summarised",
                     "root of a real dataset (dataset coco or voc)", _FINETUNE_SEEDS) + (_REPLICATES, COCO_ROOT),
    "pretraining": _common(ALL_PROFILES, _TARGETS, "the later chapters' target; pre-training does not depend on it",
                           "root of a real dataset (dataset coco or voc)",
                           "unused: a pre-training's seed is its replicate (replicates)") + (
        _REPLICATES,
        Parameter("sample_images", "int", 8, "images per corpus in the sample grids", minimum=1),
        COCO_ROOT,
    ),
    "detection": _common(ALL_PROFILES, _TARGETS, "detection target: synthetic (VOC-like) | coco | voc",
                         "root of a real dataset (coco: annotations/ with train2017/ and val2017/)",
                         _FINETUNE_SEEDS) + (
        _REPLICATES,
        Parameter("pretrains", "str list", list(DETECTION_CHAPTER_PRETRAINS), "backbones to compare "
                  "(detection-multilabel: Table 1's same-images control, synthetic detection pre-training only)",
                  choices=DETECTION_CHAPTER_PRETRAINS),
        Parameter("schedule_factors", "int list", [1, 2], "schedule check: fine-tuning schedules in multiples of the "
                  "profile's (1x: every run; others: imagenet-cls and detection, first seed, every replicate)",
                  minimum=1),
        COCO_ROOT,
    ),
    "segmentation": _common(ALL_PROFILES, _TARGETS, "segmentation target: synthetic (VOC-like) | voc | coco",
                            "real data: a VOC 2012 root or a COCO root", _FINETUNE_SEEDS) + (
        _REPLICATES,
        Parameter("pretrains", "str list", list(DETECTION_PRETRAINS), "backbones to compare",
                  choices=DETECTION_PRETRAINS),
        Parameter("bands", "int list", None, "trimap widths (evaluated px) to show; None means all", minimum=1,
                  nullable=True),
        COCO_ROOT,
    ),
    "eigenspectrum": _common(ALL_PROFILES, _TARGETS, "detection target: synthetic (VOC-like) | coco | voc",
                             "root of a real dataset (dataset coco or voc)", "seeds; None means the profile's") + (
        _REPLICATES,
        Parameter("scratch_factor", "int", 2, "from-scratch schedule, in multiples of the fine-tuning epochs",
                  minimum=1),
        Parameter("threshold", "float", 1e-2, "eigenvalue threshold of the intrinsic dimensionality",
                  minimum=0.0),
        Parameter("normalisation", "str", "max", "eigenvalues raw (none), divided by the largest (max) or the sum "
                  "(trace)", choices=("none", "max", "trace")),
        Parameter("n_images", "int", 64, "test images the second-moment matrices average over", minimum=1),
        Parameter("multiple", "int", 8, "determined widths are rounded up to a multiple of this", minimum=1),
    ),
    "frozen_backbone": _common(ALL_PROFILES, _TARGETS, "detection target: synthetic (VOC-like) | coco | voc",
                               "root of a real dataset (dataset coco or voc)", "seeds; None means the profile's") + (
        _REPLICATES,
        Parameter("pretrain", "str", "imagenet-cls", "the backbone that is frozen or fine-tuned",
                  choices=("imagenet-cls", "detection")),
        Parameter("heads", "str list", list(HEADS), "detector capacities, smallest first", choices=HEADS),
        Parameter("rare", "str list", None, "rare class names; None means every second class by frequency",
                  nullable=True),
        Parameter("max_images", "int", 8, "training images kept per rare class", minimum=1),
        Parameter("resource_iterations", "int", 5, "timed training steps per configuration (resource table)",
                  minimum=1),
        Parameter("exclusion_control", "str", "category", "control at the largest capacity: IMAGENET-CLS "
                  "pre-trained without the rare classes (category) or their super-categories; None: not run",
                  choices=("category", "supercategory"), nullable=True),
        COCO_ROOT,
    ),
    "classification": _common(ALL_PROFILES, ("synthetic",), "the synthetic classification targets",
                              "unused: real probe datasets are named in real_data",
                              "fine-tuning seeds and random backbones; None means the profile's") + (
        _REPLICATES,
        Parameter("targets", "str list", list(CLASSIFICATION_ROLES), "synthetic roles standing for CALTECH-256, "
                  "SUN-397, OXFORD-102 FLOWERS", choices=CLASSIFICATION_ROLES),
        Parameter("probe_pretrains", "str list", ["imagenet-cls", "detection", "imagenet-loc", "scratch"],
                  "backbones probed on Conv5 (Table 6)", choices=PROBE_PRETRAINS),
        Parameter("finetune_pretrains", "str list", ["imagenet-cls", "detection", "imagenet-loc", "scratch"],
                  "backbones fine-tuned (Table 8)", choices=PROBE_PRETRAINS),
        Parameter("head_target", "str", "caltech", "dataset of the detection-head probes (Table 5)",
                  choices=CLASSIFICATION_ROLES),
        REAL_DATA,
        DOWNLOAD,
        COCO_ROOT,
        Parameter("cue", "str", "part", _CUE_MEANING, choices=CUES),
        SUN_BACKGROUNDS,
    ),
    "feature_space": _common(ALL_PROFILES, ("synthetic", *REAL_PROBE_DATASETS), "synthetic (the corpus named by "
                             "target) | flowers102 | pet | caltech256 | sun397 (real images at data_root)",
                             "root of a real dataset (dataset other than synthetic)", "k-means seeds and random "
                             "backbones; None means the profile's") + (
        Parameter("target", "str", "caltech", "the corpus whose feature space is studied",
                  choices=CLASSIFICATION_ROLES),
        Parameter("classification_backbone", "str", "imagenet-cls", "the IMAGENET-CLS space",
                  choices=PROBE_PRETRAINS),
        Parameter("detection_backbone", "str", "detection",
                  "the detection (COCO-role) space, the paper's OPENIMAGES space", choices=PROBE_PRETRAINS),
        Parameter("k_max", "int", 1000, "largest K of the k-means sweep (capped at half the images)", minimum=2),
        Parameter("knn_k", "int", 10, "neighbours for class agreement and fragmentation (Figure 7)", minimum=1),
        Parameter("n_pairs", "int", 6, "image pairs shown per panel of Figure 3", minimum=1),
        Parameter("top_pairs", "int", 50, "nearest pairs whose attributes are compared (Figure 3)", minimum=1),
        DOWNLOAD,
        COCO_ROOT,
        Parameter("cue", "str", "part", _CUE_MEANING, choices=CUES),
        SUN_BACKGROUNDS,
        _PRIMARY_REPLICATES,
    ),
    "ablations": _common(CPU_PROFILES, _TARGETS, "detection target: synthetic (VOC-like) | coco | voc",
                         "root of a real target dataset", _FINETUNE_SEEDS) + (
        _REPLICATES,
        Parameter("removed", "str list", ["vehicle", "animal"], "super-categories removed from IMAGENET-LOC, one "
                  "pre-training each (Table 2)", choices=SUPERCATEGORIES),
        Parameter("transfer_role", "str", "caltech", "classification target of Table 7",
                  choices=CLASSIFICATION_ROLES),
        Parameter("occlusion_iou", "float", 0.5, "IoU for a detection to find an object (Table 3)", minimum=0.0,
                  maximum=1.0),
        Parameter("occlusion_annotations", "path", None, "dataset voc on VOC2007 test: folder of Hoiem et al.'s "
                  "gt_ved_<class>.txt occlusion levels (Table 3); None: the target's own annotations",
                  nullable=True),
    ),
    "visualisations": _common(ALL_PROFILES, _TARGETS, "detection target of Figure 8: synthetic (VOC-like) | coco "
                              "| voc", "root of a real detection target",
                              "fine-tuning seeds; Figure 8 uses the first; None means the profile's") + (
        Parameter("target", "str", "caltech", "classification corpus of Figures 4 and 5",
                  choices=CLASSIFICATION_ROLES),
        Parameter("activation_images", "int", 250, "test images measured for Figure 4", minimum=1),
        Parameter("maskout_images", "int", 40, "single-instance test images measured for Figure 5", minimum=1),
        Parameter("maskout_stride", "int", 8, "px between mask positions (Figure 5)", minimum=1),
        Parameter("score_thresh", "float", 0.5, "score at which detections are drawn and matched (Figure 8)",
                  minimum=0.0, maximum=1.0),
        Parameter("real_detection_root", "path", "../shared/data/coco2017_subset", "real COCO images for the "
                  "activation shares; None or absent skips them", nullable=True),
        Parameter("real_images", "int", 24, "COCO val images measured", minimum=0),
        COCO_ROOT,
        Parameter("cue", "str", "part", _CUE_MEANING, choices=CUES),
        _PRIMARY_REPLICATES,
    ),
    "mechanisms": _common(CPU_PROFILES, ("synthetic",), "unused: every variant runs on its chapter's synthetic "
                          "target (the cue lives in the synthetic corpora)", "unused here",
                          "passed to every variant; None means the profile's") + (
        _REPLICATES,
        Parameter("variants", "str list", list(DEFAULT_VARIANTS), "chapters executed again under another cue "
                  "or the SUN scene control, as chapter:condition (the chapters' own executions give the part "
                  "column)", choices=VARIANT_CHOICES),
        dataclasses.replace(REAL_DATA, meaning=REAL_DATA.meaning + "; passed to the classification variants"),
        dataclasses.replace(DOWNLOAD, meaning=DOWNLOAD.meaning + "; passed to the variants"),
    ),
    "rerun": _common(ALL_PROFILES, ("synthetic",), "unused here", "unused here", "unused here"),
}


# ------------------------------------------------------------------------------------ mechanisms page: variants


#: the parameters a cue variant takes from the mechanisms page (the others keep the chapter's defaults: the cue lives
#: in the synthetic corpora, so every variant runs on its chapter's synthetic target; ``real_data`` reaches the
#: classification variants, whose Table 6 and 8 rows on genuine images the page compares too, and ``download`` every
#: variant that has it)
VARIANT_SHARED = ("profile", "seeds", "device", "store", "data_cache", "replicates", "real_data", "download")


def parse_variants(variants) -> list[tuple[str, str]]:
    """The mechanisms page's ``variants`` (issue 18): ``["classification:distributed", ...]`` ->
    ``[("classification", "distributed"), ...]`` (duplicates dropped, order kept). The part after ``:`` is a
    condition of :data:`CONDITIONS`: a cue, or ``shared-backgrounds`` (chapters of :data:`SUN_CONTROL_CHAPTERS`).

    Raises:
        ConfigError: an item that is not one of :data:`VARIANT_CHOICES` (the message lists them).
    """
    out = []
    for item in variants or ():
        chapter, sep, cue = str(item).partition(":")
        if not sep or str(item) not in VARIANT_CHOICES:
            raise ConfigError(f"variant {item!r} is not chapter:condition; expected one of "
                              f"{', '.join(VARIANT_CHOICES)}")
        if (chapter, cue) not in out:
            out.append((chapter, cue))
    return out


def variant_values(chapter: str, cue: str, params: Mapping[str, Any]) -> dict:
    """The parameter values of ``chapter`` executed under condition ``cue`` (a key of :data:`CONDITIONS`) by the
    mechanisms page: its declared defaults (those of its notebook's parameters cell), the page's
    :data:`VARIANT_SHARED` values the chapter has, and the condition's settings (``{"cue": cue}`` for a cue,
    ``{"sun_backgrounds": "shared"}`` for ``shared-backgrounds``).

    Raises:
        ConfigError: a chapter without declarations, or an unknown condition.
    """
    if cue not in CONDITIONS:
        raise ConfigError(f"unknown condition {cue!r}; expected one of {', '.join(CONDITIONS)}")
    values = {name: p.default for name, p in declared(chapter).items()}
    values.update({k: params[k] for k in VARIANT_SHARED if k in params and k in values})
    return {**values, **CONDITIONS[cue]}


# ------------------------------------------------------------------------------------------------------ checking


def declared(chapter: str) -> dict[str, Parameter]:
    """``{name: Parameter}`` of a chapter, in cell order.

    Raises:
        ConfigError: the chapter declares no parameters here (the message lists the chapters that do).
    """
    try:
        return {p.name: p for p in CHAPTER_PARAMETERS[chapter]}
    except KeyError:
        raise ConfigError(f"no parameters are declared for chapter {chapter!r}; chapters: "
                          f"{', '.join(CHAPTER_PARAMETERS)}") from None


def unknown_parameter_message(chapter: str, name: str, names=None) -> str:
    """"<chapter> has no parameter '<name>'; did you mean '<closest>'? Its parameters: ..." (difflib's closest
    match, when one is close enough). ``names`` defaults to the chapter's declared names."""
    names = list(names if names is not None else declared(chapter))
    close = difflib.get_close_matches(name, names, n=1, cutoff=0.6)
    if close:
        return f"{chapter} has no parameter {name!r}; did you mean {close[0]!r}? Its parameters: {', '.join(names)}"
    return f"{chapter} has no parameter {name!r}; its parameters: {', '.join(names)}"


def check_parameters(chapter: str, values: Mapping[str, Any], parameters=None) -> dict:
    """The given parameter values of a chapter, checked and coerced.

    Args:
        chapter: the chapter's name (``detection``).
        values: ``{name: value}`` as papermill would inject them (after YAML reading).
        parameters: the chapter's :class:`Parameter` s (default: :data:`CHAPTER_PARAMETERS`).

    Returns:
        ``{name: coerced value}`` for the names given (defaults are not filled in).

    Raises:
        ParameterError: an unknown name (closest valid name and the list), a value of the wrong type or range
            (names the parameter, what it expects and what it got; a profile a synthetic-only chapter refuses says
            why: :data:`SYNTHETIC_ONLY`), a real ``dataset`` without ``data_root``, or the synthetic detection target
            at a profile with published weights (:data:`PUBLISHED_PROFILES`, :data:`REAL_TARGET_CHAPTERS`), or
            ``occlusion_annotations`` with a dataset other than voc. Values
            not given are taken at their declared defaults for these combined checks.
        ConfigError: no declarations for ``chapter`` and ``parameters`` not given.
    """
    params = {p.name: p for p in parameters} if parameters is not None else declared(chapter)
    for name in values:
        if name not in params:
            raise ParameterError(chapter, name, unknown_parameter_message(chapter, name, params))
    try:
        out = {name: params[name].check(value, chapter) for name, value in values.items()}
    except ParameterError as err:
        if err.parameter == "profile" and chapter in SYNTHETIC_ONLY:
            raise ParameterError(chapter, "profile", f"{err}: {SYNTHETIC_ONLY[chapter]}") from None
        raise

    def value(name: str):
        return out.get(name, params[name].default if name in params else None)

    dataset, root, profile = value("dataset"), value("data_root"), value("profile")
    real_dataset = dataset in REAL_TARGETS or (chapter == "feature_space" and dataset in REAL_PROBE_DATASETS)
    if (chapter in NEEDS_DATA_ROOT or chapter == "feature_space") and real_dataset and root is None:
        raise ParameterError(chapter, "data_root", f"{chapter}: parameter 'data_root' expects the root of the "
                                                   f"{dataset} dataset when dataset is {dataset!r}; got None")
    if chapter in REAL_TARGET_CHAPTERS and profile in PUBLISHED_PROFILES and dataset == "synthetic":
        raise ParameterError(chapter, "dataset", f"{chapter}: profile {profile!r} fine-tunes on real data, so "
                                                 "parameter 'dataset' expects voc or coco (with data_root, e.g. -p "
                                                 "dataset voc -p data_root ~/data/VOCdevkit); got 'synthetic' (the "
                                                 "synthetic target belongs to profiles smoke and mini)")
    if value("occlusion_annotations") is not None and dataset != "voc":
        raise ParameterError(chapter, "occlusion_annotations", f"{chapter}: parameter 'occlusion_annotations' "
                                                               "(Hoiem et al.'s levels of VOC2007 test objects) needs "
                                                               f"dataset 'voc' with a VOC2007 data_root; got dataset "
                                                               f"{dataset!r}")
    return out


def non_default_parameters(chapter: str, params: Mapping[str, Any] | None, *, ignore=()) -> list[str]:
    """The names in ``params`` (a chapter execution's values) that are declared for ``chapter``, not in ``ignore``,
    and differ from their declared default; ``[]`` for a chapter without declarations (nothing to compare with)."""
    if not params:
        return []
    try:
        defaults = {name: p.default for name, p in declared(chapter).items()}
    except ConfigError:
        return []
    return [k for k, v in params.items() if k in defaults and k not in ignore and v != defaults[k]]


def check_namespace(chapter: str, namespace: Mapping[str, Any]) -> dict:
    """Check a chapter's parameters as they stand in ``namespace`` (a notebook's ``globals()`` after the parameters
    and injected-parameters cells): what a chapter's first cell runs under raw papermill.

    Returns:
        ``{name: coerced value}`` of every declared parameter.

    Raises:
        ParameterError: as :func:`check_parameters` (a missing name is named as missing).
    """
    params = declared(chapter)
    missing = [n for n in params if n not in namespace]
    if missing:
        raise ParameterError(chapter, missing[0], f"{chapter}: parameter(s) {', '.join(missing)} not defined")
    return check_parameters(chapter, {n: namespace[n] for n in params})


# ------------------------------------------------------------------------------------------ the re-run table


def _show(value: Any) -> str:
    return "None" if value is None else json.dumps(value)


def rerun_table(chapters=None):
    """The "Re-run it yourself" table: one row per chapter parameter, generated from the declarations.

    Args:
        chapters: chapter names (default: every declared chapter, in declaration order).

    Returns:
        a ``pandas.DataFrame`` with columns chapter, parameter, accepts, default, meaning.
    """
    import pandas as pd

    rows = [{"chapter": chapter, "parameter": p.name, "accepts": p.expects(), "default": _show(p.default),
             "meaning": p.meaning}
            for chapter in (chapters or CHAPTER_PARAMETERS) for p in CHAPTER_PARAMETERS[chapter]]
    return pd.DataFrame(rows, columns=["chapter", "parameter", "accepts", "default", "meaning"])


def rerun_markdown(chapters=None) -> str:
    """:func:`rerun_table` as a Markdown (pipe) table, ``|`` inside cells escaped."""
    frame = rerun_table(chapters)
    cols = list(frame.columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for row in frame.itertuples(index=False):
        lines.append("| " + " | ".join(f"`{v}`" if c in ("parameter", "default") else str(v).replace("|", "\\|")
                                       for c, v in zip(cols, row)) + " |")
    return "\n".join(lines)


def warm_start_markdown(archive: str = "runs-mini.tar.gz", store: str = "runs") -> str:
    """How a reader re-executes a chapter warm from the published run store archive (Markdown)."""
    return (f"Download `{archive}` (the book's `mini` run store, attached to the build), then\n\n"
            f"```bash\npython -m detpretrain runs import {archive} --store {store}   # verified before anything "
            f"lands\npython -m detpretrain run detection -p store {store}               # loads, trains nothing\n"
            f"```\n\nThe import checks every file's SHA-256 and that each run's config hashes to its name; a damaged "
            f"or altered archive is refused whole. `runs verify --store {store}` checks the store at any time.")
