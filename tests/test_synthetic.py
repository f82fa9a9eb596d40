"""The embedded synthetic corpus (detpretrain.data.synthetic): determinism, formats, annotations, roles, caching.

Every corpus here is tiny (64 px, a few dozen images), so the whole file runs in seconds. The formats are checked
with independent standard readers: pycocotools (COCO JSON, RLE), xml.etree + PIL (VOC), torchvision ImageFolder,
and once more with the project's own readers (detpretrain.data.voc / coco / classification), which consume them.

Generation speed (single process pinned to one core with ``taskset -c 0``; measured when this file was written):
``smoke`` profile 3 s, ``mini`` profile (8,050 images at 128 px) 45 s.
"""

from __future__ import annotations

import json
import math
import xml.etree.ElementTree as ET
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO

from detpretrain.data import synthetic as syn
from detpretrain.data.synthetic_render import (
    MIN_VISIBLE_FRACTION,
    PART,
    Domain,
    Placement,
    annotate,
    render_object,
    render_scene,
)
from detpretrain.errors import ConfigError, DataError

# pycocotools 2.0.x decodes through np.array(copy=False) semantics that numpy 2 warns about (not our code)
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword")

S = 64
SPECS = {
    "coco": syn.CorpusSpec("coco", S, 40, 8, 0, seed=1),
    "voc": syn.CorpusSpec("voc", S, 10, 6, 8, seed=1),
    "imagenet_cls": syn.CorpusSpec("imagenet_cls", S, 25, 25, 0, seed=1),
    "imagenet_loc": syn.CorpusSpec("imagenet_loc", S, 30, 0, 0, seed=1),
    "caltech": syn.CorpusSpec("caltech", S, 25, 0, 25, seed=1),
    "sun": syn.CorpusSpec("sun", S, 18, 9, 0, seed=1),
    "flowers": syn.CorpusSpec("flowers", S, 12, 0, 12, seed=1),
    "coco_no_vehicle": syn.CorpusSpec("coco", S, 40, 0, 0, seed=1, exclude_supercategory="vehicle"),
    "loc_no_animal": syn.CorpusSpec("imagenet_loc", S, 30, 0, 0, seed=1, exclude_supercategory="animal"),
}


@pytest.fixture(scope="session")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("corpora")


@pytest.fixture(scope="session")
def corpora(cache) -> dict[str, Path]:
    return {name: syn.generate(spec, cache) for name, spec in SPECS.items()}


def _json(path: Path) -> dict:
    return json.loads(path.read_text())


def _coco_files(root: Path, spec: syn.CorpusSpec) -> list[Path]:
    if spec.layout == "coco":
        return [root / "annotations" / f"instances_{s}.json" for s in spec.splits]
    return [root / "annotations.json"]


# --------------------------------------------------------------------------------------------------------------
# taxonomy and specs
# --------------------------------------------------------------------------------------------------------------
def test_taxonomy_size_and_parts():
    assert len(syn.TAXONOMY) >= 20
    assert len(syn.SUPERCATEGORIES) >= 4
    assert [c.id for c in syn.TAXONOMY] == list(range(1, len(syn.TAXONOMY) + 1))
    by_sup = defaultdict(list)
    for c in syn.TAXONOMY:
        by_sup[c.supercategory].append(c)
    assert set(by_sup) == set(syn.SUPERCATEGORIES)
    for cats in by_sup.values():  # within a super-category, the part tells categories apart
        assert len({c.part_description for c in cats}) == len(cats)
        assert len({(c.part_shape, c.part_colour) for c in cats}) == len(cats)
    assert syn.CATEGORY_BY_NAME["car"].part_description == "red triangle on the front"
    # the VOC-like target covers every super-category with a subset of the pre-training categories
    assert {syn.CATEGORY_BY_NAME[n].supercategory for n in syn.VOC_CATEGORIES} == set(syn.SUPERCATEGORIES)


def test_part_covers_5_to_15_percent_of_the_object():
    fractions = []
    for k, cat in enumerate(syn.TAXONOMY * 4):
        layer = render_object(np.random.default_rng(k), cat, area_px=0.15 * 128 * 128, max_side=160)
        fractions.append(np.count_nonzero(layer.label >= PART) / layer.full_area)
    fractions = np.array(fractions)
    assert np.median(fractions) == pytest.approx(0.09, abs=0.03)
    assert np.mean((fractions >= 0.04) & (fractions <= 0.16)) >= 0.9, np.percentile(fractions, [0, 5, 95, 100])


def test_render_object_area_matches_request():
    areas = [render_object(np.random.default_rng(k), c, 900.0, 200).full_area
             for k, c in enumerate(syn.TAXONOMY * 2)]
    assert np.median(areas) == pytest.approx(900, rel=0.15)


def test_spec_key_and_validation():
    a = syn.CorpusSpec("coco", 64, 10, 5, 0, seed=0)
    assert a.key() == syn.CorpusSpec("coco", 64, 10, 5, 0, seed=0).key()
    assert len(a.key()) == 12 and int(a.key(), 16) >= 0
    keys = {a.key(), syn.CorpusSpec("coco", 64, 10, 5, 0, seed=1).key(),
            syn.CorpusSpec("coco", 96, 10, 5, 0, seed=0).key(),
            syn.CorpusSpec("coco", 64, 11, 5, 0, seed=0).key(),
            syn.CorpusSpec("coco", 64, 10, 5, 0, seed=0, exclude_supercategory="animal").key()}
    assert len(keys) == 5
    with pytest.raises(ConfigError, match="unknown synthetic role"):
        syn.CorpusSpec("imagenet", 64, 10, 0, 0)
    with pytest.raises(ConfigError, match="image_size"):
        syn.CorpusSpec("coco", 16, 10, 0, 0)
    with pytest.raises(ConfigError, match="not all 0"):
        syn.CorpusSpec("coco", 64, 0, 0, 0)
    with pytest.raises(ConfigError, match="unknown super-category"):
        syn.CorpusSpec("coco", 64, 10, 0, 0, exclude_supercategory="person")
    with pytest.raises(ConfigError, match="pre-training roles"):
        syn.CorpusSpec("voc", 64, 10, 0, 0, exclude_supercategory="vehicle")
    with pytest.raises(ConfigError, match=r"25 classes; each non-empty split needs >= 25 images \(n_val=10\)"):
        syn.CorpusSpec("imagenet_cls", 64, 50, 10, 0)


def test_profile_specs():
    for name, size in (("smoke", 64), ("mini", 128)):
        specs = syn.profile_specs(name, seed=3)
        assert set(specs) == set(syn.ROLES)
        assert all(s.image_size == size and s.seed == 3 and s.role == r for r, s in specs.items())
    mini = syn.profile_specs("mini")
    assert (mini["imagenet_cls"].n_train, mini["coco"].n_train, mini["voc"].n_train + mini["voc"].n_val,
            mini["voc"].n_test) == (1500, 1500, 1800, 200)
    assert mini["caltech"].n_train == 30 * 25
    # selection 4 (profiles.py): 270 training scenes per SUN scene type, val and test 10 each
    assert (mini["sun"].n_train, mini["sun"].n_val, mini["sun"].n_test) == (270 * len(syn.SCENES), 90, 90)
    # the GPU profiles' synthetic-only parts (Figures 4, 5; the synthetic classification roles) read mini's corpora
    assert syn.profile_specs("paper") == syn.profile_specs("torchvision") == mini
    with pytest.raises(ConfigError, match="unknown synthetic profile"):
        syn.profile_specs("huge")


# --------------------------------------------------------------------------------------------------------------
# determinism and caching
# --------------------------------------------------------------------------------------------------------------
def test_same_seed_gives_identical_files_and_other_seed_differs(corpora, tmp_path):
    coco_again = syn.generate(SPECS["coco"], tmp_path / "a")
    voc_again = syn.generate(SPECS["voc"], tmp_path / "a")
    for rel in ("annotations/instances_train.json", "annotations/instances_val.json", "train/000000000001.jpg"):
        assert (coco_again / rel).read_bytes() == (corpora["coco"] / rel).read_bytes(), rel
    for rel in ("Annotations/000003.xml", "SegmentationClass/000003.png", "ImageSets/Main/car_trainval.txt"):
        assert (voc_again / rel).read_bytes() == (corpora["voc"] / rel).read_bytes(), rel
    other = syn.generate(syn.CorpusSpec("coco", S, 40, 8, 0, seed=2), tmp_path / "a")
    assert (other / "annotations/instances_train.json").read_bytes() != \
        (corpora["coco"] / "annotations/instances_train.json").read_bytes()


def test_parallel_generation_is_byte_identical(tmp_path):
    spec = syn.CorpusSpec("voc", S, 6, 0, 4, seed=5)
    one = syn.generate(spec, tmp_path / "one", workers=1)
    two = syn.generate(spec, tmp_path / "two", workers=2)
    files = sorted(p.relative_to(one) for p in one.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(two) for p in two.rglob("*") if p.is_file())
    assert all((one / f).read_bytes() == (two / f).read_bytes() for f in files)


def test_images_do_not_depend_on_split_sizes(corpora, tmp_path):
    small = syn.generate(syn.CorpusSpec("coco", S, 5, 0, 0, seed=1), tmp_path)
    big = _json(corpora["coco"] / "annotations/instances_train.json")
    sm = _json(small / "annotations/instances_train.json")
    strip = [{k: v for k, v in a.items() if k != "id"} for a in sm["annotations"]]
    assert strip == [{k: v for k, v in a.items() if k != "id"} for a in big["annotations"][:len(strip)]]
    assert (small / "train/000000000005.jpg").read_bytes() == (corpora["coco"] / "train/000000000005.jpg").read_bytes()


def test_generate_caches_by_spec_and_writes_atomically(tmp_path, monkeypatch):
    spec = syn.CorpusSpec("imagenet_loc", S, 4, 0, 0, seed=9)
    root = syn.generate(spec, tmp_path)
    assert root == tmp_path / f"imagenet_loc-{spec.key()}"
    assert _json(root / "corpus.json")["key"] == spec.key()

    def boom(*args, **kwargs):
        raise RuntimeError("generator called again")

    monkeypatch.setattr(syn, "_write_corpus", boom)
    assert syn.generate(spec, tmp_path) == root  # cached: not regenerated
    other = syn.CorpusSpec("imagenet_loc", S, 5, 0, 0, seed=9)
    with pytest.raises(RuntimeError, match="generator called again"):
        syn.generate(other, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [root.name]  # no partial folder left behind
    with pytest.raises(ConfigError, match="workers"):
        syn.generate(other, tmp_path, workers=0)


# --------------------------------------------------------------------------------------------------------------
# COCO layout
# --------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["coco", "imagenet_loc", "imagenet_cls", "caltech", "sun"])
def test_coco_json_masks_boxes_and_extras(corpora, name):
    spec, root = SPECS[name], corpora[name]
    files = _coco_files(root, spec)
    expected = [spec.count(s) for s in spec.splits] if spec.layout == "coco" else [
        sum(spec.count(s) for s in spec.splits)]
    for ann_file, n_images in zip(files, expected, strict=True):
        coco = COCO(str(ann_file))
        assert all("supercategory" in c for c in coco.dataset["categories"])
        assert len(coco.getImgIds()) == n_images
        for ann in coco.dataset["annotations"]:
            img = coco.imgs[ann["image_id"]]
            assert ann["iscrowd"] == 0
            assert isinstance(ann["segmentation"]["counts"], str)
            m = coco.annToMask(ann)
            assert m.shape == (img["height"], img["width"])
            assert m.sum() == ann["area"] > 0
            assert list(mask_utils.toBbox(ann["segmentation"])) == ann["bbox"]
            ys, xs = np.nonzero(m)
            x, y, w, h = ann["bbox"]
            assert x <= xs.min() and xs.max() < x + w and y <= ys.min() and ys.max() < y + h
            assert 0.0 < ann["visible_fraction"] <= 1.0
            assert ann["visible_fraction"] >= MIN_VISIBLE_FRACTION or len(
                coco.getAnnIds(imgIds=ann["image_id"])) == 1
            assert ann["truncated"] in (0, 1)
            if "part_bbox" in ann:  # part box: inside the object box, and the part mask lies in the object mask
                px, py, pw, ph = ann["part_bbox"]
                assert x <= px and y <= py and px + pw <= x + w and py + ph <= y + h
                pm = mask_utils.decode(ann["part_segmentation"])
                assert list(mask_utils.toBbox(ann["part_segmentation"])) == ann["part_bbox"]
                assert np.all(m[pm > 0] == 1)


def test_coco_layout_files_and_ids(corpora):
    root, spec = corpora["coco"], SPECS["coco"]
    ids = []
    for split in ("train", "val"):
        data = _json(root / "annotations" / f"instances_{split}.json")
        assert [c["id"] for c in data["categories"]] == list(range(1, 26))
        assert len(data["images"]) == spec.count(split)
        for img in data["images"]:
            assert (root / split / img["file_name"]).is_file()
            assert img["scene"] in {s.name for s in syn.SCENES}
            with Image.open(root / split / img["file_name"]) as im:
                assert im.size == (S, S) and im.format == "JPEG"
        ids += [img["id"] for img in data["images"]]
    assert len(ids) == len(set(ids))  # image ids unique across splits


def test_occluded_and_truncated_objects_are_recorded(corpora):
    anns = _json(corpora["coco"] / "annotations/instances_train.json")["annotations"]
    occluded = [a for a in anns if a["visible_fraction"] < 1 and not a["truncated"]]
    truncated = [a for a in anns if a["truncated"]]
    assert len(occluded) >= 5 and len(truncated) >= 5
    assert all(a["visible_fraction"] < 1 for a in truncated)
    per_image = Counter(a["image_id"] for a in anns)
    assert max(per_image.values()) >= 3  # multi-instance scenes


def test_visible_fraction_against_independent_overlap_count():
    """Two objects placed by hand: the back one's visible fraction = 1 - overlap / its full area."""
    car, dog = syn.CATEGORY_BY_NAME["car"], syn.CATEGORY_BY_NAME["dog"]
    placements = [Placement(car, 0.12, centre=(50.0, 60.0), depth=0.0),
                  Placement(dog, 0.05, centre=(88.0, 64.0), depth=1.0),
                  Placement(car, 0.1, centre=(4.0, 110.0), depth=-1.0)]
    scene = render_scene(np.random.default_rng(0), 128, "studio", placements, Domain(clutter=(0, 0)))
    assert [layer.category.name for layer in scene.layers] == ["car", "car", "dog"]  # drawn back to front
    anns = annotate(scene)
    pad = 200

    def full_mask(layer):
        m = np.zeros((128 + 2 * pad, 128 + 2 * pad), bool)
        m[pad + layer.y0:pad + layer.y0 + layer.h, pad + layer.x0:pad + layer.x0 + layer.w] = layer.label > 0
        return m

    masks = [full_mask(layer) for layer in scene.layers]
    inside = np.zeros_like(masks[0])
    inside[pad:pad + 128, pad:pad + 128] = True
    for i, ann in enumerate(anns):
        covered = np.zeros_like(inside)
        for m in masks[i + 1:]:
            covered |= m
        expected = np.count_nonzero(masks[i] & inside & ~covered) / np.count_nonzero(masks[i])
        assert ann["visible_fraction"] == pytest.approx(expected)
        assert ann["truncated"] == int(np.count_nonzero(masks[i] & ~inside) > 0)
    small_car, big_car, dog_ann = anns
    assert small_car["truncated"] == 1 and small_car["visible_fraction"] < 1
    assert big_car["truncated"] == 0 and big_car["visible_fraction"] < 1  # occluded by the dog
    assert dog_ann["visible_fraction"] == 1.0 and dog_ann["truncated"] == 0


def test_object_areas_span_2_to_60_percent(cache):
    spec = syn.CorpusSpec("coco", S, 120, 0, 0, seed=4)
    anns = _json(syn.generate(spec, cache) / "annotations/instances_train.json")["annotations"]
    frac = np.array([a["area"] for a in anns]) / (S * S)
    assert frac.min() < 0.025 and frac.max() > 0.4
    assert 0.04 < np.median(frac) < 0.2


def test_exclude_supercategory_removes_every_instance(corpora):
    vehicles = {c.id for c in syn.TAXONOMY if c.supercategory == "vehicle"}
    data = _json(corpora["coco_no_vehicle"] / "annotations/instances_train.json")
    assert not vehicles & {c["id"] for c in data["categories"]}
    assert not vehicles & {a["category_id"] for a in data["annotations"]}
    assert len(data["annotations"]) >= 2 * len(data["images"])  # scenes were refilled, not left empty
    full = _json(corpora["coco"] / "annotations/instances_train.json")
    assert vehicles & {a["category_id"] for a in full["annotations"]}  # the same seed without exclusion has them
    animals = {c.name for c in syn.TAXONOMY if c.supercategory == "animal"}
    labels = syn.image_level_labels(corpora["loc_no_animal"] / "annotations/instances_train.json")
    assert len(labels) == 30 and not animals & set(labels.values())
    cls_spec = syn.CorpusSpec("imagenet_cls", S, 20, 0, 0, exclude_supercategory="animal")
    assert not animals & set(syn.corpus_classes(cls_spec))


def test_image_level_labels(corpora, tmp_path):
    ann_file = corpora["imagenet_loc"] / "annotations/instances_train.json"
    labels = syn.image_level_labels(ann_file)
    data = _json(ann_file)
    assert set(labels) == {img["file_name"] for img in data["images"]}
    names = {c["id"]: c["name"] for c in data["categories"]}
    by_file = {img["id"]: img["file_name"] for img in data["images"]}
    for a in data["annotations"]:
        assert labels[by_file[a["image_id"]]] == names[a["category_id"]]
    assert Counter(labels.values()) == Counter({c.name: 1 for c in syn.TAXONOMY}) + Counter(
        {c.name: 1 for c in syn.TAXONOMY[:5]})  # 30 images cycle over the 25 classes
    with pytest.raises(DataError, match="several categories"):
        syn.image_level_labels(corpora["coco"] / "annotations/instances_train.json")
    with pytest.raises(DataError, match="does not exist"):
        syn.image_level_labels(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(DataError, match="bad.json: not a readable COCO annotation file"):
        syn.image_level_labels(tmp_path / "bad.json")


# --------------------------------------------------------------------------------------------------------------
# VOC layout
# --------------------------------------------------------------------------------------------------------------
def test_voc_xml_lists_and_masks(corpora):
    root, _spec = corpora["voc"], SPECS["voc"]
    labels = [line.split()[0] for line in (root / "labels.txt").read_text().splitlines()]
    assert labels == list(syn.VOC_CATEGORIES)
    main = {s: (root / "ImageSets/Main" / f"{s}.txt").read_text().split() for s in ("train", "val", "trainval",
                                                                                     "test")}
    assert (len(main["train"]), len(main["val"]), len(main["test"])) == (10, 6, 8)
    assert main["trainval"] == main["train"] + main["val"]
    for s, ids in main.items():
        assert (root / "ImageSets/Segmentation" / f"{s}.txt").read_text().split() == ids
    palette = syn.voc_palette()
    assert palette[1].tolist() == [128, 0, 0] and palette[15].tolist() == [192, 128, 128]
    assert palette[255].tolist() == [224, 224, 192]
    syn.void_width(S)
    n_void = 0
    for fid in main["trainval"] + main["test"]:
        tree = ET.parse(root / "Annotations" / f"{fid}.xml").getroot()
        assert tree.findtext("filename") == f"{fid}.jpg"
        w, h = int(tree.findtext("size/width")), int(tree.findtext("size/height"))
        assert (w, h) == (S, S)
        with Image.open(root / "JPEGImages" / f"{fid}.jpg") as im:
            assert im.size == (w, h)
        cls_png, obj_png = (Image.open(root / sub / f"{fid}.png") for sub in ("SegmentationClass",
                                                                            "SegmentationObject"))
        assert cls_png.mode == "P" and obj_png.mode == "P"
        assert np.array(cls_png.getpalette()[:768]).reshape(256, 3).tolist() == palette.tolist()
        cls, obj = np.array(cls_png), np.array(obj_png)
        objects = tree.findall("object")
        assert set(np.unique(obj)) <= {0, 255, *range(1, len(objects) + 1)}
        assert np.array_equal(cls == 255, obj == 255)
        n_void += np.count_nonzero(cls == 255)
        for k, o in enumerate(objects):
            name = o.findtext("name")
            assert name in labels
            for tag in ("truncated", "difficult", "occluded"):
                assert o.findtext(tag) in ("0", "1")
            assert 0 < float(o.findtext("visible_fraction")) <= 1
            xmin, ymin, xmax, ymax = (int(o.findtext(f"bndbox/{t}")) for t in ("xmin", "ymin", "xmax", "ymax"))
            assert 1 <= xmin < xmax <= w and 1 <= ymin < ymax <= h  # 1-based, inclusive
            inst = obj == k + 1
            assert inst.any(), "every object keeps pixels outside the void band"
            assert set(np.unique(cls[inst])) == {labels.index(name) + 1}
            ys, xs = np.nonzero(inst)  # 0-based pixels of the mask lie in [xmin - 1, xmax - 1]
            assert xmin - 1 <= xs.min() and xs.max() <= xmax - 1 and ymin - 1 <= ys.min() and ys.max() <= ymax - 1
            part = o.find("part")
            if part is not None:
                assert part.findtext("name") == "part"
                p = [int(part.findtext(f"bndbox/{t}")) for t in ("xmin", "ymin", "xmax", "ymax")]
                assert xmin <= p[0] < p[2] <= xmax and ymin <= p[1] < p[3] <= ymax
    assert n_void > 0


def test_voc_per_class_image_sets_agree_with_xml(corpora):
    root = corpora["voc"]
    ids = (root / "ImageSets/Main/test.txt").read_text().split()
    for cls in syn.VOC_CATEGORIES:
        rows = dict(line.split() for line in (root / f"ImageSets/Main/{cls}_test.txt").read_text().splitlines())
        assert list(rows) == ids
        for fid in ids:
            objs = [o for o in ET.parse(root / "Annotations" / f"{fid}.xml").getroot().findall("object")
                    if o.findtext("name") == cls]
            expected = -1 if not objs else (1 if any(o.findtext("difficult") == "0" for o in objs) else 0)
            assert int(rows[fid]) == expected


def test_void_width_scales_with_image_size():
    assert [syn.void_width(s) for s in (32, 64, 128, 256, 500)] == [2, 2, 3, 5, 5]


@pytest.mark.parametrize("size", [64, 128])
def test_void_band_on_a_hand_made_square(size):
    """A 20 x 20 object: the void band is void_width px wide across each edge, object pixels keep their class."""
    from types import SimpleNamespace

    owner = np.full((size, size), -1, np.int16)
    owner[20:40, 20:40] = 0
    cls, obj = syn._voc_label_maps(SimpleNamespace(owner=owner), [{"category": syn.CATEGORY_BY_NAME["dog"]}], size)
    w = syn.void_width(size)
    row = cls[30]
    assert np.count_nonzero(row == 255) == 2 * w
    assert np.count_nonzero(row == syn.VOC_CATEGORIES.index("dog") + 1) == 20 - w
    assert np.count_nonzero(cls[:, 30] == 255) == 2 * w
    assert set(np.unique(cls)) == {0, syn.VOC_CATEGORIES.index("dog") + 1, 255}
    assert np.array_equal(obj == 255, cls == 255) and set(np.unique(obj)) == {0, 1, 255}
    assert np.all(cls[:10] == 0) and np.all(cls[25:35, 25:35] == syn.VOC_CATEGORIES.index("dog") + 1)


# --------------------------------------------------------------------------------------------------------------
# ImageFolder layouts
# --------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["imagenet_cls", "caltech", "sun", "flowers"])
def test_imagefolder_loads_with_torchvision(corpora, name):
    from torchvision.datasets import ImageFolder

    spec, root = SPECS[name], corpora[name]
    side = _json(root / "annotations.json")
    assert side["classes"] == syn.corpus_classes(spec)
    for split in spec.splits:
        ds = ImageFolder(str(root / split))
        assert ds.classes == syn.corpus_classes(spec)
        assert len(ds) == spec.count(split)
        assert Counter(ds.targets) == Counter({k: spec.count(split) // len(ds.classes) for k in range(len(ds.classes))})
        img, target = ds[0]
        assert img.size == (S, S) and ds.classes[target] == Path(ds.samples[0][0]).parent.name
    images = {img["file_name"]: img for img in side["images"]}
    assert len(images) == sum(spec.count(s) for s in spec.splits)
    for fname, img in images.items():
        assert (root / fname).is_file() and fname.split("/")[:2] == [img["split"], img["label"]]
    coco = COCO(str(root / "annotations.json"))  # the sidecar is COCO-format
    cats = {c["id"]: c["name"] for c in side["categories"]}
    for img in side["images"]:
        anns = coco.loadAnns(coco.getAnnIds(imgIds=img["id"]))
        assert anns, "every image has its object(s)"
        if name in ("imagenet_cls", "caltech", "flowers"):
            assert {cats[a["category_id"]] for a in anns} == {img["label"]}
        if name == "imagenet_cls":
            assert len(anns) == 1
        if name == "sun":
            assert img["label"] == img["scene"]
            assert {cats[a["category_id"]] for a in anns} <= set(syn.SCENES[[s.name for s in syn.SCENES].index(
                img["scene"])].categories)
        if name == "flowers":
            assert all("part_bbox" not in a for a in anns)


def test_flowers_classes_share_one_shape():
    assert len(syn.FLOWER_CLASSES) == 12
    colours = {c.name.rsplit("_", 1)[0] for c in syn.FLOWER_CLASSES}
    textures = {c.name.rsplit("_", 1)[1] for c in syn.FLOWER_CLASSES}
    assert len(colours) * len(textures) == 12
    # same shape statistics: silhouette areas of different classes drawn with the same generator state match
    areas = {c.name: render_object(np.random.default_rng(7), c, 1500.0, 200).full_area for c in syn.FLOWER_CLASSES}
    assert len(set(areas.values())) == 1


# --------------------------------------------------------------------------------------------------------------
# the project's readers consume the corpora
# --------------------------------------------------------------------------------------------------------------
def test_project_readers_read_the_corpora(corpora):
    try:
        from detpretrain.data.classification import ClassFolder
        from detpretrain.data.coco import CocoDetection
        from detpretrain.data.voc import VOCDetection, VOCSegmentation
    except ImportError as err:  # the readers are written alongside; skip only while they are absent
        pytest.skip(f"project readers not importable: {err}")
    voc = VOCDetection(corpora["voc"], "trainval", with_masks=True)
    assert voc.classes[1:] == list(syn.VOC_CATEGORIES) and len(voc) == 16
    img, target = voc[0]
    assert tuple(img.shape[-2:]) == (S, S) and len(target["boxes"]) == len(target["labels"])
    seg = VOCSegmentation(corpora["voc"], "test")
    assert len(seg) == 8
    coco = CocoDetection(corpora["coco"] / "train", corpora["coco"] / "annotations/instances_train.json",
                         with_masks=True)
    assert len(coco) == 40
    img, target = coco[0]
    assert tuple(img.shape[-2:]) == (S, S)
    folder = ClassFolder(corpora["imagenet_cls"], split="train")
    assert len(folder) == 25


# --------------------------------------------------------------------------------------------------------------
# figure
# --------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["coco", "voc", "flowers"])
def test_save_sample_grid(corpora, tmp_path, name):
    out = syn.save_sample_grid(corpora[name], SPECS[name].role, tmp_path / "fig" / f"{name}.png", n=4)
    with Image.open(out) as im:
        assert im.format == "PNG" and im.size[0] > 300
    assert out.stat().st_size < 300_000
    with pytest.raises(ConfigError):
        syn.save_sample_grid(corpora[name], "nope", tmp_path / "x.png")


def test_save_sample_grid_keeps_the_callers_backend_and_open_figures(corpora, tmp_path):
    """A chapter draws the grid and then its own figures inline: the grid must not switch the kernel's backend
    (it once called matplotlib.use("Agg"), and the pre-training chapter's loss curves were never shown)."""
    import matplotlib
    import matplotlib.pyplot as plt

    before = matplotlib.get_backend()
    try:
        matplotlib.use("svg")  # stands for the notebook's inline backend: any backend but Agg
        open_figures = plt.get_fignums()
        syn.save_sample_grid(corpora["coco"], "coco", tmp_path / "grid.png", n=2)
        assert matplotlib.get_backend() == "svg" and plt.get_fignums() == open_figures
    finally:
        matplotlib.use(before)


def test_readme_figure_is_small():
    fig = Path(__file__).resolve().parents[1] / "docs" / "images" / "synthetic_samples.png"
    if not fig.exists():
        pytest.skip(f"{fig} not generated yet")
    assert fig.stat().st_size < 300_000
    assert math.prod(Image.open(fig).size) > 200_000
