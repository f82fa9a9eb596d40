"""Taxonomy of the embedded synthetic corpus: categories, super-categories, discriminative parts, scene types.

Everything here is plain data; :mod:`detpretrain.data.synthetic` documents the design and re-exports the names.

* :data:`TAXONOMY` -- 25 object categories in 5 super-categories. The super-category fixes the family of whole-object
  shapes (drawn by :mod:`detpretrain.data.synthetic_render`); the category is told apart *mainly* by its
  discriminative part -- a small patch (about 5-15 % of the object's area) with a category-specific shape, colour and
  position on the body -- and only weakly by a category-specific mean aspect ratio (the per-instance jitter is larger
  than the gaps between categories). Body colours and textures are drawn from one distribution per super-category, so
  they carry no category information.
* :data:`BODY_PATTERNS` -- the category cue of the ``cue="distributed"`` corpus variant: a body-wide texture motif
  per category (distinct within a super-category), in place of the discriminative part.
* :data:`SCENES` -- scene types: a background style plus the categories that co-occur in it (with weights).
* :data:`VOC_CATEGORIES` -- the 12 categories of the VOC-like target (a subset covering every super-category).
* :data:`FLOWER_CLASSES` -- the fine-grained classes of the ``flowers`` role (one base shape; colour x texture).
"""

from __future__ import annotations

from dataclasses import dataclass

#: super-category -> whole-object shape family (see synthetic_render.FAMILIES)
SUPERCATEGORIES: tuple[str, ...] = ("vehicle", "animal", "furniture", "plant", "appliance")

SHAPE_FAMILIES: dict[str, str] = {
    "vehicle": "rounded body with a cabin (windows) on two or three dark wheels",
    "animal": "elliptic body, neck and head, four legs, tail and ears",
    "furniture": "seat slab with a back-rest, an arm-rest and two to four dark legs",
    "plant": "crown of overlapping leaf blobs on a stem in a pot",
    "appliance": "rounded box casing with a dark or glassy panel, knobs and feet",
}

#: colour names used by the parts (RGB, 0-255)
PART_COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 35),
    "yellow": (250, 215, 20),
    "blue": (35, 75, 230),
    "green": (30, 175, 60),
    "magenta": (225, 40, 205),
    "cyan": (30, 205, 225),
    "orange": (250, 130, 20),
    "white": (245, 245, 245),
    "black": (20, 20, 20),
    "purple": (125, 40, 185),
}

PART_SHAPES: tuple[str, ...] = ("disc", "square", "triangle", "diamond", "star", "cross", "hexagon", "ring",
                                "stripes", "chevron")

#: super-category -> named positions on the body where a part can sit
PART_ANCHORS: dict[str, tuple[str, ...]] = {
    "vehicle": ("front", "rear", "door", "roof", "wheel"),
    "animal": ("head", "shoulder", "flank", "rump", "belly"),
    "furniture": ("back", "seat_left", "seat_middle", "seat_right", "arm"),
    "plant": ("pot", "crown_top", "crown_left", "crown_right", "crown_middle"),
    "appliance": ("controls", "screen", "base", "knobs", "screen_top"),
}


@dataclass(frozen=True)
class Category:
    """One object category.

    Attributes:
        id: COCO ``category_id`` (1-based, stable across every corpus and spec).
        name: category name (also the ImageFolder class folder and the VOC ``<name>``).
        supercategory: one of :data:`SUPERCATEGORIES` (``"flower"`` for :data:`FLOWER_CLASSES`).
        part_shape, part_colour, part_anchor: the discriminative part (``None`` for flowers, which have none).
        aspect: mean width / height multiplier relative to the family's mean aspect ratio.
        part_fraction: mean part area as a fraction of the object's area (before clipping to the silhouette).
    """

    id: int
    name: str
    supercategory: str
    part_shape: str | None
    part_colour: str | None
    part_anchor: str | None
    aspect: float = 1.0
    part_fraction: float = 0.1

    @property
    def part_description(self) -> str:
        """e.g. ``"red triangle on the front"`` (empty for categories without a part)."""
        if self.part_shape is None:
            return ""
        return f"{self.part_colour} {self.part_shape} on the {self.part_anchor.replace('_', ' ')}"


def _cats() -> tuple[Category, ...]:
    rows = [
        # name,         super,       shape,      colour,    anchor,        aspect, part fraction
        ("car", "vehicle", "triangle", "red", "front", 1.0, 0.10),
        ("bus", "vehicle", "stripes", "yellow", "door", 1.35, 0.11),
        ("truck", "vehicle", "square", "blue", "rear", 1.15, 0.09),
        ("tractor", "vehicle", "star", "orange", "wheel", 0.85, 0.08),
        ("motorbike", "vehicle", "diamond", "cyan", "roof", 0.9, 0.08),
        ("dog", "animal", "disc", "red", "head", 1.0, 0.07),
        ("cat", "animal", "star", "yellow", "shoulder", 0.9, 0.10),
        ("horse", "animal", "chevron", "blue", "flank", 1.1, 0.11),
        ("cow", "animal", "square", "white", "rump", 1.2, 0.10),
        ("sheep", "animal", "cross", "purple", "belly", 1.0, 0.09),
        ("chair", "furniture", "hexagon", "green", "back", 0.7, 0.09),
        ("sofa", "furniture", "ring", "orange", "seat_right", 1.5, 0.09),
        ("table", "furniture", "disc", "cyan", "seat_middle", 1.3, 0.08),
        ("bed", "furniture", "stripes", "magenta", "seat_left", 1.6, 0.10),
        ("bench", "furniture", "triangle", "black", "arm", 1.5, 0.07),
        ("potted_plant", "plant", "ring", "yellow", "pot", 1.0, 0.08),
        ("tree", "plant", "triangle", "purple", "crown_top", 0.7, 0.09),
        ("shrub", "plant", "diamond", "red", "crown_left", 1.3, 0.10),
        ("cactus", "plant", "cross", "magenta", "crown_right", 0.6, 0.09),
        ("fern", "plant", "star", "white", "crown_middle", 1.1, 0.10),
        ("tv", "appliance", "star", "cyan", "screen", 1.4, 0.09),
        ("laptop", "appliance", "chevron", "orange", "base", 1.25, 0.08),
        ("oven", "appliance", "cross", "red", "controls", 1.0, 0.08),
        ("fridge", "appliance", "ring", "green", "screen_top", 0.55, 0.10),
        ("microwave", "appliance", "hexagon", "purple", "knobs", 1.5, 0.08),
    ]
    return tuple(Category(i + 1, *row) for i, row in enumerate(rows))


#: The 25 object categories (COCO ids 1..25 in this order). Within a super-category every category has a distinct
#: part shape, part colour and part position.
TAXONOMY: tuple[Category, ...] = _cats()
CATEGORY_BY_NAME: dict[str, Category] = {c.name: c for c in TAXONOMY}

#: The VOC-like target's 12 classes (label order = this order = labels.txt): every super-category is represented
#: (vehicle 3, animal 4, furniture 3, plant 1, appliance 1), as VOC's 20 classes sit inside COCO's 80.
VOC_CATEGORIES: tuple[str, ...] = ("car", "bus", "motorbike", "dog", "cat", "horse", "cow", "chair", "sofa", "table",
                                   "potted_plant", "tv")


#: motifs of the ``cue="distributed"`` variant (drawn by synthetic_render.body_pattern): periodic brightness patterns
#: laid over the WHOLE silhouette in the object's own frame (they tilt and mirror with it), period about a quarter of
#: the object's short side, zero mean and equal contrast, so that no motif changes the object's mean colour.
BODY_PATTERN_MOTIFS: tuple[str, ...] = ("hbands", "vbands", "diagonal", "checks", "zigzag")

#: category -> its body motif under ``cue="distributed"``: within a super-category the five categories have the five
#: distinct motifs (as their parts have distinct shapes, colours and anchors under ``cue="part"``).
BODY_PATTERNS: dict[str, str] = {
    c.name: BODY_PATTERN_MOTIFS[k % len(BODY_PATTERN_MOTIFS)]
    for sup in SUPERCATEGORIES
    for k, c in enumerate([c for c in TAXONOMY if c.supercategory == sup])
}


@dataclass(frozen=True)
class Scene:
    """A scene type: background style and the categories that co-occur in it.

    Attributes:
        name: scene name (the class of the ``sun`` role).
        style: background style key of :func:`detpretrain.data.synthetic_render.background`.
        categories: ``{category name: relative frequency}``; covers at least two super-categories.
        n_objects: (min, max) objects per image in the multi-object roles.
    """

    name: str
    style: str
    categories: dict
    n_objects: tuple[int, int]


SCENES: tuple[Scene, ...] = (
    Scene("street", "street", {"car": 4, "bus": 2, "truck": 2, "motorbike": 2, "dog": 1, "bench": 1, "tree": 1},
          (2, 6)),
    Scene("farm", "farm", {"tractor": 3, "horse": 2, "cow": 3, "sheep": 3, "dog": 1, "truck": 1, "tree": 1,
                           "shrub": 1}, (2, 6)),
    Scene("park", "park", {"tree": 2, "bench": 2, "dog": 2, "horse": 1, "shrub": 2, "motorbike": 1}, (2, 5)),
    Scene("desert", "desert", {"cactus": 3, "horse": 2, "truck": 1, "car": 1, "shrub": 1}, (1, 4)),
    Scene("garden", "garden", {"shrub": 2, "tree": 1, "fern": 2, "cactus": 1, "potted_plant": 1, "bench": 1,
                               "chair": 1, "dog": 1, "cat": 1}, (2, 6)),
    Scene("kitchen", "kitchen", {"oven": 3, "fridge": 3, "microwave": 3, "table": 2, "chair": 2, "cat": 1,
                                 "potted_plant": 1}, (2, 6)),
    Scene("living_room", "living_room", {"sofa": 3, "tv": 3, "chair": 2, "table": 2, "cat": 1, "dog": 1,
                                         "potted_plant": 1, "fern": 1, "laptop": 1}, (2, 6)),
    Scene("bedroom", "bedroom", {"bed": 4, "chair": 1, "laptop": 2, "tv": 1, "cat": 1, "potted_plant": 1}, (1, 5)),
    Scene("office", "office", {"laptop": 3, "tv": 2, "chair": 3, "table": 2, "fern": 1, "cactus": 1,
                               "microwave": 1}, (2, 6)),
)
SCENE_BY_NAME: dict[str, Scene] = {s.name: s for s in SCENES}

#: flower petal colours (HSV hue, saturation range, value range) and petal textures of the ``flowers`` role
FLOWER_COLOURS: dict[str, tuple[float, tuple[float, float], tuple[float, float]]] = {
    "red": (0.985, (0.75, 0.95), (0.65, 0.9)),
    "yellow": (0.14, (0.75, 0.95), (0.85, 1.0)),
    "violet": (0.77, (0.5, 0.75), (0.6, 0.85)),
    "white": (0.1, (0.0, 0.1), (0.88, 1.0)),
}
FLOWER_TEXTURES: tuple[str, ...] = ("plain", "striped", "spotted")

#: 12 fine-grained classes: one base shape (a flower head), differing only in petal colour and petal texture.
FLOWER_CLASSES: tuple[Category, ...] = tuple(
    Category(i + 1, f"{colour}_{texture}", "flower", None, None, None)
    for i, (colour, texture) in enumerate((c, t) for c in FLOWER_COLOURS for t in FLOWER_TEXTURES))


def _check() -> None:
    for sup in SUPERCATEGORIES:
        cats = [c for c in TAXONOMY if c.supercategory == sup]
        for attr in ("part_shape", "part_colour", "part_anchor"):
            values = [getattr(c, attr) for c in cats]
            assert len(set(values)) == len(values), (sup, attr)
        assert all(c.part_anchor in PART_ANCHORS[sup] for c in cats)
        assert sorted(BODY_PATTERNS[c.name] for c in cats) == sorted(BODY_PATTERN_MOTIFS), sup
    for scene in SCENES:
        assert len({CATEGORY_BY_NAME[n].supercategory for n in scene.categories}) >= 2, scene.name
        assert set(scene.categories) & set(VOC_CATEGORIES), scene.name
    covered = {n for s in SCENES for n in s.categories}
    assert covered == set(CATEGORY_BY_NAME), set(CATEGORY_BY_NAME) - covered
    assert {CATEGORY_BY_NAME[n].supercategory for n in VOC_CATEGORIES} == set(SUPERCATEGORIES)


_check()
