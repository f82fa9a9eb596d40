"""Semantic-segmentation mIoU and pixel accuracy, overall and in trimap / anti-trimap bands (paper's Figure 2).

Li et al. 2019 (Section 2.2, "Error Analysis", Figure 2) ask whether detection pre-training helps segmentation at
object boundaries or over the whole extent of objects. Following the DeepLab papers they score PASCAL VOC 2012 val
on pixels near boundaries ("trimap") and on pixels away from them ("anti-trimap"), where the boundary is the
"void"-labelled (255) outline that VOC draws around every object.

Definitions used here (all values in PERCENT):

band(w)
    The pixels within ``w`` pixels of a void pixel: the void mask dilated with a ``(2w+1) x (2w+1)`` square, i.e.
    the pixels whose chessboard (Chebyshev, L-infinity) distance to the nearest void pixel is ``<= w``. Pixels
    outside the image are not void (as in ``scipy.ndimage.binary_dilation``'s default ``border_value=0``). Widths
    are whole pixels, ``1 <= w <=`` :data:`MAX_BAND`.
trimap(w)
    Pixel accuracy and mIoU over the NON-void pixels inside band(w).
anti-trimap(w)
    The same over the non-void pixels outside band(w). An image without any void pixel adds nothing to any
    trimap and all of its non-void pixels to every anti-trimap. For every w, trimap(w) and anti-trimap(w)
    partition the non-void pixels, so their confusion matrices add up to the overall one.
confusion matrix
    Accumulated over the whole dataset (pixels of all images pooled), rows = ground-truth class, columns =
    predicted class; void pixels (``ignore_index``) are left out.
IoU of class c
    ``TP / (TP + FP + FN)`` from that confusion matrix, times 100. A class with ``TP + FP + FN == 0`` in the
    pixel set (absent from the ground truth and never predicted there) has no IoU (``None``) and is left out of
    the mean. This is the standard VOC definition (dataset-level counts, NOT a mean of per-image IoUs).
mIoU
    Mean of the defined per-class IoUs; ``None`` when no class is defined (no pixel in the set).
pixel accuracy
    Correctly labelled non-void pixels / non-void pixels, times 100; ``None`` for an empty pixel set.
predictions outside ``[0, num_classes)``
    (negative, too large, or a predicted 255) on non-void pixels count as wrong: a false negative of the
    ground-truth class and a false positive of no class. Nothing is raised; :meth:`SegmentationEvaluator.compute`
    reports how many there were (``num_out_of_range_pred``).

Algorithm (all bands at once): per image the chessboard distance of every non-void pixel to the nearest void pixel
is computed once (``scipy.ndimage.distance_transform_cdt(..., metric="chessboard")``, exact for this metric), turned
into a band index (the number of requested widths smaller than the distance), and ONE ``np.bincount`` over
(band index, gt, pred) gives a confusion matrix per band interval; cumulative sums over the band index give the
trimap of every width, and total minus trimap the anti-trimap. ``tests/test_evaluation_segmentation.py`` checks the
bands against ``scipy.ndimage.binary_dilation`` with a square structuring element and the mIoU against
``sklearn.metrics.confusion_matrix``; ``benchmarks/bench_evaluate_seg.py`` times it against the per-band dilation.
"""

from __future__ import annotations

import math
import os
import re
import sys
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from itertools import islice
from pathlib import Path
from typing import Any, TextIO

import numpy as np
from scipy import ndimage

from detpretrain.errors import ConfigError, DataError

__all__ = [
    "MAX_BAND",
    "SegmentationEvaluator",
    "evaluate_seg_command",
    "format_segmentation_table",
    "parse_bands",
    "segmentation_metrics",
]

#: Largest band width (pixels) accepted; wider bands cover every pixel of any realistic image anyway.
MAX_BAND = 10_000

#: Default number of classes of :func:`evaluate_seg_command` for VOC-like masks (background + 20 classes).
VOC_NUM_CLASSES = 21


# --------------------------------------------------------------------------------------------------------------
# Band lists
# --------------------------------------------------------------------------------------------------------------


def parse_bands(text: str) -> list[int]:
    """Parse a list of band widths (pixels) for the trimap / anti-trimap evaluation.

    Accepted forms, which may be combined with commas: ``"10"``; ``"1,2,5"``; an inclusive range ``"1:40"``
    (1, 2, ..., 40); an inclusive range with a step ``"1:40:5"`` (1, 6, ..., 36); e.g. ``"1:10,20,40"``.

    Args:
        text: the string given to ``--bands``.

    Returns:
        The widths in pixels, ascending, each in ``[1, MAX_BAND]``.

    Raises:
        ConfigError: an empty string or item, something that is not a whole number, a width of 0 or above
            :data:`MAX_BAND`, a range with stop < start or a step < 1, or a width listed twice.
    """
    if not isinstance(text, str) or not text.strip():
        raise ConfigError(f"--bands: empty band list {text!r}; give e.g. '1:40', '1:40:5', '1,2,5' or '10'")

    def whole(part: str, item: str) -> int:
        part = part.strip()
        if not re.fullmatch(r"\d+", part):
            raise ConfigError(f"--bands: {part!r} in {item!r} is not a whole number of pixels (in {text!r})")
        return int(part)

    def width(value: int) -> int:
        if not 1 <= value <= MAX_BAND:
            raise ConfigError(f"--bands: width {value} is outside [1, {MAX_BAND}] pixels (in {text!r})")
        return value

    values: list[int] = []
    for item in text.split(","):
        item = item.strip()
        if not item:
            raise ConfigError(f"--bands: empty item in {text!r}")
        if ":" in item:
            parts = item.split(":")
            if len(parts) not in (2, 3):
                raise ConfigError(f"--bands: range {item!r} must be 'start:stop' or 'start:stop:step' (in {text!r})")
            start, stop = width(whole(parts[0], item)), width(whole(parts[1], item))
            step = whole(parts[2], item) if len(parts) == 3 else 1
            if stop < start:
                raise ConfigError(f"--bands: range {item!r} has stop < start (in {text!r})")
            if step < 1:
                raise ConfigError(f"--bands: range {item!r} needs a step >= 1 (in {text!r})")
            values.extend(range(start, stop + 1, step))
        else:
            values.append(width(whole(item, item)))
    repeated = sorted({v for v in values if values.count(v) > 1})
    if repeated:
        raise ConfigError(f"--bands: width(s) {repeated} listed twice in {text!r}")
    return sorted(values)


# --------------------------------------------------------------------------------------------------------------
# Metrics of one confusion matrix
# --------------------------------------------------------------------------------------------------------------


def _metrics_of(conf: np.ndarray) -> tuple[float | None, float | None, list[float | None], int]:
    """(mIoU, pixel accuracy, per-class IoU, num pixels) of a ``[C, C+1]`` confusion matrix (last column: invalid)."""
    num_classes = conf.shape[0]
    tp = np.diagonal(conf[:, :num_classes]).astype(np.float64)
    gt_count = conf.sum(axis=1).astype(np.float64)
    pred_count = conf[:, :num_classes].sum(axis=0).astype(np.float64)
    union = gt_count + pred_count - tp
    per_class: list[float | None] = [float(100.0 * t / u) if u > 0 else None for t, u in zip(tp, union)]
    defined = [v for v in per_class if v is not None]
    miou = float(np.mean(defined)) if defined else None
    total = int(conf.sum())
    accuracy = float(100.0 * tp.sum() / total) if total > 0 else None
    return miou, accuracy, per_class, total


def _as_numpy(x: Any, what: str) -> np.ndarray:
    if not isinstance(x, np.ndarray):
        if hasattr(x, "detach") and hasattr(x, "cpu"):  # torch.Tensor (torch is not imported by this module)
            x = x.detach().cpu().numpy()
        else:
            x = np.asarray(x)
    if x.ndim != 2:
        raise ValueError(f"{what} must be a 2-D (H, W) label map, got shape {tuple(x.shape)}")
    if x.dtype.kind not in "ui":
        raise ValueError(f"{what} must be an integer label map, got dtype {x.dtype}")
    return x


# --------------------------------------------------------------------------------------------------------------
# The evaluator
# --------------------------------------------------------------------------------------------------------------


class SegmentationEvaluator:
    """Accumulates a dataset-level confusion matrix, overall and per trimap band; see the module docstring.

    Usage (detectron2-style reset / update / compute)::

        ev = SegmentationEvaluator(num_classes=21, bands=range(1, 41))
        for gt, pred in pairs:        # (H, W) integer label maps, gt 255 = void
            ev.update(gt, pred)
        metrics = ev.compute()        # JSON-ready dict, values in percent

    Args:
        num_classes: C, the number of classes (labels ``0 .. C-1``; VOC: 21 with 0 = background).
        bands: band widths in pixels (each in ``[1, MAX_BAND]``; duplicates are merged, order does not matter).
            Empty: only the overall metrics (no distance transform is computed).
        ignore_index: the void label of the ground truth (VOC: 255); must not be a class label.

    Memory: ``(len(bands) + 1) * (C + 2) * (C + 1)`` int64 counts (41 x 23 x 22 for VOC with 40 bands), plus two
    reused work arrays of the largest image's pixel count. An evaluator is not thread-safe: give each thread its
    own and combine them with :meth:`merge`.

    Raises:
        TypeError: ``num_classes`` or ``ignore_index`` is not an integer.
        ValueError: ``num_classes < 1``, ``ignore_index`` inside ``[0, num_classes)``, or a band width outside
            ``[1, MAX_BAND]``.
    """

    def __init__(self, num_classes: int, bands: Sequence[int] = (), ignore_index: int = 255):
        for name, value in (("num_classes", num_classes), ("ignore_index", ignore_index)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
                raise TypeError(f"{name} must be an integer, got {value!r}")
        if num_classes < 1:
            raise ValueError(f"num_classes must be at least 1, got {num_classes}")
        if 0 <= ignore_index < num_classes:
            raise ValueError(f"ignore_index {ignore_index} is a class label (num_classes={num_classes})")
        widths = sorted({int(w) for w in bands})
        bad = [w for w in widths if not 1 <= w <= MAX_BAND]
        if bad:
            raise ValueError(f"band widths must lie in [1, {MAX_BAND}] pixels, got {bad}")
        self.num_classes = int(num_classes)
        self.ignore_index = int(ignore_index)
        self.bands: list[int] = widths
        c = self.num_classes
        # Histogram layout: [band interval k, gt code, pred code].
        #   k = number of band widths < chessboard distance to the nearest void pixel (0 .. len(bands));
        #   gt code: 0..C-1 classes, C = void (ignore_index), C+1 = an invalid label (rejected by update);
        #   pred code: 0..C-1 classes, C = outside [0, C) (always wrong).
        self._shape = (len(widths) + 1, c + 2, c + 1)
        self._gt_rows, self._pred_cols = c + 2, c + 1
        dist = np.arange(widths[-1] + 2 if widths else 1)
        self._lut_dist = np.searchsorted(np.asarray(widths, dtype=np.int64), dist, side="left").astype(np.intp)
        self._lut_dist *= self._gt_rows * self._pred_cols
        lut_gt = np.full(256, c + 1, dtype=np.intp)
        lut_gt[: min(c, 256)] = np.arange(min(c, 256))
        if 0 <= self.ignore_index < 256:
            lut_gt[self.ignore_index] = c
        self._lut_gt8 = lut_gt * self._pred_cols
        self._lut_pred8 = np.minimum(np.arange(256), c).astype(np.intp)
        self._work: tuple[np.ndarray, np.ndarray] | None = None
        self.reset()

    def reset(self) -> None:
        """Forget every image seen so far."""
        self._hist = np.zeros(self._shape, dtype=np.int64)
        self._num_images = 0

    # -- per image ------------------------------------------------------------------------------------------

    def _buffers(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        # Two reusable intp work arrays: fresh large allocations cost page faults on every image (3x slower).
        if self._work is None or self._work[0].size < n:
            self._work = (np.empty(n, dtype=np.intp), np.empty(n, dtype=np.intp))
        return self._work[0][:n], self._work[1][:n]

    def _image_histogram(self, gt: np.ndarray, pred: np.ndarray) -> np.ndarray:
        """Counts ``[len(bands)+1, C+2, C+1]`` of one image (row C+1 = invalid gt labels, not checked here)."""
        c = self.num_classes
        idx, tmp = self._buffers(gt.size)
        gt_flat, pred_flat = gt.reshape(-1), pred.reshape(-1)
        if gt.dtype == np.uint8:
            np.take(self._lut_gt8, gt_flat, mode="clip", out=idx)  # mode="clip": out is not buffered
        else:
            g = gt_flat.astype(np.int64, copy=False)
            code = np.where((g >= 0) & (g < c), g, c + 1)
            code[g == self.ignore_index] = c
            np.multiply(code, self._pred_cols, out=idx, casting="unsafe")
        if pred.dtype == np.uint8:
            np.take(self._lut_pred8, pred_flat, mode="clip", out=tmp)
        else:
            p = pred_flat.astype(np.int64, copy=False)
            np.copyto(tmp, np.where((p >= 0) & (p < c), p, c), casting="unsafe")
        idx += tmp
        if self.bands:
            if gt.dtype == np.uint8 or gt.dtype == np.int64:
                valid = gt != self.ignore_index
            else:
                valid = gt.astype(np.int64) != self.ignore_index
            if valid.all():  # no void pixel: every pixel lies outside every band
                idx += self._lut_dist[-1]
            else:
                dist = ndimage.distance_transform_cdt(valid, metric="chessboard")  # int32, 0 on void pixels
                np.take(self._lut_dist, dist.reshape(-1), mode="clip", out=tmp)  # clip: far pixels -> last interval
                idx += tmp
        hist = np.bincount(idx, minlength=self._hist.size)
        return hist.reshape(self._shape)

    def update(self, gt: Any, pred: Any) -> None:
        """Add one image.

        Args:
            gt: ``(H, W)`` integer ground-truth label map (``np.ndarray`` or ``torch.Tensor``); ``ignore_index`` =
                void, other values must lie in ``[0, num_classes)``.
            pred: ``(H, W)`` integer predicted label map (e.g. ``logits.argmax(0)``); values outside
                ``[0, num_classes)`` count as wrong.

        Raises:
            ValueError: a map that is not 2-D or not integer; ``gt`` and ``pred`` of different shapes (the
                message gives both); a ground-truth label outside ``[0, num_classes)`` that is not
                ``ignore_index`` (the image is then not counted).
        """
        gt = _as_numpy(gt, "gt")
        pred = _as_numpy(pred, "pred")
        if gt.shape != pred.shape:
            raise ValueError(f"gt has shape {tuple(gt.shape)} (H, W) but pred has shape {tuple(pred.shape)}")
        hist = self._image_histogram(gt, pred)
        self._check_labels(hist, gt)
        self._hist += hist
        self._num_images += 1

    def _check_labels(self, hist: np.ndarray, gt: np.ndarray) -> None:
        if hist[:, self.num_classes + 1].any():
            values = np.unique(gt)
            bad = [int(v) for v in values if not (0 <= v < self.num_classes or v == self.ignore_index)]
            raise ValueError(
                f"gt has label(s) {bad[:10]} outside [0, {self.num_classes}) that are not the void label "
                f"{self.ignore_index}")

    def merge(self, other: SegmentationEvaluator) -> None:
        """Add the counts of another evaluator with the same ``num_classes``, ``bands`` and ``ignore_index``.

        Raises:
            ValueError: the two evaluators were built with different settings.
        """
        mine = (self.num_classes, self.bands, self.ignore_index)
        theirs = (other.num_classes, other.bands, other.ignore_index)
        if mine != theirs:
            raise ValueError(f"cannot merge evaluators with (num_classes, bands, ignore_index) {mine} and {theirs}")
        self._hist += other._hist
        self._num_images += other._num_images

    # -- results --------------------------------------------------------------------------------------------

    def confusion_matrix(self, region: str = "all", width: int | None = None) -> np.ndarray:
        """Pixel counts ``[C, C+1]``: rows = gt class, columns = predicted class, last column = predictions
        outside ``[0, C)``; void pixels excluded.

        Args:
            region: ``"all"``, ``"trimap"`` (non-void pixels within ``width`` px of void) or ``"anti_trimap"``
                (non-void pixels farther than ``width`` px from void).
            width: one of ``self.bands``; required for the two band regions.

        Raises:
            ValueError: an unknown region, or a width that is not one of the evaluator's bands.
        """
        c = self.num_classes
        total = self._hist.sum(axis=0)[:c]
        if region == "all":
            return total
        if region not in ("trimap", "anti_trimap"):
            raise ValueError(f"unknown region {region!r}; choose 'all', 'trimap' or 'anti_trimap'")
        if width not in self.bands:
            raise ValueError(f"width {width!r} is not one of the evaluator's bands {self.bands}")
        k = self.bands.index(width)
        inside = self._hist[: k + 1].sum(axis=0)[:c]
        return inside if region == "trimap" else total - inside

    def compute(self) -> dict:
        """The metrics of every image added so far, JSON-ready (values in percent; ``None`` where undefined).

        Returns:
            ``{"mIoU", "pixel_accuracy", "per_class_IoU": [float | None] * C, "num_images", "num_pixels"
            (non-void), "num_classes", "num_out_of_range_pred", "bands": [w, ...], "trimap": {str(w):
            {"pixel_accuracy", "mIoU", "num_pixels"}}, "anti_trimap": {same}}``.
        """
        c = self.num_classes
        per_band = self._hist[:, :c]  # [K+1, C, C+1], void and invalid rows dropped
        total = per_band.sum(axis=0)
        miou, accuracy, per_class, num_pixels = _metrics_of(total)
        cumulative = np.cumsum(per_band, axis=0)
        trimap: dict[str, dict] = {}
        anti_trimap: dict[str, dict] = {}
        for k, w in enumerate(self.bands):
            for target, conf in ((trimap, cumulative[k]), (anti_trimap, total - cumulative[k])):
                b_miou, b_acc, _, b_pixels = _metrics_of(conf)
                target[str(w)] = {"pixel_accuracy": b_acc, "mIoU": b_miou, "num_pixels": b_pixels}
        return {
            "mIoU": miou,
            "pixel_accuracy": accuracy,
            "per_class_IoU": per_class,
            "num_images": self._num_images,
            "num_pixels": num_pixels,
            "num_classes": c,
            "num_out_of_range_pred": int(total[:, c].sum()),
            "bands": list(self.bands),
            "trimap": trimap,
            "anti_trimap": anti_trimap,
        }


def segmentation_metrics(
    gts: Iterable[Any],
    preds: Iterable[Any],
    num_classes: int,
    bands: Sequence[int] = (),
    ignore_index: int = 255,
) -> dict:
    """:meth:`SegmentationEvaluator.compute` over paired iterables of ``(H, W)`` label maps (same order).

    Raises:
        ValueError: as :meth:`SegmentationEvaluator.update`, or iterables of different lengths.
    """
    ev = SegmentationEvaluator(num_classes, bands=bands, ignore_index=ignore_index)
    for gt, pred in zip(gts, preds, strict=True):
        ev.update(gt, pred)
    return ev.compute()


# --------------------------------------------------------------------------------------------------------------
# Command line: python -m detpretrain evaluate-seg
# --------------------------------------------------------------------------------------------------------------


def _fmt(value: float | None) -> str:
    return "   n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:6.2f}"


def format_segmentation_table(metrics: dict, max_bands: int = 8) -> str:
    """The overall metrics and up to ``max_bands`` bands (first, last and evenly spaced between) as plain text."""
    lines = [
        (f"mIoU {_fmt(metrics['mIoU'])} %   pixel accuracy {_fmt(metrics['pixel_accuracy'])} %   "
         f"({metrics['num_images']} images, {metrics['num_pixels']} non-void pixels, {metrics['num_classes']} classes)")
    ]
    bands = metrics["bands"]
    if bands:
        if len(bands) > max_bands:
            picks = sorted({round(i * (len(bands) - 1) / (max_bands - 1)) for i in range(max_bands)})
            shown = [bands[i] for i in picks]
        else:
            shown = list(bands)
        head = (f"{'band px':>7}  {'trimap acc':>10} {'mIoU':>6} {'pixels':>10}   "
                f"{'anti acc':>8} {'mIoU':>6} {'pixels':>10}")
        lines += [head, "-" * len(head)]
        for w in shown:
            t, a = metrics["trimap"][str(w)], metrics["anti_trimap"][str(w)]
            lines.append(f"{w:>7}  {_fmt(t['pixel_accuracy']):>10} {_fmt(t['mIoU'])} {t['num_pixels']:>10}   "
                         f"{_fmt(a['pixel_accuracy']):>8} {_fmt(a['mIoU'])} {a['num_pixels']:>10}")
        if len(shown) < len(bands):
            lines.append(f"({len(shown)} of {len(bands)} bands shown; all are in the json)")
    return "\n".join(lines)


def _png_files(folder: Path) -> dict[str, Path]:
    return {p.name: p for p in sorted(folder.iterdir()) if p.suffix.lower() == ".png" and p.is_file()}


def _pair_files(gt_dir: Path, pred_dir: Path) -> list[tuple[Path, Path]]:
    gts, preds = _png_files(gt_dir), _png_files(pred_dir)
    if not gts:
        raise DataError(gt_dir, "no .png label files in the ground-truth folder (for a VOC root, give its "
                                "SegmentationClass folder)")
    missing = [name for name in gts if name not in preds]
    if missing:
        raise DataError(pred_dir / missing[0], f"prediction is missing for ground truth {gt_dir / missing[0]} "
                                               f"({len(missing)} of {len(gts)} ground-truth files have none)")
    extra = [name for name in preds if name not in gts]
    if extra:
        raise DataError(pred_dir / extra[0], f"prediction has no ground truth in {gt_dir} ({len(extra)} such "
                                             f"files; evaluate predictions of exactly the ground-truth images)")
    return [(gts[name], preds[name]) for name in gts]


def _read_pair(gt_path: Path, pred_path: Path) -> tuple[np.ndarray, np.ndarray]:
    from detpretrain.data.voc import read_index_png

    gt, pred = read_index_png(gt_path), read_index_png(pred_path)
    if gt.shape != pred.shape:
        raise DataError(pred_path, f"prediction is {pred.shape[0]}x{pred.shape[1]} (HxW) but its ground truth "
                                   f"{gt_path} is {gt.shape[0]}x{gt.shape[1]}")
    return gt, pred


def _decoded(pairs: list[tuple[Path, Path]], workers: int) -> Iterator[tuple[Path, np.ndarray, np.ndarray]]:
    """``(gt_path, gt, pred)`` in file order; PNG decoding runs ahead in ``workers`` threads (bounded queue)."""
    if workers <= 1:
        for gt_path, pred_path in pairs:
            yield (gt_path, *_read_pair(gt_path, pred_path))
        return
    with ThreadPoolExecutor(max_workers=workers) as pool:
        it = iter(pairs)
        window = deque((gp, pool.submit(_read_pair, gp, pp)) for gp, pp in islice(it, 4 * workers))
        try:
            while window:
                gt_path, future = window.popleft()
                nxt = next(it, None)
                if nxt is not None:
                    window.append((nxt[0], pool.submit(_read_pair, *nxt)))
                yield (gt_path, *future.result())
        finally:
            for _, future in window:
                future.cancel()


def _evaluate_pairs(pairs: list[tuple[Path, Path]], num_classes: int | None, bands: list[int],
                    workers: int) -> SegmentationEvaluator:
    """Evaluate file pairs; ``num_classes=None``: 21 if every GT label is <= 20, else (second pass) max + 1."""
    ev = SegmentationEvaluator(VOC_NUM_CLASSES if num_classes is None else num_classes, bands=bands)
    max_label = -1  # of the images with labels >= 21 (only looked for when num_classes is None)
    for gt_path, gt, pred in _decoded(pairs, workers):
        hist = ev._image_histogram(gt, pred)
        if hist[:, ev.num_classes + 1].any():
            if num_classes is not None:
                try:
                    ev._check_labels(hist, gt)
                except ValueError as err:
                    raise DataError(gt_path, f"{err}; pass a larger --num-classes") from None
            labels = gt[gt != ev.ignore_index]
            max_label = max(max_label, int(labels.max()))
            continue
        ev._hist += hist
        ev._num_images += 1
    if max_label >= 0:  # not VOC-like: evaluate again with num_classes = max label + 1
        return _evaluate_pairs(pairs, max_label + 1, bands, workers)
    return ev


def evaluate_seg_command(
    gt_dir: str | os.PathLike,
    pred_dir: str | os.PathLike,
    *,
    bands: str | Sequence[int] = "1:40",
    num_classes: int | None = None,
    out: str | os.PathLike | None = None,
    workers: int | None = None,
    stream: TextIO | None = None,
) -> int:
    """``python -m detpretrain evaluate-seg --gt-dir GT --pred-dir PRED --bands 1:40 [--out M.json]``.

    Scores a folder of predicted index PNGs against a folder of ground-truth index PNGs (paper's Figure 2 on
    VOC 2012 val): prints mIoU, pixel accuracy and a few trimap / anti-trimap bands, and optionally writes every
    number to a json file (atomically).

    Files are paired by name (``*.png``, palette ``P`` or 8-bit ``L`` mode, read as label indices with
    :func:`detpretrain.data.voc.read_index_png`); 255 in the ground truth is void. A prediction folder must hold
    exactly the ground-truth names: a missing prediction is an error, and so is an extra one (a prediction
    without ground truth usually means the wrong folder or split, which would silently change what is scored).

    Args:
        gt_dir: folder of ground-truth PNGs (e.g. ``VOC2012/SegmentationClass`` restricted to val).
        pred_dir: folder of predicted PNGs with the same file names.
        bands: band widths in pixels, a :func:`parse_bands` string or a sequence of ints.
        num_classes: number of classes C. Default: 21 (VOC) if no ground-truth label exceeds 20, otherwise the
            largest ground-truth label + 1 (found in a first pass, so non-VOC data is read twice).
        out: write the metrics json here: the keys of :meth:`SegmentationEvaluator.compute` plus ``gt_dir``
            and ``pred_dir``; undefined values are ``null``.
        workers: threads that decode PNGs ahead of the metric, which runs in the calling thread (scipy's distance
            transform holds the GIL, so more threads would not speed it up). Default ``min(4, cpu count)``;
            ``0`` or ``1`` decodes in the calling thread.
        stream: where the table goes (default ``sys.stdout``).

    Returns:
        0.

    Raises:
        DataError: a missing folder; no ground-truth PNG; a missing or extra prediction file; an unreadable,
            corrupt or non-index PNG; a prediction whose size differs from its ground truth (both sizes given);
            a ground-truth label >= the given ``num_classes`` (other than 255). Each message names the file.
        ConfigError: a bad band list or ``num_classes`` < 1.
    """
    from detpretrain.data._io import require_dir
    from detpretrain.io import atomic_write_json

    stream = sys.stdout if stream is None else stream
    widths = parse_bands(bands) if isinstance(bands, str) else list(bands)
    try:
        SegmentationEvaluator(VOC_NUM_CLASSES if num_classes is None else num_classes, bands=widths)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"evaluate-seg: {err}") from None
    if workers is None:
        workers = min(4, os.cpu_count() or 1)
    gt_root = require_dir(gt_dir, "ground-truth folder")
    pred_root = require_dir(pred_dir, "prediction folder")
    pairs = _pair_files(gt_root, pred_root)
    ev = _evaluate_pairs(pairs, num_classes, widths, int(workers))
    metrics = ev.compute()
    print(f"segmentation of {pred_root} against {gt_root} (percent; trimap = non-void pixels within w px of void, "
          f"anti-trimap = the rest)", file=stream)
    print(format_segmentation_table(metrics), file=stream)
    if out is not None:
        atomic_write_json(Path(out), {**metrics, "gt_dir": str(gt_root), "pred_dir": str(pred_root)})
        print(f"wrote {out}", file=stream)
    return 0
