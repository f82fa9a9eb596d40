"""Drawing of the embedded synthetic corpus: object shape families, parts, backgrounds, scene composition.

Internal to :mod:`detpretrain.data.synthetic` (which documents the design). Everything is vectorised numpy or PIL
``ImageDraw`` (polygons); there are no per-pixel Python loops. Coordinates: pixels, x to the right, y down; an
object's shape is built in a unit frame ``u, v in [-1, 1]`` (u along the width, +u = the object's front), then scaled
to ``w x h`` pixels, rotated, optionally mirrored, and rasterised on its own canvas ("layer") whose top-left corner
sits at ``(x0, y0)`` in the image (possibly outside it: truncation).

Each layer holds a component label map: 0 = outside, 1 = body, 2 = secondary (wheels, legs, pot, knobs),
3 = tertiary (windows, cushion, stem, panel), 4 = discriminative part, 5 = the part's contrasting outline,
6 = decoy patch, 7 = the decoy's outline (``cue="part+decoy"`` only).

Category cues (:data:`CUES`, ``cue`` of :func:`render_object`; :mod:`detpretrain.data.synthetic` documents them):
``"part"`` draws the category's discriminative part; ``"distributed"`` draws no part and lays the category's body
motif (:func:`body_pattern`) over the whole silhouette; ``"part+decoy"`` draws a category-independent decoy patch
(:func:`decoy_attributes`) and the part over it. All three consume the object's generator identically (the extra
randomness of a variant comes from :func:`side_rng`), so the same seed gives the same objects -- same silhouettes,
masks, boxes, positions, body colours -- in every variant; only the cue differs (paired corpora).
"""

from __future__ import annotations

import colorsys
import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
from PIL import Image, ImageDraw, ImageFilter
from pycocotools import mask as mask_utils

from detpretrain.data.synthetic_taxonomy import (
    BODY_PATTERNS,
    FLOWER_COLOURS,
    PART_COLOURS,
    PART_SHAPES,
    TAXONOMY,
    Category,
)

BODY, SECONDARY, TERTIARY, PART, OUTLINE, DECOY, DECOY_OUTLINE = 1, 2, 3, 4, 5, 6, 7
#: the category cues of an object (see the module docstring)
CUES: tuple[str, ...] = ("part", "distributed", "part+decoy")
_TAU = 2.0 * math.pi


# ----------------------------------------------------------------------------------------------------------------
# geometry in the unit frame
# ----------------------------------------------------------------------------------------------------------------
def _ellipse(cx: float, cy: float, rx: float, ry: float, n: int = 20, rot: float = 0.0) -> np.ndarray:
    t = np.linspace(0.0, _TAU, n, endpoint=False)
    x, y = rx * np.cos(t), ry * np.sin(t)
    if rot:
        c, s = math.cos(rot), math.sin(rot)
        x, y = c * x - s * y, s * x + c * y
    return np.stack([cx + x, cy + y], axis=1)


def _rect(x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], dtype=float)


def _rounded_rect(x0: float, y0: float, x1: float, y1: float, rx: float, ry: float, n: int = 4) -> np.ndarray:
    rx, ry = min(rx, (x1 - x0) / 2), min(ry, (y1 - y0) / 2)
    pts = []
    for (cx, cy), a0 in (((x1 - rx, y0 + ry), -90.0), ((x1 - rx, y1 - ry), 0.0), ((x0 + rx, y1 - ry), 90.0),
                         ((x0 + rx, y0 + ry), 180.0)):
        for a in np.radians(np.linspace(a0, a0 + 90.0, n)):
            pts.append((cx + rx * math.cos(a), cy + ry * math.sin(a)))
    return np.array(pts)


def _shrink(poly: np.ndarray, f: float) -> np.ndarray:
    c = poly.mean(axis=0)
    return c + (poly - c) * f


def _shoelace(poly: np.ndarray) -> float:
    x, y = poly[:, 0], poly[:, 1]
    return 0.5 * abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))


Prims = list  # list of (component label, polygon (N, 2) in the unit frame)


# ----------------------------------------------------------------------------------------------------------------
# shape families (one per super-category): build(rng, aspect) -> (primitives, anchors)
# ``aspect`` = w / h, used to keep circles round after the anisotropic scaling.
# ----------------------------------------------------------------------------------------------------------------
def _vehicle(rng: np.random.Generator, aspect: float) -> tuple[Prims, dict]:
    top = rng.uniform(-0.35, -0.15)
    r = rng.uniform(0.26, 0.36)
    wheel_y = 1.0 - r
    prims: Prims = [(BODY, _rounded_rect(-1.0, top, 1.0, 0.62, 0.18 / aspect, 0.18))]
    cx0, cx1 = rng.uniform(-0.85, -0.45), rng.uniform(0.15, 0.5)
    slant = rng.uniform(0.1, 0.3)
    cabin = np.array([[cx0, top + 0.02], [cx1 + slant, top + 0.02], [cx1, -1.0], [cx0 + 0.08, -1.0]])
    prims += [(BODY, cabin), (TERTIARY, _shrink(cabin, 0.72))]
    wx = rng.uniform(0.5, 0.66)
    xs = [-wx, wx] if rng.random() < 0.8 else [-wx, -wx + 2.3 * r / aspect, wx]
    prims += [(SECONDARY, _ellipse(x, wheel_y, r / aspect, r, 16)) for x in xs]
    mid = (top + 0.62) / 2
    anchors = {"front": (0.72, mid), "rear": (-0.72, mid), "door": (-0.05, mid),
               "roof": ((cx0 + cx1) / 2 + 0.05, (top - 1.0) / 2), "wheel": (wx, wheel_y)}
    return prims, anchors


def _animal(rng: np.random.Generator, aspect: float) -> tuple[Prims, dict]:
    by, brx, bry = rng.uniform(-0.12, 0.0), rng.uniform(0.55, 0.66), rng.uniform(0.3, 0.4)
    hx, hy, hr = rng.uniform(0.68, 0.76), rng.uniform(-0.7, -0.45), rng.uniform(0.2, 0.27)
    hrx = min(hr / aspect, 0.98 - hx)
    prims: Prims = []
    leg_w = 0.07
    for x in (-0.45, -0.3, 0.25, 0.4):
        x += rng.normal(0.0, 0.03)
        bottom = 1.0 - rng.uniform(0.0, 0.05)
        splay = rng.normal(0.0, 0.04)
        leg = np.array([[x - leg_w, by + 0.05], [x + leg_w, by + 0.05], [x + leg_w + splay, bottom],
                        [x - leg_w + splay, bottom]])
        prims.append((BODY, leg))
        prims.append((SECONDARY, _rect(x - leg_w + splay, bottom - 0.07, x + leg_w + splay, bottom)))
    tail_y = by - 0.45 + rng.normal(0.0, 0.1)
    prims.append((BODY, np.array([[-brx + 0.05, by - 0.12], [-0.99, tail_y], [-0.95, tail_y + 0.08],
                                  [-brx + 0.12, by + 0.02]])))
    prims.append((BODY, _ellipse(-0.05, by, brx, bry, 24)))
    prims.append((BODY, np.array([[brx * 0.55, by - 0.25], [hx - 0.05, hy - 0.05], [hx + 0.02, hy + hr * 0.8],
                                  [brx * 0.8, by + 0.1]])))
    prims.append((BODY, _ellipse(hx, hy, hrx, hr, 18)))
    ear = 0.12 + rng.uniform(0.0, 0.08)
    prims.append((BODY, np.array([[hx - hrx * 0.6, hy - hr * 0.6], [hx - hrx * 0.1, hy - hr * 0.8],
                                  [hx - hrx * 0.45, max(-1.0, hy - hr - ear)]])))
    anchors = {"head": (hx, hy), "shoulder": (0.3, by - 0.08), "flank": (-0.05, by), "rump": (-0.4, by - 0.06),
               "belly": (0.0, by + bry * 0.5)}
    return prims, anchors


def _furniture(rng: np.random.Generator, aspect: float) -> tuple[Prims, dict]:
    seat_top = rng.uniform(-0.25, -0.05)
    seat_bot = seat_top + rng.uniform(0.42, 0.6)
    back_w = rng.uniform(0.26, 0.36)
    arm_h = rng.uniform(0.25, 0.4)
    prims: Prims = [(BODY, _rect(-1.0, seat_top, 1.0, seat_bot)), (BODY, _rect(-1.0, -1.0, -1.0 + back_w, seat_top)),
                    (BODY, _rect(0.74, seat_top - arm_h, 1.0, seat_top)),
                    (TERTIARY, _rect(-1.0 + back_w + 0.04, seat_top + 0.03, 0.7, seat_top + 0.1))]
    n_legs = int(rng.integers(2, 5))
    for x in np.linspace(-0.9, 0.9, n_legs):
        prims.append((SECONDARY, _rect(x - 0.06, seat_bot - 0.02, x + 0.06, 1.0)))
    mid = (seat_top + seat_bot) / 2 + 0.03
    anchors = {"back": (-1.0 + back_w / 2, (-1.0 + seat_top) / 2), "seat_left": (-0.42, mid),
               "seat_middle": (0.08, mid), "seat_right": (0.52, mid), "arm": (0.87, seat_top - arm_h / 2)}
    return prims, anchors


def _plant(rng: np.random.Generator, aspect: float) -> tuple[Prims, dict]:
    pot_top = rng.uniform(0.35, 0.5)
    prims: Prims = [(TERTIARY, _rect(-0.07, -0.3, 0.07, pot_top))]
    for _ in range(int(rng.integers(3, 7))):
        ry = rng.uniform(0.2, 0.36)
        rx = min(ry / aspect, 0.6)
        cx = rng.uniform(-1.0 + rx, 1.0 - rx)
        cy = rng.uniform(-1.0 + ry, -0.05)
        prims.append((BODY, _ellipse(cx, cy, rx, ry, 16)))
    prims.append((BODY, _ellipse(0.0, -0.48, 0.62, 0.46, 24)))
    prims.append((SECONDARY, np.array([[-0.42, pot_top], [0.42, pot_top], [0.3, 1.0], [-0.3, 1.0]])))
    prims.append((SECONDARY, _rect(-0.5, pot_top - 0.06, 0.5, pot_top + 0.06)))
    anchors = {"pot": (0.0, (pot_top + 1.0) / 2 + 0.04), "crown_top": (0.0, -0.74), "crown_left": (-0.34, -0.45),
               "crown_right": (0.34, -0.45), "crown_middle": (0.0, -0.3)}
    return prims, anchors


def _appliance(rng: np.random.Generator, aspect: float) -> tuple[Prims, dict]:
    sx1, sy1 = rng.uniform(0.3, 0.5), rng.uniform(0.3, 0.5)
    prims: Prims = [(BODY, _rounded_rect(-1.0, -1.0, 1.0, 0.88, 0.08 / aspect, 0.08)),
                    (TERTIARY, _rect(-0.86, -0.86, sx1, sy1))]
    kx = (sx1 + 1.0) / 2
    for y in np.linspace(-0.7, -0.25, int(rng.integers(2, 4))):
        prims.append((SECONDARY, _ellipse(kx, y, 0.08 / aspect, 0.08, 12)))
    prims += [(SECONDARY, _rect(-0.92, 0.86, -0.7, 1.0)), (SECONDARY, _rect(0.7, 0.86, 0.92, 1.0))]
    sx = (-0.86 + sx1) / 2
    anchors = {"controls": (kx, 0.25), "screen": (sx, (-0.86 + sy1) / 2 + 0.1), "base": (sx, (sy1 + 0.88) / 2),
               "knobs": (kx, -0.45), "screen_top": (sx - 0.1, -0.6)}
    return prims, anchors


def _flower(rng: np.random.Generator, aspect: float) -> tuple[Prims, dict]:
    n = int(rng.integers(5, 9))
    length, width, a0 = rng.uniform(0.55, 0.68), rng.uniform(0.2, 0.3), rng.uniform(0.0, _TAU)
    prims: Prims = []
    for k in range(n):
        a = a0 + _TAU * k / n + rng.normal(0.0, 0.08)
        d = 0.22 + length / 2
        prims.append((BODY, _ellipse(d * math.cos(a), d * math.sin(a), length / 2, width / 2, 16, rot=a)))
    r = rng.uniform(0.2, 0.27)
    prims.append((SECONDARY, _ellipse(0.0, 0.0, r, r, 20)))
    return prims, {"centre": (0.0, 0.0)}


# ----------------------------------------------------------------------------------------------------------------
# colours and textures
# ----------------------------------------------------------------------------------------------------------------
def _hsv(h: float, s: float, v: float) -> np.ndarray:
    return np.array(colorsys.hsv_to_rgb(h % 1.0, s, v), dtype=np.float32) * 255.0


def _vehicle_colours(rng):
    return (_hsv(rng.random(), rng.uniform(0.35, 0.9), rng.uniform(0.45, 0.95)),
            _hsv(0.0, 0.0, rng.uniform(0.08, 0.22)),
            _hsv(rng.uniform(0.5, 0.62), rng.uniform(0.1, 0.35), rng.uniform(0.7, 0.95)))


def _animal_colours(rng):
    if rng.random() < 0.6:
        body = _hsv(rng.uniform(0.03, 0.11), rng.uniform(0.3, 0.75), rng.uniform(0.25, 0.85))
    else:
        body = _hsv(0.0, 0.0, rng.uniform(0.1, 0.95))
    return body, body * 0.5, body


def _furniture_colours(rng):
    if rng.random() < 0.5:
        body = _hsv(rng.uniform(0.05, 0.11), rng.uniform(0.4, 0.75), rng.uniform(0.3, 0.7))
    else:
        body = _hsv(rng.random(), rng.uniform(0.2, 0.6), rng.uniform(0.4, 0.85))
    return (body, _hsv(rng.uniform(0.05, 0.1), rng.uniform(0.4, 0.7), rng.uniform(0.15, 0.35)),
            _hsv(rng.random(), rng.uniform(0.1, 0.5), rng.uniform(0.6, 0.95)))


def _plant_colours(rng):
    body = _hsv(rng.uniform(0.22, 0.4), rng.uniform(0.4, 0.85), rng.uniform(0.3, 0.75))
    if rng.random() < 0.6:
        pot = _hsv(rng.uniform(0.02, 0.08), rng.uniform(0.5, 0.75), rng.uniform(0.5, 0.8))
    else:
        pot = _hsv(rng.random(), rng.uniform(0.3, 0.7), rng.uniform(0.4, 0.9))
    return body, pot, _hsv(rng.uniform(0.2, 0.35), rng.uniform(0.5, 0.8), rng.uniform(0.2, 0.4))


def _appliance_colours(rng):
    if rng.random() < 0.7:
        body = _hsv(0.0, 0.0, rng.uniform(0.15, 0.95))
    else:
        body = _hsv(rng.random(), rng.uniform(0.15, 0.4), rng.uniform(0.6, 0.95))
    if rng.random() < 0.7:
        panel = _hsv(rng.uniform(0.55, 0.7), rng.uniform(0.0, 0.4), rng.uniform(0.05, 0.25))
    else:
        panel = _hsv(rng.uniform(0.5, 0.6), rng.uniform(0.05, 0.2), rng.uniform(0.55, 0.8))
    return body, _hsv(0.0, 0.0, rng.uniform(0.3, 0.6)), panel


def _lowfreq(rng: np.random.Generator, h: int, w: int, cells: int) -> np.ndarray:
    """(h, w) float32 smooth noise in [0, 1]: a ``cells x cells`` uniform grid upsampled bilinearly."""
    grid = rng.random((cells, cells), dtype=np.float32)
    return np.asarray(Image.fromarray(grid).resize((max(w, 1), max(h, 1)), Image.Resampling.BILINEAR))


def _texture(rng: np.random.Generator, h: int, w: int, kind: str) -> np.ndarray:
    """(h, w) multiplicative brightness field of a body texture."""
    if kind == "smooth":
        return 1.0 + 0.16 * (_lowfreq(rng, h, w, 3) - 0.5)
    if kind == "mottled":
        return 1.0 + 0.5 * (_lowfreq(rng, h, w, 7) - 0.5)
    if kind == "stripes":
        period, phi = rng.uniform(3.0, 7.0), rng.uniform(0.0, math.pi)
        yy, xx = np.ogrid[:h, :w]
        return (1.0 + 0.13 * np.sign(np.sin(_TAU * (xx * math.cos(phi) + yy * math.sin(phi)) / period)))
    if kind == "gradient":
        t = np.linspace(-1.0, 1.0, w, dtype=np.float32)[None, :] * rng.choice([-1.0, 1.0])
        return np.broadcast_to(1.0 + 0.15 * t, (h, w))
    raise ValueError(f"unknown texture {kind!r}")


def _flower_texture(rng: np.random.Generator, h: int, w: int, kind: str, centre: np.ndarray,
                    n_petals: int) -> np.ndarray:
    if kind == "plain":
        return 1.0 + 0.1 * (_lowfreq(rng, h, w, 3) - 0.5)
    if kind == "striped":
        yy, xx = np.ogrid[:h, :w]
        phi = np.arctan2(yy - centre[1], xx - centre[0])
        k = 3 * n_petals + int(rng.integers(0, 3))
        return 1.0 - 0.45 * (np.sin(k * phi + rng.uniform(0, _TAU)) > 0.45)
    if kind == "spotted":
        cells = max(5, int(max(h, w) / 4))
        return 1.0 - 0.5 * (_lowfreq(rng, h, w, cells) > 0.72)
    raise ValueError(f"unknown flower texture {kind!r}")


@dataclass(frozen=True)
class Family:
    """A whole-object shape family: builder, colour sampler, mean aspect (w/h), silhouette fill ratio, max tilt."""

    build: Callable
    colours: Callable
    aspect: float
    fill: float
    max_rot_deg: float
    textures: tuple[tuple[str, float], ...]


FAMILIES: dict[str, Family] = {
    "vehicle": Family(_vehicle, _vehicle_colours, 1.7, 0.70, 6.0, (("smooth", 0.6), ("gradient", 0.4))),
    "animal": Family(_animal, _animal_colours, 1.35, 0.34, 10.0, (("smooth", 0.4), ("mottled", 0.4),
                                                                  ("stripes", 0.2))),
    "furniture": Family(_furniture, _furniture_colours, 1.2, 0.42, 5.0, (("smooth", 0.3), ("stripes", 0.4),
                                                                         ("mottled", 0.3))),
    "plant": Family(_plant, _plant_colours, 0.75, 0.47, 8.0, (("mottled", 0.7), ("smooth", 0.3))),
    "appliance": Family(_appliance, _appliance_colours, 1.1, 0.97, 4.0, (("smooth", 0.7), ("gradient", 0.3))),
    "flower": Family(_flower, lambda rng: None, 1.0, 0.25, 180.0, ()),
}


# ----------------------------------------------------------------------------------------------------------------
# parts: polygons with unit radius, (polygon, is_hole)
# ----------------------------------------------------------------------------------------------------------------
def _star(n: int = 5, r_in: float = 0.45) -> np.ndarray:
    t = np.linspace(0.0, _TAU, 2 * n, endpoint=False) - math.pi / 2
    r = np.where(np.arange(2 * n) % 2 == 0, 1.1, 1.1 * r_in)
    return np.stack([r * np.cos(t), r * np.sin(t)], axis=1)


_PART_POLYS: dict[str, list[tuple[np.ndarray, bool]]] = {
    "disc": [(_ellipse(0, 0, 1, 1, 20), False)],
    "square": [(_rect(-0.85, -0.85, 0.85, 0.85), False)],
    "triangle": [(np.array([[0.0, -1.15], [1.05, 0.75], [-1.05, 0.75]]), False)],
    "diamond": [(np.array([[0.0, -1.2], [0.8, 0.0], [0.0, 1.2], [-0.8, 0.0]]), False)],
    "star": [(_star(), False)],
    "cross": [(np.array([[-0.33, -1], [0.33, -1], [0.33, -0.33], [1, -0.33], [1, 0.33], [0.33, 0.33], [0.33, 1],
                         [-0.33, 1], [-0.33, 0.33], [-1, 0.33], [-1, -0.33], [-0.33, -0.33]]), False)],
    "hexagon": [(_ellipse(0, 0, 1, 1, 6), False)],
    "ring": [(_ellipse(0, 0, 1.05, 1.05, 20), False), (_ellipse(0, 0, 0.5, 0.5, 16), True)],
    "stripes": [(_rect(-1, -1, 1, -0.55), False), (_rect(-1, -0.22, 1, 0.22), False), (_rect(-1, 0.55, 1, 1), False)],
    "chevron": [(np.array([[-1, -0.9], [0, 0.1], [1, -0.9], [1, -0.2], [0, 0.8], [-1, -0.2]]), False)],
}
_PART_AREA = {k: sum(-_shoelace(p) if hole else _shoelace(p) for p, hole in v) for k, v in _PART_POLYS.items()}


# ----------------------------------------------------------------------------------------------------------------
# one object
# ----------------------------------------------------------------------------------------------------------------
@dataclass
class ObjectLayer:
    """A rendered object on its own canvas.

    Attributes:
        category: the object's :class:`~detpretrain.data.synthetic_taxonomy.Category`.
        label: (h, w) uint8 component labels (0 outside the object; see the module docstring).
        rgb: (h, w, 3) float32 colours (0-255) where ``label > 0``.
        x0, y0: image position (pixels) of the canvas' top-left corner; may be negative.
        full_area: number of object pixels (``label > 0``), whether or not they fall inside the image.
        decoy_uv: ``cue="part+decoy"``: the decoy's centre in the object's unit frame (u, v in [-1, 1]; +u = front).
        decoy_px: ``cue="part+decoy"``: the decoy's pixels as drawn, before the part was drawn over it.
    """

    category: Category
    label: np.ndarray
    rgb: np.ndarray
    x0: int = 0
    y0: int = 0
    decoy_uv: tuple[float, float] | None = None
    decoy_px: int = 0

    @property
    def h(self) -> int:
        return self.label.shape[0]

    @property
    def w(self) -> int:
        return self.label.shape[1]

    @property
    def full_area(self) -> int:
        return int(np.count_nonzero(self.label))


def _weighted_choice(rng: np.random.Generator, options: tuple[tuple[str, float], ...]) -> str:
    names = [o[0] for o in options]
    p = np.array([o[1] for o in options], dtype=float)
    return names[int(rng.choice(len(names), p=p / p.sum()))]


def side_rng(rng: np.random.Generator, tag: int) -> np.random.Generator:
    """A generator seeded by ``rng``'s current state and ``tag``, WITHOUT advancing ``rng``.

    The corpus variants draw their extra randomness (decoys, body motifs, shared backgrounds) from it, so the main
    stream -- and with it every later object, position and pixel of the image -- stays that of the default corpus.
    """
    st = rng.bit_generator.state
    return np.random.default_rng(np.random.SeedSequence(
        [int(st["state"]["state"]), int(st["state"]["inc"]), int(st.get("has_uint32", 0)),
         int(st.get("uinteger", 0)), int(tag)]))


def render_object(rng: np.random.Generator, category: Category, area_px: float, max_side: float,
                  rot_scale: float = 1.0, cue: str = "part") -> ObjectLayer:
    """Draw one instance of ``category`` whose silhouette covers about ``area_px`` pixels.

    The instance's aspect ratio, tilt, mirror, shape details (wheel size, leg splay, crown blobs ...), body colour
    and texture, and part size (5-15 % of the silhouette) are drawn from ``rng``. Neither side exceeds ``max_side``.
    ``cue`` (:data:`CUES`) selects how the category shows (module docstring); flowers ignore it (they have no part).
    """
    fam = FAMILIES[category.supercategory]
    aspect = fam.aspect * category.aspect * math.exp(rng.normal(0.0, 0.15))
    w = math.sqrt(area_px / fam.fill * aspect)
    h = w / aspect
    s = min(1.0, max_side / max(w, h))
    w, h = max(w * s, 6.0), max(h * s, 6.0)
    prims, anchors = fam.build(rng, w / h)
    theta = math.radians(rng.uniform(-fam.max_rot_deg, fam.max_rot_deg) * rot_scale)
    mirror = -1.0 if rng.random() < 0.5 else 1.0
    c, sn = math.cos(theta), math.sin(theta)
    affine = np.array([[c, -sn], [sn, c]]) @ np.diag([mirror * w / 2, h / 2])
    polys = [poly @ affine.T for _, poly in prims]
    allpts = np.concatenate(polys)
    lo = np.floor(allpts.min(axis=0)) - 1
    cw, ch = (np.ceil(allpts.max(axis=0)) + 2 - lo).astype(int)
    canvas = Image.new("L", (int(cw), int(ch)), 0)
    draw = ImageDraw.Draw(canvas)
    for (lab, _), poly in zip(prims, polys):
        draw.polygon((poly - lo).ravel().tolist(), fill=lab)
    label = np.array(canvas)
    sil = label > 0
    pattern, decoy = None, (None, 0)

    if category.supercategory == "flower":
        colour, texture = category.name.rsplit("_", 1)
        hue, sat, val = FLOWER_COLOURS[colour]
        body = _hsv(hue + rng.normal(0.0, 0.012), rng.uniform(*sat), rng.uniform(*val))
        table = np.zeros((8, 3), np.float32)
        table[BODY] = body
        table[SECONDARY] = _hsv(rng.uniform(0.07, 0.14), rng.uniform(0.6, 0.9), rng.uniform(0.3, 0.7))
        centre = np.array(anchors["centre"]) @ affine.T - lo
        field = _flower_texture(rng, int(ch), int(cw), texture, centre, len(prims) - 1)
    else:
        if cue not in CUES:
            raise ValueError(f"unknown cue {cue!r}; expected one of {CUES}")
        table = np.zeros((8, 3), np.float32)
        table[BODY], table[SECONDARY], table[TERTIARY] = fam.colours(rng)
        field = _texture(rng, int(ch), int(cw), _weighted_choice(rng, fam.textures))
        if category.part_shape is not None:
            if cue == "part+decoy":  # the decoy first, so that the part lies over it where they meet
                decoy = _draw_decoy(side_rng(rng, 1), category, label, sil, affine, lo, theta, table)
            draws = _part_draws(rng)  # the same draws in every variant: the rest of the image stays paired
            if cue == "distributed":
                pattern = body_pattern(side_rng(rng, 2), category, label.shape, lo, theta + draws[1],
                                       mirror, min(w, h))
            else:
                _draw_part(draws, category, label, sil, anchors, affine, lo, theta, table)
    shade = np.linspace(1.1, 0.9, int(ch), dtype=np.float32)[:, None]
    factor = np.where(label == BODY, field * shade, np.where(label < PART, shade, 1.0))
    if pattern is not None:
        factor = factor * np.where(sil, 1.0 + BODY_PATTERN_CONTRAST[0] * pattern, 1.0)
    rgb = table[label] * factor[..., None].astype(np.float32)
    if pattern is not None:  # an additive share too, so that the motif shows on dark surfaces (panels, wheels)
        rgb = rgb + np.where(sil, BODY_PATTERN_CONTRAST[1] * pattern, 0.0)[..., None]
    return ObjectLayer(category, label, rgb.astype(np.float32), decoy_uv=decoy[0], decoy_px=decoy[1])


def _part_draws(rng: np.random.Generator) -> tuple[float, float, np.ndarray]:
    """The part's random draws, in the order the part has always drawn them: (log size jitter, tilt jitter (rad),
    colour jitter (3,))."""
    z_frac = rng.normal(0.0, 0.15)
    z_ang = rng.normal(0.0, 0.15)
    z_colour = rng.normal(0.0, 8.0, 3)
    return z_frac, z_ang, z_colour


def _stamp(label, sil, shape: str, r: float, centre: np.ndarray, ang: float, fill: int, outline: int) -> None:
    """Rasterise part shape ``shape`` (radius ``r`` px, centre (x, y) canvas px, angle ``ang``) into ``label``
    inside the silhouette: its interior as ``fill``, its contrasting outline as ``outline``."""
    c, s = math.cos(ang), math.sin(ang)
    rot = np.array([[c, -s], [s, c]]) * r
    pc = Image.new("L", (label.shape[1], label.shape[0]), 0)
    draw = ImageDraw.Draw(pc)
    width = max(1, int(round(r * 0.18)))
    for poly, hole in _PART_POLYS[shape]:
        draw.polygon((poly @ rot.T + centre).ravel().tolist(), fill=0 if hole else 1, outline=2, width=width)
    pm = np.asarray(pc)
    label[(pm == 1) & sil] = fill
    label[(pm == 2) & sil] = outline


def _patch_colours(table, fill: int, outline: int, colour_name: str, jitter: np.ndarray) -> None:
    table[fill] = np.clip(np.array(PART_COLOURS[colour_name], np.float32) + jitter, 0, 255)
    lum = float(table[fill] @ np.array([0.299, 0.587, 0.114]))
    table[outline] = 25.0 if lum > 128 else 235.0


def _draw_part(draws, category, label, sil, anchors, affine, lo, theta, table) -> None:
    z_frac, z_ang, z_colour = draws
    area = int(np.count_nonzero(sil))
    frac = float(np.clip(category.part_fraction * math.exp(z_frac), 0.05, 0.15))
    r = math.sqrt(frac * area / _PART_AREA[category.part_shape])
    centre = np.array(anchors[category.part_anchor]) @ affine.T - lo
    _stamp(label, sil, category.part_shape, r, centre, theta + z_ang, PART, OUTLINE)
    _patch_colours(table, PART, OUTLINE, category.part_colour, z_colour)


# ----------------------------------------------------------------------------------------------------------------
# cue variants: the decoy patch (cue="part+decoy") and the body motif (cue="distributed")
# ----------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Decoy:
    """A decoy patch's attributes: part shape, part colour (names), area fraction of the object, tilt jitter (rad),
    colour jitter (3,)."""

    shape: str
    colour: str
    fraction: float
    tilt: float
    colour_jitter: tuple[float, float, float]


def decoy_attributes(rng: np.random.Generator, category: Category) -> Decoy:
    """Draw a decoy for an object of ``category``: a patch with the part's size and saliency statistics that carries
    no information about the category within its super-category.

    * shape and colour: uniform over :data:`~detpretrain.data.synthetic_taxonomy.PART_SHAPES` x ``PART_COLOURS``,
      redrawn while the pair is the (shape, colour) of the part of ANY category of the object's super-category -- the
      same excluded set for every sibling, so the distribution is identical across them, and a decoy never repeats a
      sibling's part (which would make an image ambiguous);
    * area fraction: the part fraction of a uniformly drawn sibling category times ``exp(N(0, 0.15))``, clipped to
      5-15 % -- the mixture of the siblings' part sizes;
    * tilt and colour jitter: as the part's (N(0, 0.15) rad, N(0, 8) per channel).

    Only ``category.supercategory`` is used; the position is drawn by the renderer (uniform over the interior of the
    silhouette).
    """
    siblings = [c for c in TAXONOMY if c.supercategory == category.supercategory]
    taken = {(c.part_shape, c.part_colour) for c in siblings}
    colours = tuple(PART_COLOURS)
    while True:
        shape = PART_SHAPES[int(rng.integers(len(PART_SHAPES)))]
        colour = colours[int(rng.integers(len(colours)))]
        if (shape, colour) not in taken:
            break
    base = siblings[int(rng.integers(len(siblings)))].part_fraction
    frac = float(np.clip(base * math.exp(rng.normal(0.0, 0.15)), 0.05, 0.15))
    tilt = float(rng.normal(0.0, 0.15))
    jitter = tuple(float(v) for v in rng.normal(0.0, 8.0, 3))
    return Decoy(shape, colour, frac, tilt, jitter)


def _draw_decoy(rng, category, label, sil, affine, lo, theta, table) -> tuple[tuple[float, float], int]:
    """Draw a decoy (:func:`decoy_attributes`) centred on a uniformly drawn pixel of the silhouette's interior (at
    least 0.6 decoy radii from its edge, or the deepest pixels where none is); returns (its centre in the unit
    frame, its pixel count)."""
    from scipy import ndimage

    d = decoy_attributes(rng, category)
    area = int(np.count_nonzero(sil))
    r = math.sqrt(d.fraction * area / _PART_AREA[d.shape])
    depth = ndimage.distance_transform_edt(sil)
    inside = np.argwhere(depth >= min(0.6 * r, float(depth.max())))  # (row, col) of the silhouette's interior
    y, x = inside[int(rng.integers(len(inside)))]
    centre = np.array([x, y], dtype=float)  # PIL polygon coordinates, as the part's anchors
    _stamp(label, sil, d.shape, r, centre, theta + d.tilt, DECOY, DECOY_OUTLINE)
    _patch_colours(table, DECOY, DECOY_OUTLINE, d.colour, np.array(d.colour_jitter, np.float32))
    u, v = np.linalg.solve(affine, centre + lo)
    return (float(u), float(v)), int(np.count_nonzero(label >= DECOY))


#: contrast of the body motif ``m`` (in [-1, 1]): a pixel of colour ``c`` becomes ``c * (1 + 0.25 m) + 20 m`` (0-255
#: scale), so the motif shows on bright and on dark surfaces alike
BODY_PATTERN_CONTRAST: tuple[float, float] = (0.25, 20.0)


def _square(t: np.ndarray) -> np.ndarray:
    """A zero-mean square-ish wave of period 1 with soft edges, values in [-1, 1]."""
    return np.tanh(4.0 * np.sin(_TAU * t)) / math.tanh(4.0)


def body_pattern_params(rng: np.random.Generator) -> tuple[float, float, float]:
    """The per-instance parameters of a body motif: (periods across the object's short side, phase 1, phase 2)."""
    return float(rng.uniform(3.5, 5.0)), float(rng.random()), float(rng.random())


def body_pattern(rng: np.random.Generator, category: Category, shape: tuple[int, int], lo: np.ndarray,
                 angle: float, mirror: float, short_side: float) -> np.ndarray:
    """(h, w) float32 motif ``m`` (zero mean, in [-1, 1]) of ``category``'s body pattern (:data:`BODY_PATTERNS`) on
    an object canvas (the renderer applies it with :data:`BODY_PATTERN_CONTRAST`), laid out in the object's frame
    (origin = the unit frame's centre, tilted by ``angle``, mirrored with the object), period
    ``max(3 px, short_side / k)`` with ``k`` ~ U(3.5, 5) periods across the object's short side, random phases."""
    k, phi1, phi2 = body_pattern_params(rng)
    period = max(3.0, short_side / k)
    h, w = shape
    origin = -lo  # canvas position of the unit frame's centre
    yy, xx = np.mgrid[:h, :w].astype(np.float32)
    dx, dy = xx + 0.5 - origin[0], yy + 0.5 - origin[1]
    c, s = math.cos(angle), math.sin(angle)
    a = mirror * (c * dx + s * dy) / period  # along the object's length (front = +a), in periods
    b = (-s * dx + c * dy) / period  # across it (down = +b)
    motif = BODY_PATTERNS[category.name]
    if motif == "hbands":
        m = _square(b + phi1)
    elif motif == "vbands":
        m = _square(a + phi1)
    elif motif == "diagonal":
        m = _square((a + b) / math.sqrt(2.0) + phi1)
    elif motif == "checks":
        m = _square(a + phi1) * _square(b + phi2)
    elif motif == "zigzag":
        tri = 2.0 * np.abs((a / 1.5 + phi2) % 1.0 - 0.5)
        m = _square(b + 0.8 * tri + phi1)
    else:
        raise ValueError(f"unknown body motif {motif!r}")
    return m.astype(np.float32)


# ----------------------------------------------------------------------------------------------------------------
# backgrounds (one style per scene type) and clutter
# ----------------------------------------------------------------------------------------------------------------
_OUTDOOR = {  # sky top, sky bottom, ground, ground pattern
    "street": ((120, 160, 215), (200, 215, 235), (95, 95, 100), "lanes"),
    "farm": ((110, 160, 220), (210, 225, 240), (125, 150, 65), "furrows"),
    "park": ((125, 170, 225), (215, 230, 240), (85, 145, 70), "path"),
    "desert": ((150, 190, 235), (235, 225, 210), (210, 180, 125), "ripples"),
}
_INDOOR = {  # wall, wall pattern, floor, floor pattern
    "kitchen": ((225, 222, 210), "tiles", (160, 150, 140), "tiles"),
    "living_room": ((205, 180, 150), "stripes", (140, 95, 60), "planks"),
    "bedroom": ((185, 195, 215), "plain", (130, 85, 90), "carpet"),
    "office": ((210, 210, 205), "plain", (100, 110, 125), "checker"),
}
BACKGROUND_STYLES = tuple(_OUTDOOR) + tuple(_INDOOR) + ("garden", "studio", "foliage")


def _jitter(rng: np.random.Generator, colour, tint: np.ndarray, sd: float = 10.0) -> np.ndarray:
    return np.clip(np.asarray(colour, np.float32) * tint + rng.normal(0.0, sd, 3), 0, 255).astype(np.float32)


def background(rng: np.random.Generator, size: int, style: str, tint: np.ndarray | None = None) -> np.ndarray:
    """(size, size, 3) float32 background image (0-255) of a scene ``style`` (one of :data:`BACKGROUND_STYLES`).

    ``tint`` (3,) multiplies the style's palette (the VOC-like target uses it for its shifted colour statistics).
    """
    S = size
    tint = np.ones(3, np.float32) if tint is None else np.asarray(tint, np.float32)
    tint = tint * rng.uniform(0.85, 1.12)
    img = np.empty((S, S, 3), np.float32)
    yy, xx = np.ogrid[:S, :S]
    if style in _OUTDOOR:
        sky_top, sky_bot, ground, pattern = _OUTDOOR[style]
        hy = int(S * rng.uniform(0.28, 0.5))
        t = np.linspace(0.0, 1.0, hy, dtype=np.float32)[:, None, None]
        img[:hy] = _jitter(rng, sky_top, tint) * (1 - t) + _jitter(rng, sky_bot, tint) * t
        img[:hy] *= (1.0 + 0.1 * (_lowfreq(rng, hy, S, 4) - 0.5))[..., None]
        gh = S - hy
        g = (1.0 + 0.25 * (_lowfreq(rng, gh, S, 5) - 0.5))
        gy = np.arange(gh, dtype=np.float32)[:, None]
        if pattern == "lanes":
            lane = (np.abs(gy - gh * rng.uniform(0.4, 0.7)) < max(1.0, S / 80)) & (
                (xx + rng.integers(0, S)) % max(4, S // 6) < max(2, S // 12))
            g = np.where(lane, 2.2, g)
        elif pattern == "furrows":
            g = g * np.where(np.sin(_TAU * np.sqrt(gy + 1.0) * rng.uniform(0.8, 1.4)) > 0.5, 0.85, 1.0)
        elif pattern == "path":
            xc, w0, w1 = S * rng.uniform(0.3, 0.7), S * 0.02, S * rng.uniform(0.15, 0.35)
            path = np.abs(xx - xc - (gy / gh) * S * rng.uniform(-0.3, 0.3)) < w0 + (w1 - w0) * gy / gh
            g = np.where(path, g * 1.45, g)
        elif pattern == "ripples":
            g = g * (1.0 + 0.07 * np.sin(_TAU * (gy / max(3.0, S / 20) + 2 * _lowfreq(rng, gh, S, 3))))
        img[hy:] = _jitter(rng, ground, tint) * g[..., None]
    elif style in _INDOOR:
        wall, wall_pat, floor, floor_pat = _INDOOR[style]
        wy = int(S * rng.uniform(0.5, 0.72))
        w = 1.0 + 0.08 * (_lowfreq(rng, wy, S, 4) - 0.5)
        p = max(4, int(S / rng.uniform(6, 10)))
        if wall_pat == "tiles":
            w = w * np.where((xx % p == 0) | (yy[:wy] % p == 0), 0.8, 1.0)
        elif wall_pat == "stripes":
            w = w * np.where((xx // max(2, p // 2)) % 2 == 0, 0.92, 1.04)
        img[:wy] = _jitter(rng, wall, tint) * w[..., None]
        fh = S - wy
        fy = np.arange(fh)[:, None]
        f = 1.0 + 0.1 * (_lowfreq(rng, fh, S, 4) - 0.5)
        if floor_pat == "planks":
            band = max(2, fh // 5)
            shades = rng.uniform(0.85, 1.1, fh // band + 2).astype(np.float32)
            f = f * shades[fy // band] * np.where(fy % band == 0, 0.75, 1.0)
        elif floor_pat == "tiles":
            f = f * np.where((xx % p == 0) | (fy % p == 0), 0.75, 1.0)
        elif floor_pat == "carpet":
            f = f * (1.0 + 0.1 * (rng.random((fh, S), dtype=np.float32) - 0.5))
        elif floor_pat == "checker":
            f = f * np.where(((xx // p) + (fy // p)) % 2 == 0, 0.94, 1.06)
        img[wy:] = _jitter(rng, floor, tint) * f[..., None]
        img[max(0, wy - max(1, S // 64)):wy] *= 0.6  # skirting board
    elif style == "garden":
        hh = int(S * rng.uniform(0.15, 0.35))
        img[:] = _jitter(rng, (75, 135, 55), tint) * (1.0 + 0.35 * (_lowfreq(rng, S, S, 6) - 0.5))[..., None]
        img[:] *= (1.0 + 0.15 * (rng.random((S, S), dtype=np.float32) - 0.5))[..., None]
        img[:hh] = _jitter(rng, (35, 80, 35), tint) * (1.0 + 0.6 * (_lowfreq(rng, hh, S, 9) - 0.5))[..., None]
    elif style == "studio":
        c0 = _jitter(rng, _hsv(rng.random(), rng.uniform(0.0, 0.3), rng.uniform(0.6, 0.95)), tint)
        c1 = _jitter(rng, _hsv(rng.random(), rng.uniform(0.0, 0.3), rng.uniform(0.4, 0.9)), tint)
        t = np.linspace(0.0, 1.0, S, dtype=np.float32)[:, None, None]
        img[:] = c0 * (1 - t) + c1 * t
        r2 = ((xx - S / 2) ** 2 + (yy - S / 2) ** 2) / (S * S / 2)
        img *= (1.0 - 0.25 * r2)[..., None]
    elif style == "foliage":
        base = _jitter(rng, _hsv(rng.uniform(0.22, 0.38), rng.uniform(0.4, 0.8), rng.uniform(0.2, 0.5)), tint)
        img[:] = base * (0.6 + 0.8 * _lowfreq(rng, S, S, 8))[..., None]
    else:
        raise ValueError(f"unknown background style {style!r}")
    return img


def draw_clutter(rng: np.random.Generator, pil: Image.Image, n: int) -> None:
    """Draw ``n`` distractor shapes (not objects) in place: random polygons, blobs, poles/wires and boxes."""
    S = pil.size[0]
    draw = ImageDraw.Draw(pil)
    for _ in range(n):
        kind = int(rng.integers(0, 4))
        colour = tuple(int(v) for v in rng.integers(0, 256, 3))
        cx, cy = rng.uniform(0, S, 2)
        r = S * rng.uniform(0.02, 0.1)
        if kind == 0:
            k = int(rng.integers(3, 8))
            t = np.sort(rng.uniform(0, _TAU, k))
            rr = r * rng.uniform(0.5, 1.0, k)
            pts = np.stack([cx + rr * np.cos(t), cy + rr * np.sin(t)], 1)
            draw.polygon(pts.ravel().tolist(), fill=colour)
        elif kind == 1:
            draw.ellipse([cx - r, cy - r * rng.uniform(0.4, 1.0), cx + r, cy + r * rng.uniform(0.4, 1.0)],
                         fill=colour)
        elif kind == 2:
            a = rng.uniform(0, math.pi)
            d = 2.5 * r * np.array([math.cos(a), math.sin(a)])
            draw.line([cx - d[0], cy - d[1], cx + d[0], cy + d[1]], fill=colour,
                      width=max(1, int(S * rng.uniform(0.005, 0.02))))
        else:
            a = rng.uniform(0, math.pi)
            box = _rect(-r, -r * rng.uniform(0.3, 1.0), r, r * rng.uniform(0.3, 1.0))
            c, s = math.cos(a), math.sin(a)
            draw.polygon((box @ np.array([[c, s], [-s, c]]) + (cx, cy)).ravel().tolist(), fill=colour)


# ----------------------------------------------------------------------------------------------------------------
# scenes
# ----------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Domain:
    """Photometric and layout statistics of a corpus (the VOC-like target differs from the pre-training ones).

    Attributes:
        blur: Gaussian blur radius in pixels at 128 px images (scaled with the image size).
        noise: sensor-noise standard deviation (0-255 scale).
        gain, gamma: ranges of a global brightness gain and gamma.
        cast: standard deviation of a per-channel colour cast (0-255 scale).
        tint: (sd) of a per-channel multiplicative palette tint of the background.
        clutter: (min, max) distractor shapes per image (their sizes scale with the image).
        truncation: probability that an object is placed across the image border.
    """

    blur: float = 0.45
    noise: float = 3.0
    gain: tuple[float, float] = (0.92, 1.08)
    gamma: tuple[float, float] = (0.95, 1.05)
    cast: float = 5.0
    tint: float = 0.0
    clutter: tuple[int, int] = (2, 8)
    truncation: float = 0.2


@dataclass(frozen=True)
class Placement:
    """A requested object: category, silhouette area as a fraction of the image, and optionally a fixed position.

    ``centre`` (x, y) in pixels fixes the canvas centre (tests use it to build known overlaps); ``None`` draws it.
    ``depth`` fixes the drawing order (larger = in front); ``None`` orders by the object's bottom edge (ground plane).
    """

    category: Category
    area: float
    centre: tuple[float, float] | None = None
    depth: float | None = None


@dataclass
class SceneImage:
    """A rendered image: ``image`` (S, S, 3) uint8; ``layers`` in drawing order (back to front); ``owner`` (S, S)
    int16 index of the layer that owns each pixel (-1 = background)."""

    image: np.ndarray
    layers: list
    owner: np.ndarray
    style: str


MIN_VISIBLE_FRACTION = 0.25


def _clip(layer: ObjectLayer, S: int):
    gx0, gy0 = max(layer.x0, 0), max(layer.y0, 0)
    gx1, gy1 = min(layer.x0 + layer.w, S), min(layer.y0 + layer.h, S)
    if gx1 <= gx0 or gy1 <= gy0:
        return None
    return (slice(gy0, gy1), slice(gx0, gx1)), (slice(gy0 - layer.y0, gy1 - layer.y0),
                                                 slice(gx0 - layer.x0, gx1 - layer.x0))


def owner_map(layers: list, S: int) -> np.ndarray:
    """(S, S) int16: index of the front-most layer covering each pixel, -1 where none does."""
    owner = np.full((S, S), -1, np.int16)
    for i, layer in enumerate(layers):
        sl = _clip(layer, S)
        if sl is not None:
            owner[sl[0]][layer.label[sl[1]] > 0] = i
    return owner


def _place(rng: np.random.Generator, layer: ObjectLayer, S: int, truncation: float,
           centre: tuple[float, float] | None) -> None:
    if centre is not None:
        layer.x0, layer.y0 = int(round(centre[0] - layer.w / 2)), int(round(centre[1] - layer.h / 2))
        return
    pos = []
    truncate_axis = int(rng.integers(0, 2)) if rng.random() < truncation else -1
    for axis, extent in enumerate((layer.w, layer.h)):
        if axis == truncate_axis:
            inside = rng.uniform(0.45, 0.85) * extent
            pos.append(int(round(inside - extent)) if rng.random() < 0.5 else int(round(S - inside)))
        else:
            lo, hi = sorted((0, S - extent))
            pos.append(int(rng.integers(lo, hi + 1)))
    layer.x0, layer.y0 = pos


def render_scene(rng: np.random.Generator, size: int, style: str, placements: list, domain: Domain,
                 min_visible_px: int | None = None, cue: str = "part", paint_style: str | None = None) -> SceneImage:
    """Render background, clutter and objects; drop objects that end up hidden.

    An object is dropped (before painting, so it is not in the image either) when less than
    :data:`MIN_VISIBLE_FRACTION` of it is visible, when fewer than ``min_visible_px`` of its pixels are, or when its
    visible extent is under 2 px wide or high -- one at a time, least visible first, until all pass or one is left.

    Args:
        rng: the image's generator (everything random is drawn from it, in a fixed order).
        size: image side S (pixels).
        style: background style (:data:`BACKGROUND_STYLES`).
        placements: requested objects (:class:`Placement`).
        domain: photometric statistics.
        min_visible_px: objects with fewer visible pixels are dropped (default ``max(12, 0.003 * S^2)``).
        cue: how categories show (:data:`CUES`; :func:`render_object`).
        paint_style: when given, the background painted is this style, drawn from :func:`side_rng`; ``rng`` still
            advances as for ``style``, so clutter and objects are those of the ``style`` image (shared SUN
            backgrounds, paired with the default corpus).

    Returns:
        :class:`SceneImage`; ``layers`` holds only the objects that were kept, in drawing order.
    """
    S = size
    scale = S / 128.0
    tint = 1.0 + rng.normal(0.0, domain.tint, 3) if domain.tint else None
    bg = background(rng, S, style, tint)
    if paint_style is not None:
        bg = background(side_rng(rng, 3), S, paint_style, tint)
    pil = Image.fromarray(np.clip(bg, 0, 255).astype(np.uint8))
    lo, hi = domain.clutter
    draw_clutter(rng, pil, int(rng.integers(lo, hi + 1)))
    img = np.asarray(pil).astype(np.float32)

    layers, keys = [], []
    for k, pl in enumerate(placements):
        layer = render_object(rng, pl.category, pl.area * S * S, max_side=1.25 * S, cue=cue)
        _place(rng, layer, S, domain.truncation, pl.centre)
        layers.append(layer)
        keys.append(pl.depth if pl.depth is not None else layer.y0 + layer.h + rng.normal(0.0, 0.05 * S))
    layers = [layers[i] for i in np.argsort(keys, kind="stable")]

    min_px = max(12, int(0.003 * S * S)) if min_visible_px is None else min_visible_px
    while True:
        owner = owner_map(layers, S)
        visible = np.bincount(owner.ravel() + 1, minlength=len(layers) + 1)[1:]
        frac = visible / np.maximum([layer.full_area for layer in layers], 1) if layers else np.zeros(0)
        bad = [i for i in range(len(layers)) if frac[i] < MIN_VISIBLE_FRACTION or visible[i] < min_px
               or min(_extent(owner == i)) < 2]
        if len(layers) == 1:  # the last object left stays (object-centric roles always keep their object)
            bad = []
        if not bad:
            break
        layers.pop(min(bad, key=lambda i: (frac[i], i)))

    for i, layer in enumerate(layers):
        sl = _clip(layer, S)
        if sl is not None:
            m = owner[sl[0]] == i
            img[sl[0]][m] = layer.rgb[sl[1]][m]

    pil = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))
    if domain.blur > 0:
        pil = pil.filter(ImageFilter.GaussianBlur(domain.blur * scale))
    out = np.asarray(pil).astype(np.float32) / 255.0
    out = out ** rng.uniform(*domain.gamma) * rng.uniform(*domain.gain) * 255.0
    out += rng.normal(0.0, domain.cast, 3).astype(np.float32)
    out += rng.normal(0.0, domain.noise, out.shape).astype(np.float32)
    return SceneImage(np.clip(out, 0, 255).astype(np.uint8), layers, owner, paint_style or style)


def _extent(mask: np.ndarray) -> tuple[int, int]:
    """(width, height) in pixels of the bounding box of the True pixels of a 2-D mask ((0, 0) if empty)."""
    cols, rows = np.flatnonzero(mask.any(axis=0)), np.flatnonzero(mask.any(axis=1))
    if cols.size == 0:
        return 0, 0
    return int(cols[-1] - cols[0] + 1), int(rows[-1] - rows[0] + 1)


def _bbox(mask: np.ndarray) -> tuple[int, int, int, int]:
    """(x, y, w, h) in pixels of the True pixels of a 2-D mask (w = last column - first column + 1)."""
    cols, rows = np.flatnonzero(mask.any(axis=0)), np.flatnonzero(mask.any(axis=1))
    return int(cols[0]), int(rows[0]), int(cols[-1] - cols[0] + 1), int(rows[-1] - rows[0] + 1)


def encode_rle(mask: np.ndarray) -> dict:
    """COCO compressed RLE of a (H, W) mask, ``counts`` as str (JSON-ready)."""
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode("ascii")}


def annotate(scene: SceneImage, part_masks: bool = True) -> list[dict]:
    """Per-instance annotations of a rendered scene, in drawing order.

    Each dict: ``category`` (Category), ``bbox`` (x, y, w, h pixels of the visible mask), ``area`` (visible pixels),
    ``segmentation`` (RLE of the visible mask), ``visible_fraction`` (visible / full object pixels; the full object
    includes pixels outside the image and pixels under objects in front), ``truncated`` (0/1: the border cuts it),
    ``part_bbox`` (x, y, w, h of the visible part, or None when the part is hidden, absent or under 2 px wide),
    ``part_segmentation`` (RLE or None), ``part_area``, and the same three for the decoy patch (``decoy_bbox``,
    ``decoy_segmentation``, ``decoy_area``; None / 0 unless the object was drawn with ``cue="part+decoy"``).
    """
    S = scene.owner.shape[0]
    out = []
    for i, layer in enumerate(scene.layers):
        g, loc = _clip(layer, S)
        vis = scene.owner[g] == i
        full = layer.full_area
        inside = int(np.count_nonzero(layer.label[loc]))
        mask = np.zeros((S, S), bool)
        mask[g] = vis
        area = int(np.count_nonzero(vis))
        lab = layer.label[loc]
        part = np.zeros((S, S), bool)
        part[g] = vis & (lab >= PART) & (lab <= OUTLINE)
        has_part = min(_extent(part)) >= 2  # a part narrower than 2 px counts as hidden (VOC needs xmax > xmin)
        decoy = np.zeros((S, S), bool)
        decoy[g] = vis & (lab >= DECOY)
        has_decoy = min(_extent(decoy)) >= 2
        out.append({
            "category": layer.category,
            "bbox": _bbox(mask),
            "area": area,
            "segmentation": encode_rle(mask),
            "visible_fraction": area / full,
            "truncated": int(inside < full),
            "part_bbox": _bbox(part) if has_part else None,
            "part_segmentation": encode_rle(part) if (has_part and part_masks) else None,
            "part_area": int(np.count_nonzero(part)),
            "decoy_bbox": _bbox(decoy) if has_decoy else None,
            "decoy_segmentation": encode_rle(decoy) if (has_decoy and part_masks) else None,
            "decoy_area": int(np.count_nonzero(decoy)),
        })
    return out
