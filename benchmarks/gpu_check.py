"""The prepared GPU check of the ``torchvision`` profile (issue 19): run on one lent H100 / H200, no internet.

Measures, side by side in one process, on a real-size synthetic VOC-format corpus (``voc`` role, 512 px images,
generated here; no download):

* R50-FPN Faster R-CNN fine-tuning images/s, our loop (:func:`detpretrain.engine.train_one_epoch` with the
  profile's mixed precision, the model prepared as ``fit`` prepares it: ``channels_last`` on CUDA; with
  ``--compare-layouts`` also left contiguous, to measure what that layout buys) against a bare torchvision loop
  (``fasterrcnn_resnet50_fpn``, ``torch.autocast``, SGD)
  on IDENTICAL batches (decoded once, the same order, the same warm-up). The two do not round alike: our loop
  autocasts only the detector's feature layers and keeps predictors and boxes float32
  (:func:`detpretrain.engine.mixed_precision`), the bare loop autocasts the whole detector, so the ratio includes
  what keeping the boxes float32 costs;
* peak GPU memory of each (``torch.cuda.max_memory_allocated``);
* evaluation time (detect + VOC07 AP at IoU 0.1 ... 0.9) per image;
* from these, the estimated GPU-hours of the whole ``torchvision``-profile book (VOC 07+12 / VOC07 test sizes).

The 1-GPU torchrun (NCCL) run is a separate command in ``gpu_check.sh``. Writes ``<out>/gpu_check.json`` and prints
a table. ``--allow-cpu`` runs the same code on the CPU with tiny sizes (what the tests do), never for figures.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Subset

from detpretrain import engine
from detpretrain.config import DataSpec
from detpretrain.data import synthetic
from detpretrain.data.builders import build_detection_dataset, collate_detection
from detpretrain.experiments.detection import finetune_config
from detpretrain.models.build import build_model
from detpretrain.profiles import get_profile

#: the real datasets' sizes the estimate scales to (VOC 07+12 trainval, VOC07 test; VOC2012 seg train + SBD)
VOC0712_TRAINVAL, VOC07_TEST, SEG_TRAIN_AUG, SEG_VAL = 16_551, 4_952, 10_582, 1_449


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def _peak_gib(device: torch.device) -> float | None:
    return torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None


def bare_detector(cfg, num_classes: int):
    """torchvision's own R50-FPN Faster R-CNN, built directly with the profile's geometry: frozen BatchNorm, layers
    2-4 trainable (``trainable_layers=3``), the same input sizes -- the architecture ours builds, without our code."""
    from torchvision.models.detection import FasterRCNN
    from torchvision.models.detection.backbone_utils import resnet_fpn_backbone
    from torchvision.ops import FrozenBatchNorm2d

    backbone = resnet_fpn_backbone(backbone_name="resnet50", weights=None, norm_layer=FrozenBatchNorm2d,
                                   trainable_layers=cfg.model.trainable_stages)
    return FasterRCNN(backbone, num_classes=num_classes, min_size=cfg.model.min_size, max_size=cfg.model.max_size)


def bare_step(model, optimizer, images, targets, device, dtype) -> None:
    """One step of the reference loop: torchvision's detector, autocast, SGD; nothing else."""
    images = [img.to(device, non_blocking=True) for img in images]
    tgts = [{"boxes": t["boxes"].as_subclass(torch.Tensor).to(device), "labels": t["labels"].to(device)}
            for t in targets]
    with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
        loss = sum(model(images, tgts).values())
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=".", help="folder of gpu_check.json")
    parser.add_argument("--size", type=int, default=512, help="image side of the generated corpus, pixels")
    parser.add_argument("--images", type=int, default=256, help="training images generated (and evaluated)")
    parser.add_argument("--warmup", type=int, default=5, help="untimed iterations before timing")
    parser.add_argument("--repeats", type=int, default=2, help="timed passes per loop (median)")
    parser.add_argument("--model-size", type=int, default=None,
                        help="detector input short side (default: the profile's min_size); tests use a small one")
    parser.add_argument("--allow-cpu", action="store_true", help="run on the CPU (tests only; not for figures)")
    parser.add_argument("--compare-layouts", action="store_true",
                        help="also time our loop with the model left contiguous (channels_last's effect; +50%% time)")
    args = parser.parse_args(argv)

    if not torch.cuda.is_available() and not args.allow_cpu:
        print("error: no CUDA device; this check is for a GPU machine (--allow-cpu runs it on the CPU for tests)",
              file=sys.stderr)
        return 2
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    prof = get_profile("torchvision")
    dtype = engine.autocast_dtype(device) if prof.finetune.amp else None
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    report: dict = {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
                    "torch": torch.__version__, "amp_dtype": str(dtype), "image_size": args.size}
    with tempfile.TemporaryDirectory() as cache:
        t0 = time.perf_counter()
        n_test = max(8, args.images // 4)
        spec = synthetic.CorpusSpec("voc", args.size, args.images // 2, args.images - args.images // 2, n_test)
        synthetic.generate(spec, cache, workers=max(1, min(16, (torch.get_num_threads() or 1))))
        report["corpus_seconds"] = round(time.perf_counter() - t0, 1)
        data = DataSpec(kind="synthetic", corpus=dataclasses.asdict(spec), train_split="trainval", eval_split="test")
        cfg = finetune_config(prof, "imagenet-cls", 0, data, {"imagenet-cls": None, "detection": None})
        cfg = dataclasses.replace(cfg, init=None)  # random weights: no download; speed does not depend on them
        if args.model_size:
            cfg = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, min_size=args.model_size,
                                                                     max_size=args.model_size))
        train = build_detection_dataset(data, "trainval", train=True, cache=cache)  # the corpus just generated
        batch = cfg.optim.batch_size
        batches = list(DataLoader(Subset(train, range(len(train))), batch_size=batch, shuffle=False,
                                  collate_fn=collate_detection, drop_last=True))
        n_iter = len(batches)
        arms = ("bare", "ours", "ours_contiguous") if args.compare_layouts else ("bare", "ours")
        timings: dict[str, list[float]] = {name: [] for name in arms}
        peaks: dict[str, float | None] = {}
        for name in arms:
            torch.manual_seed(0)
            if name.startswith("ours"):  # as engine.fit prepares it (channels_last on CUDA), or left contiguous
                model = build_model(cfg, len(train.classes))
                model = engine.prepare_model(model, device) if name == "ours" else model.to(device)
                optimizer = engine.make_optimizer(model, cfg.optim)
                scaler = engine.grad_scaler(device, dtype)
            else:
                model = bare_detector(cfg, len(train.classes)).to(device)
                optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=cfg.optim.lr,
                                            momentum=0.9, weight_decay=1e-4)
            model.train()
            _reset_peak(device)
            for r in range(args.repeats + 1):  # pass 0 = warm-up (cudnn autotune, allocator)
                use = batches[: args.warmup] if r == 0 else batches
                _sync(device)
                t0 = time.perf_counter()
                if name.startswith("ours"):
                    engine.train_one_epoch(model, optimizer, use, device, 0, task="detection", scaler=scaler,
                                           amp_dtype=dtype, progress=False)
                else:
                    for images, targets in use:
                        bare_step(model, optimizer, images, targets, device, dtype)
                _sync(device)
                if r:
                    timings[name].append(time.perf_counter() - t0)
            peaks[name] = _peak_gib(device)
            if name == "ours":
                test = build_detection_dataset(data, "test", train=False, cache=cache)
                _sync(device)
                t0 = time.perf_counter()
                metrics = engine.evaluate_detector(model, test, device, iou_thresholds=cfg.eval_iou_thresholds,
                                                   progress=False)
                _sync(device)
                report["eval_seconds_per_image"] = (time.perf_counter() - t0) / len(test)
                report["eval_images"] = len(test)
                report["eval_mAP50_untrained"] = metrics["mAP"][4]
            del model, optimizer
    ips = {k: n_iter * batch / statistics.median(v) for k, v in timings.items()}
    report.update({"iterations": n_iter, "batch_size": batch, "images_per_second": ips,
                   "ratio_ours_over_bare": ips["ours"] / ips["bare"], "peak_memory_GiB": peaks})
    if "ours_contiguous" in ips:  # what the channels_last layout of engine.prepare_model buys
        report["ratio_channels_last_over_contiguous"] = ips["ours"] / ips["ours_contiguous"]
    # estimate: detection fine-tuning (3 arms x seeds) + its evaluation; segmentation and probes are not measured
    # here and are left out of the estimate (stated in the output)
    runs = 3 * len(prof.seeds)
    det_h = runs * (prof.finetune.epochs * VOC0712_TRAINVAL / ips["ours"]
                    + VOC07_TEST * report["eval_seconds_per_image"]) / 3600
    scale = (cfg.model.min_size / args.size) ** 2  # pixels per image relative to the measured corpus
    report["estimate"] = {"detection_gpu_hours_at_measured_size": round(det_h, 2),
                          "pixel_scale_to_profile": round(scale, 2),
                          "detection_gpu_hours_scaled": round(det_h * scale, 2),
                          "left_out": "segmentation (DeepLabV3) and classification transfer: not measured here"}
    (out / "gpu_check.json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"{report['device']}, torch {report['torch']}, autocast {report['amp_dtype']}, {args.size} px, "
          f"batch {batch}, {n_iter} iterations x {args.repeats}")
    print(f"  bare torchvision loop   {ips['bare']:8.2f} images/s   peak {peaks['bare']} GiB")
    print(f"  detpretrain loop        {ips['ours']:8.2f} images/s   peak {peaks['ours']} GiB")
    print(f"  ratio ours / bare       {report['ratio_ours_over_bare']:8.3f}")
    if "ours_contiguous" in ips:
        print(f"  ours, contiguous        {ips['ours_contiguous']:8.2f} images/s   peak {peaks['ours_contiguous']} GiB"
              f"   (channels_last / contiguous {report['ratio_channels_last_over_contiguous']:.3f})")
    print(f"  evaluation              {report['eval_seconds_per_image'] * 1000:8.1f} ms/image")
    print(f"  estimate: detection chapter of the torchvision book {det_h * scale:.1f} GPU-hours "
          f"({runs} fine-tunings x {prof.finetune.epochs} epochs on VOC 07+12, scaled to "
          f"{cfg.model.min_size} px)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
