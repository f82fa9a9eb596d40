"""The embedded synthetic corpus: one deterministic, seed-generated corpus per role of the paper, in standard formats.

The paper (Li et al. 2019) compares backbones pre-trained on image classification (IMAGENET-CLS) and on object
detection (IMAGENET-LOC, COCO, OPENIMAGES), fine-tuned on small detection / segmentation / classification targets.
Its effects come from properties of real images that this corpus reproduces on purpose:

* **a whole extent vs. a discriminative part** (Figures 4, 5; Section 2.3). Every object belongs to one of 25
  categories in 5 super-categories (:data:`TAXONOMY`). The super-category fixes the family of whole-object shapes
  (:data:`~detpretrain.data.synthetic_taxonomy.SHAPE_FAMILIES`: vehicles = body + cabin on wheels, animals = body,
  head, legs, tail, furniture = seat, back-rest, arm, legs, plants = crown on a stem in a pot, appliances = box
  with a panel and knobs); within a super-category the categories share the body colour and texture
  distributions and are told apart *mainly* by a discriminative part: a patch of 5-15 % of the object's area with
  a category-specific shape, colour and position (e.g. ``car`` = red triangle on the front, ``bus`` = yellow
  stripes on the door; :attr:`Category.part_description`). A classifier can succeed from the part alone; a
  detector must cover the whole extent. Only a weak cue lies elsewhere (a category-specific mean aspect ratio,
  overlapped by the per-instance jitter). Every annotation records the part's box (``part_bbox``) and mask, so the
  activation-map and mask-out chapters can measure where activation mass falls.
* **localisation** (Table 1, Figure 1): objects have varied aspect ratios, tilts, mirrors and shape details
  (wheel count, leg splay, crown blobs, back-rest width ...), areas from about 2 % to 60 % of the image, occlusion
  between objects (``visible_fraction`` per instance; Table 3) and truncation by the border (``truncated``), and
  sit among clutter (distractor polygons, blobs, wires and boxes that are not objects).
* **scene context** (SUN-397, Figure 3): 9 scene types (:data:`SCENES`: street, farm, park, desert, garden, kitchen,
  living room, bedroom, office) defined by which categories co-occur and by their background style.
* **category removal** (Table 2): ``CorpusSpec(exclude_supercategory="vehicle")`` regenerates a pre-training corpus
  in which no instance of that super-category is drawn at all (scenes draw their objects from the remaining
  categories; object-centric roles cycle over the remaining classes). ``exclude_categories=("cow", "sofa")`` does
  the same for single categories (the frozen-backbone control below).

What the default corpus builds in, and the switches that take it out (issue 18)
-------------------------------------------------------------------------------
Read plainly, several of the book's results under the default corpus confirm what the corpus was built to contain;
they are **positive controls** (they show that the pipeline measures what it should), not tests of the paper:

* ``cue="part"`` (default): within a super-category the only strong category cue is a small (5-15 %), saturated
  discriminative part. That classification pre-training concentrates on it -- **Figure 4's classifier half** and
  **Figure 5** (the mask-out drop on the part) -- is built in.
* The CALTECH-role target holds the same 25 classes, drawn by the same renderer, as the IMAGENET-CLS pre-training,
  so **Figure 7** (t-SNE clusters of Conv5 features) and the **CALTECH column of Table 6** favour the IMAGENET-CLS
  backbone by construction (under every cue below; no switch changes it).
* A SUN-role scene is decodable from its background style alone (``sun_backgrounds="style"``, default), so the
  **SUN column of Table 6** can be won by background texture statistics without any object.
* Every rare class of the frozen-backbone study (a VOC-role class) is an IMAGENET-CLS class, so a frozen IMAGENET-CLS
  backbone has been trained on exactly the distinction the rare classes need.

The switches (all default to the corpus above; :class:`CorpusSpec`):

* ``cue="distributed"`` -- **no part**: within a super-category the category is told by a body-wide texture motif
  (:data:`BODY_PATTERNS`: horizontal bands, vertical bands, diagonal bands, checks, zigzag, laid in the object's
  frame over the WHOLE silhouette -- body, wheels, panel, legs alike -- with a period of a quarter to a fifth of the
  object's short side (>= 3 px), random phase, zero mean and one contrast, ``c * (1 + 0.25 m) + 20 m``; so no motif
  changes the object's mean colour, and any patch of the object carries the cue). It switches off the built-in
  answer of Figures 4 / 5: where classification activation concentrates becomes a test. Annotations carry no
  ``part_bbox`` / ``part_segmentation`` (and VOC no ``<part>``): the cue region is the object's mask itself, so the
  activation-map chapter's "part" share is undefined there; what remains measurable is object vs. outside and how
  the activation spreads over the object. Measured (5-way within-super-category logistic regression on 64 px
  ``imagenet_cls`` images, 100 train / 40 test per class, chance 0.20; part / distributed / a floor where all five
  siblings share one motif, so only the weak aspect-ratio cue is left): raw pixels 0.51 / 0.43 / 0.42 -- a linear
  read-out of raw pixels finds nothing of the motif and little of the part; a phase-free texture statistic (log
  |FFT| of the grey image) 0.70 / 0.81 / 0.35; an RGB colour histogram 0.85 / 0.37 / 0.36 -- the part is a colour
  cue on ~11 % of the object, the motif a texture cue on 100 % of it.
* ``cue="part+decoy"`` -- the part PLUS a decoy: a second patch with the part's size and saliency statistics (the
  part shapes, the saturated part colours, the mixture of the siblings' part sizes, the same contrasting outline)
  whose shape, colour, size and position are drawn independently of the category within its super-category
  (:func:`~detpretrain.data.synthetic_render.decoy_attributes`; a (shape, colour) pair that is any sibling's part is
  redrawn, the same exclusion for every sibling; the centre is a uniform pixel of the silhouette's interior). The
  decoy is drawn first and the part over it, so the part is exactly that of ``cue="part"``; on average 8-17 % of
  a decoy lies under the part. Annotated as ``decoy_bbox`` / ``decoy_segmentation`` (VOC: ``<decoy><bndbox>``, not a
  ``<part>``), so "activation enrichment on the part > on the decoy" is testable (Figure 4).
* ``sun_backgrounds="shared"`` -- every SUN-role scene paints its background from one distribution (a uniform choice
  among the nine scene styles, :data:`SHARED_BACKGROUND_STYLES`, with its own random parameters), so the scene class
  depends only on which objects co-occur and their number and layout. The style painted is recorded as the image's
  ``background`` in ``annotations.json``.
* ``exclude_categories`` (pre-training roles) -- with :func:`detpretrain.data.long_tail.pretraining_exclusion`, an
  IMAGENET-CLS corpus without the frozen-backbone study's rare classes (or their super-categories).

Paired corpora: a variant draws its extra randomness aside (:func:`~detpretrain.data.synthetic_render.side_rng`) and
consumes the image's generator exactly as the default does, so with the same seed every variant has the same
images, objects, masks and boxes as the default corpus -- only the cue (or the SUN background) differs.

Roles (:data:`ROLES`) and layouts
---------------------------------
=================  ===============================================================  ===================
role               content                                                          layout
=================  ===============================================================  ===================
``imagenet_cls``   IMAGENET-CLS: one object per image, label only, all 25 classes   ImageFolder + sidecar
                   (minus ``exclude_supercategory`` / ``exclude_categories``)
``imagenet_loc``   IMAGENET-LOC: one category per image (1-3 instances), boxes and  COCO
                   masks, object-centric (larger objects); :func:`image_level_labels`
                   turns it into IMAGENET-LOC (Cls) for Tables 2 and 7
``coco``           COCO / OPENIMAGES: multi-category scenes (2-6 objects), all 25   COCO
``voc``            the VOC-like detection and segmentation TARGET (see below)       VOC
``caltech``        object-centric classification (CALTECH-256): 1-3 instances of    ImageFolder + sidecar
                   one class, 2-60 % of the image, plain or scene backgrounds; the
                   same 25 classes and renderer as ``imagenet_cls``
``sun``            scene classification (SUN-397): the class is the scene type      ImageFolder + sidecar
                   (its objects and, unless ``sun_backgrounds="shared"``, its
                   background style)
``flowers``        fine-grained (OXFORD-102 FLOWERS): 12 classes of one flower      ImageFolder + sidecar
                   shape differing only in petal colour (4) x petal texture (3);
                   no part, so no ``cue``
=================  ===============================================================  ===================

**The VOC-like target.** Like VOC's 20 classes inside COCO's 80, its 12 classes (:data:`VOC_CATEGORIES`: car, bus,
motorbike, dog, cat, horse, cow, chair, sofa, table, potted_plant, tv) are a subset of the pre-training categories
that covers every super-category (vehicle 3, animal 4, furniture 3, plant 1, appliance 1), so Table 2's removal of
"vehicle" or "animal" from pre-training removes categories that the target then asks for. Only these 12 appear in
its images (no unannotated objects). Its distribution is shifted from the pre-training corpora as VOC's is from
COCO's: fewer objects per image (1-4, mean about 2.2 vs. 2-6), a different photometric domain (stronger blur and
noise, wider gain / gamma / colour cast, tinted background palettes) and more truncation; and it is small.

Formats (readable by standard readers; ``tests/test_synthetic.py`` checks them with pycocotools, xml.etree + PIL and
torchvision ``ImageFolder``):

* COCO: ``<root>/{train,val[,test]}/<id:012d>.jpg`` and ``<root>/annotations/instances_<split>.json``; image ids are
  unique across splits; annotations carry an RLE ``segmentation`` (pycocotools ``encode``, counts as str) of the
  visible mask, ``bbox`` (x, y, w, h pixels of the visible mask), ``area`` (visible pixels), ``iscrowd`` 0, and the
  extras ``visible_fraction`` (visible pixels / pixels of the whole object including those under objects drawn
  on top and those outside the image), ``truncated`` (0/1), ``part_bbox`` and ``part_segmentation`` (the visible
  part; omitted when the part is hidden or under 2 px wide, and always under ``cue="distributed"``), and under
  ``cue="part+decoy"`` ``decoy_bbox`` and ``decoy_segmentation`` (the visible decoy, same rule). Images carry an extra
  ``scene`` (and ``background`` under ``sun_backgrounds="shared"``).
* VOC: ``<root>/Annotations/<id>.xml`` (size, segmented, object/name/pose/truncated/occluded/difficult, bndbox
  1-based inclusive: ``xmin = x1 + 1``, ``xmax = x2`` for the continuous box ``[x1, x2)``, the standard
  ``<part><name>part</name><bndbox>..</bndbox></part>`` child (none under ``cue="distributed"``), an extra
  ``<visible_fraction>`` and, under ``cue="part+decoy"``, an extra ``<decoy><bndbox>..</bndbox></decoy>``),
  ``JPEGImages/<id>.jpg``, ``ImageSets/Main/{train,val,trainval,test}.txt`` (+ ``<class>_<set>.txt``),
  ``ImageSets/Segmentation/{train,val,trainval,test}.txt``, ``SegmentationClass/<id>.png`` and
  ``SegmentationObject/<id>.png`` (palette PNGs with the VOC colour map; 0 = background, k = k-th class of
  ``labels.txt`` / k-th ``<object>``, 255 = a void band along every object outline, :func:`void_width` px wide:
  2 px at 64 px, 3 px at 128 px, 5 px from 256 px up, as VOC's ~5 px at 500 px), and ``labels.txt`` (one
  ``name supercategory`` line per class in label order 1..K). ``difficult`` = less than 35 % visible or under
  0.6 % of the image.
* ImageFolder: ``<root>/{train,val[,test]}/<class>/<split>_<index:06d>.jpg`` plus ``<root>/annotations.json``, a
  COCO-format file (loads in pycocotools) whose ``images`` carry ``file_name`` relative to the root, ``split``,
  ``label`` and ``scene`` (+ ``background``), whose ``annotations`` carry every object's box, mask RLE, part box /
  part RLE (+ decoy box / decoy RLE), ``visible_fraction`` and ``truncated``, and whose ``classes`` lists the image
  classes in ``ImageFolder`` order (sorted). Flowers have no discriminative part (their classes differ over the
  whole petal area): no part keys.

Every corpus root also holds ``corpus.json`` (the spec, its key and :data:`GENERATOR_VERSION`; the spec without the
later fields at their default, :meth:`CorpusSpec.as_dict`).

Determinism and caching: image ``index`` of ``split`` is drawn from its own ``numpy.random.Generator`` seeded by
``(seed, role, split, index)`` (:func:`image_rng`), so images do not depend on the split sizes or on the order of
generation (``generate(workers=N)`` gives byte-identical files), and the first images of a larger corpus equal
those of a smaller one with the same seed. :func:`generate` writes into a temporary folder and renames it to
``<cache_dir>/<role>-<spec.key()>``; an existing folder is returned as is.

Profiles (:func:`profile_specs`; images per split, then per class for class-balanced roles)
----------------------------------------------------------------------------------------------
==============  ================================  ======================================================
role            ``smoke`` (64 px)                 ``mini`` (128 px)
==============  ================================  ======================================================
imagenet_cls    100 train / 50 val (4 / 2)        1500 train / 250 val (60 / 10 per class)
imagenet_loc    100 train / 25 val                1500 train / 200 val
coco            100 train / 25 val                1500 train / 200 val
voc             24 train + 24 val / 32 test       1600 train + 200 val (= 1800 trainval) / 200 test [1]_
caltech         50 / 25 / 25 (2 / 1 / 1)          750 / 250 / 250 train / val / test (30 / 10 / 10)
sun             36 / 18 / 18 (4 / 2 / 2)          2430 / 90 / 90 (270 / 10 / 10) [2]_
flowers         48 / 24 / 24 (4 / 2 / 2)          360 / 120 / 120 (30 / 10 / 10)
==============  ================================  ======================================================

.. [1] The detection target. Its size was chosen on val with the fine-tuning schedule (``profiles.py``: at a fixed
   9,600 image-steps, 400 -> 1600 training images raise the IMAGENET-CLS arm's val mAP@0.5 from 49.2 to 60.5). The
   segmentation target reads the first 200 train images of the same corpus
   (:data:`detpretrain.experiments.segmentation.SYNTHETIC_SEGMENTATION_TRAIN`), the size its schedule was chosen at.

.. [2] Sized on val for the SUN scene control (``sun_backgrounds="shared"``; selection 4 in ``profiles.py``): at 30,
   90 and 270 training images per scene the IMAGENET-CLS arm's fine-tuned classifiers reach 26.7, 30.0 and 40.4 %
   val top-1, below half the way from chance (11.1 %) to a classifier of the ground-truth object counts (84-91 %),
   so the largest was kept and the control is floor-limited. The same size serves both SUN conditions.

Generation time, single process pinned to one core (``taskset -c 0``) of the 2-core development machine: the whole
``smoke`` profile (748 images) in about 3 s, the whole ``mini`` profile in about 45 s when its detection target had
200 training images (8,050 images: coco 12 s, imagenet_cls 9 s, imagenet_loc 6 s, caltech 6 s, voc 5.5 s for 600
images, sun 3.3 s, flowers 3 s); the 2,000-image target of 1600 training images (9,450 in all) adds about 13 s by
that rate (not timed separately), and the segmentation target's 600 images (its first 200 train images) are a
corpus of their own. ``generate(workers=N)`` parallelises over images.

README figure: ``save_sample_grid(generate(CorpusSpec("coco", 128, 8, 0, 0, seed=0), cache), "coco",
"docs/images/synthetic_samples.png")`` (these are the first 8 training images of the ``mini`` coco corpus).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import zlib
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from xml.etree import ElementTree as ET

import numpy as np
from PIL import Image

from detpretrain.config import neutral_corpus_dict
from detpretrain.data.synthetic_render import (
    CUES,
    Domain,
    Placement,
    annotate,
    render_scene,
    side_rng,
)
from detpretrain.data.synthetic_taxonomy import (
    CATEGORY_BY_NAME,
    FLOWER_CLASSES,
    SCENES,
    BODY_PATTERNS,
    SHAPE_FAMILIES,
    SUPERCATEGORIES,
    TAXONOMY,
    VOC_CATEGORIES,
    Category,
    Scene,
)
from detpretrain.errors import ConfigError, DataError
from detpretrain.io import atomic_directory

__all__ = [
    "BODY_PATTERNS", "CATEGORY_BY_NAME", "CUES", "FLOWER_CLASSES", "GENERATOR_VERSION", "ROLES", "SCENES",
    "SHARED_BACKGROUND_STYLES", "SHAPE_FAMILIES", "SUN_BACKGROUNDS",
    "SUPERCATEGORIES", "TAXONOMY", "VOC_CATEGORIES", "Category", "CorpusSpec", "Scene", "corpus_classes",
    "generate", "image_level_labels", "image_rng", "profile_specs", "save_sample_grid",
    "void_width", "voc_palette",
]

#: Bump when a change to the generator changes its output, so cached corpora are regenerated (it is in the key).
GENERATOR_VERSION = "1"

ROLES: tuple[str, ...] = ("imagenet_cls", "imagenet_loc", "coco", "voc", "caltech", "sun", "flowers")
_LAYOUT = {"imagenet_cls": "folder", "imagenet_loc": "coco", "coco": "coco", "voc": "voc", "caltech": "folder",
           "sun": "folder", "flowers": "folder"}
#: roles that may drop a super-category (the pre-training corpora of Table 2)
_EXCLUDABLE = ("imagenet_cls", "imagenet_loc", "coco")
_SPLIT_CODE = {"train": 0, "val": 1, "test": 2}
#: roles whose objects carry a category cue (``CorpusSpec.cue``); flowers have no part and ignore it
_CUE_ROLES = ("imagenet_cls", "imagenet_loc", "coco", "voc", "caltech", "sun")
#: ``CorpusSpec.sun_backgrounds``: ``"style"`` = the scene's own background style, ``"shared"`` = one distribution
SUN_BACKGROUNDS: tuple[str, ...] = ("style", "shared")
#: the common background distribution of ``sun_backgrounds="shared"``: uniform over every scene type's style
SHARED_BACKGROUND_STYLES: tuple[str, ...] = tuple(dict.fromkeys(s.style for s in SCENES))

# photometric / layout domains (see synthetic_render.Domain)
_PRETRAIN = Domain()
_OBJECT_CENTRIC = Domain(clutter=(1, 6), truncation=0.1)
_VOC = Domain(blur=0.8, noise=5.0, gain=(0.75, 1.2), gamma=(0.8, 1.25), cast=12.0, tint=0.08, clutter=(1, 6),
              truncation=0.3)
_FLOWERS = Domain(blur=0.6, clutter=(0, 2), truncation=0.0)


@dataclass(frozen=True)
class CorpusSpec:
    """What to generate; its :meth:`key` names the corpus folder.

    Attributes:
        role: one of :data:`ROLES`.
        image_size: side of the square images, pixels (>= 32).
        n_train, n_val, n_test: images per split (0 = no such split). Class-balanced roles (``imagenet_cls``,
            ``caltech``, ``sun``, ``flowers``) cycle over the classes (image ``i`` has class ``i mod K``), so a
            non-empty split needs at least K images (otherwise a class folder would be missing). For ``voc``
            ``train`` + ``val`` = ``trainval``.
        seed: corpus seed.
        exclude_supercategory: a super-category (:data:`SUPERCATEGORIES`) that never appears (Table 2); only for
            the pre-training roles ``imagenet_cls``, ``imagenet_loc`` and ``coco``.
        jpeg_quality: JPEG quality of the written images.
        cue: how an object shows its category within its super-category (:data:`CUES`; module docstring):
            ``"part"`` (the discriminative part), ``"distributed"`` (no part; a body-wide motif) or
            ``"part+decoy"`` (the part plus a category-independent decoy patch). Object roles only (not flowers).
        sun_backgrounds: ``"style"`` (a scene's background style is its own) or ``"shared"`` (every scene draws its
            background from one distribution, :data:`SHARED_BACKGROUND_STYLES`); role ``sun`` only.
        exclude_categories: category names (:data:`TAXONOMY`) that never appear, as ``exclude_supercategory`` does
            for a whole super-category (the frozen-backbone control pre-trains without its rare classes); only for
            the pre-training roles. Stored sorted.

    ``cue``, ``sun_backgrounds`` and ``exclude_categories`` came later (:data:`detpretrain.config.CORPUS_LATER_FIELDS`):
    at their default they are left out of :meth:`key`, ``corpus.json`` and a ``DataSpec``'s corpus dict, so every
    corpus and run from before they existed keeps its name and bytes.

    Raises:
        ConfigError: unknown role, super-category, category, cue or background mode, too small images, negative
            counts, no image at all, a class-balanced split with fewer images than classes, an option given to a
            role it does not apply to, or every category excluded.
    """

    role: str
    image_size: int
    n_train: int
    n_val: int
    n_test: int
    seed: int = 0
    exclude_supercategory: str | None = None
    jpeg_quality: int = 90
    cue: str = "part"
    sun_backgrounds: str = "style"
    exclude_categories: tuple[str, ...] = ()

    def __post_init__(self):
        if self.role not in ROLES:
            raise ConfigError(f"unknown synthetic role {self.role!r}; expected one of {ROLES}")
        if not isinstance(self.image_size, int) or self.image_size < 32:
            raise ConfigError(f"image_size must be an int >= 32 pixels, got {self.image_size!r}")
        counts = (self.n_train, self.n_val, self.n_test)
        if any(not isinstance(n, int) or n < 0 for n in counts) or sum(counts) == 0:
            raise ConfigError(f"image counts must be non-negative ints, not all 0; got {counts}")
        if self.exclude_supercategory is not None:
            if self.exclude_supercategory not in SUPERCATEGORIES:
                raise ConfigError(f"unknown super-category {self.exclude_supercategory!r}; "
                                  f"expected one of {SUPERCATEGORIES}")
            if self.role not in _EXCLUDABLE:
                raise ConfigError(f"exclude_supercategory applies to the pre-training roles {_EXCLUDABLE}, "
                                  f"not {self.role!r}")
        if not 1 <= self.jpeg_quality <= 100:
            raise ConfigError(f"jpeg_quality must be in 1..100, got {self.jpeg_quality}")
        if self.cue not in CUES:
            raise ConfigError(f"unknown cue {self.cue!r}; expected one of {CUES}")
        if self.cue != "part" and self.role not in _CUE_ROLES:
            raise ConfigError(f"cue={self.cue!r} applies to the object roles {_CUE_ROLES}; {self.role!r} has no "
                              f"part (its classes differ over the whole petal area)")
        if self.sun_backgrounds not in SUN_BACKGROUNDS:
            raise ConfigError(f"unknown sun_backgrounds {self.sun_backgrounds!r}; expected one of {SUN_BACKGROUNDS}")
        if self.sun_backgrounds != "style" and self.role != "sun":
            raise ConfigError(f"sun_backgrounds={self.sun_backgrounds!r} applies to role 'sun', not {self.role!r}")
        excluded = self.exclude_categories
        if isinstance(excluded, str) or not all(isinstance(n, str) for n in excluded):
            raise ConfigError(f"exclude_categories must be a sequence of category names, got {excluded!r}")
        unknown = [n for n in excluded if n not in CATEGORY_BY_NAME]
        if unknown:
            raise ConfigError(f"exclude_categories: unknown category {unknown}; expected names of "
                              f"{[c.name for c in TAXONOMY]}")
        object.__setattr__(self, "exclude_categories", tuple(sorted(set(excluded))))
        if self.exclude_categories:
            if self.role not in _EXCLUDABLE:
                raise ConfigError(f"exclude_categories applies to the pre-training roles {_EXCLUDABLE}, "
                                  f"not {self.role!r}")
            if not _allowed_categories(self):
                raise ConfigError("exclude_categories and exclude_supercategory leave no category")
        if _LAYOUT[self.role] == "folder":
            k = len(corpus_classes(self))
            short = [f"{s}={n}" for s, n in zip(("n_train", "n_val", "n_test"), counts) if 0 < n < k]
            if short:
                raise ConfigError(f"role {self.role!r} has {k} classes; each non-empty split needs >= {k} images "
                                  f"({', '.join(short)})")

    def as_dict(self) -> dict:
        """The spec as a JSON-ready dict, without the later fields at their neutral value
        (:data:`~detpretrain.config.CORPUS_LATER_FIELDS`); ``CorpusSpec(**spec.as_dict()) == spec``."""
        d = dataclasses.asdict(self)
        d["exclude_categories"] = list(self.exclude_categories)
        return neutral_corpus_dict(d)

    def key(self) -> str:
        """12 hex digits of the SHA-256 of :meth:`as_dict` and :data:`GENERATOR_VERSION` (stable across runs)."""
        payload = json.dumps({"spec": self.as_dict(), "generator_version": GENERATOR_VERSION},
                             sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:12]

    @property
    def splits(self) -> list[str]:
        """The non-empty splits, in order ``train``, ``val``, ``test``."""
        return [s for s, n in zip(("train", "val", "test"), (self.n_train, self.n_val, self.n_test)) if n > 0]

    @property
    def layout(self) -> str:
        """``"coco"``, ``"voc"`` or ``"folder"`` (ImageFolder)."""
        return _LAYOUT[self.role]

    def count(self, split: str) -> int:
        return {"train": self.n_train, "val": self.n_val, "test": self.n_test}[split]


def _allowed_categories(spec: CorpusSpec) -> list[Category]:
    return [c for c in TAXONOMY if c.supercategory != spec.exclude_supercategory
            and c.name not in spec.exclude_categories]


def corpus_classes(spec: CorpusSpec) -> list[str]:
    """The label set of a corpus, in label order.

    Detection roles: object categories (COCO ids are the :data:`TAXONOMY` ids; the VOC role's label k is
    ``VOC_CATEGORIES[k - 1]``). Classification roles: the image classes -- categories (``imagenet_cls``,
    ``caltech``), scene names (``sun``) or flower classes (``flowers``) -- in ``ImageFolder`` order (sorted).
    """
    if spec.role == "voc":
        return list(VOC_CATEGORIES)
    if spec.role in ("imagenet_loc", "coco"):
        return [c.name for c in _allowed_categories(spec)]
    if spec.role in ("imagenet_cls", "caltech"):
        return sorted(c.name for c in _allowed_categories(spec))
    if spec.role == "sun":
        return sorted(s.name for s in SCENES)
    return sorted(c.name for c in FLOWER_CLASSES)


def image_rng(seed: int, role: str, split: str, index: int) -> np.random.Generator:
    """The generator of one image: seeded by ``(seed, crc32(role), split code, index)`` through ``SeedSequence``."""
    return np.random.default_rng(np.random.SeedSequence([seed, zlib.crc32(role.encode()), _SPLIT_CODE[split],
                                                         index]))


# ----------------------------------------------------------------------------------------------------------------
# what each role puts in an image
# ----------------------------------------------------------------------------------------------------------------
@dataclass
class _Sample:
    style: str
    scene: str
    placements: list
    domain: Domain
    label: str | None = None  # image-level class (classification roles)
    paint: str | None = None  # background style painted instead of ``style``'s (sun_backgrounds="shared")


def _log_uniform(rng: np.random.Generator, lo: float, hi: float, n: int | None = None):
    return np.exp(rng.uniform(math.log(lo), math.log(hi), n))


def _areas(rng: np.random.Generator, n: int, lo: float, hi: float, total: float = 0.9) -> list[float]:
    """``n`` object areas (fractions of the image), log-uniform in [lo, hi], their sum capped at ``total``."""
    a = np.sort(_log_uniform(rng, lo, hi, n))[::-1]
    if a.sum() > total:
        a = np.maximum(lo, a * total / a.sum())
    return [float(v) for v in a]


def _n_instances(rng: np.random.Generator) -> int:
    return int(rng.choice([1, 2, 3], p=[0.6, 0.25, 0.15]))


def _scene_for(rng: np.random.Generator, category: str) -> Scene:
    scenes = [s for s in SCENES if category in s.categories]
    return scenes[int(rng.integers(len(scenes)))]


def _pool(scene: Scene, allowed: set[str]) -> tuple[list[str], np.ndarray]:
    names = [n for n in scene.categories if n in allowed]
    w = np.array([scene.categories[n] for n in names], dtype=float)
    return names, w / w.sum() if len(names) else w


def _multi_object(rng, scene: Scene, allowed: set[str], n_range, lo, hi, domain) -> _Sample:
    names, p = _pool(scene, allowed)
    n = int(rng.integers(n_range[0], n_range[1] + 1))
    cats = [CATEGORY_BY_NAME[names[int(k)]] for k in rng.choice(len(names), size=n, p=p)]
    areas = _areas(rng, n, lo, hi)
    return _Sample(scene.style, scene.name, [Placement(c, a) for c, a in zip(cats, areas)], domain)


def _sample(spec: CorpusSpec, rng: np.random.Generator, index: int) -> _Sample:
    role = spec.role
    allowed = _allowed_categories(spec)
    names = {c.name for c in allowed}
    if role in ("imagenet_cls", "caltech", "imagenet_loc"):
        cat = allowed[index % len(allowed)]
        scene = _scene_for(rng, cat.name)
        if role == "imagenet_cls":
            style = "studio" if rng.random() < 0.2 else scene.style
            return _Sample(style, scene.name, [Placement(cat, float(_log_uniform(rng, 0.06, 0.6)))],
                           _OBJECT_CENTRIC, cat.name)
        n = _n_instances(rng)
        areas = [float(_log_uniform(rng, 0.06 if role == "imagenet_loc" else 0.04, 0.6))] if n == 1 else \
            _areas(rng, n, 0.03 if role == "imagenet_loc" else 0.02, 0.3)
        placements = [Placement(cat, a) for a in areas]
        if role == "caltech":
            style = "studio" if rng.random() < 0.5 else scene.style
            return _Sample(style, scene.name, placements, _OBJECT_CENTRIC, cat.name)
        return _Sample(scene.style, scene.name, placements, _PRETRAIN)
    if role == "coco":
        candidates = [s for s in SCENES if set(s.categories) & names]
        scene = candidates[int(rng.integers(len(candidates)))]
        return _multi_object(rng, scene, names, scene.n_objects, 0.02, 0.6, _PRETRAIN)
    if role == "voc":
        scene = SCENES[int(rng.integers(len(SCENES)))]
        names, p = _pool(scene, set(VOC_CATEGORIES))
        n = int(rng.choice([1, 2, 3, 4], p=[0.35, 0.3, 0.2, 0.15]))
        cats = [CATEGORY_BY_NAME[names[int(k)]] for k in rng.choice(len(names), size=n, p=p)]
        areas = _areas(rng, n, 0.025, 0.6)
        return _Sample(scene.style, scene.name, [Placement(c, a) for c, a in zip(cats, areas)], _VOC)
    if role == "sun":
        scene = SCENES[index % len(SCENES)]
        sample = _multi_object(rng, scene, names, scene.n_objects, 0.02, 0.4, _PRETRAIN)
        sample.label = scene.name
        if spec.sun_backgrounds == "shared":  # drawn aside: the objects stay those of the "style" corpus
            pick = side_rng(rng, 4)
            sample.paint = SHARED_BACKGROUND_STYLES[int(pick.integers(len(SHARED_BACKGROUND_STYLES)))]
        return sample
    if role == "flowers":
        cls = FLOWER_CLASSES[index % len(FLOWER_CLASSES)]
        S = spec.image_size
        centre = tuple(float(v) for v in S / 2 + rng.normal(0.0, 0.07 * S, 2))
        return _Sample("foliage", "foliage", [Placement(cls, float(_log_uniform(rng, 0.08, 0.3)), centre=centre)],
                       _FLOWERS, cls.name)
    raise AssertionError(role)


# ----------------------------------------------------------------------------------------------------------------
# per-image work (runs in worker processes when workers > 1)
# ----------------------------------------------------------------------------------------------------------------
def void_width(image_size: int) -> int:
    """Width in pixels of the VOC-style void band along object outlines: ``clip(round(3 * size / 128), 2, 5)``."""
    return int(np.clip(round(3 * image_size / 128), 2, 5))


def voc_palette() -> np.ndarray:
    """(256, 3) uint8: the PASCAL VOC colour map (bit-interleaved label index; 255 -> (224, 224, 192))."""
    idx = np.arange(256)
    pal = np.zeros((256, 3), np.int64)
    for j in range(8):
        for ch in range(3):
            pal[:, ch] |= ((idx >> (3 * j + ch)) & 1) << (7 - j)
    return pal.astype(np.uint8)


_PALETTE = voc_palette().ravel().tolist()


def _save_palette_png(arr: np.ndarray, path: Path) -> None:
    im = Image.frombytes("P", (arr.shape[1], arr.shape[0]), np.ascontiguousarray(arr, np.uint8).tobytes())
    im.putpalette(_PALETTE)
    im.save(path, optimize=False)


def _image_ids(spec: CorpusSpec, split: str, index: int) -> tuple[int, str]:
    offset = sum(spec.count(s) for s in ("train", "val", "test")[:_SPLIT_CODE[split]])
    image_id = offset + index + 1
    if spec.layout == "coco":
        return image_id, f"{image_id:012d}.jpg"
    if spec.layout == "voc":
        return image_id, f"{image_id:06d}"
    return image_id, f"{split}_{index:06d}.jpg"


def _object_record(ann: dict) -> dict:
    x, y, w, h = ann["bbox"]
    rec = {"category": ann["category"].name, "bbox": [float(x), float(y), float(w), float(h)],
           "area": float(ann["area"]), "segmentation": ann["segmentation"],
           "visible_fraction": round(float(ann["visible_fraction"]), 4), "truncated": ann["truncated"]}
    if ann["part_bbox"] is not None:
        rec["part_bbox"] = [float(v) for v in ann["part_bbox"]]
        if ann["part_segmentation"] is not None:
            rec["part_segmentation"] = ann["part_segmentation"]
    if ann.get("decoy_bbox") is not None:
        rec["decoy_bbox"] = [float(v) for v in ann["decoy_bbox"]]
        if ann["decoy_segmentation"] is not None:
            rec["decoy_segmentation"] = ann["decoy_segmentation"]
    return rec


def _difficult(ann: dict, S: int) -> int:
    return int(ann["visible_fraction"] < 0.35 or ann["area"] < 0.006 * S * S)


def _voc_xml(file_id: str, S: int, scene: str, anns: list) -> str:
    root = ET.Element("annotation")
    ET.SubElement(root, "folder").text = "VOCsynthetic"
    ET.SubElement(root, "filename").text = f"{file_id}.jpg"
    src = ET.SubElement(root, "source")
    ET.SubElement(src, "database").text = "detpretrain synthetic corpus"
    ET.SubElement(src, "annotation").text = "detpretrain synthetic (role voc)"
    ET.SubElement(src, "image").text = "generated"
    size = ET.SubElement(root, "size")
    for tag, v in (("width", S), ("height", S), ("depth", 3)):
        ET.SubElement(size, tag).text = str(v)
    ET.SubElement(root, "segmented").text = "1"
    ET.SubElement(root, "scene").text = scene
    for ann in anns:
        obj = ET.SubElement(root, "object")
        ET.SubElement(obj, "name").text = ann["category"].name
        ET.SubElement(obj, "pose").text = "Unspecified"
        ET.SubElement(obj, "truncated").text = str(ann["truncated"])
        ET.SubElement(obj, "occluded").text = str(int(ann["visible_fraction"] < 1.0 and not ann["truncated"]))
        ET.SubElement(obj, "difficult").text = str(_difficult(ann, S))
        ET.SubElement(obj, "visible_fraction").text = f"{ann['visible_fraction']:.4f}"
        _voc_bndbox(ET.SubElement(obj, "bndbox"), ann["bbox"])
        if ann["part_bbox"] is not None:
            part = ET.SubElement(obj, "part")
            ET.SubElement(part, "name").text = "part"
            _voc_bndbox(ET.SubElement(part, "bndbox"), ann["part_bbox"])
        if ann.get("decoy_bbox") is not None:  # not a <part>: VOC readers take the first <part> as THE part
            _voc_bndbox(ET.SubElement(ET.SubElement(obj, "decoy"), "bndbox"), ann["decoy_bbox"])
    ET.indent(root, space="\t")
    return ET.tostring(root, encoding="unicode") + "\n"


def _voc_bndbox(node, xywh) -> None:
    x, y, w, h = xywh  # pixel columns x .. x + w - 1  ->  1-based inclusive xmin = x + 1, xmax = x + w
    for tag, v in (("xmin", x + 1), ("ymin", y + 1), ("xmax", x + w), ("ymax", y + h)):
        ET.SubElement(node, tag).text = str(int(v))


def _voc_label_maps(scene, anns: list, S: int) -> tuple[np.ndarray, np.ndarray]:
    """SegmentationClass and SegmentationObject arrays (uint8, 255 = void band)."""
    from scipy import ndimage

    owner = scene.owner
    lut_cls = np.zeros(len(anns) + 1, np.uint8)
    for k, ann in enumerate(anns):
        lut_cls[k + 1] = VOC_CATEGORIES.index(ann["category"].name) + 1
    obj = (owner + 1).astype(np.uint8)  # 0 = background, k = k-th object
    cls = lut_cls[obj]
    size = void_width(S) + 1
    void = ndimage.maximum_filter(owner, size=size) != ndimage.minimum_filter(owner, size=size)
    cls[void] = 255
    obj = obj.copy()
    obj[void] = 255
    return cls, obj


def _make_image(task: tuple) -> dict:
    """Render, write and annotate image ``index`` of ``split``; returns its JSON-ready record."""
    spec, split, index, root = task
    root = Path(root)
    S = spec.image_size
    rng = image_rng(spec.seed, spec.role, split, index)
    sample = _sample(spec, rng, index)
    scene = render_scene(rng, S, sample.style, sample.placements, sample.domain, cue=spec.cue,
                         paint_style=sample.paint)
    anns = annotate(scene, part_masks=True)
    image_id, name = _image_ids(spec, split, index)
    pil = Image.fromarray(scene.image)
    record = {"split": split, "index": index, "id": image_id, "scene": sample.scene, "label": sample.label,
              "objects": [_object_record(a) for a in anns]}
    if sample.paint is not None:
        record["background"] = sample.paint
    if spec.layout == "coco":
        pil.save(root / split / name, quality=spec.jpeg_quality)
        record["file_name"] = name
    elif spec.layout == "voc":
        pil.save(root / "JPEGImages" / f"{name}.jpg", quality=spec.jpeg_quality)
        (root / "Annotations" / f"{name}.xml").write_text(_voc_xml(name, S, sample.scene, anns), encoding="utf-8")
        cls, obj = _voc_label_maps(scene, anns, S)
        _save_palette_png(cls, root / "SegmentationClass" / f"{name}.png")
        _save_palette_png(obj, root / "SegmentationObject" / f"{name}.png")
        record["file_name"] = name
        record["difficult"] = [_difficult(a, S) for a in anns]
    else:
        folder = root / split / sample.label
        folder.mkdir(parents=True, exist_ok=True)
        pil.save(folder / name, quality=spec.jpeg_quality)
        record["file_name"] = f"{split}/{sample.label}/{name}"
    return record


# ----------------------------------------------------------------------------------------------------------------
# corpus writers
# ----------------------------------------------------------------------------------------------------------------
def _dump_json(obj, path: Path) -> None:
    path.write_text(json.dumps(obj, separators=(",", ":")), encoding="utf-8")


def _info(spec: CorpusSpec) -> dict:
    return {"description": f"detpretrain synthetic corpus, role {spec.role}", "version": GENERATOR_VERSION,
            "spec": spec.as_dict(), "key": spec.key()}


def _coco_annotations(records: list, cat_ids: dict, next_id: int) -> tuple[list, int]:
    out = []
    for r in records:
        for o in r["objects"]:
            ann = {"id": next_id, "image_id": r["id"], "category_id": cat_ids[o["category"]], "iscrowd": 0}
            ann.update({k: v for k, v in o.items() if k != "category"})
            out.append(ann)
            next_id += 1
    return out, next_id


def _background(record: dict) -> dict:
    """``{"background": style}`` where the painted background is not the scene's own (shared SUN backgrounds)."""
    return {"background": record["background"]} if "background" in record else {}


def _categories(cats) -> list[dict]:
    return [{"id": c.id, "name": c.name, "supercategory": c.supercategory} for c in cats]


def _write_coco(spec: CorpusSpec, root: Path, records: dict) -> None:
    cats = _allowed_categories(spec)
    cat_ids = {c.name: c.id for c in cats}
    next_id = 1
    for split in spec.splits:
        anns, next_id = _coco_annotations(records[split], cat_ids, next_id)
        images = [{"id": r["id"], "file_name": r["file_name"], "width": spec.image_size,
                   "height": spec.image_size, "scene": r["scene"], **_background(r)} for r in records[split]]
        _dump_json({"info": _info(spec), "licenses": [], "images": images, "annotations": anns,
                    "categories": _categories(cats)}, root / "annotations" / f"instances_{split}.json")


def _write_folder_sidecar(spec: CorpusSpec, root: Path, records: dict) -> None:
    cats = list(FLOWER_CLASSES) if spec.role == "flowers" else _allowed_categories(spec)
    cat_ids = {c.name: c.id for c in cats}
    images, anns, next_id = [], [], 1
    for split in spec.splits:
        a, next_id = _coco_annotations(records[split], cat_ids, next_id)
        anns += a
        images += [{"id": r["id"], "file_name": r["file_name"], "width": spec.image_size,
                    "height": spec.image_size, "split": split, "label": r["label"], "scene": r["scene"],
                    **_background(r)} for r in records[split]]
    _dump_json({"info": _info(spec), "licenses": [], "classes": corpus_classes(spec), "images": images,
                "annotations": anns, "categories": _categories(cats)}, root / "annotations.json")


def _write_voc_lists(spec: CorpusSpec, root: Path, records: dict) -> None:
    sets = {s: records.get(s, []) for s in ("train", "val", "test")}
    sets["trainval"] = sets["train"] + sets["val"]
    for sub in ("Main", "Segmentation"):
        for name, recs in sets.items():
            (root / "ImageSets" / sub / f"{name}.txt").write_text("".join(f"{r['file_name']}\n" for r in recs))
    for k, cls in enumerate(VOC_CATEGORIES):
        for name, recs in sets.items():
            lines = []
            for r in recs:
                flags = [d for o, d in zip(r["objects"], r["difficult"]) if o["category"] == cls]
                v = -1 if not flags else (1 if not all(flags) else 0)
                lines.append(f"{r['file_name']} {v:2d}\n")
            (root / "ImageSets" / "Main" / f"{cls}_{name}.txt").write_text("".join(lines))
    (root / "labels.txt").write_text(
        "".join(f"{n} {CATEGORY_BY_NAME[n].supercategory}\n" for n in VOC_CATEGORIES))


def _write_corpus(spec: CorpusSpec, root: Path, workers: int) -> None:
    if spec.layout == "coco":
        for split in spec.splits:
            (root / split).mkdir()
        (root / "annotations").mkdir()
    elif spec.layout == "voc":
        for sub in ("Annotations", "JPEGImages", "SegmentationClass", "SegmentationObject", "ImageSets/Main",
                    "ImageSets/Segmentation"):
            (root / sub).mkdir(parents=True)
    tasks = [(spec, split, i, str(root)) for split in spec.splits for i in range(spec.count(split))]
    if workers > 1:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            results = list(pool.map(_make_image, tasks, chunksize=16))
    else:
        results = [_make_image(t) for t in tasks]
    records: dict[str, list] = defaultdict(list)
    for r in results:
        records[r["split"]].append(r)
    if spec.layout == "coco":
        _write_coco(spec, root, records)
    elif spec.layout == "voc":
        _write_voc_lists(spec, root, records)
    else:
        _write_folder_sidecar(spec, root, records)


def generate(spec: CorpusSpec, cache_dir: str | os.PathLike, workers: int = 1) -> Path:
    """Generate the corpus of ``spec`` (or find it cached) and return its root ``cache_dir/<role>-<key>``.

    The corpus is written into a temporary folder next to its final place and renamed (``os.replace``) when complete,
    so a folder of that name is always whole; if it exists it is returned immediately without regenerating.
    ``workers > 1`` renders images in that many processes; the output is byte-identical to ``workers=1``.

    Raises:
        ConfigError: ``workers < 1``.
        OSError: the cache folder cannot be written.
    """
    if workers < 1:
        raise ConfigError(f"workers must be >= 1, got {workers}")
    cache_dir = Path(cache_dir)
    out = cache_dir / f"{spec.role}-{spec.key()}"
    if out.is_dir():
        return out
    with atomic_directory(out) as tmp:
        _write_corpus(spec, tmp, workers)
        (tmp / "corpus.json").write_text(json.dumps(_info(spec), indent=2, sort_keys=True) + "\n")
    return out


def profile_specs(profile: str, seed: int = 0) -> dict[str, CorpusSpec]:
    """The corpora of a profile, ``{role: CorpusSpec}`` for every role in :data:`ROLES` (counts: module docstring).

    The GPU profiles (``paper``, ``torchvision``) have no corpora of their own: the parts of the book that exist only
    synthetically (the part / object cues of Figures 4 and 5, the synthetic classification roles) use ``mini``'s.

    Raises:
        ConfigError: unknown profile.
    """
    profile = {"paper": "mini", "torchvision": "mini"}.get(profile, profile)
    if profile == "smoke":
        size, counts = 64, {"imagenet_cls": (100, 50, 0), "imagenet_loc": (100, 25, 0), "coco": (100, 25, 0),
                            "voc": (24, 24, 32), "caltech": (50, 25, 25), "sun": (36, 18, 18),
                            "flowers": (48, 24, 24)}
    elif profile == "mini":
        size, counts = 128, {"imagenet_cls": (1500, 250, 0), "imagenet_loc": (1500, 200, 0),
                             "coco": (1500, 200, 0), "voc": (1600, 200, 200), "caltech": (750, 250, 250),
                             "sun": (2430, 90, 90), "flowers": (360, 120, 120)}
    else:
        raise ConfigError(f"unknown synthetic profile {profile!r}; expected smoke, mini, torchvision or paper")
    return {role: CorpusSpec(role, size, *counts[role], seed=seed) for role in ROLES}


def image_level_labels(coco_json_path: str | os.PathLike) -> dict[str, str]:
    """``{file_name: category name}`` of a single-category-per-image COCO file (IMAGENET-LOC (Cls), Tables 2 and 7).

    The ``imagenet_loc`` corpus has one category per image, so its boxes define an image-level label; this turns
    the detection corpus into a classification one with exactly the same images.

    Raises:
        DataError: missing / unparsable file, an image without annotations, or one with several categories.
    """
    path = Path(coco_json_path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        cats = {c["id"]: c["name"] for c in data["categories"]}
        names = {img["id"]: img["file_name"] for img in data["images"]}
        per_image: dict[int, set] = defaultdict(set)
        for a in data["annotations"]:
            per_image[a["image_id"]].add(cats[a["category_id"]])
    except FileNotFoundError as err:
        raise DataError(path, "COCO annotation file does not exist") from err
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise DataError(path, f"not a readable COCO annotation file ({type(err).__name__}: {err})") from err
    out = {}
    for iid, fname in names.items():
        found = per_image.get(iid, set())
        if len(found) != 1:
            what = "no annotation" if not found else f"several categories ({', '.join(sorted(found))})"
            raise DataError(path, f"image {fname} has {what}; an image-level label needs exactly one category")
        out[fname] = next(iter(found))
    return out


# ----------------------------------------------------------------------------------------------------------------
# figure
# ----------------------------------------------------------------------------------------------------------------
def _read_samples(root: Path, role: str, split: str | None, n: int) -> list[dict]:
    """First ``n`` images of a corpus: ``{"image": (H, W, 3) uint8, "title", "objects": [{bbox, part_bbox, mask}]}``."""
    from pycocotools import mask as mask_utils

    layout = _LAYOUT[role]
    out = []
    if layout == "voc":
        split = split or "trainval"
        ids = (root / "ImageSets" / "Main" / f"{split}.txt").read_text().split()[:n]
        for fid in ids:
            tree = ET.parse(root / "Annotations" / f"{fid}.xml").getroot()
            inst = np.array(Image.open(root / "SegmentationObject" / f"{fid}.png"))
            objs = []
            for k, o in enumerate(tree.findall("object")):
                bb = [int(o.find("bndbox").findtext(t)) for t in ("xmin", "ymin", "xmax", "ymax")]
                boxes = {}
                for key, path in (("part_bbox", "part/bndbox"), ("decoy_bbox", "decoy/bndbox")):
                    pb = o.find(path)
                    if pb is not None:
                        p = [int(pb.findtext(t)) for t in ("xmin", "ymin", "xmax", "ymax")]
                        boxes[key] = [p[0] - 1, p[1] - 1, p[2] - p[0] + 1, p[3] - p[1] + 1]
                objs.append({"name": o.findtext("name"), "bbox": [bb[0] - 1, bb[1] - 1, bb[2] - bb[0] + 1,
                                                                  bb[3] - bb[1] + 1],
                             "part_bbox": boxes.get("part_bbox"), "decoy_bbox": boxes.get("decoy_bbox"),
                             "mask": inst == k + 1})
            out.append({"image": np.array(Image.open(root / "JPEGImages" / f"{fid}.jpg").convert("RGB")),
                        "title": tree.findtext("scene"), "objects": objs})
        return out
    if layout == "coco":
        split = split or "train"
        data = json.loads((root / "annotations" / f"instances_{split}.json").read_text())
        folder = root / split
    else:
        data = json.loads((root / "annotations.json").read_text())
        split = split or "train"
        data["images"] = [im for im in data["images"] if im["split"] == split]
        folder = root
    cats = {c["id"]: c["name"] for c in data["categories"]}
    by_image = defaultdict(list)
    for a in data["annotations"]:
        by_image[a["image_id"]].append(a)
    for im in sorted(data["images"], key=lambda i: i["id"])[:n]:
        objs = [{"name": cats[a["category_id"]], "bbox": a["bbox"], "part_bbox": a.get("part_bbox"),
                 "decoy_bbox": a.get("decoy_bbox"), "mask": mask_utils.decode(a["segmentation"]).astype(bool)}
                for a in by_image[im["id"]]]
        out.append({"image": np.array(Image.open(folder / im["file_name"]).convert("RGB")),
                    "title": im.get("label") or im.get("scene"), "objects": objs})
    return out


def save_sample_grid(root: str | os.PathLike, role: str, out_png: str | os.PathLike, n: int = 8,
                     split: str | None = None, ncols: int = 4, dpi: int = 90) -> Path:
    """Draw the first ``n`` images of a corpus with mask overlays, object boxes (solid) and part boxes (dashed).

    Args:
        root: corpus root returned by :func:`generate`.
        role: its role (selects the layout).
        out_png: where to write the PNG (parent folders are created).
        n: number of images; ``split``: default ``train`` (``trainval`` for ``voc``); ``ncols``: grid columns;
            ``dpi``: resolution (each tile is 2.3 x 2.45 inches). Saved as a 256-colour palette PNG.

    Raises:
        ConfigError: unknown role.
        FileNotFoundError: ``root`` is not a corpus of that role's layout.

    Returns:
        ``Path(out_png)``.
    """
    # a Figure without pyplot: no backend is switched (matplotlib.use would take a notebook kernel's inline backend
    # away, and the chapter's later figures would not be shown) and nothing is left open
    import matplotlib
    import matplotlib.patches as mpatches
    from matplotlib.figure import Figure

    if role not in ROLES:
        raise ConfigError(f"unknown synthetic role {role!r}; expected one of {ROLES}")
    samples = _read_samples(Path(root), role, split, n)
    ncols = max(1, min(ncols, len(samples)))
    nrows = max(1, math.ceil(len(samples) / ncols))
    fig = Figure(figsize=(2.3 * ncols, 2.45 * nrows))
    axes = fig.subplots(nrows, ncols, squeeze=False)
    colours = matplotlib.colormaps["tab10"].colors
    for ax in axes.ravel():
        ax.axis("off")
    for ax, s in zip(axes.ravel(), samples):
        img = s["image"].astype(np.float32) / 255.0
        for k, o in enumerate(s["objects"]):
            c = np.array(colours[k % 10])
            img[o["mask"]] = 0.6 * img[o["mask"]] + 0.4 * c
        ax.imshow(img, interpolation="nearest")
        for k, o in enumerate(s["objects"]):
            c = colours[k % 10]
            x, y, w, h = o["bbox"]
            ax.add_patch(mpatches.Rectangle((x - 0.5, y - 0.5), w, h, fill=False, edgecolor=c, linewidth=1.2))
            ax.text(x, y - 1, o["name"], color="white", fontsize=5.5, va="bottom",
                    bbox={"facecolor": c, "edgecolor": "none", "pad": 0.5, "alpha": 0.85})
            if o["part_bbox"] is not None:
                px, py, pw, ph = o["part_bbox"]
                ax.add_patch(mpatches.Rectangle((px - 0.5, py - 0.5), pw, ph, fill=False, edgecolor="white",
                                                linestyle="--", linewidth=0.8))
            if o.get("decoy_bbox") is not None:
                px, py, pw, ph = o["decoy_bbox"]
                ax.add_patch(mpatches.Rectangle((px - 0.5, py - 0.5), pw, ph, fill=False, edgecolor="black",
                                                linestyle=":", linewidth=0.8))
        ax.set_title(s["title"] or "", fontsize=7)
    decoys = ", decoys (dotted)" if any(o.get("decoy_bbox") is not None for s in samples for o in s["objects"]) else ""
    fig.suptitle(f"synthetic corpus, role {role!r}: masks, boxes (solid), discriminative parts (dashed){decoys}",
                 fontsize=8)
    fig.tight_layout()
    out = Path(out_png)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=dpi)
    with Image.open(out) as im:  # a 256-colour palette PNG: a third of the size, no visible loss at this scale
        small = im.convert("RGB").quantize(256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    small.save(out, optimize=True)
    return out
