"""Hoiem et al.'s released occlusion levels of VOC2007 test objects, read onto the genuine VOC2007 subset.

The files are written here in the release's layout (a header line, then one numeric line per non-difficult object of
the class, in test-image then XML order; occlusion level in column 3, box area second to last), from an independent
parse of the XML with ElementTree."""

import math
import xml.etree.ElementTree as ET

import pytest

from detpretrain.analysis import ablations as B
from detpretrain.data.hoiem import HOIEM_CLASSES, HOIEM_LEVELS, hoiem_file, hoiem_occlusion_levels, read_hoiem_table
from detpretrain.errors import DataError, ParameterError
from detpretrain.parameters import check_parameters

PARTS = {"aeroplane": 4, "bicycle": 4, "bird": 6, "boat": 6, "cat": 5, "chair": 4, "diningtable": 2}


def _objects(voc2007):
    """(image, k, class, difficult, area with inclusive corners) in test.txt then XML order."""
    out = []
    for name in (voc2007 / "ImageSets" / "Main" / "test.txt").read_text().split():
        for k, obj in enumerate(ET.parse(voc2007 / "Annotations" / f"{name}.xml").findall("object")):
            bb = obj.find("bndbox")
            x1, y1, x2, y2 = (float(bb.findtext(t)) for t in ("xmin", "ymin", "xmax", "ymax"))
            out.append((name, k, obj.findtext("name").strip(), obj.findtext("difficult", "0").strip() == "1",
                        (x2 - x1 + 1) * (y2 - y1 + 1)))
    return out


def _write(folder, objects, cls, occ, *, area_of=None, extra_rows=0, drop_rows=0):
    """gt_ved_<cls>.txt with occlusion ``occ(j)`` for the j-th non-difficult object of ``cls``."""
    views = 2 if cls == "diningtable" else 5
    width = 3 + PARTS[cls] + views + 2
    lines = [" ".join(["imgnum", "objnum", "occlusion"] + [f"p{i}" for i in range(PARTS[cls])]
                      + [f"v{i}" for i in range(views)] + ["area", "aspect"])]
    rows = [o for o in objects if o[2] == cls and not o[3]]
    for j, (name, k, _, _, area) in enumerate(rows[:len(rows) - drop_rows] + rows[:extra_rows]):
        a = area if area_of is None else area_of(j, area)
        lines.append(" ".join(str(v) for v in [int(name), k + 1, occ(j)] + [1] * PARTS[cls] + [0] * views
                              + [int(a), 1.0]))
        assert len(lines[-1].split()) == width
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"gt_ved_{cls}.txt").write_text("\n".join(lines) + "\n\n")
    return rows


def _dataset(root):
    from detpretrain.data.voc import VOCDetection

    return VOCDetection(root, "test", year=2007)


def test_levels_land_on_their_objects_and_drive_table3_groups(vocdevkit, tmp_path):
    from detpretrain.data.coco import to_coco_gt

    objects = _objects(vocdevkit / "VOC2007")
    present = sorted({o[2] for o in objects} & set(HOIEM_CLASSES))
    assert present == ["bicycle", "cat", "chair", "diningtable"]  # the subset's nine images hold these four
    expected = {}
    for c, cls in enumerate(present):
        rows = _write(tmp_path / "hoiem", objects, cls, lambda j, c=c: (j + c) % 4)
        expected.update({(r[0], r[1]): HOIEM_LEVELS[(j + c) % 4] for j, r in enumerate(rows)})
    ds = _dataset(vocdevkit)
    levels = hoiem_occlusion_levels(tmp_path / "hoiem", ds)
    assert levels == [expected.get((o[0], o[1])) for o in objects]
    assert sum(lv is not None for lv in levels) == sum(o[2] in present for o in objects)

    gt = B.attach_occlusion_levels(to_coco_gt(ds), ds, tmp_path / "hoiem")
    scope = B.occlusion_annotations(gt)
    assert scope["occlusion_level"] == len(expected) and "Hoiem et al." in scope["sentence"]
    f = B.missed_objects(gt, [])  # no detections: every non-difficult object is missed
    assert f["level"].tolist() == [lv or "unknown" for lv in levels]
    order = {n: i for i, n in enumerate(HOIEM_LEVELS)}
    low = [lv is not None and order[lv] >= 1 for lv in levels]
    assert f["occluded_low"].tolist() == low  # the subset's XMLs carry no truncated flag
    assert f["occluded_medium"].tolist() == [lv is not None and order[lv] >= 2 for lv in levels]
    kept = B.annotated_classes_only(f)
    assert set(kept["category"]) == set(present) and len(kept) == len(expected)
    row = B.occlusion_table({"imagenet-cls": [kept]}).iloc[0]
    assert row["occluded Low objects"] == sum(low) and row["occluded Low % missed"] == pytest.approx(100.0)
    design = B.missed_design({"imagenet-cls": [kept], "detection": [kept]})
    assert (design["group"] == "occluded").sum() == 2 * sum(low)


def test_difficult_objects_have_no_row(voc_copy, tmp_path):
    xml = voc_copy / "Annotations" / "000542.xml"  # its only object is a cat
    xml.write_text(xml.read_text().replace("<difficult>0</difficult>", "<difficult>1</difficult>"))
    objects = _objects(voc_copy)
    rows = _write(tmp_path / "h", objects, "cat", lambda j: 2)
    assert len(rows) == sum(o[2] == "cat" for o in objects) - 1
    levels = hoiem_occlusion_levels(tmp_path / "h", _dataset(voc_copy.parent))
    assert [lv for o, lv in zip(objects, levels) if o[2] == "cat"] == [None, "moderate"]


@pytest.mark.parametrize("change, message", [
    (dict(drop_rows=1), "1 rows, but the split has more non-difficult 'cat' objects"),
    (dict(extra_rows=1), "3 rows, but the split has 2 non-difficult 'cat' objects"),
    (dict(area_of=lambda j, a: a + 500 if j == 1 else a), "not aligned with this split"),
    (dict(area_of=lambda j, a: a - 1), "counts box corners differently"),
])
def test_misaligned_files_name_the_file(vocdevkit, tmp_path, change, message):
    _write(tmp_path / "h", _objects(vocdevkit / "VOC2007"), "cat", lambda j: 0, **change)
    with pytest.raises(DataError, match=message) as err:
        hoiem_occlusion_levels(tmp_path / "h", _dataset(vocdevkit))
    assert err.value.path.endswith("gt_ved_cat.txt")


def test_exclusive_corner_areas_are_refused(vocdevkit, tmp_path):
    """A file whose areas count corners exclusively is off by W + H - 1 px only: still an error (the check is exact
    for boxes inside the image, as the tool's own check is)."""
    objects = _objects(vocdevkit / "VOC2007")
    boxes = {}
    for name in {o[0] for o in objects}:
        import xml.etree.ElementTree as ET2

        for k, obj in enumerate(ET2.parse(vocdevkit / "VOC2007" / "Annotations" / f"{name}.xml").findall("object")):
            bb = obj.find("bndbox")
            boxes[(name, k)] = [float(bb.findtext(t)) for t in ("xmin", "ymin", "xmax", "ymax")]
    cats = [o for o in objects if o[2] == "cat" and not o[3]]

    def exclusive(j, area):
        x1, y1, x2, y2 = boxes[(cats[j][0], cats[j][1])]
        return (x2 - x1) * (y2 - y1)

    _write(tmp_path / "h", objects, "cat", lambda j: 0, area_of=exclusive)
    with pytest.raises(DataError, match="counts box corners differently"):
        hoiem_occlusion_levels(tmp_path / "h", _dataset(vocdevkit))


def test_error_names_the_rows_line_past_blank_lines(vocdevkit, tmp_path):
    _write(tmp_path / "h", _objects(vocdevkit / "VOC2007"), "cat", lambda j: 0, area_of=lambda j, a: a + 500)
    path = tmp_path / "h" / "gt_ved_cat.txt"
    head, *rows = path.read_text().split("\n")
    path.write_text("\n".join([head, "", ""] + rows))  # the first row is now on line 4
    with pytest.raises(DataError, match=r"row 1 \(line 4\)"):
        hoiem_occlusion_levels(tmp_path / "h", _dataset(vocdevkit))


def test_malformed_files_are_data_errors(tmp_path):
    path = tmp_path / "gt_ved_cat.txt"
    with pytest.raises(DataError, match="missing"):
        read_hoiem_table(path)
    path.write_text("")
    with pytest.raises(DataError, match="empty file"):
        read_hoiem_table(path)
    header = "a b occ p1 p2 v1 v2 area x\n"
    path.write_text(header + "1 1 0 1 1 0 0 100 1\n1 2 0 1 one 0 0 100 1\n")
    with pytest.raises(DataError, match="line 3: not all numbers"):
        read_hoiem_table(path)
    path.write_text(header + "1 1 0 1 1 0 0 100\n")
    with pytest.raises(DataError, match="line 2: 8 values, the header has 9"):
        read_hoiem_table(path)
    path.write_text(header + "1 1 4 1 1 0 0 100 1\n")
    with pytest.raises(DataError, match="occlusion level .* is 4"):
        read_hoiem_table(path)
    path.write_text(header + "1 1 3 1 1 0 0 100 1\n\n2 1 0 1 1 0 0 90 1\n")
    table = read_hoiem_table(path)
    assert table.shape == (2, 9) and table[:, 2].tolist() == [3, 0] and table[:, -2].tolist() == [100, 90]


def test_folder_without_files_and_non_voc_data(vocdevkit, coco_subset, tmp_path):
    with pytest.raises(DataError, match="folder is missing"):
        hoiem_occlusion_levels(tmp_path / "absent", _dataset(vocdevkit))
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="holds none of Hoiem"):
        hoiem_occlusion_levels(tmp_path / "empty", _dataset(vocdevkit))
    from detpretrain.data.coco import CocoDetection, to_coco_gt

    ds = CocoDetection(coco_subset / "val2017", coco_subset / "annotations" / "instances_val2017.json")
    with pytest.raises(DataError, match="use dataset voc"):
        B.attach_occlusion_levels(to_coco_gt(ds), ds, tmp_path / "empty")


def test_visibility_group_prefers_an_annotators_level():
    assert B.visibility_group(math.nan, False, level="none") == "clean"
    assert B.visibility_group(math.nan, False, level="low") == "occluded"
    assert B.visibility_group(math.nan, True, level="none") == "truncated"
    assert B.visibility_group(0.5, False, level=None) == "occluded"


def test_parameter_needs_dataset_voc():
    with pytest.raises(ParameterError, match="needs dataset 'voc'"):
        check_parameters("ablations", {"occlusion_annotations": "~/hoiem"})
    out = check_parameters("ablations", {"occlusion_annotations": "~/hoiem", "dataset": "voc",
                                         "data_root": "~/VOCdevkit"})
    assert out["occlusion_annotations"] == "~/hoiem"  # expanded where it is read:
    assert "~" not in str(hoiem_file(out["occlusion_annotations"], "cat"))
