"""Segmentation mIoU / pixel accuracy with trimap and anti-trimap bands (paper's Figure 2).

Known values on hand-made maps, agreement of the bands with scipy.ndimage.binary_dilation / maximum_filter and of the
metrics with sklearn, exact predictions on the genuine VOC2012 val masks with damage placed near or far from the void
borders, and the ``evaluate-seg`` command on folders of PNGs (json content and every DataError case).
"""

from __future__ import annotations

import io
import json
import shutil

import numpy as np
import pytest
import torch
from PIL import Image
from scipy import ndimage
from sklearn.metrics import accuracy_score, confusion_matrix, jaccard_score

from detpretrain.data.voc import read_index_png
from detpretrain.errors import ConfigError, DataError
from detpretrain.evaluation.segmentation import (
    SegmentationEvaluator,
    evaluate_seg_command,
    parse_bands,
    segmentation_metrics,
)

VOID = 255


# ------------------------------------------------------------------------------------------------------------
# Hand-made maps with answers worked out by hand
# ------------------------------------------------------------------------------------------------------------


def test_one_void_pixel_in_7x7_by_hand():
    gt = np.zeros((7, 7), np.uint8)
    gt[3, 3] = VOID
    pred = gt.copy()
    pred[3, 3] = 1  # a prediction on a void pixel does not count anywhere
    pred[2, 2] = 1  # wrong, inside the 3x3 neighbourhood of the void pixel (band w=1)
    pred[0, 0] = 1  # wrong, 3 px from the void pixel (bands w>=3 only)
    m = segmentation_metrics([gt], [pred], num_classes=2, bands=[1, 2, 3])
    # overall: 48 non-void pixels, 46 right. class 0: TP 46, FN 2, FP 0 -> 46/48; class 1: TP 0, FP 2 -> 0
    assert m["num_pixels"] == 48 and m["num_images"] == 1
    assert m["pixel_accuracy"] == pytest.approx(100 * 46 / 48)
    assert m["per_class_IoU"] == pytest.approx([100 * 46 / 48, 0.0])
    assert m["mIoU"] == pytest.approx(50 * 46 / 48)
    # w=1: the 3x3 neighbourhood minus the void pixel = 8 pixels, one of them wrong
    t1 = m["trimap"]["1"]
    assert t1["num_pixels"] == 8
    assert t1["pixel_accuracy"] == pytest.approx(100 * 7 / 8)
    assert t1["mIoU"] == pytest.approx((100 * 7 / 8 + 0.0) / 2)
    # w=2: 5x5 minus 1 = 24 pixels, still one wrong; anti-trimap(2) = the 24 pixels of the outer ring, one wrong
    assert m["trimap"]["2"]["num_pixels"] == 24
    assert m["trimap"]["2"]["pixel_accuracy"] == pytest.approx(100 * 23 / 24)
    assert m["anti_trimap"]["2"]["num_pixels"] == 24
    assert m["anti_trimap"]["2"]["pixel_accuracy"] == pytest.approx(100 * 23 / 24)
    # anti-trimap(1): 40 pixels with (0,0) wrong: class 0 IoU 39/40, class 1 IoU 0/1
    a1 = m["anti_trimap"]["1"]
    assert a1["num_pixels"] == 40
    assert a1["pixel_accuracy"] == pytest.approx(100 * 39 / 40)
    assert a1["mIoU"] == pytest.approx(50 * 39 / 40)
    # w=3 covers the whole image: the anti-trimap is empty, its metrics undefined
    assert m["trimap"]["3"]["num_pixels"] == 48
    assert m["anti_trimap"]["3"] == {"pixel_accuracy": None, "mIoU": None, "num_pixels": 0}


def test_void_in_the_corner_outside_of_image_is_not_void():
    gt = np.ones((5, 5), np.uint8)
    gt[0, 0] = VOID
    m = segmentation_metrics([gt], [gt], num_classes=2, bands=[1, 2, 4])
    assert m["trimap"]["1"]["num_pixels"] == 3  # (0,1), (1,0), (1,1)
    assert m["trimap"]["2"]["num_pixels"] == 8  # 3x3 minus the void pixel
    assert m["trimap"]["4"]["num_pixels"] == 24
    assert m["anti_trimap"]["1"]["num_pixels"] == 21
    # class 0 never occurs and is never predicted: no IoU, not in the mean
    assert m["per_class_IoU"] == [None, 100.0]
    assert m["mIoU"] == 100.0


def test_image_without_void_goes_to_every_anti_trimap():
    no_void = np.array([[0, 1], [1, 1]], np.uint8)
    pred = np.array([[0, 0], [1, 1]], np.uint8)
    m = segmentation_metrics([no_void], [pred], num_classes=2, bands=[1, 5])
    for w in ("1", "5"):
        assert m["trimap"][w] == {"pixel_accuracy": None, "mIoU": None, "num_pixels": 0}
        assert m["anti_trimap"][w]["num_pixels"] == 4
        assert m["anti_trimap"][w]["pixel_accuracy"] == pytest.approx(75.0)
        # class 0: TP 1, FP 1 -> 50; class 1: TP 2, FN 1 -> 66.7
        assert m["anti_trimap"][w]["mIoU"] == pytest.approx((50 + 200 / 3) / 2)
    # together with an image that has void, its pixels still land outside every band
    with_void = np.full((3, 3), 1, np.uint8)
    with_void[1, 1] = VOID
    m2 = segmentation_metrics([no_void, with_void], [pred, with_void], num_classes=2, bands=[1])
    assert m2["trimap"]["1"]["num_pixels"] == 8
    assert m2["anti_trimap"]["1"]["num_pixels"] == 4
    assert m2["num_images"] == 2


def test_dataset_level_confusion_not_mean_of_images():
    gts = [np.array([[0, 0, 0, 1]], np.uint8), np.array([[1, 1, 1, 1]], np.uint8)]
    preds = [np.array([[0, 0, 0, 0]], np.uint8), np.array([[1, 1, 1, 1]], np.uint8)]
    m = segmentation_metrics(gts, preds, num_classes=2)
    # pooled: class 0 TP 3 FP 1 -> 75; class 1 TP 4 FN 1 -> 80 (a mean of per-image mIoUs would give 68.75)
    assert m["per_class_IoU"] == pytest.approx([75.0, 80.0])
    assert m["mIoU"] == pytest.approx(77.5)
    assert m["pixel_accuracy"] == pytest.approx(100 * 7 / 8)
    assert m["bands"] == [] and m["trimap"] == {} and m["anti_trimap"] == {}


@pytest.mark.parametrize("as_torch", [False, True])
def test_out_of_range_predictions_are_false_negatives(as_torch):
    gt = np.array([[0, 0, 1, 1, 2, VOID]], np.int64)
    pred = np.array([[0, -1, 1, 7, 2, -5]], np.int64)  # -1 and 7 are wrong; -5 sits on void and is ignored
    if as_torch:
        gt_in, pred_in = torch.from_numpy(gt), torch.from_numpy(pred)
    else:
        gt_in, pred_in = gt, pred
    ev = SegmentationEvaluator(3, bands=[1])
    ev.update(gt_in, pred_in)
    m = ev.compute()
    # class 0: TP 1, FN 1 -> 50; class 1: TP 1, FN 1 -> 50; class 2: TP 1 -> 100; nobody gets a false positive
    assert m["per_class_IoU"] == pytest.approx([50.0, 50.0, 100.0])
    assert m["pixel_accuracy"] == pytest.approx(60.0)
    assert m["num_out_of_range_pred"] == 2
    conf = ev.confusion_matrix()
    assert conf.shape == (3, 4)
    assert conf[:, 3].tolist() == [1, 1, 0]
    # the pixel next to the void pixel (class 2, right) is the only trimap(1) pixel
    assert m["trimap"]["1"] == {"pixel_accuracy": 100.0, "mIoU": 100.0, "num_pixels": 1}


def test_uint8_prediction_255_counts_as_wrong():
    gt = np.array([[0, 1]], np.uint8)
    pred = np.array([[255, 1]], np.uint8)
    m = segmentation_metrics([gt], [pred], num_classes=2)
    assert m["per_class_IoU"] == pytest.approx([0.0, 100.0])
    assert m["num_out_of_range_pred"] == 1


def test_update_rejects_bad_input_with_clear_messages():
    ev = SegmentationEvaluator(21)
    with pytest.raises(ValueError, match=r"\(4, 5\).*\(5, 4\)"):
        ev.update(np.zeros((4, 5), np.uint8), np.zeros((5, 4), np.uint8))
    with pytest.raises(ValueError, match="2-D"):
        ev.update(np.zeros((1, 4, 5), np.uint8), np.zeros((1, 4, 5), np.uint8))
    with pytest.raises(ValueError, match="integer"):
        ev.update(np.zeros((4, 5), np.uint8), np.zeros((4, 5), np.float32))
    with pytest.raises(ValueError, match=r"\[21, 30\]"):
        ev.update(np.array([[0, 21, 30, VOID]], np.uint8), np.zeros((1, 4), np.uint8))
    with pytest.raises(ValueError, match=r"\[-1\]"):
        ev.update(np.array([[0, -1]], np.int32), np.zeros((1, 2), np.int32))
    assert ev.compute()["num_images"] == 0 and ev.compute()["num_pixels"] == 0  # rejected images are not counted
    with pytest.raises(ValueError, match="ignore_index"):
        SegmentationEvaluator(21, ignore_index=0)
    with pytest.raises(ValueError, match="band widths"):
        SegmentationEvaluator(21, bands=[0, 3])
    with pytest.raises(ValueError, match="num_classes"):
        SegmentationEvaluator(0)
    with pytest.raises(TypeError, match="num_classes"):
        SegmentationEvaluator(21.0)
    with pytest.raises(ValueError):
        segmentation_metrics([np.zeros((2, 2), np.uint8)], [], num_classes=2)


def test_merge_equals_one_evaluator_and_checks_settings():
    rng = np.random.default_rng(3)
    gts = [rng.integers(0, 4, (9, 11)).astype(np.uint8) for _ in range(4)]
    for g in gts:
        g[rng.random(g.shape) < 0.1] = VOID
    preds = [rng.integers(0, 4, g.shape).astype(np.uint8) for g in gts]
    a, b = SegmentationEvaluator(4, bands=[1, 2]), SegmentationEvaluator(4, bands=[2, 1])
    for g, p in zip(gts[:2], preds[:2]):
        a.update(g, p)
    for g, p in zip(gts[2:], preds[2:]):
        b.update(g, p)
    a.merge(b)
    assert a.compute() == segmentation_metrics(gts, preds, 4, bands=[1, 2])
    with pytest.raises(ValueError, match="cannot merge"):
        a.merge(SegmentationEvaluator(4, bands=[1]))


# ------------------------------------------------------------------------------------------------------------
# Agreement with independent computations: binary_dilation bands, sklearn metrics
# ------------------------------------------------------------------------------------------------------------


def _random_case(rng: np.random.Generator, shape: tuple[int, int], num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    gt = np.zeros(shape, np.uint8)
    # blocky regions of random classes with void outlines (like VOC) plus scattered void pixels
    for _ in range(4):
        y0, x0 = rng.integers(0, shape[0] - 4), rng.integers(0, shape[1] - 4)
        y1, x1 = y0 + rng.integers(3, shape[0] // 2), x0 + rng.integers(3, shape[1] // 2)
        gt[y0:y1, x0:x1] = rng.integers(0, num_classes)
    edges = ndimage.morphological_gradient(gt, size=3) > 0
    gt[edges] = VOID
    gt[rng.random(shape) < 0.01] = VOID
    pred = np.where(rng.random(shape) < 0.8, np.minimum(gt, num_classes - 1), rng.integers(0, num_classes, shape))
    return gt, pred.astype(np.uint8)


def test_bands_and_metrics_agree_with_binary_dilation_and_sklearn():
    rng = np.random.default_rng(0)
    num_classes, widths = 5, [1, 2, 3, 5, 8, 13]
    cases = [_random_case(rng, shape, num_classes) for shape in [(40, 57), (33, 33), (61, 29), (24, 48)]]
    no_void = rng.integers(0, num_classes, (10, 12)).astype(np.uint8)
    cases.append((no_void, np.roll(no_void, 1, axis=1)))
    ev = SegmentationEvaluator(num_classes, bands=widths)
    for gt, pred in cases:
        ev.update(gt, pred)
    m = ev.compute()
    labels = list(range(num_classes))

    def check(region_metrics: dict, y_true: np.ndarray, y_pred: np.ndarray, conf: np.ndarray) -> None:
        assert region_metrics["num_pixels"] == y_true.size
        np.testing.assert_array_equal(conf[:, :num_classes], confusion_matrix(y_true, y_pred, labels=labels))
        assert region_metrics["pixel_accuracy"] == pytest.approx(100 * accuracy_score(y_true, y_pred))
        present = sorted(set(y_true.tolist()) | set(y_pred.tolist()))
        expected = 100 * jaccard_score(y_true, y_pred, labels=present, average="macro")
        assert region_metrics["mIoU"] == pytest.approx(expected)

    all_true = np.concatenate([g[g != VOID] for g, _ in cases])
    all_pred = np.concatenate([p[g != VOID] for g, p in cases])
    check(m, all_true, all_pred, ev.confusion_matrix())
    per_class = jaccard_score(all_true, all_pred, labels=labels, average=None)
    assert m["per_class_IoU"] == pytest.approx(list(100 * per_class))

    for w in widths:
        square = np.ones((2 * w + 1, 2 * w + 1), bool)
        inside_t, inside_p, outside_t, outside_p = [], [], [], []
        for gt, pred in cases:
            void = gt == VOID
            band = ndimage.binary_dilation(void, structure=square) & ~void
            rest = ~ndimage.binary_dilation(void, structure=square) & ~void
            inside_t.append(gt[band])
            inside_p.append(pred[band])
            outside_t.append(gt[rest])
            outside_p.append(pred[rest])
        check(m["trimap"][str(w)], np.concatenate(inside_t), np.concatenate(inside_p),
              ev.confusion_matrix("trimap", w))
        check(m["anti_trimap"][str(w)], np.concatenate(outside_t), np.concatenate(outside_p),
              ev.confusion_matrix("anti_trimap", w))


def test_non_uint8_maps_give_the_same_answer():
    rng = np.random.default_rng(1)
    gt, pred = _random_case(rng, (30, 40), 6)
    ref = segmentation_metrics([gt], [pred], 6, bands=[1, 4])
    for dtype in (np.int16, np.int32, np.int64, np.uint16):
        assert segmentation_metrics([gt.astype(dtype)], [pred.astype(dtype)], 6, bands=[1, 4]) == ref
    assert segmentation_metrics([torch.from_numpy(gt)], [torch.from_numpy(pred).long()], 6, bands=[1, 4]) == ref


# ------------------------------------------------------------------------------------------------------------
# parse_bands
# ------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1:40", list(range(1, 41))),
        ("1:40:5", [1, 6, 11, 16, 21, 26, 31, 36]),
        ("1,2,5", [1, 2, 5]),
        ("10", [10]),
        (" 5, 1:3 ", [1, 2, 3, 5]),
        ("3:3", [3]),
    ],
)
def test_parse_bands(text, expected):
    assert parse_bands(text) == expected


@pytest.mark.parametrize("text", ["", " ", "abc", "1.5", "0", "-3", "5:2", "1:10:0", "1:2:3:4", "1,,2", "1,1",
                                  "1:5,3", "20000", "1:x"])
def test_parse_bands_rejects_junk(text):
    with pytest.raises(ConfigError, match="--bands"):
        parse_bands(text)


# ------------------------------------------------------------------------------------------------------------
# Genuine VOC2012 val masks
# ------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def voc_masks(voc_extras):
    folder = voc_extras / "VOC2012_SegmentationClass_val_masks_only" / "SegmentationClass"
    files = sorted(folder.glob("*.png"))
    assert len(files) == 1449
    chosen = files[:: len(files) // 100][:100]
    return chosen, [read_index_png(f) for f in chosen]


def _square_band(void: np.ndarray, w: int) -> np.ndarray:
    """Void dilated by a (2w+1)^2 square, via a separable max filter (independent of the distance transform)."""
    return ndimage.maximum_filter(void.astype(np.uint8), size=2 * w + 1, mode="constant", cval=0).astype(bool)


def _band_counts(masks: list[np.ndarray], widths: list[int]) -> dict[int, int]:
    counts = {}
    for w in widths:
        counts[w] = sum(int((_square_band(g == VOID, w) & (g != VOID)).sum()) for g in masks)
    return counts


def test_voc_perfect_prediction_is_100_everywhere(voc_masks):
    _, masks = voc_masks
    m = segmentation_metrics(masks, masks, 21, bands=range(1, 41))
    assert m["mIoU"] == 100.0 and m["pixel_accuracy"] == 100.0
    assert all(v in (100.0, None) for v in m["per_class_IoU"])
    assert m["num_pixels"] == sum(int((g != VOID).sum()) for g in masks)
    for region in ("trimap", "anti_trimap"):
        for w in range(1, 41):
            entry = m[region][str(w)]
            assert entry["num_pixels"] > 0
            assert entry["pixel_accuracy"] == 100.0 and entry["mIoU"] == 100.0
    counts = _band_counts(masks, [1, 3, 10, 40])
    for w, n in counts.items():
        assert m["trimap"][str(w)]["num_pixels"] == n
        assert m["anti_trimap"][str(w)]["num_pixels"] == m["num_pixels"] - n


def _damage(masks: list[np.ndarray], where: str, w0: int) -> list[np.ndarray]:
    """Every non-void pixel within ``w0`` px of void (``near``) or farther (``far``) gets a wrong class."""
    preds = []
    for g in masks:
        void = g == VOID
        band = _square_band(void, w0)
        region = (band if where == "near" else ~band) & ~void
        p = g.copy()
        p[region] = (g[region] + 1) % 21
        preds.append(p)
    return preds


def test_voc_damage_near_boundaries(voc_masks):
    _, masks = voc_masks
    preds = _damage(masks, "near", 3)
    widths = [1, 2, 3, 4, 10, 40]
    m = segmentation_metrics(masks, preds, 21, bands=widths)
    n = _band_counts(masks, widths)
    total = m["num_pixels"]
    for w in (1, 2, 3):  # every trimap pixel is wrong
        assert m["trimap"][str(w)]["pixel_accuracy"] == 0.0 and m["trimap"][str(w)]["mIoU"] == 0.0
    for w in (3, 4, 10, 40):  # nothing outside band(3) was touched
        assert m["anti_trimap"][str(w)]["pixel_accuracy"] == 100.0 and m["anti_trimap"][str(w)]["mIoU"] == 100.0
    for w in (4, 10, 40):  # only band(3) inside band(w) is wrong
        assert m["trimap"][str(w)]["pixel_accuracy"] == pytest.approx(100 * (n[w] - n[3]) / n[w])
    for w in (1, 2):  # the ring band(3) \ band(w) is wrong in the anti-trimap
        out = total - n[w]
        assert m["anti_trimap"][str(w)]["pixel_accuracy"] == pytest.approx(100 * (out - (n[3] - n[w])) / out)
    assert m["pixel_accuracy"] == pytest.approx(100 * (total - n[3]) / total)


def test_voc_damage_far_from_boundaries(voc_masks):
    _, masks = voc_masks
    preds = _damage(masks, "far", 10)
    widths = [1, 5, 10, 11, 20]
    m = segmentation_metrics(masks, preds, 21, bands=widths)
    n = _band_counts(masks, widths)
    total = m["num_pixels"]
    for w in (1, 5, 10):
        assert m["trimap"][str(w)]["pixel_accuracy"] == 100.0 and m["trimap"][str(w)]["mIoU"] == 100.0
    for w in (10, 11, 20):
        assert m["anti_trimap"][str(w)]["pixel_accuracy"] == 0.0 and m["anti_trimap"][str(w)]["mIoU"] == 0.0
    for w in (11, 20):
        assert m["trimap"][str(w)]["pixel_accuracy"] == pytest.approx(100 * n[10] / n[w])
    for w in (1, 5):
        out = total - n[w]
        assert m["anti_trimap"][str(w)]["pixel_accuracy"] == pytest.approx(100 * (n[10] - n[w]) / out)


# ------------------------------------------------------------------------------------------------------------
# The evaluate-seg command on folders of PNGs
# ------------------------------------------------------------------------------------------------------------


@pytest.fixture()
def png_folders(voc_masks, tmp_path):
    files, masks = voc_masks
    files, masks = files[:12], masks[:12]
    gt_dir, pred_dir = tmp_path / "gt", tmp_path / "pred"
    gt_dir.mkdir()
    pred_dir.mkdir()
    preds = _damage(masks, "near", 2)
    palette = Image.open(files[0]).getpalette()
    for i, (f, p) in enumerate(zip(files, preds)):
        shutil.copyfile(f, gt_dir / f.name)  # genuine palette PNGs
        im = Image.fromarray(p, mode="L")
        if i % 2:  # half of the predictions as palette PNGs, half as 8-bit grayscale
            im = im.convert("P")
            im.putpalette(palette)
        im.save(pred_dir / f.name)
    return gt_dir, pred_dir, masks, preds


def test_command_writes_the_metrics_json(png_folders, tmp_path):
    gt_dir, pred_dir, masks, preds = png_folders
    out = tmp_path / "sub" / "m.json"
    stream = io.StringIO()
    assert evaluate_seg_command(gt_dir, pred_dir, bands="1:5", out=out, workers=2, stream=stream) == 0
    written = json.loads(out.read_text())
    expected = segmentation_metrics(masks, preds, 21, bands=range(1, 6))
    assert written["gt_dir"] == str(gt_dir) and written["pred_dir"] == str(pred_dir)
    for key in ("mIoU", "pixel_accuracy", "per_class_IoU", "trimap", "anti_trimap", "bands", "num_images"):
        assert written[key] == expected[key]
    assert written["num_images"] == 12 and len(written["per_class_IoU"]) == 21
    assert set(written["trimap"]) == {"1", "2", "3", "4", "5"}
    assert written["trimap"]["2"]["pixel_accuracy"] == 0.0
    text = stream.getvalue()
    assert "mIoU" in text and "anti" in text and "wrote" in text
    # decoding in the calling thread gives the same numbers
    out1 = tmp_path / "m1.json"
    evaluate_seg_command(gt_dir, pred_dir, bands="1:5", out=out1, workers=0, stream=io.StringIO())
    assert json.loads(out1.read_text()) == written


def test_command_num_classes_default_beyond_voc(tmp_path):
    gt_dir, pred_dir = tmp_path / "gt", tmp_path / "pred"
    gt_dir.mkdir()
    pred_dir.mkdir()
    rng = np.random.default_rng(5)
    gts = []
    for i, top in enumerate([12, 30, 7]):  # largest label 30: not VOC-like, so 31 classes
        g = rng.integers(0, top + 1, (20, 25)).astype(np.uint8)
        g[5:8, :] = VOID
        gts.append(g)
        Image.fromarray(g, mode="L").save(gt_dir / f"im{i}.png")
        Image.fromarray(np.flipud(g), mode="L").save(pred_dir / f"im{i}.png")
    out = tmp_path / "m.json"
    evaluate_seg_command(gt_dir, pred_dir, bands="1,3", out=out, stream=io.StringIO())
    written = json.loads(out.read_text())
    expected = segmentation_metrics(gts, [np.flipud(g) for g in gts], 31, bands=[1, 3])
    assert len(written["per_class_IoU"]) == 31
    assert written["mIoU"] == pytest.approx(expected["mIoU"])
    assert written["trimap"] == expected["trimap"]
    # with an explicit num_classes that is too small, the offending ground-truth file is named
    with pytest.raises(DataError, match=r"im1\.png.*--num-classes"):
        evaluate_seg_command(gt_dir, pred_dir, bands="1", num_classes=21, stream=io.StringIO())


def _run(gt_dir, pred_dir, **kw):
    return evaluate_seg_command(gt_dir, pred_dir, bands=kw.pop("bands", "1:3"), stream=io.StringIO(), **kw)


def test_command_missing_prediction(png_folders):
    gt_dir, pred_dir, _, _ = png_folders
    victim = sorted(pred_dir.iterdir())[4]
    victim.unlink()
    with pytest.raises(DataError, match="prediction is missing") as err:
        _run(gt_dir, pred_dir)
    assert err.value.path == str(victim)


def test_command_extra_prediction(png_folders):
    gt_dir, pred_dir, _, _ = png_folders
    shutil.copyfile(next(pred_dir.iterdir()), pred_dir / "2099_000001.png")
    with pytest.raises(DataError, match="no ground truth") as err:
        _run(gt_dir, pred_dir)
    assert err.value.path == str(pred_dir / "2099_000001.png")


@pytest.mark.parametrize("damage", ["garbage", "truncated", "rgb"])
def test_command_unreadable_prediction(png_folders, damage):
    gt_dir, pred_dir, _, _ = png_folders
    victim = sorted(pred_dir.iterdir())[7]
    if damage == "garbage":
        victim.write_bytes(b"this is not a PNG file")
    elif damage == "truncated":
        data = victim.read_bytes()
        victim.write_bytes(data[: len(data) // 2])
    else:
        Image.open(victim).convert("RGB").save(victim)
    with pytest.raises(DataError) as err:
        _run(gt_dir, pred_dir, workers=3)
    assert err.value.path == str(victim)


def test_command_corrupt_ground_truth(png_folders):
    gt_dir, pred_dir, _, _ = png_folders
    victim = min(gt_dir.iterdir())
    victim.write_bytes(victim.read_bytes()[:100])
    with pytest.raises(DataError) as err:
        _run(gt_dir, pred_dir, workers=0)
    assert err.value.path == str(victim)


def test_command_size_mismatch(png_folders):
    gt_dir, pred_dir, masks, _ = png_folders
    victim = sorted(pred_dir.iterdir())[2]
    h, w = masks[2].shape
    Image.fromarray(np.zeros((h, w - 1), np.uint8), mode="L").save(victim)
    with pytest.raises(DataError, match=rf"{h}x{w - 1}.*{h}x{w}") as err:
        _run(gt_dir, pred_dir)
    assert err.value.path == str(victim)


def test_command_empty_or_missing_folder(tmp_path):
    (tmp_path / "gt").mkdir()
    (tmp_path / "pred").mkdir()
    with pytest.raises(DataError, match="no .png") as err:
        _run(tmp_path / "gt", tmp_path / "pred")
    assert err.value.path == str(tmp_path / "gt")
    with pytest.raises(DataError, match="does not exist") as err:
        _run(tmp_path / "gt", tmp_path / "nowhere")
    assert err.value.path == str(tmp_path / "nowhere")


def test_command_bad_bands(png_folders):
    gt_dir, pred_dir, _, _ = png_folders
    with pytest.raises(ConfigError, match="--bands"):
        _run(gt_dir, pred_dir, bands="1:x")


def test_cli_evaluate_seg_on_all_1449_voc_val_masks(voc_extras, tmp_path, capsys):
    """The issue's command on the genuine VOC2012 val masks: a prediction equal to the ground truth scores 100."""
    from detpretrain.cli import main

    gt = voc_extras / "VOC2012_SegmentationClass_val_masks_only" / "SegmentationClass"
    out = tmp_path / "m.json"
    assert main(["evaluate-seg", "--gt-dir", str(gt), "--pred-dir", str(gt), "--bands", "1:40", "--out", str(out)]) == 0
    m = json.loads(out.read_text())
    assert m["num_images"] == 1449 and m["mIoU"] == 100.0 and m["pixel_accuracy"] == 100.0
    assert sorted(m["trimap"], key=int) == [str(w) for w in range(1, 41)] and m["anti_trimap"]["40"]["mIoU"] == 100.0
    assert main(["evaluate-seg", "--gt-dir", str(gt), "--pred-dir", str(tmp_path)]) == 1
    assert "error: DataError" in capsys.readouterr().err
