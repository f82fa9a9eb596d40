"""Benchmark: detpretrain's VOC AP at 9 IoU thresholds vs pycocotools COCOeval on VOC2007-test-sized input.

Ground truth: the GENUINE VOC2007 test annotations (4,952 images, 14,976 boxes, 20 classes) in COCO format.
Detections: ~90k synthetic boxes, seeded: for every ground-truth box a few jittered copies whose IoU with it
ranges from high to low (score rising with IoU, plus noise; some with a wrong class), and random false
positives on every image. Timed, each `--repeats` times, all in one process, median seconds reported:

* ours:        ``evaluate_detections(gt, dets, 0.1:0.9:0.1, metric="voc07")`` (parsing + validation included);
* ours (voc):  the same with the all-point metric;
* pycocotools: ``COCOeval.evaluate() + accumulate()`` with ``params.iouThrs`` = the same 9 thresholds, default
  params otherwise (4 area ranges x maxDets [1, 10, 100]); ``COCO``/``loadRes`` set-up is not timed;
* pycocotools (lean): the same with one area range ("all") and maxDets [100] -- the same work as ours;
* faster-coco-eval (``COCOeval_faster``, both settings), when it is importable (optional, not a dependency).

Usage (from the project root)::

    .venv/bin/python benchmarks/bench_evaluate.py [GT_JSON] [--repeats 3] [--seed 0] [--out results.json]

GT_JSON defaults to ../shared/data/voc_extras/VOC2007_annotations_coco_format/pascal_test2007.json.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import io
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

PROJECT_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT_ROOT / "src"))  # run from a checkout without `pip install -e .`

from detpretrain.evaluation.detection import evaluate_detections, parse_iou_thresholds  # noqa: E402

DEFAULT_GT = PROJECT_ROOT.parent / "shared/data/voc_extras/VOC2007_annotations_coco_format/pascal_test2007.json"
THRESHOLDS = parse_iou_thresholds("0.1:0.9:0.1")


def synthetic_detections(gt: dict, target: int = 90_000, seed: int = 0) -> list[dict]:
    """~``target`` COCO results for ``gt``: jittered copies of every GT box + random false positives (seeded)."""
    rng = np.random.default_rng(seed)
    images = {im["id"]: im for im in gt["images"]}
    cat_ids = np.array(sorted(c["id"] for c in gt["categories"]))
    anns = gt["annotations"]
    per_gt = 4
    n_fp = max(0, target - per_gt * len(anns))
    dets: list[dict] = []
    for ann in anns:
        x, y, w, h = ann["bbox"]
        im = images[ann["image_id"]]
        # jitter scale from tight (IoU ~0.9) to loose (IoU ~0.2): localisation quality varies
        sigma = rng.uniform(0.02, 0.45, size=per_gt)
        for s in sigma:
            dx, dy = rng.normal(0.0, s, size=2) * (w, h)
            sw, sh = np.exp(rng.normal(0.0, s, size=2))
            nx = float(np.clip(x + dx, 0, im["width"] - 1))
            ny = float(np.clip(y + dy, 0, im["height"] - 1))
            nw = float(max(1.0, min(w * sw, im["width"] - nx)))
            nh = float(max(1.0, min(h * sh, im["height"] - ny)))
            cat = ann["category_id"] if rng.random() > 0.1 else int(rng.choice(cat_ids))
            score = float(np.clip(1.0 - 1.5 * s + rng.normal(0.0, 0.15), 0.001, 1.0))
            dets.append({"image_id": ann["image_id"], "category_id": cat, "bbox": [nx, ny, nw, nh], "score": score})
    image_ids = np.array(sorted(images))
    for im_id in rng.choice(image_ids, size=n_fp):
        im = images[int(im_id)]
        w = float(rng.uniform(10, im["width"] / 2))
        h = float(rng.uniform(10, im["height"] / 2))
        x = float(rng.uniform(0, im["width"] - w))
        y = float(rng.uniform(0, im["height"] - h))
        dets.append(
            {
                "image_id": int(im_id),
                "category_id": int(rng.choice(cat_ids)),
                "bbox": [x, y, w, h],
                "score": float(rng.uniform(0.001, 0.6)),
            }
        )
    return dets


def _time(fn, repeats: int) -> tuple[float, list[float], object]:
    times, result = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), times, result


def _coco_runner(coco_module, eval_cls, gt: dict, dets: list[dict], lean: bool):
    """A callable that runs COCOeval evaluate()+accumulate(); the COCO objects are built once, outside the timing."""
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = coco_module.COCO()
        coco_gt.dataset = copy.deepcopy(gt)
        coco_gt.createIndex()
        coco_dt = coco_gt.loadRes(copy.deepcopy(dets))

    def run():
        with contextlib.redirect_stdout(io.StringIO()):
            ev = eval_cls(coco_gt, coco_dt, iouType="bbox")
            ev.params.iouThrs = np.array(THRESHOLDS)
            if lean:
                ev.params.areaRng = [[0.0, 1e10]]
                ev.params.areaRngLbl = ["all"]
                ev.params.maxDets = [100]
            ev.evaluate()
            ev.accumulate()
        precision = ev.eval["precision"][:, :, :, 0, -1]  # [T, R, K]
        return [float(np.mean(p[p > -1]) * 100) for p in precision]

    return run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("gt", nargs="?", default=str(DEFAULT_GT), help="COCO-format VOC2007 test ground truth")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--detections", type=int, default=90_000)
    parser.add_argument("--out", default=None, help="write the timings as json here")
    args = parser.parse_args(argv)

    gt = json.loads(Path(args.gt).read_text())
    dets = synthetic_detections(gt, args.detections, args.seed)
    n_difficult = sum(bool(a.get("ignore", 0) or a.get("iscrowd", 0)) for a in gt["annotations"])
    print(
        f"input: {len(gt['images'])} images, {len(gt['annotations'])} GT boxes ({n_difficult} difficult), "
        f"{len(dets)} detections, {len(THRESHOLDS)} IoU thresholds {THRESHOLDS}"
    )
    print(
        f"machine: {platform.processor() or platform.machine()}, "
        f"python {platform.python_version()}, numpy {np.__version__}"
    )

    rows: list[tuple[str, float, list[float], list[float]]] = []
    med, times, res = _time(lambda: evaluate_detections(gt, dets, THRESHOLDS, "voc07"), args.repeats)
    rows.append(("detpretrain voc07", med, times, res["mAP"]))
    med, times, res = _time(lambda: evaluate_detections(gt, dets, THRESHOLDS, "voc"), args.repeats)
    rows.append(("detpretrain voc (all-point)", med, times, res["mAP"]))

    from importlib.metadata import version as package_version

    from pycocotools import coco as pc_coco
    from pycocotools.cocoeval import COCOeval

    version = package_version("pycocotools")
    for lean in (False, True):
        run = _coco_runner(pc_coco, COCOeval, gt, dets, lean)
        med, times, res = _time(run, args.repeats)
        rows.append((f"pycocotools {version} COCOeval {'lean' if lean else 'default'}", med, times, res))
    try:
        import faster_coco_eval
        from faster_coco_eval import COCOeval_faster
        from faster_coco_eval.core import coco as fc_coco
    except ImportError:
        print("faster-coco-eval: not importable, skipped (optional: .venv/bin/pip install faster-coco-eval)")
    else:
        for lean in (False, True):
            run = _coco_runner(fc_coco, COCOeval_faster, gt, dets, lean)
            med, times, res = _time(run, args.repeats)
            rows.append(
                (f"faster-coco-eval {faster_coco_eval.__version__} {'lean' if lean else 'default'}", med, times, res)
            )

    ours = rows[0][1]
    reference = next(r[1] for r in rows if r[0].startswith("pycocotools") and r[0].endswith("default"))
    print(f"\n{'evaluator':<42} {'median s':>9} {'vs ours':>8}  mAP@0.1 .. mAP@0.9 (%)")
    for name, med, _, m_ap in rows:
        print(f"{name:<42} {med:9.3f} {med / ours:7.1f}x  " + " ".join(f"{v:5.1f}" for v in m_ap))
    print(f"\npycocotools COCOeval (default params) / ours (voc07): {reference / ours:.1f}x")
    if args.out:
        payload = {
            "images": len(gt["images"]),
            "gt_boxes": len(gt["annotations"]),
            "detections": len(dets),
            "iou_thresholds": THRESHOLDS,
            "repeats": args.repeats,
            "results": [{"name": n, "median_s": m, "times_s": t, "mAP": a} for n, m, t, a in rows],
        }
        Path(args.out).write_text(json.dumps(payload, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
