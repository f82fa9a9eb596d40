"""``data check`` on the genuine subsets (exact counts) and the bad-input policy on corrupted copies.

Every corruption must raise :class:`DataError` naming the file, and ``check_command`` must return 1 with exactly
one ``error: DataError: ...`` line on stderr (no traceback).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from detpretrain.cli import main as cli_main
from detpretrain.data.check import check_command, summarize
from detpretrain.data.classification import ClassFolder, OxfordPet
from detpretrain.data.coco import CocoDetection
from detpretrain.data.voc import VOCDetection
from detpretrain.errors import DataError


# ------------------------------------------------------------------------------------ counts on real subsets
def test_summarize_coco_subset(coco_subset):
    s = summarize(str(coco_subset), "coco", decode_images=False)["splits"]
    assert s["val2017"]["images"] == 128 and s["val2017"]["instances"] == 987 and s["val2017"]["ignored"] == 10
    assert s["train2017"]["images"] == 130 and s["train2017"]["instances"] == 1209 and s["train2017"]["ignored"] == 13
    assert s["train2017"]["num_classes"] == 80 and s["train2017"]["classes"] == 80
    assert sum(s["val2017"]["per_class"].values()) == 987


def test_check_command_voc_decodes_and_prints_table(vocdevkit, capsys):
    assert check_command(str(vocdevkit), "voc") == 0
    out = capsys.readouterr().out
    row = next(ln for ln in out.splitlines() if ln.startswith("VOC2007/test"))
    assert row.split() == ["VOC2007/test", "9", "46", "0", "-", "12/20"]
    seg = next(ln for ln in out.splitlines() if ln.startswith("VOC2012/seg-val"))
    assert seg.split() == ["VOC2012/seg-val", "1", "-", "-", "-", "4/20"]
    assert "decoded and checked 10 images" in out
    s = summarize(str(vocdevkit / "VOC2007"), "voc")["splits"]
    assert list(s) == ["VOC2007/test"] and s["VOC2007/test"]["per_class"]["person"] == 21


def test_summarize_flowers_and_pet(flowers_subset, pet_subset):
    f = summarize(str(flowers_subset), "folder", decode_images=False)["splits"]
    assert {k: v["images"] for k, v in f.items()} == {"test": 52, "train": 427, "valid": 43}
    assert all(v["classes"] == 10 for v in f.values())
    assert f["train"]["per_class"]["pink primrose"] + f["valid"]["per_class"]["pink primrose"] \
        + f["test"]["per_class"]["pink primrose"] == 40
    p = summarize(str(pet_subset), "folder")["splits"]  # decodes all 210 images
    assert {k: (v["images"], v["classes"]) for k, v in p.items()} == {"trainval": (150, 3), "test": (60, 3)}
    assert p["test"]["per_class"] == {"Abyssinian": 20, "American Bulldog": 20, "Bengal": 20}


def test_cli_data_check_coco(coco_subset, capsys):
    assert cli_main(["data", "check", str(coco_subset), "--format", "coco"]) == 0
    out = capsys.readouterr().out
    assert next(ln for ln in out.splitlines() if ln.startswith("val2017")).split() == ["val2017", "128", "987", "10",
                                                                                      "0", "78/80"]


# ------------------------------------------------------------------------------------------ bad input
def _assert_check_fails(root: Path, fmt: str, fragment: str, capsys) -> None:
    assert check_command(str(root), fmt) == 1
    cap = capsys.readouterr()
    lines = cap.err.strip().splitlines()
    assert len(lines) == 1, cap.err
    assert lines[0].startswith("error: DataError: ") and fragment in lines[0], lines[0]
    assert cap.out == ""


def _edit_xml(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


def test_truncated_jpeg(voc_copy, capsys):
    f = voc_copy / "JPEGImages" / "000456.jpg"
    f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])
    ds = VOCDetection(voc_copy, "test")  # annotations are fine: construction succeeds
    with pytest.raises(DataError, match=r"000456\.jpg: corrupt or truncated"):
        ds[1]
    _assert_check_fails(voc_copy.parent, "voc", "000456.jpg", capsys)
    assert check_command(str(voc_copy.parent), "voc", decode_images=False) == 0  # --no-decode misses it


def test_garbage_jpeg(voc_copy, capsys):
    (voc_copy / "JPEGImages" / "000542.jpg").write_bytes(bytes(range(256)) * 40)
    with pytest.raises(DataError, match=r"000542\.jpg"):
        VOCDetection(voc_copy, "test")[2]
    _assert_check_fails(voc_copy, "voc", "000542.jpg", capsys)


def test_xmax_less_than_xmin(voc_copy, capsys):
    _edit_xml(voc_copy / "Annotations" / "000342.xml", "<xmax>427</xmax>", "<xmax>1</xmax>")
    with pytest.raises(DataError, match=r"000342\.xml: object 0 \('tvmonitor'\): empty box"):
        VOCDetection(voc_copy, "test")
    _assert_check_fails(voc_copy, "voc", "000342.xml", capsys)


def test_box_outside_image_and_tolerance(voc_copy, capsys):
    xml = voc_copy / "Annotations" / "000342.xml"  # 500 x 375 image
    _edit_xml(xml, "<xmax>427</xmax>", "<xmax>501</xmax>")  # 1 px past the border: within tolerance, clamped
    assert VOCDetection(voc_copy, "test").load_target(0)["boxes"][0, 2].item() == 500.0
    _edit_xml(xml, "<xmax>501</xmax>", "<xmax>520</xmax>")
    with pytest.raises(DataError, match=r"000342\.xml: .*outside the 500x375"):
        VOCDetection(voc_copy, "test")
    _assert_check_fails(voc_copy, "voc", "000342.xml", capsys)


def test_unknown_class_name(voc_copy, capsys):
    _edit_xml(voc_copy / "Annotations" / "001150.xml", "<name>", "<name>unicorn")
    with pytest.raises(DataError, match=r"001150\.xml: .*not in the label map"):
        VOCDetection(voc_copy, "test")
    _assert_check_fails(voc_copy, "voc", "001150.xml", capsys)


def test_unparsable_xml(voc_copy, capsys):
    (voc_copy / "Annotations" / "003123.xml").write_text("<annotation><object>")
    with pytest.raises(DataError, match=r"003123\.xml: XML cannot be parsed"):
        VOCDetection(voc_copy, "test")
    _assert_check_fails(voc_copy, "voc", "003123.xml", capsys)


def test_image_named_by_split_is_missing(voc_copy, capsys):
    (voc_copy / "JPEGImages" / "004101.jpg").unlink()
    with pytest.raises(DataError, match=r"004101\.jpg: image is missing"):
        VOCDetection(voc_copy, "test")
    _assert_check_fails(voc_copy, "voc", "004101.jpg", capsys)


def test_annotation_named_by_split_is_missing(voc_copy, capsys):
    (voc_copy / "Annotations" / "008591.xml").unlink()
    with pytest.raises(DataError, match=r"008591\.xml: annotation is missing"):
        VOCDetection(voc_copy, "test")
    _assert_check_fails(voc_copy, "voc", "008591.xml", capsys)


def test_missing_split_file_and_missing_root(voc_copy, tmp_path, capsys):
    with pytest.raises(DataError, match=r"trainval\.txt: split file is missing"):
        VOCDetection(voc_copy, "trainval")
    with pytest.raises(DataError, match="nowhere: VOC data root does not exist"):
        VOCDetection(tmp_path / "nowhere", "test")
    with pytest.raises(DataError, match="nowhere"):
        CocoDetection(tmp_path / "nowhere", tmp_path / "nowhere.json")
    with pytest.raises(DataError, match="nowhere"):
        ClassFolder(tmp_path / "nowhere")
    for fmt in ("voc", "coco", "folder"):
        _assert_check_fails(tmp_path / "nowhere", fmt, "nowhere", capsys)
    assert cli_main(["data", "check", str(tmp_path / "nowhere"), "--format", "voc"]) == 1
    assert capsys.readouterr().err.strip() == f"error: DataError: {tmp_path / 'nowhere'}: data root does not exist"


def test_with_masks_needs_segmentation_object(voc_copy):
    with pytest.raises(DataError, match=r"SegmentationObject/000342\.png: instance mask PNG is missing"):
        VOCDetection(voc_copy, "test", with_masks=True)


@pytest.fixture
def coco_copy(coco_subset, tmp_path) -> Path:
    """A 3-image copy of the COCO val subset (json reduced to those images)."""
    data = json.loads((coco_subset / "annotations" / "instances_val2017.json").read_text())
    images = data["images"][:3]
    keep = {im["id"] for im in images}
    data["images"] = images
    data["annotations"] = [a for a in data["annotations"] if a["image_id"] in keep]
    root = tmp_path / "coco"
    (root / "annotations").mkdir(parents=True)
    (root / "val2017").mkdir()
    for im in images:
        (root / "val2017" / im["file_name"]).write_bytes((coco_subset / "val2017" / im["file_name"]).read_bytes())
    (root / "annotations" / "instances_val2017.json").write_text(json.dumps(data))
    return root


def _edit_json(root: Path, fn) -> Path:
    path = root / "annotations" / "instances_val2017.json"
    data = json.loads(path.read_text())
    fn(data)
    path.write_text(json.dumps(data))
    return path


def test_coco_copy_is_valid(coco_copy, capsys):
    assert check_command(str(coco_copy), "coco") == 0
    assert "val2017" in capsys.readouterr().out


@pytest.mark.parametrize("edit,fragment", [
    (lambda d: d["annotations"][0]["bbox"].__setitem__(0, 700.0), "outside the"),
    (lambda d: d["annotations"][0].__setitem__("category_id", 999), "category_id 999 is not in 'categories'"),
    (lambda d: d["annotations"][0].__setitem__("image_id", 1), "image_id 1 is not in 'images'"),
    (lambda d: d["images"][0].pop("width"), "has no 'width'"),
])
def test_coco_bad_annotations(coco_copy, capsys, edit, fragment):
    path = _edit_json(coco_copy, edit)
    with pytest.raises(DataError, match="instances_val2017.json: ") as err:
        CocoDetection(coco_copy / "val2017", path)
    assert fragment in str(err.value)
    _assert_check_fails(coco_copy, "coco", "instances_val2017.json", capsys)


def _degenerate(data: dict) -> list:
    """Make three annotations degenerate as genuine COCO train2017 has them: zero width, negative height, and a
    box of zero width lying on the image's right border (no area once clamped); returns their ids."""
    anns = data["annotations"]
    anns[0]["bbox"][2] = 0
    anns[1]["bbox"][3] = -4.0
    width = next(im["width"] for im in data["images"] if im["id"] == anns[2]["image_id"])
    anns[2]["bbox"] = [width + 0.5, 10.0, 0.4, 20.0]
    return [a["id"] for a in anns[:3]]


def test_degenerate_coco_boxes_are_dropped_counted_and_strict_refuses_them(coco_copy, capsys):
    ids = []
    path = _edit_json(coco_copy, lambda d: ids.extend(_degenerate(d)))
    n_anns = len(json.loads(path.read_text())["annotations"])
    ds = CocoDetection(coco_copy / "val2017", path)
    assert [a for a, _ in ds.dropped] == ids
    assert "width or height <= 0" in ds.dropped[0][1] and "no area inside" in ds.dropped[2][1]
    assert sum(len(ds.load_target(i)["labels"]) for i in range(len(ds))) == n_anns - 3
    assert check_command(str(coco_copy), "coco") == 0
    out = capsys.readouterr().out
    assert "dropped" in out.splitlines()[1] and "note: 3 degenerate box(es)" in out
    assert summarize(str(coco_copy), "coco")["splits"]["val2017"]["dropped"] == 3
    with pytest.raises(DataError, match=rf"annotation {ids[0]} .*width or height <= 0 \(strict"):
        CocoDetection(coco_copy / "val2017", path, strict=True)
    assert cli_main(["data", "check", str(coco_copy), "--format", "coco", "--strict"]) == 1
    assert "strict: degenerate boxes are errors" in capsys.readouterr().err


def test_a_run_records_the_dropped_boxes_and_strict_is_a_config_field(coco_copy):
    from detpretrain.config import DataSpec, hashed_dict
    from detpretrain.data.builders import build_detection_dataset, dropped_annotations
    from detpretrain.experiments.common import target_spec
    from detpretrain.experiments.detection import finetune_config
    from detpretrain.profiles import get_profile

    _edit_json(coco_copy, _degenerate)
    spec = DataSpec(kind="coco", root=str(coco_copy), train_split="val2017", eval_split="val2017")
    assert dropped_annotations(build_detection_dataset(spec, "val2017", train=True)) == 3
    strict = DataSpec(kind="coco", root=str(coco_copy), train_split="val2017", eval_split="val2017", strict_boxes=True)
    with pytest.raises(DataError, match="strict"):
        build_detection_dataset(strict, "val2017", train=False)
    prof = get_profile("smoke")
    cfg = finetune_config(prof, "scratch", 0, target_spec(prof), {})
    assert "strict_boxes" not in hashed_dict(cfg)["data"]  # the default leaves the hashes of older stores unchanged


def test_coco_invalid_json_missing_image_and_truncated_jpeg(coco_copy, capsys):
    ann = coco_copy / "annotations" / "instances_val2017.json"
    good = ann.read_text()
    ann.write_text(good[:-50])
    with pytest.raises(DataError, match="instances_val2017.json: not valid JSON"):
        CocoDetection(coco_copy / "val2017", ann)
    _assert_check_fails(coco_copy, "coco", "instances_val2017.json", capsys)
    ann.write_text(good)
    first = sorted((coco_copy / "val2017").iterdir())[0]
    data = first.read_bytes()
    first.unlink()
    with pytest.raises(DataError, match=rf"{first.name}: image is missing"):
        CocoDetection(coco_copy / "val2017", ann)
    _assert_check_fails(coco_copy, "coco", first.name, capsys)
    first.write_bytes(data[:-3000])
    _assert_check_fails(coco_copy, "coco", first.name, capsys)


def test_folder_truncated_image_and_pet_missing_image(flowers_subset, pet_subset, tmp_path, capsys):
    root = tmp_path / "flowers"
    for split in ("train", "test"):
        for folder in ("1", "2"):
            (root / split / folder).mkdir(parents=True)
            for f in sorted((flowers_subset / split / folder).glob("*.jpg"))[:2]:
                (root / split / folder / f.name).write_bytes(f.read_bytes())
    assert check_command(str(root), "folder") == 0
    capsys.readouterr()
    victim = sorted((root / "test" / "2").glob("*.jpg"))[1]
    victim.write_bytes(victim.read_bytes()[:4000])
    ds = ClassFolder(root, "test")
    with pytest.raises(DataError, match=rf"{victim.name}: corrupt or truncated"):
        ds[3]
    _assert_check_fails(root, "folder", victim.name, capsys)

    pet = tmp_path / "pet"
    shutil.copytree(pet_subset / "annotations", pet / "annotations", ignore=shutil.ignore_patterns("trimaps", "xmls"))
    (pet / "images").mkdir()
    names = [ln.split()[0] for ln in (pet / "annotations" / "trainval.txt").read_text().splitlines() if ln.strip()]
    names += [ln.split()[0] for ln in (pet / "annotations" / "test.txt").read_text().splitlines() if ln.strip()]
    for n in names[1:]:  # the first image of trainval.txt is left out
        (pet / "images" / f"{n}.jpg").symlink_to(pet_subset / "images" / f"{n}.jpg")
    with pytest.raises(DataError, match=rf"{names[0]}\.jpg: image is missing \(named by trainval.txt\)"):
        OxfordPet(pet, "trainval")
    _assert_check_fails(pet, "folder", f"{names[0]}.jpg", capsys)
