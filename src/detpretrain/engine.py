"""Training and evaluation loops in the style of torchvision's ``references/detection``.

Plain functions: :func:`train_one_epoch`, :func:`evaluate_detector`, :func:`evaluate_classifier`,
:func:`evaluate_segmenter` and :func:`fit`, which runs a whole :class:`~detpretrain.config.TrainConfig` into a run
directory with a checkpoint after every epoch and resumes from it. What differs between the tasks (datasets, the
loss of a batch, the evaluation, where the backbone sits in the model) is one small :class:`Task` per task in
:data:`TASK_HOOKS`; the loop itself is shared.

Determinism: model initialisation is seeded with ``config.seed``; at the start of epoch ``e`` both the data order
(the sampler's generator / ``DistributedSampler.set_epoch``) and the augmentation RNG are re-seeded from
``(seed, e)``. Resuming after an interruption therefore redoes the interrupted epoch exactly as it would have run,
and on CPU the final metrics equal those of an uninterrupted run.

Distributed: under ``torchrun`` the model is wrapped in ``DistributedDataParallel``, each rank sees its shard of
every epoch (``DistributedSampler``), the per-GPU batch is ``optim.batch_size // world_size`` (a profile's
``batch_size`` is the GLOBAL batch, so the global batch and the learning rate do not change with the number of
processes), and evaluation gathers the detections on rank 0. Every task trains this way (detection, classification,
segmentation).

On CUDA (and only there, so CPU runs and their results are unchanged): DataLoaders pin their batches
(``pin_memory``) and copy them asynchronously, convolutional models and their image batches use the
``channels_last`` memory format (tensor-core friendly NHWC convolutions), and mixed precision follows
:func:`autocast_dtype`. Evaluation reads its images with ``optim.num_workers`` DataLoader workers, as training does.
On the CPU a run trains in float32 unless its config asks for bfloat16 autocast (``optim.cpu_bf16``, a different run:
``--cpu-bf16``); evaluation is float32 on both.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler, RandomSampler, Subset
from tqdm.auto import tqdm

from detpretrain import distributed
from detpretrain.config import TrainConfig, config_hash, to_dict
from detpretrain.data.builders import (
    build_classification_dataset,
    build_multilabel_dataset,
    build_detection_dataset,
    build_segmentation_dataset,
    collate_detection,
    dropped_annotations,
    training_target,
)
from detpretrain.errors import ConfigError
from detpretrain.io import atomic_torch_save, atomic_write_json, atomic_write_npz
from detpretrain.models.build import build_model
from detpretrain.models.backbones import backbone_state_dict
from detpretrain.models.segmentation import predict_logits, segmentation_backbone_state_dict, segmentation_geometry


def epoch_seed(seed: int, epoch: int) -> int:
    """The RNG seed of one epoch (data order and augmentation)."""
    return 1_000_003 * seed + epoch


def seed_everything(seed: int) -> None:
    """Seed torch (CPU and CUDA). Python's and NumPy's RNGs are not used by the training code."""
    torch.manual_seed(seed)


def lr_lambda(optim_spec, iters_per_epoch: int):
    """Learning-rate factor per iteration: linear warm-up from 0.001 to 1, then x gamma after each milestone epoch."""

    def factor(it: int) -> float:
        warm = 1.0
        if it < optim_spec.warmup_iters:
            alpha = it / max(1, optim_spec.warmup_iters)
            warm = 0.001 * (1 - alpha) + alpha
        epoch = it // max(1, iters_per_epoch)
        return warm * optim_spec.gamma ** sum(epoch >= m for m in optim_spec.milestones)

    return factor


def make_optimizer(model: nn.Module, optim_spec) -> torch.optim.SGD:
    """SGD with momentum; no weight decay on norm layers and biases (torchvision references' habit)."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (no_decay if p.ndim <= 1 else decay).append(p)
    return torch.optim.SGD(
        [{"params": decay, "weight_decay": optim_spec.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=optim_spec.lr,
        momentum=optim_spec.momentum,
    )


def autocast_dtype(device: torch.device, *, cpu_bf16: bool = False) -> torch.dtype | None:
    """The mixed-precision dtype for ``device``: on CUDA bfloat16 where the GPU supports it (Ampere and later: no
    loss scaling needed), float16 on older GPUs (with :func:`grad_scaler`); on the CPU bfloat16 when ``cpu_bf16``
    (``OptimSpec.cpu_bf16``), else None (float32).

    On a CPU with AMX (Sapphire Rapids) a ``mini`` training step is 1.23-1.28x faster in bfloat16
    (``benchmarks/bench_train_loop.py --precision``); without native bfloat16 (:func:`cpu_has_native_bf16`) oneDNN
    emulates it and the step is slower than float32."""
    if device.type != "cuda":
        return torch.bfloat16 if cpu_bf16 else None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def cpu_has_native_bf16() -> bool:
    """True when this CPU computes bfloat16 in hardware (AMX tiles or AVX512-BF16) and ``$ONEDNN_MAX_CPU_ISA`` does
    not keep oneDNN below those instruction sets: where ``OptimSpec.cpu_bf16`` makes training faster. False
    elsewhere: oneDNN then emulates bfloat16, and a ``mini`` step is 2.0-2.4x SLOWER than in float32 (measured with
    ``ONEDNN_MAX_CPU_ISA=AVX512_CORE`` on an AMX machine, ``benchmarks/README.md``)."""
    cap = os.environ.get("ONEDNN_MAX_CPU_ISA", "").upper()
    if cap and cap not in ("ALL", "DEFAULT") and not any(isa in cap for isa in ("BF16", "AMX", "FP16", "AVX10")):
        return False
    cpu = torch.cpu
    checks = [getattr(cpu, name, None) for name in ("_is_amx_tile_supported", "_is_avx512_bf16_supported")]
    return any(check() for check in checks if check is not None)


def numerics_environment(device: torch.device, dtype: torch.dtype | None = None) -> dict:
    """What decides a run's float rounding besides its config, recorded in ``metrics.json`` as ``"environment"``.

    The same config trained on one machine gives the same numbers (``tests/test_engine.py``); on a CPU with another
    instruction set the kernels (ATen's, oneDNN's, MKL's) round differently and training amplifies it: measured with
    ``ONEDNN_MAX_CPU_ISA=AVX2`` on an AVX-512 machine, a ``smoke`` classifier's second-epoch loss moved in the third
    decimal and its top-1 from 8 % to 2 %; a ``mini`` val detector of selection 3 (``profiles.py``), retrained with
    the same configuration on another machine (an Intel Xeon with AVX-512 and AMX), scored 64.9 mAP@0.5 against the
    67.9 recorded there. Such a difference is fine-tuning noise, which the verdicts' intervals over pre-training runs
    include.

    Returns:
        ``{"torch", "torchvision", "device", "cpu", "cpu_capability" (ATen's kernel ISA), "onednn_max_cpu_isa" and
        "mkl_cbwr" (their environment variables, or None), "threads", "autocast" (dtype name or None),
        "cpu_native_bf16", "cuda_device" (name or None)}``.
    """
    import platform

    import torchvision

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    except OSError:
        pass
    return {"torch": torch.__version__, "torchvision": torchvision.__version__, "device": str(device), "cpu": cpu,
            "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "onednn_max_cpu_isa": os.environ.get("ONEDNN_MAX_CPU_ISA"), "mkl_cbwr": os.environ.get("MKL_CBWR"),
            "threads": torch.get_num_threads(), "autocast": str(dtype).removeprefix("torch.") if dtype else None,
            "cpu_native_bf16": cpu_has_native_bf16(),
            "cuda_device": torch.cuda.get_device_name(device) if device.type == "cuda" else None}


def run_autocast_dtype(config: TrainConfig, device: torch.device) -> torch.dtype | None:
    """The autocast dtype a run trains with: ``optim.amp`` on CUDA, ``optim.cpu_bf16`` on the CPU (each ignored on
    the other device), None for float32."""
    if device.type == "cuda":
        return autocast_dtype(device) if config.optim.amp else None
    return autocast_dtype(device, cpu_bf16=config.optim.cpu_bf16)


def grad_scaler(device: torch.device, dtype: torch.dtype | None):
    """A ``torch.amp.GradScaler`` when training in float16 on CUDA (gradients underflow otherwise), else None."""
    return torch.amp.GradScaler("cuda") if (device.type == "cuda" and dtype == torch.float16) else None


#: the parts of a torchvision Faster R-CNN that compute in the autocast dtype during mixed-precision training
#: (:func:`mixed_precision`): backbone + FPN, the RPN's 3x3 conv(s), the box head (FC1, FC2 or its convs + FC); what
#: they return is cast back to float32, and the RPN's and box predictor's 1x1 / linear outputs (scores and box
#: deltas) are computed in float32 from it
DETECTOR_AUTOCAST_PARTS = ("backbone", "rpn.head.conv", "roi_heads.box_head")


def _to_float32(value):
    """``value`` with every floating tensor in it (also inside tuples, lists and dicts) as float32."""
    if isinstance(value, torch.Tensor):
        return value.float() if value.is_floating_point() else value
    if isinstance(value, dict):
        return type(value)((k, _to_float32(v)) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return type(value)(_to_float32(v) for v in value)
    return value


@contextmanager
def mixed_precision(model: nn.Module, device: torch.device, dtype: torch.dtype | None):
    """The autocast of one training step (``dtype`` None: float32, nothing changes).

    A torchvision Faster R-CNN (also inside DDP) computes its feature layers in ``dtype`` (the parts of
    :data:`DETECTOR_AUTOCAST_PARTS`: backbone + FPN, the RPN's conv, the box head) and receives their outputs as
    float32, so that everything else stays float32: the score and box-delta predictors, anchors, proposals, their
    NMS, RoIAlign, the box regression targets and the losses. Under autocast of the whole detector torchvision
    computes proposals and regression targets in bfloat16, whose 8-bit mantissa rounds coordinates of 64-128 px to
    0.5 px (``tests/test_cpu_bf16.py``). Every other model (classifiers, DeepLabV3) runs whole under
    ``torch.autocast(device.type, dtype)``.
    """
    from torchvision.models.detection import FasterRCNN

    if dtype is None:
        yield
        return
    inner = getattr(model, "module", model)
    if not isinstance(inner, FasterRCNN):
        with torch.autocast(device.type, dtype=dtype):
            yield
        return
    entered: list = []

    def enter(_module, _inputs) -> None:
        context = torch.autocast(device.type, dtype=dtype)
        context.__enter__()
        entered.append(context)

    def leave(_module, _inputs, output):
        entered.pop().__exit__(None, None, None)
        return _to_float32(output)

    handles = []
    for name in DETECTOR_AUTOCAST_PARTS:
        part = inner.get_submodule(name)
        handles += [part.register_forward_pre_hook(enter), part.register_forward_hook(leave)]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()
        while entered:  # a part that raised never reached its forward hook
            entered.pop().__exit__(None, None, None)


def train_one_epoch(model, optimizer, loader, device, epoch: int, *, task: str, scheduler=None, scaler=None,
                    progress: bool = True, amp_dtype: torch.dtype | None = None,
                    on_step: Callable[[dict], None] | None = None) -> dict[str, float]:
    """One pass over ``loader``; returns the mean of each loss (averaged over ranks).

    Args:
        task: ``"detection"`` (``model(images, targets)`` returns torchvision's loss dict: loss_classifier,
            loss_box_reg, loss_objectness, loss_rpn_box_reg), ``"classification"`` (cross-entropy on logits) or
            ``"segmentation"`` (per-pixel cross-entropy, void 255 ignored); see :data:`TASK_HOOKS`.
        scheduler: stepped once per iteration (warm-up + steps, :func:`lr_lambda`).
        scaler: a ``torch.amp.GradScaler`` for float16 mixed precision (:func:`grad_scaler`), else None.
        amp_dtype: autocast dtype (:func:`autocast_dtype`: bfloat16 or float16 on CUDA), None for full precision. For
            backward compatibility a ``scaler`` without ``amp_dtype`` means float16.
        on_step: called after every iteration with ``{"epoch", "iteration" (1-based), "iterations", "loss"}`` (the
            executor's progress lines).

    Raises:
        FloatingPointError: the loss became NaN or infinite (diverged); the last checkpoint stays intact.
    """
    model.train()
    sums: dict[str, float] = {}
    n = 0
    if amp_dtype is None and scaler is not None:
        amp_dtype = torch.float16
    show = progress and distributed.is_main_process()
    bar = tqdm(loader, desc=f"epoch {epoch}", leave=False, disable=None if show else True)  # None: only on a TTY
    batch_losses = TASK_HOOKS[task].losses
    for it, (inputs, targets) in enumerate(bar):
        with mixed_precision(model, device, amp_dtype):
            losses = batch_losses(model, inputs, targets, device)
        loss = sum(losses.values())
        if not math.isfinite(loss.item()):
            raise FloatingPointError(f"epoch {epoch} iteration {it}: loss is {loss.item()} ({_fmt(losses)})")
        optimizer.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            optimizer.step()
        if scheduler is not None:
            scheduler.step()
        for k, v in losses.items():
            sums[k] = sums.get(k, 0.0) + float(v.detach())
        sums["loss"] = sums.get("loss", 0.0) + float(loss.detach())
        n += 1
        if not bar.disable:
            bar.set_postfix(loss=f"{float(loss.detach()):.3f}", lr=f"{optimizer.param_groups[0]['lr']:.4f}")
        if on_step is not None:
            on_step({"epoch": epoch, "iteration": it + 1, "iterations": len(loader), "loss": float(loss.detach())})
    return distributed.all_reduce_mean({k: v / max(n, 1) for k, v in sums.items()})


def on_cuda(device) -> bool:
    """True for a CUDA device (a ``torch.device`` or its name): where pinning and ``channels_last`` apply."""
    return torch.device(device).type == "cuda"


def to_device(images: torch.Tensor, device) -> torch.Tensor:
    """A batch [B, 3, H, W] on ``device``: asynchronous copy, and ``channels_last`` on CUDA (unchanged on the CPU)."""
    if on_cuda(device):
        return images.to(device, non_blocking=True, memory_format=torch.channels_last)
    return images.to(device)


def prepare_model(model: nn.Module, device) -> nn.Module:
    """``model`` on ``device`` as :func:`fit` trains it: in the ``channels_last`` memory format on CUDA (NHWC
    convolutions run on tensor cores; only 4-D weights change layout), unchanged on the CPU."""
    model = model.to(device)
    return model.to(memory_format=torch.channels_last) if on_cuda(device) else model


def detection_losses(model, images, targets, device) -> dict:
    """torchvision's Faster R-CNN loss dict for a batch (lists of images and targets; ignored boxes removed)."""
    images = [img.to(device, non_blocking=True) for img in images]
    tgts = [{k: v.to(device) for k, v in training_target(t).items()} for t in targets]
    return model(images, tgts)


def classification_losses(model, images, labels, device) -> dict:
    """``{"loss_ce"}``: cross-entropy of the logits [B, K] against labels [B]."""
    logits = model(to_device(images, device))
    return {"loss_ce": nn.functional.cross_entropy(logits, labels.to(device, non_blocking=True))}


def multilabel_losses(model, images, targets, device) -> dict:
    """``{"loss_bce"}``: binary cross-entropy of the logits [B, K] against multi-hot targets [B, K] (mean over
    images and classes)."""
    logits = model(images.to(device, non_blocking=True))
    return {"loss_bce": nn.functional.binary_cross_entropy_with_logits(logits, targets.to(device))}


def segmentation_losses(model, images, masks, device) -> dict:
    """``{"loss_ce"}``: per-pixel cross-entropy of DeepLabV3's logits [B, K, H, W] (upsampled to the mask size by
    the model) against masks [B, H, W], void (255) ignored, mean over the non-void pixels of the batch."""
    logits = model(to_device(images, device))["out"]
    return {"loss_ce": nn.functional.cross_entropy(logits, masks.to(device, non_blocking=True), ignore_index=255)}


def _fmt(d: dict) -> str:
    return ", ".join(f"{k}={float(v):.4f}" for k, v in d.items())


def _shard(dataset):
    """This rank's shard for evaluation: indices rank, rank + W, rank + 2W, ... (no padding duplicates)."""
    if not distributed.is_distributed():
        return dataset
    return Subset(dataset, list(range(distributed.rank(), len(dataset), distributed.world_size())))


@torch.no_grad()
def evaluate_detector(model, dataset, device, *, iou_thresholds, metric: str = "voc07", batch_size: int = 4,
                      progress: bool = True, keep_detections: bool = False, num_workers: int = 0) -> dict:
    """Detect on every image of ``dataset`` and compute AP per class and mAP at each IoU threshold.

    Args:
        dataset: a detection dataset of :mod:`detpretrain.data` (evaluation transforms).
        iou_thresholds: e.g. (0.1, ..., 0.9) for the paper's Figure 1.
        metric: ``"voc07"`` (11-point, the paper's), ``"voc"`` (all-point) or ``"coco"`` (pycocotools).
        keep_detections: also return the detections themselves, as ``"detections"``
            (:meth:`~detpretrain.evaluation.detection.DetectionEvaluator.detection_arrays`).
        num_workers: DataLoader worker processes reading the images (:func:`detect`).

    Returns:
        the dict of :func:`detpretrain.evaluation.detection.evaluate_detections` (AP in percent), identical on
        every rank.
    """
    from detpretrain.data.coco import to_coco_gt
    from detpretrain.evaluation.detection import DetectionEvaluator

    evaluator = DetectionEvaluator(to_coco_gt(dataset), list(iou_thresholds), metric=metric)
    for targets, outputs in detect(model, _shard(dataset), device, batch_size=batch_size, progress=progress,
                                   num_workers=num_workers):
        evaluator.process([int(t["image_id"]) for t in targets], outputs)
    metrics = evaluator.evaluate()  # gathers every rank's detections under torchrun
    if keep_detections:
        metrics["detections"] = evaluator.detection_arrays()
    return metrics


@torch.no_grad()
def detect(model, dataset, device, *, batch_size: int = 4, progress: bool = False, num_workers: int = 0):
    """The one loop that runs a detector over a dataset, in dataset order, in eval mode.

    Args:
        model: a torchvision detector (or its DDP wrapper); called on a list of images [3, H, W] in [0, 1].
        dataset: a detection dataset yielding ``(image, target)`` (evaluation transforms).
        device: where the images go (the model must already be there).
        progress: a tqdm bar (main process only).
        num_workers: DataLoader worker processes (0: read in this process); batches are pinned on CUDA.

    Yields:
        ``(targets, outputs)`` per batch: the dataset's target dicts and the model's outputs on the CPU
        (``boxes`` [K, 4] XYXY pixels, ``labels`` [K], ``scores`` [K]).
    """
    model = getattr(model, "module", model)
    model.eval()
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, collate_fn=collate_detection,
                        num_workers=num_workers, pin_memory=on_cuda(device))
    for images, targets in tqdm(loader, desc="detect", leave=False,
                                disable=None if (progress and distributed.is_main_process()) else True):
        outputs = model([img.to(device, non_blocking=True) for img in images])
        yield targets, [{k: v.cpu() for k, v in o.items()} for o in outputs]


def predict_detections(model, dataset, device: str | torch.device = "cpu", batch_size: int = 4) -> list[dict]:
    """Run a detector over every image of ``dataset`` (evaluation transforms) with :func:`detect`.

    Returns:
        COCO results list: ``{"image_id", "category_id" (= label), "bbox" [x, y, w, h] pixels, "score"}``, in
        dataset order (what :func:`detpretrain.evaluation.detection.match_detections` takes).
    """
    from detpretrain.evaluation.detection import outputs_to_coco_results

    results: list[dict] = []
    for targets, outputs in detect(model, dataset, device, batch_size=batch_size):
        results += outputs_to_coco_results([int(t["image_id"]) for t in targets], outputs)
    return results


@torch.no_grad()
def evaluate_classifier(model, dataset, device, *, batch_size: int = 64, num_workers: int = 0) -> dict:
    """Top-1 accuracy in percent on ``dataset`` (gathered over ranks); ``num_workers`` DataLoader workers read the
    images (batches pinned on CUDA).

    Returns:
        ``{"top1", "num_images", "predictions": {"predicted": int16 [N], "label": int16 [N]}}``: the per-image
        predicted and true labels in dataset order (what a run keeps as ``predictions.npz``, so that paired
        per-image tests never re-run the model).
    """
    model = getattr(model, "module", model)
    model.eval()
    shard = _shard(dataset)
    indices = list(shard.indices) if isinstance(shard, Subset) else list(range(len(dataset)))
    loader = DataLoader(shard, batch_size=batch_size, shuffle=False, num_workers=num_workers,
                        pin_memory=on_cuda(device))
    preds, labels = [], []
    for x, y in loader:
        preds.append(model(to_device(x, device)).argmax(1).cpu())
        labels.append(y)
    pred = torch.cat(preds).tolist() if preds else []
    label = torch.cat(labels).tolist() if labels else []
    gathered = distributed.all_gather_objects(list(zip(indices, pred, label)))
    rows = sorted({i: (p, t) for part in gathered for i, p, t in part}.items())
    predicted = np.asarray([p for _, (p, _) in rows], dtype=np.int16)
    truth = np.asarray([t for _, (_, t) in rows], dtype=np.int16)
    total = len(rows)
    return {"top1": 100.0 * float(np.sum(predicted == truth)) / max(total, 1), "num_images": total,
            "predictions": {"predicted": predicted, "label": truth}}


@torch.no_grad()
def evaluate_multilabel(model, dataset, device, *, batch_size: int = 64) -> dict:
    """Mean over classes of the average precision (scikit-learn ``average_precision_score``) of the sigmoid scores,
    in percent, over the classes with at least one positive image (gathered over ranks)."""
    import numpy as np
    from sklearn.metrics import average_precision_score

    model = getattr(model, "module", model)
    model.eval()
    scores, targets = [], []
    for x, y in DataLoader(_shard(dataset), batch_size=batch_size, shuffle=False):
        scores.append(torch.sigmoid(model(x.to(device))).cpu())
        targets.append(y)
    parts = distributed.all_gather_objects((torch.cat(scores).numpy() if scores else None,
                                            torch.cat(targets).numpy() if targets else None))
    s = np.concatenate([p for p, _ in parts if p is not None])
    t = np.concatenate([q for _, q in parts if q is not None])
    per_class = [100.0 * float(average_precision_score(t[:, k], s[:, k])) if t[:, k].any() else None
                 for k in range(t.shape[1])]
    valid = [v for v in per_class if v is not None]
    return {"mAP": float(np.mean(valid)) if valid else math.nan, "per_class_AP": per_class, "num_images": len(t)}


@torch.no_grad()
def evaluate_segmenter(model, dataset, device, *, bands=(), input_size: int | None = None, batch_size: int = 8,
                       progress: bool = True, num_workers: int = 0) -> dict:
    """Segment every image of ``dataset`` at its full resolution; mIoU, pixel accuracy, trimap / anti-trimap.

    Section 2.2 / Table 4 (mIoU) and Figure 2 (trimap: non-void pixels within ``w`` px of a void pixel; anti-trimap:
    the rest) of the paper, scored with :class:`~detpretrain.evaluation.segmentation.SegmentationEvaluator` on a
    confusion matrix pooled over the dataset (VOC's definition).

    Args:
        dataset: a segmentation dataset (evaluation transforms): items (float [3, H, W], int64 [H, W], 255 void).
        bands: trimap band widths in pixels of the masks.
        input_size: feed the network at this short side and upsample the logits to the mask (real photographs);
            None feeds the images as they are. Images of equal size are batched, others go one by one.
        num_workers: DataLoader worker processes reading images and masks (batches pinned on CUDA).

    Returns:
        the evaluator's dict (percent; ``per_class_IoU`` a list by label) plus ``per_image``: one
        ``{"index", "image_id", "mIoU", "pixel_accuracy"}`` per image in dataset order (the image's own mean IoU
        over the classes present in its ground truth or prediction), used to pick Figure 9's examples. Identical
        on every rank (the confusion matrices are gathered under torchrun).
    """
    from detpretrain.evaluation.segmentation import SegmentationEvaluator

    model = getattr(model, "module", model)
    model.eval()
    num_classes = len(dataset.classes)
    evaluator = SegmentationEvaluator(num_classes, bands=bands)
    shard = _shard(dataset)
    indices = list(shard.indices) if isinstance(shard, Subset) else list(range(len(dataset)))
    # lists, not stacked tensors: real images differ in size
    loader = DataLoader(shard, batch_size=batch_size, shuffle=False, collate_fn=collate_detection,
                        num_workers=num_workers, pin_memory=on_cuda(device))
    image_ids = getattr(dataset, "image_ids", None)
    per_image, k = [], 0
    for images, masks in tqdm(loader, desc="evaluate", leave=False,
                              disable=None if (progress and distributed.is_main_process()) else True):
        same = len({tuple(img.shape) for img in images}) == 1
        groups = [list(images)] if same else [[img] for img in images]
        preds = []
        for group in groups:
            batch = to_device(torch.stack([img.as_subclass(torch.Tensor) for img in group]), device)
            preds += list(predict_logits(model, batch, input_size=input_size).argmax(1).cpu())
        for mask, pred in zip(masks, preds):
            gt = mask.as_subclass(torch.Tensor).numpy()
            pred = pred.numpy()
            evaluator.update(gt, pred)
            own = SegmentationEvaluator(num_classes)
            own.update(gt, pred)
            m = own.compute()
            index = indices[k]
            per_image.append({"index": index, "image_id": int(image_ids[index]) if image_ids else index,
                              "mIoU": m["mIoU"], "pixel_accuracy": m["pixel_accuracy"]})
            k += 1
    gathered = distributed.all_gather_objects((evaluator, per_image))
    for other, _ in gathered[1:]:
        evaluator.merge(other)
    metrics = evaluator.compute()
    metrics["per_image"] = sorted((p for _, rows in gathered for p in rows), key=lambda p: p["index"])
    return metrics


@dataclass(frozen=True)
class Task:
    """What :func:`fit` needs to know about one task.

    Attributes:
        datasets: ``(config, cache) -> (train_set, test_set)``; both have ``classes``; ``cache`` is the corpus
            cache of synthetic data (the run store's ``data_cache``).
        losses: ``(model, inputs, targets, device) -> dict of scalar losses`` for one batch.
        collate: the training DataLoader's ``collate_fn`` (None: stack tensors).
        evaluate: ``(model, test_set, device, config, progress) -> (metrics, headline)``.
        backbone_state: ``model -> ResNet state_dict`` (no ``fc``), written as ``backbone.pt``.
    """

    datasets: Callable
    losses: Callable
    collate: Callable | None
    evaluate: Callable
    backbone_state: Callable


def _detection_datasets(config: TrainConfig, cache):
    d, o = config.data, config.optim
    train = build_detection_dataset(d, d.train_split, train=True, hflip=o.hflip, cache=cache)
    if d.long_tail:
        from detpretrain.data.long_tail import LongTailSubset

        train = LongTailSubset(train, d.long_tail)
    return train, build_detection_dataset(d, d.eval_split, train=False, cache=cache)


def _classification_datasets(config: TrainConfig, cache):
    d, m, o = config.data, config.model, config.optim
    return (build_classification_dataset(d, d.train_split, train=True, size=m.image_size, hflip=o.hflip,
                                         cache=cache, keep_decoded=True),
            build_classification_dataset(d, d.eval_split, train=False, size=m.image_size, cache=cache))


def _multilabel_datasets(config: TrainConfig, cache):
    d, o = config.data, config.optim
    return (build_multilabel_dataset(d, d.train_split, train=True, hflip=o.hflip, cache=cache),
            build_multilabel_dataset(d, d.eval_split, train=False, cache=cache))


def _segmentation_datasets(config: TrainConfig, cache):
    d, o = config.data, config.optim
    crop = segmentation_geometry(config.model, d).crop
    return (build_segmentation_dataset(d, d.train_split, train=True, crop=crop, hflip=o.hflip, cache=cache),
            build_segmentation_dataset(d, d.eval_split, train=False, cache=cache))


#: the artefact of a run holding its per-image test predictions, by task (:func:`detpretrain.runs.load_predictions`):
#: a detector's detections, a classifier's predicted labels. Runs trained before they were kept have none.
PREDICTIONS = {"detection": "detections.npz", "classification": "predictions.npz"}
#: where :func:`fit` finds the arrays an evaluation keeps as artefacts of the run: ``metrics[ARTEFACTS]`` =
#: ``{file name: {array name: ndarray}}``, written as ``.npz`` files (and listed in the manifest), not in metrics.json
ARTEFACTS = "_artefacts"


def _evaluate_detection(model, test_set, dev, config: TrainConfig, progress: bool):
    metrics = evaluate_detector(model, test_set, dev, iou_thresholds=config.eval_iou_thresholds,
                                metric=config.eval_metric, progress=progress, keep_detections=True,
                                num_workers=config.optim.num_workers)
    metrics[ARTEFACTS] = {PREDICTIONS["detection"]: metrics.pop("detections")}
    ap = dict(zip([round(t, 2) for t in metrics["iou_thresholds"]], metrics["mAP"]))
    return metrics, " ".join(f"mAP@{t}={ap[t]:.1f}" for t in (0.5, 0.7) if t in ap)


def _evaluate_classification(model, test_set, dev, config: TrainConfig, progress: bool):
    metrics = evaluate_classifier(model, test_set, dev, num_workers=config.optim.num_workers)
    metrics[ARTEFACTS] = {PREDICTIONS["classification"]: metrics.pop("predictions")}
    return metrics, f"top1={metrics['top1']:.1f}"


def _evaluate_multilabel(model, test_set, dev, config: TrainConfig, progress: bool):
    metrics = evaluate_multilabel(model, test_set, dev)
    return metrics, f"mAP(multi-label)={metrics['mAP']:.1f}"


def _evaluate_segmentation(model, test_set, dev, config: TrainConfig, progress: bool):
    """mIoU etc. with the run's trimap bands (:func:`~detpretrain.models.segmentation.segmentation_geometry`);
    ``per_class_IoU`` keyed by class name, ``band_scale`` = evaluated px per VOC-scale px."""
    geometry = segmentation_geometry(config.model, config.data)
    real = geometry.crop is not None
    metrics = evaluate_segmenter(model, test_set, dev, bands=geometry.bands,
                                 input_size=geometry.input_size if real else None, progress=progress,
                                 num_workers=config.optim.num_workers)
    metrics["per_class_IoU"] = dict(zip(test_set.classes, metrics["per_class_IoU"]))
    metrics["band_scale"] = geometry.band_scale
    miou, acc = metrics["mIoU"], metrics["pixel_accuracy"]
    return metrics, f"mIoU={miou if miou is not None else math.nan:.1f} pixacc={acc if acc is not None else math.nan:.1f}"


#: the tasks a :class:`~detpretrain.config.TrainConfig` can name, and how :func:`fit` runs each.
TASK_HOOKS: dict[str, Task] = {
    "classification": Task(_classification_datasets, classification_losses, None, _evaluate_classification,
                           backbone_state_dict),
    "detection": Task(_detection_datasets, detection_losses, collate_detection, _evaluate_detection,
                      backbone_state_dict),
    "segmentation": Task(_segmentation_datasets, segmentation_losses, None, _evaluate_segmentation,
                         segmentation_backbone_state_dict),
    "multilabel": Task(_multilabel_datasets, multilabel_losses, None, _evaluate_multilabel, backbone_state_dict),
}


def _datasets(config: TrainConfig, cache=None):
    return TASK_HOOKS[config.task].datasets(config, cache)


def _loader(config: TrainConfig, dataset, epoch: int, device=None) -> DataLoader:
    """The training DataLoader of ``epoch``: this process's share of the GLOBAL ``optim.batch_size`` (divided by the
    number of torchrun processes), ``optim.num_workers`` workers, batches pinned when ``device`` is CUDA.

    Raises:
        ConfigError: the global batch does not divide among the processes.
    """
    o = config.optim
    world = distributed.world_size()
    if o.batch_size % world:
        raise ConfigError(f"batch_size {o.batch_size} is not divisible by the {world} processes")
    generator = torch.Generator().manual_seed(epoch_seed(config.seed, epoch))
    if distributed.is_distributed():
        sampler = DistributedSampler(dataset, shuffle=True, seed=config.seed, drop_last=True)
        sampler.set_epoch(epoch)
    else:
        sampler = RandomSampler(dataset, generator=generator)
    return DataLoader(
        dataset,
        batch_size=o.batch_size // world,
        sampler=sampler,
        num_workers=o.num_workers,
        collate_fn=TASK_HOOKS[config.task].collate,
        drop_last=True,
        generator=generator,
        persistent_workers=False,
        pin_memory=device is not None and on_cuda(device),
    )


def fit(config: TrainConfig, run, store, *, device: str = "auto", progress: bool = True,
        on_step: Callable[[dict], None] | None = None) -> dict:
    """Train ``config`` into ``run`` (a :class:`detpretrain.runs.Run`), resuming from its last checkpoint.

    After each epoch a checkpoint (model, optimizer, scheduler, epoch, history) replaces ``checkpoints/last.pt``
    atomically; with ``optim.keep_epoch_checkpoints`` the model alone is also kept at initialisation and after every
    epoch (:meth:`~detpretrain.runs.Run.epoch_checkpoint_path`). At the end the model is evaluated on ``data.eval_split`` and ``backbone.pt``, ``model.pt``,
    ``metrics.json`` and, last, the manifest of them all are written (rank 0 only).

    Args:
        run: the :class:`~detpretrain.runs.Run` written to (its paths; rank 0 writes).
        store: the :class:`~detpretrain.runs.RunStore` holding ``run``; it resolves ``config.init`` (a stored
            pre-training's backbone, a torchvision weights name or a file) through ``store.backbone_weights``, and
            its ``data_cache`` is where synthetic training data is generated or found.
        device: ``"auto"``, ``"cpu"``, ``"cuda"``; under torchrun each rank takes ``cuda:LOCAL_RANK``.
        progress: tqdm bars (on a terminal, main process only).
        on_step: called on the main process after every training iteration with ``{"epoch", "epochs",
            "iteration", "iterations", "loss"}`` and once before the evaluation with ``{"phase": "evaluate"}``.

    Returns:
        the metrics dict (also in ``metrics.json``).

    Raises:
        RunStoreError: the resume checkpoint or the pre-training backbone ``init`` names is damaged.
        DiskFullError: no space left while writing (the previous checkpoint stays intact).
    """
    dev = distributed.init(device)
    unplanned = os.environ.get("DETPRETRAIN_UNPLANNED_LOG")  # set by `book` while a chapter executes
    if unplanned and distributed.is_main_process():
        with open(unplanned, "a") as f:
            f.write(f"{run.path.name} ({config.name} seed {config.seed})\n")
    train_set, test_set = _datasets(config, store.data_cache)
    num_classes = len(train_set.classes)
    seed_everything(config.seed)
    model = prepare_model(build_model(config, num_classes, backbone_weights=store.backbone_weights(config.init)), dev)
    optimizer = make_optimizer(model, config.optim)
    iters_per_epoch = len(train_set) // config.optim.batch_size
    if iters_per_epoch == 0:
        raise ConfigError(f"{config.data.describe()}: {len(train_set)} training images < batch size "
                          f"{config.optim.batch_size}")
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(config.optim, iters_per_epoch))
    dtype = run_autocast_dtype(config, dev)
    scaler = grad_scaler(dev, dtype)
    start_epoch, history = 0, []
    ckpt = run.load_checkpoint()  # None, or the state after the last finished epoch (RunStoreError if damaged)
    if ckpt is not None:
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        scheduler.load_state_dict(ckpt["scheduler"])
        start_epoch, history = ckpt["epoch"] + 1, ckpt["history"]
        if distributed.is_main_process():
            run.log(f"resumed from {run.checkpoint_path} after epoch {ckpt['epoch']}")
    keep = config.optim.keep_epoch_checkpoints and distributed.is_main_process()
    if keep and start_epoch == 0:
        atomic_torch_save(model.state_dict(), run.epoch_checkpoint_path(0))
    train_model = model
    if distributed.is_distributed():
        train_model = nn.parallel.DistributedDataParallel(model, device_ids=[dev.index] if dev.type == "cuda" else None)
    report = None
    if on_step is not None and distributed.is_main_process():
        def report(step: dict) -> None:
            on_step({**step, "epochs": config.optim.epochs})
    for epoch in range(start_epoch, config.optim.epochs):
        torch.manual_seed(epoch_seed(config.seed, epoch))  # augmentation RNG of this epoch
        t0 = time.perf_counter()
        losses = train_one_epoch(train_model, optimizer, _loader(config, train_set, epoch, dev), dev, epoch,
                                 task=config.task, scheduler=scheduler, scaler=scaler, progress=progress,
                                 amp_dtype=dtype, on_step=report)
        entry = {"epoch": epoch, "seconds": round(time.perf_counter() - t0, 2),
                 "lr": optimizer.param_groups[0]["lr"], **{k: round(v, 5) for k, v in losses.items()}}
        history.append(entry)
        if distributed.is_main_process():
            atomic_torch_save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                               "scheduler": scheduler.state_dict(), "epoch": epoch, "history": history},
                              run.checkpoint_path)
            if keep:
                atomic_torch_save(model.state_dict(), run.epoch_checkpoint_path(epoch + 1))
            run.log(" ".join(f"{k}={v}" for k, v in entry.items()))
        distributed.barrier()
    if report is not None:
        report({"phase": "evaluate"})
    t0 = time.perf_counter()
    metrics, headline = TASK_HOOKS[config.task].evaluate(model, test_set, dev, config, progress)
    artefacts = metrics.pop(ARTEFACTS, {})
    metrics = {**metrics, "task": config.task, "name": config.name, "config_hash": config_hash(config),
               "headline": headline, "eval_split": config.data.eval_split, "num_train_images": len(train_set),
               "num_eval_images": len(test_set), "classes": list(train_set.classes),
               "dropped_annotations": {"train": dropped_annotations(train_set), "eval": dropped_annotations(test_set)},
               "eval_seconds": round(time.perf_counter() - t0, 2), "history": history,
               "world_size": distributed.world_size(), "device": str(dev),
               "environment": numerics_environment(dev, dtype)}
    if distributed.is_main_process():
        atomic_torch_save(TASK_HOOKS[config.task].backbone_state(model), run.backbone_path)
        atomic_torch_save(model.state_dict(), run.model_path)
        for name, arrays in artefacts.items():  # per-image predictions (runs.load_predictions)
            atomic_write_npz(run.path / name, arrays)
        atomic_write_json(run.path / "config.json", to_dict(config))
        run.log(f"evaluation: {headline}")
        atomic_write_json(run.path / "metrics.json", metrics)
        run.write_manifest()  # last: size and SHA-256 of every artefact
    distributed.barrier()
    return metrics
