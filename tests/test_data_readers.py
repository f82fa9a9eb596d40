"""Standard-format readers on the genuine subsets in ../shared/data and on small hand-made datasets.

Counts are the ones stated in ../shared/data/README.md; boxes are checked against hand values and against an
independent source (pycocotools for COCO, the Detectron COCO-format conversion for VOC2007 test).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from torchvision import tv_tensors
from torchvision.transforms import v2

from detpretrain.data.classification import ClassFolder, OxfordPet
from detpretrain.data.coco import CocoDetection, to_coco_gt
from detpretrain.data.voc import VOC_CLASSES, VOCDetection, VOCSegmentation, read_class_file, read_index_png
from detpretrain.errors import DataError

# pycocotools (numpy 2) warns once per decoded mask in the reference annToMask calls
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

VOC07_TEST_IDS = [342, 456, 542, 1150, 1763, 3123, 4101, 4545, 8591]


def _quiet_coco(path) -> COCO:
    import contextlib
    import io

    with contextlib.redirect_stdout(io.StringIO()):
        return COCO(str(path))


@pytest.fixture(scope="module")
def coco_val(coco_subset):
    return CocoDetection(coco_subset / "val2017", coco_subset / "annotations" / "instances_val2017.json",
                         with_masks=True)


# ---------------------------------------------------------------------------------------------------- COCO
@pytest.mark.parametrize("split,n_images,n_anns", [("val2017", 128, 987), ("train2017", 130, 1209)])
def test_coco_counts_and_boxes_agree_with_pycocotools(coco_subset, split, n_images, n_anns):
    ann_file = coco_subset / "annotations" / f"instances_{split}.json"
    ds = CocoDetection(coco_subset / split, ann_file)
    assert len(ds) == n_images and ds.image_ids == sorted(ds.image_ids)
    assert len(ds.classes) == 81 and ds.classes[0] == "__background__" and ds.classes[1] == "person"
    gt = _quiet_coco(ann_file)
    assert ds.cat_ids == {i + 1: cid for i, cid in enumerate(sorted(gt.getCatIds()))}
    assert ds.cat_ids[80] == 90 and ds.classes[80] == "toothbrush"
    assert ds.supercategories["bicycle"] == "vehicle" and ds.supercategories["dog"] == "animal"
    total = crowd = 0
    for i, iid in enumerate(ds.image_ids):
        t = ds.load_target(i)
        anns = gt.loadAnns(gt.getAnnIds(imgIds=[iid]))
        expect = torch.tensor([[a["bbox"][0], a["bbox"][1], a["bbox"][0] + a["bbox"][2], a["bbox"][1] + a["bbox"][3]]
                               for a in anns], dtype=torch.float32).reshape(-1, 4)
        assert torch.allclose(t["boxes"].as_subclass(torch.Tensor), expect)
        assert [ds.cat_ids[int(x)] for x in t["labels"]] == [a["category_id"] for a in anns]
        assert t["ignore"].tolist() == [bool(a["iscrowd"]) for a in anns]
        assert t["boxes"].canvas_size == ds.image_size(i) == (gt.imgs[iid]["height"], gt.imgs[iid]["width"])
        assert t["image_id"] == iid and t["area"].dtype == torch.float32
        total += len(anns)
        crowd += int(t["ignore"].sum())
    assert total == n_anns and crowd == {"val2017": 10, "train2017": 13}[split]


def test_coco_getitem_image_and_masks(coco_val, coco_subset):
    i = coco_val.image_ids.index(87038)  # has polygons and one crowd RLE (uncompressed counts)
    image, t = coco_val[i]
    assert isinstance(image, tv_tensors.Image) and image.dtype == torch.uint8
    assert tuple(image.shape) == (3, *coco_val.image_size(i))
    masks = t["masks"]
    assert isinstance(masks, tv_tensors.Mask) and masks.dtype == torch.uint8
    assert masks.shape == (len(t["labels"]), *coco_val.image_size(i))
    assert t["ignore"].any() and (~t["ignore"]).any()
    boxes = t["boxes"].as_subclass(torch.Tensor)
    ref = _quiet_coco(coco_subset / "annotations" / "instances_val2017.json")
    ref_anns = ref.loadAnns(ref.getAnnIds(imgIds=[87038]))
    for k in range(len(masks)):
        ys, xs = torch.nonzero(masks[k], as_tuple=True)
        assert len(ys) > 0
        # mask extent lies inside the box (1 px slack for rasterisation)
        assert xs.min() >= boxes[k, 0] - 1 and xs.max() + 1 <= boxes[k, 2] + 1
        assert ys.min() >= boxes[k, 1] - 1 and ys.max() + 1 <= boxes[k, 3] + 1
        # identical to pycocotools' own COCO.annToMask (polygons and RLE alike)
        assert np.array_equal(masks[k].numpy(), ref.annToMask(ref_anns[k]))
        if not t["ignore"][k]:  # polygon masks: pixel count close to the annotated polygon area
            assert abs(int(masks[k].sum()) - float(t["area"][k])) <= 0.1 * float(t["area"][k]) + 20


def test_coco_masks_for_all_val_images_decode(coco_val):
    n_rle = 0
    for i in range(len(coco_val)):
        m = coco_val.load_masks(i)
        assert m.shape[0] == len(coco_val.load_target(i)["labels"])
        n_rle += int(coco_val.load_target(i)["ignore"].sum())
    assert n_rle == 10


def test_coco_category_selection(coco_subset):
    ds = CocoDetection(coco_subset / "val2017", coco_subset / "annotations" / "instances_val2017.json",
                       categories=["dog", "person"])
    assert ds.classes == ["__background__", "dog", "person"] and ds.cat_ids == {1: 18, 2: 1}
    gt = _quiet_coco(coco_subset / "annotations" / "instances_val2017.json")
    n = sum(len(ds.load_target(i)["labels"]) for i in range(len(ds)))
    assert n == len(gt.getAnnIds(catIds=[1, 18])) and len(ds) == 128
    with pytest.raises(DataError, match="instances_val2017.json.*unicorn"):
        CocoDetection(coco_subset / "val2017", coco_subset / "annotations" / "instances_val2017.json",
                      categories=["unicorn"])


def test_to_coco_gt_of_coco_subset_loads_in_pycocotools(coco_val, tmp_path):
    gt = to_coco_gt(coco_val)
    assert len(gt["images"]) == 128 and len(gt["annotations"]) == 987 and len(gt["categories"]) == 80
    assert sum(a["ignore"] for a in gt["annotations"]) == 10 and all(a["iscrowd"] == 0 for a in gt["annotations"])
    assert gt["categories"][0] == {"id": 1, "name": "person", "supercategory": "person"}
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    coco = _quiet_coco(tmp_path / "gt.json")
    assert len(coco.getImgIds()) == 128 and len(coco.getAnnIds()) == 987
    src = _quiet_coco(coco_val.ann_file)
    assert sorted(a["bbox"][2] * a["bbox"][3] for a in coco.dataset["annotations"]) == pytest.approx(
        sorted(a["bbox"][2] * a["bbox"][3] for a in src.dataset["annotations"]), rel=1e-5)
    sub = torch.utils.data.Subset(coco_val, [3, 1])
    assert [im["id"] for im in to_coco_gt(sub)["images"]] == [coco_val.image_ids[3], coco_val.image_ids[1]]


# ---------------------------------------------------------------------------------------------------- VOC
def test_voc2007_test_counts_and_hand_box(vocdevkit):
    for root, year in ((vocdevkit, None), (vocdevkit, 2007), (vocdevkit / "VOC2007", None)):
        ds = VOCDetection(root, "test", year=year)
        assert len(ds) == 9 and ds.image_ids == VOC07_TEST_IDS
    assert ds.classes == ["__background__", *VOC_CLASSES]
    assert ds.supercategories["car"] == "vehicle" and ds.supercategories["horse"] == "animal"
    assert ds.supercategories["person"] == "person"
    t = ds.load_target(0)  # 000342.xml, object 0: tvmonitor xmin=2 ymin=97 xmax=427 ymax=341 (1-based, inclusive)
    assert t["image_id"] == 342 and ds.image_size(0) == (375, 500)
    assert t["boxes"].as_subclass(torch.Tensor)[0].tolist() == [1.0, 96.0, 427.0, 341.0]
    assert t["boxes"].canvas_size == (375, 500) and t["boxes"].format == tv_tensors.BoundingBoxFormat.XYXY
    assert t["labels"].tolist() == [VOC_CLASSES.index("tvmonitor") + 1, VOC_CLASSES.index("person") + 1]
    assert t["area"][0].item() == pytest.approx(426 * 245)
    assert "truncated" not in t and "part_boxes" not in t  # the real subset has no <truncated> / <part>
    import xml.etree.ElementTree as ET

    n_xml = [len(ET.parse(vocdevkit / "VOC2007" / "Annotations" / f"{n}.xml").findall("object"))
             for n in ds.image_names]
    assert [len(ds.load_target(i)["labels"]) for i in range(9)] == n_xml and sum(n_xml) == 46
    image, target = ds[4]
    assert isinstance(image, tv_tensors.Image) and image.shape == (3, 375, 500) and image.dtype == torch.uint8
    assert ds.image_path(4).name == "001763.jpg" and target["labels"].dtype == torch.int64
    assert target["ignore"].dtype == torch.bool and not target["ignore"].any()


def test_voc2007_test_matches_detectron_coco_conversion(vocdevkit, voc_extras):
    """The XML boxes through our 1-based conversion reproduce the genuine Detectron json (x = xmin-1, w = xmax-xmin+1)."""
    gt = to_coco_gt(VOCDetection(vocdevkit, "test"))
    ref = json.loads((voc_extras / "VOC2007_annotations_coco_format" / "pascal_test2007.json").read_text())
    ref_anns: dict[int, list] = {}
    for a in ref["annotations"]:
        ref_anns.setdefault(a["image_id"], []).append(a)
    assert [c["name"] for c in ref["categories"]] == list(VOC_CLASSES)
    for im in gt["images"]:
        mine = sorted((a["category_id"], *a["bbox"]) for a in gt["annotations"] if a["image_id"] == im["id"])
        theirs = sorted((a["category_id"], *map(float, a["bbox"])) for a in ref_anns[im["id"]])
        assert mine == theirs
        ref_im = next(r for r in ref["images"] if r["id"] == im["id"])
        assert (im["file_name"], im["width"], im["height"]) == (ref_im["file_name"], ref_im["width"], ref_im["height"])


def test_voc_extras_pascal_test2007_is_readable(voc_extras, vocdevkit):
    path = voc_extras / "VOC2007_annotations_coco_format" / "pascal_test2007.json"
    coco = _quiet_coco(path)
    assert len(coco.getImgIds()) == 4952 and len(coco.getAnnIds()) == 14976 and len(coco.getCatIds()) == 20
    ours = to_coco_gt(VOCDetection(vocdevkit, "test"))
    # the keys to_coco_gt writes are the ones the reference conversion has (so the evaluator reads both)
    assert set(ours["images"][0]) <= set(coco.dataset["images"][0])
    assert set(ours["annotations"][0]) <= set(coco.dataset["annotations"][0])
    # NB: the conversion's "ignore" is 0 for all 14976 objects, i.e. VOC's difficult flags are not in this file
    assert sum(a["ignore"] for a in coco.dataset["annotations"]) == 0


def test_voc2012_segmentation_val(vocdevkit, voc_extras):
    ds = VOCSegmentation(vocdevkit, "val")
    assert len(ds) == 1 and ds.image_names == ["2007_001763"] and ds.image_ids == [2007001763]
    image, mask = ds[0]
    assert isinstance(mask, tv_tensors.Mask) and mask.dtype == torch.uint8 and mask.shape == (375, 500)
    assert image.shape == (3, 375, 500)
    names = {ds.classes[v] for v in torch.unique(mask).tolist() if v not in (0, 255)}
    assert names == {"cat", "dog", "sofa", "tvmonitor"}  # the objects of VOC2007 001763.xml
    assert (mask == 255).any()  # void border
    png = read_index_png(vocdevkit / "VOC2012" / "SegmentationClass" / "2007_001763.png")
    assert png.dtype == np.uint8 and png.shape == (375, 500) and np.array_equal(png, mask.numpy())
    extra = read_index_png(voc_extras / "VOC2012_SegmentationClass_val_masks_only" / "SegmentationClass"
                           / "2007_000033.png")
    assert extra.ndim == 2 and set(np.unique(extra)) <= set(range(21)) | {255} and (extra == 255).any()
    with pytest.raises(DataError, match="SegmentationObject"):
        VOCSegmentation(vocdevkit, "val", target="object")


# ---------------------------------------------------------------------------------------- classification
def test_flowers_subset_class_folders(flowers_subset):
    splits = {s: ClassFolder(flowers_subset, s) for s in ("train", "valid", "test")}
    assert sum(len(d) for d in splits.values()) == 522
    ds = splits["train"]
    assert len(ds.classes) == 10 and ds.folder_names == [str(k) for k in range(1, 11)]
    assert ds.classes[0] == "pink primrose" and ds.classes[9] == "globe thistle"
    assert all(d.classes == ds.classes for d in splits.values())
    per_folder = {f: sum(d.targets.count(k) for d in splits.values()) for k, f in enumerate(ds.folder_names)}
    assert per_folder["1"] == 40 and per_folder["2"] == 60 and per_folder["8"] == 85  # official per-class counts
    image, label = ds[0]
    assert isinstance(image, tv_tensors.Image) and image.dtype == torch.uint8 and image.shape[0] == 3
    assert label == 0 and ds.image_path(0).parent.name == "1"
    with pytest.raises(DataError, match="split folders"):
        ClassFolder(flowers_subset)


def test_class_folder_transforms_and_union_of_classes(tmp_path):
    for split, classes in (("train", ("cat", "dog")), ("test", ("dog",))):
        for c in classes:
            (tmp_path / split / c).mkdir(parents=True)
            Image.new("L", (8, 6), 128).save(tmp_path / split / c / "a.png")
    test = ClassFolder(tmp_path, "test", transforms=v2.Resize((4, 4)))
    assert test.classes == ["cat", "dog"] and test.targets == [1]  # same label as in train
    image, label = test[0]
    assert image.shape == (3, 4, 4) and label == 1 and int(image[0, 0, 0]) == 128  # grayscale -> RGB


def test_oxford_pet_subset(pet_subset):
    tv, te = OxfordPet(pet_subset, "trainval"), OxfordPet(pet_subset, "test")
    assert (len(tv), len(te)) == (150, 60)
    assert tv.classes == te.classes == ["Abyssinian", "American Bulldog", "Bengal"]
    assert tv.class_ids == [1, 2, 6]  # official class ids (Bengal = 6)
    assert [tv.targets.count(k) for k in range(3)] == [50, 50, 50]
    assert [te.targets.count(k) for k in range(3)] == [20, 20, 20]
    k = tv.image_names.index("Bengal_100") if "Bengal_100" in tv.image_names else \
        next(i for i, n in enumerate(tv.image_names) if n.startswith("Bengal"))
    image, label = tv[k]
    assert label == 2 and isinstance(image, tv_tensors.Image) and image.shape[0] == 3
    assert not set(tv.image_names) & set(te.image_names)


# ------------------------------------------------------------------------ hand-made VOC / COCO with extras
def _write_voc(root: Path, objects: list[str], name: str = "img1", size=(40, 30)) -> None:
    w, h = size
    for d in ("Annotations", "JPEGImages", "ImageSets/Main", "ImageSets/Segmentation", "SegmentationObject"):
        (root / d).mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (w, h), (10, 20, 30)).save(root / "JPEGImages" / f"{name}.jpg")
    xml = f"<annotation><filename>{name}.jpg</filename><size><width>{w}</width><height>{h}</height>" \
          f"<depth>3</depth></size>{''.join(objects)}</annotation>"
    (root / "Annotations" / f"{name}.xml").write_text(xml)
    (root / "ImageSets" / "Main" / "train.txt").write_text(f"{name}\n")
    (root / "ImageSets" / "Segmentation" / "train.txt").write_text(f"{name}\n")


def _obj(name, box, extra=""):
    x1, y1, x2, y2 = box
    return f"<object><name>{name}</name><difficult>0</difficult>{extra}<bndbox><xmin>{x1}</xmin><ymin>{y1}</ymin>" \
           f"<xmax>{x2}</xmax><ymax>{y2}</ymax></bndbox></object>"


def test_voc_custom_classes_extras_masks_and_flip(tmp_path):
    root = tmp_path / "VOCdevkit" / "VOC2030"
    part = "<part><name>head</name><bndbox><xmin>3</xmin><ymin>4</ymin><xmax>6</xmax><ymax>8</ymax></bndbox></part>"
    _write_voc(root, [
        _obj("widget", (2, 3, 10, 12), f"<truncated>1</truncated><visible_fraction>0.25</visible_fraction>{part}"),
        _obj("gadget", (0, 1, 41, 30)),  # xmin=0 and xmax=W+1 are within the 1 px tolerance: clamped
        _obj("gadget", (21, 5, 21, 9)),  # xmax == xmin: a 1 px wide box (inclusive corners), not an error
    ])
    (tmp_path / "VOCdevkit" / "labels.txt").write_text("__background__\ngadget tools\nwidget tools\n")
    assert read_class_file(tmp_path / "VOCdevkit" / "labels.txt") == (["gadget", "widget"],
                                                                      {"gadget": "tools", "widget": "tools"})
    inst = np.zeros((30, 40), dtype=np.uint8)
    inst[2:12, 1:10] = 1
    inst[20:, :] = 2
    inst[5:9, 20] = 3
    inst[0, :] = 255
    png = Image.fromarray(inst, mode="P")
    png.putpalette([0, 0, 0, 128, 0, 0, 0, 128, 0] + [0] * (253 * 3))
    png.save(root / "SegmentationObject" / "img1.png")

    ds = VOCDetection(tmp_path / "VOCdevkit", "train", with_masks=True)
    assert ds.classes == ["__background__", "gadget", "widget"] and ds.supercategories == {"gadget": "tools",
                                                                                           "widget": "tools"}
    image, t = ds[0]
    assert t["labels"].tolist() == [2, 1, 1]
    assert t["boxes"].as_subclass(torch.Tensor).tolist() == [[1, 2, 10, 12], [0, 0, 40, 30], [20, 4, 21, 9]]
    assert t["area"].tolist() == [90, 1200, 5]
    assert t["truncated"].tolist() == [True, False, False]
    assert t["visible_fraction"][0].item() == 0.25 and torch.isnan(t["visible_fraction"][1:]).all()
    pb = t["part_boxes"].as_subclass(torch.Tensor)
    assert pb[0].tolist() == [2, 3, 6, 8] and torch.isnan(pb[1:]).all()
    assert t["masks"].shape == (3, 30, 40) and [int(m.sum()) for m in t["masks"]] == [90, 400, 4]
    assert int(t["masks"][:, 0, :].sum()) == 0  # void is in no instance

    flipped = VOCDetection(tmp_path / "VOCdevkit", "train", transforms=v2.RandomHorizontalFlip(p=1.0))
    image_f, tf = flipped[0]
    assert tf["boxes"].as_subclass(torch.Tensor)[0].tolist() == [30, 2, 39, 12]
    assert tf["part_boxes"].as_subclass(torch.Tensor)[0].tolist() == [34, 3, 38, 8]  # moves with the image
    assert torch.equal(image_f, image.flip(-1))
    gt = to_coco_gt(ds)
    a0 = gt["annotations"][0]
    assert a0["bbox"] == [1, 2, 9, 10] and a0["truncated"] == 1 and a0["visible_fraction"] == 0.25
    assert a0["part_bbox"] == [2, 3, 4, 5] and "part_bbox" not in gt["annotations"][1]
    assert gt["categories"][1] == {"id": 2, "name": "widget", "supercategory": "tools"}

    assert VOCDetection(root, "train").classes == ds.classes  # the VOCdevkit's labels.txt is found from VOC2030/
    with pytest.raises(DataError, match="img1.xml.*'widget' is not in the label map"):
        VOCDetection(root, "train", classes=["gadget"])


def test_coco_handmade_extras_polygon_and_compressed_rle(tmp_path):
    (tmp_path / "img").mkdir()
    Image.new("RGB", (20, 10)).save(tmp_path / "img" / "a.jpg")
    m = np.zeros((10, 20), dtype=np.uint8, order="F")
    m[2:6, 12:18] = 1
    rle = mask_utils.encode(m)
    rle["counts"] = rle["counts"].decode("ascii")
    data = {
        "images": [{"id": 7, "file_name": "a.jpg", "width": 20, "height": 10}],
        "categories": [{"id": 5, "name": "b", "supercategory": "s2"}, {"id": 3, "name": "a", "supercategory": "s1"}],
        "annotations": [
            {"id": 1, "image_id": 7, "category_id": 5, "bbox": [1, 1, 8, 6], "area": 48.0, "iscrowd": 0,
             "segmentation": [[1, 1, 9, 1, 9, 7, 1, 7]], "visible_fraction": 0.5, "part_bbox": [2, 2, 2, 2],
             "truncated": 1},
            {"id": 2, "image_id": 7, "category_id": 3, "bbox": [12, 2, 6, 4], "area": 24.0, "iscrowd": 1,
             "segmentation": rle},
        ],
    }
    (tmp_path / "ann.json").write_text(json.dumps(data))
    ds = CocoDetection(tmp_path / "img", tmp_path / "ann.json", with_masks=True)
    assert ds.classes == ["__background__", "a", "b"] and ds.cat_ids == {1: 3, 2: 5}
    image, t = ds[0]
    assert t["labels"].tolist() == [2, 1] and t["ignore"].tolist() == [False, True]
    assert t["boxes"].as_subclass(torch.Tensor).tolist() == [[1, 1, 9, 7], [12, 2, 18, 6]]
    assert t["part_boxes"].as_subclass(torch.Tensor)[0].tolist() == [2, 2, 4, 4]
    assert torch.isnan(t["part_boxes"].as_subclass(torch.Tensor)[1]).all()
    assert t["visible_fraction"][0].item() == 0.5 and torch.isnan(t["visible_fraction"][1])
    assert t["truncated"].tolist() == [True, False]
    assert np.array_equal(t["masks"][1].numpy(), m)
    ys, xs = torch.nonzero(t["masks"][0], as_tuple=True)
    assert (xs.min().item(), xs.max().item(), ys.min().item(), ys.max().item()) == (1, 8, 1, 6)  # polygon rasterised
