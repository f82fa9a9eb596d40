"""Benchmark: ``evaluate-seg`` (trimap / anti-trimap at 40 band widths) vs per-band ``scipy.ndimage.binary_dilation``.

Ground truth: the 1,449 GENUINE VOC2012 segmentation val masks (~500x375 px, palette PNGs, 255 = void borders).
Predictions: the ground truth damaged by a fixed rule and written as 8-bit PNGs to a temporary folder (not timed):

* every non-void pixel within 2 px (chessboard) of a void pixel gets the next class, ``(gt + 1) % 21``;
* every pixel of the 16x16 tiles with ``(tile_row + tile_col) % 5 == 0`` becomes background (0);
* void pixels are predicted as background (a network never predicts void).

Timed, in one process:

* ours: ``evaluate_seg_command(gt_dir, pred_dir, bands=...)`` -- pairing, PNG decoding (``--workers`` threads),
  the metric and the json write -- over ALL masks, ``--repeats`` times (median reported); also once with
  ``workers=1`` (no decoding threads).
* reference "square": for each image and each width w, ``binary_dilation(void, structure=ones((2w+1, 2w+1)))``
  -- the definition, literally -- then one masked ``np.bincount`` confusion matrix for the band and one for the
  rest. Very slow for wide bands (0.8 s per image at w=40), so it runs on the first ``--square-images`` images
  (evenly spread over the set) and its time is EXTRAPOLATED to all images (said so in the output).
* reference "iterated": the same with ``binary_dilation(void, structure=ones((3, 3)), iterations=w)``
  (the same set: w successive 3x3 dilations = one (2w+1)^2 dilation), on ``--iterated-images`` images
  (0 = all), extrapolated when that is a subset.

Agreement: the confusion matrix of every band (trimap and anti-trimap) from each reference is compared, count for
count, with ``SegmentationEvaluator`` on the same images; the overall metrics of the command are compared with the
iterated reference when that one ran on all images.

Usage (from the project root)::

    .venv/bin/python benchmarks/bench_evaluate_seg.py [--gt-dir DIR] [--bands 1:40] [--repeats 1]
        [--square-images 3] [--iterated-images 150] [--workers N] [--out results.json]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage

PROJECT_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT_ROOT / "src"))  # run from a checkout without `pip install -e .`

from detpretrain.data.voc import read_index_png
from detpretrain.evaluation.segmentation import (
    SegmentationEvaluator,
    evaluate_seg_command,
    parse_bands,
)

DEFAULT_GT = PROJECT_ROOT.parent / "shared/data/voc_extras/VOC2012_SegmentationClass_val_masks_only/SegmentationClass"
NUM_CLASSES = 21
VOID = 255


def damaged_prediction(gt: np.ndarray) -> np.ndarray:
    """The fixed damage rule of the module docstring."""
    void = gt == VOID
    near = ndimage.maximum_filter(void.astype(np.uint8), size=5, mode="constant", cval=0).astype(bool) & ~void
    pred = np.where(void, 0, gt).astype(np.uint8)
    pred[near] = (gt[near].astype(np.int64) + 1) % NUM_CLASSES
    rows, cols = np.indices(gt.shape)
    pred[((rows // 16) + (cols // 16)) % 5 == 0] = 0
    return pred


def reference_confusions(gt_files: list[Path], pred_dir: Path, bands: list[int], mode: str) -> tuple[np.ndarray, ...]:
    """(trimap, anti-trimap, all) confusion matrices ``[len(bands), C, C]`` / ``[C, C]`` by per-band dilation."""
    c = NUM_CLASSES
    inside = np.zeros((len(bands), c, c), np.int64)
    outside = np.zeros((len(bands), c, c), np.int64)
    total = np.zeros((c, c), np.int64)
    for gt_path in gt_files:
        gt = read_index_png(gt_path).astype(np.int64)
        pred = read_index_png(pred_dir / gt_path.name).astype(np.int64)
        void = gt == VOID
        code = gt * c + np.minimum(pred, c - 1)  # the damage rule never predicts outside [0, 21)
        total += np.bincount(code[~void], minlength=c * c).reshape(c, c)
        for k, w in enumerate(bands):
            if mode == "square":
                band = ndimage.binary_dilation(void, structure=np.ones((2 * w + 1, 2 * w + 1), bool))
            else:
                band = ndimage.binary_dilation(void, structure=np.ones((3, 3), bool), iterations=w)
            inside[k] += np.bincount(code[band & ~void], minlength=c * c).reshape(c, c)
            outside[k] += np.bincount(code[~band & ~void], minlength=c * c).reshape(c, c)
    return inside, outside, total


def ours_confusions(gt_files: list[Path], pred_dir: Path, bands: list[int]) -> tuple[np.ndarray, ...]:
    ev = SegmentationEvaluator(NUM_CLASSES, bands=bands)
    for gt_path in gt_files:
        ev.update(read_index_png(gt_path), read_index_png(pred_dir / gt_path.name))
    inside = np.stack([ev.confusion_matrix("trimap", w)[:, :NUM_CLASSES] for w in bands])
    outside = np.stack([ev.confusion_matrix("anti_trimap", w)[:, :NUM_CLASSES] for w in bands])
    return inside, outside, ev.confusion_matrix()[:, :NUM_CLASSES]


def miou(conf: np.ndarray) -> float:
    tp = np.diag(conf).astype(float)
    union = conf.sum(0) + conf.sum(1) - tp
    return float(np.mean(100 * tp[union > 0] / union[union > 0]))


def subset(files: list[Path], n: int) -> list[Path]:
    if n <= 0 or n >= len(files):
        return list(files)
    return [files[round(i * (len(files) - 1) / max(n - 1, 1))] for i in range(n)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gt-dir", type=Path, default=DEFAULT_GT)
    parser.add_argument("--bands", default="1:40")
    parser.add_argument("--repeats", type=int, default=1, help="timed runs of the command (median reported)")
    parser.add_argument("--workers", type=int, default=None, help="decoding threads of the command (default: its own)")
    parser.add_argument("--square-images", type=int, default=3, help="images for the literal (2w+1)^2 reference")
    parser.add_argument("--iterated-images", type=int, default=150, help="images for the iterated 3x3 reference (0 = all)")
    parser.add_argument("--out", type=Path, default=None, help="write the results json here")
    args = parser.parse_args()

    bands = parse_bands(args.bands)
    gt_files = sorted(p for p in args.gt_dir.iterdir() if p.suffix == ".png")
    n_all = len(gt_files)
    print(f"{n_all} ground-truth masks in {args.gt_dir}; {len(bands)} bands {bands[0]}..{bands[-1]} px; "
          f"{os.cpu_count()} CPUs; numpy {np.__version__}; python {platform.python_version()}")

    with tempfile.TemporaryDirectory(prefix="bench_seg_") as tmp:
        pred_dir = Path(tmp) / "pred"
        pred_dir.mkdir()
        t0 = time.perf_counter()
        for p in gt_files:
            Image.fromarray(damaged_prediction(read_index_png(p)), mode="L").save(pred_dir / p.name)
        print(f"wrote {n_all} damaged predictions in {time.perf_counter() - t0:.1f} s (not timed)")

        results: dict = {"num_images": n_all, "bands": bands, "timings_s": {}}
        out_json = Path(tmp) / "metrics.json"
        times = []
        for _ in range(max(1, args.repeats)):
            t0 = time.perf_counter()
            evaluate_seg_command(args.gt_dir, pred_dir, bands=args.bands, out=out_json, workers=args.workers,
                                 stream=io.StringIO())
            times.append(time.perf_counter() - t0)
        ours_s = statistics.median(times)
        t0 = time.perf_counter()
        evaluate_seg_command(args.gt_dir, pred_dir, bands=args.bands, workers=1, stream=io.StringIO())
        ours1_s = time.perf_counter() - t0
        metrics = json.loads(out_json.read_text())
        results["timings_s"]["ours"] = ours_s
        results["timings_s"]["ours_workers1"] = ours1_s
        print(f"\nours   evaluate_seg_command, all {n_all} images, decoding included: {ours_s:7.2f} s "
              f"(median of {len(times)}); with workers=1: {ours1_s:.2f} s")
        print(f"       mIoU {metrics['mIoU']:.2f}  pixel acc {metrics['pixel_accuracy']:.2f}  "
              f"trimap({bands[0]}) acc {metrics['trimap'][str(bands[0])]['pixel_accuracy']:.2f}  "
              f"anti-trimap({bands[-1]}) acc {metrics['anti_trimap'][str(bands[-1])]['pixel_accuracy']:.2f}")

        for mode, n in (("square", args.square_images), ("iterated", args.iterated_images)):
            files = subset(gt_files, n)
            t0 = time.perf_counter()
            ref = reference_confusions(files, pred_dir, bands, mode)
            ref_s = time.perf_counter() - t0
            extrapolated = ref_s * n_all / len(files)
            ours = ours_confusions(files, pred_dir, bands)
            exact = all(np.array_equal(a, b) for a, b in zip(ref, ours))
            label = "measured" if len(files) == n_all else f"EXTRAPOLATED from {len(files)} images ({ref_s:.1f} s)"
            print(f"\nreference '{mode}' binary_dilation per band: {extrapolated:9.1f} s for {n_all} images, {label}")
            print(f"       ratio reference / ours = {extrapolated / ours_s:,.0f}x; confusion matrices of all "
                  f"{len(bands)} trimap and anti-trimap bands on those {len(files)} images identical: {exact}")
            entry = {"images": len(files), "seconds": ref_s, "seconds_all_images": extrapolated,
                     "extrapolated": len(files) != n_all, "ratio_vs_ours": extrapolated / ours_s,
                     "identical_confusions": exact}
            if len(files) == n_all:
                diffs = [abs(miou(ref[2]) - metrics["mIoU"])]
                diffs += [abs(miou(ref[0][k]) - metrics["trimap"][str(w)]["mIoU"]) for k, w in enumerate(bands)]
                diffs += [abs(miou(ref[1][k]) - metrics["anti_trimap"][str(w)]["mIoU"]) for k, w in enumerate(bands)]
                entry["max_abs_mIoU_difference_vs_command"] = max(diffs)
                print(f"       largest |mIoU difference| against the command's json: {max(diffs):.2e}")
            results[f"reference_{mode}"] = entry
            if not exact:
                print("MISMATCH between the reference and SegmentationEvaluator", file=sys.stderr)
                return 1

    if args.out is not None:
        args.out.write_text(json.dumps(results, indent=2) + "\n")
        print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
