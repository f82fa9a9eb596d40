"""Training and evaluation loops in the style of torchvision's ``references/detection``.

Plain functions: :func:`train_one_epoch`, :func:`evaluate_detector`, :func:`evaluate_classifier` and
:func:`fit`, which runs a whole :class:`~detpretrain.config.TrainConfig` into a run directory with a checkpoint
after every epoch and resumes from it.

Determinism: model initialisation is seeded with ``config.seed``; at the start of epoch ``e`` both the data order
(the sampler's generator / ``DistributedSampler.set_epoch``) and the augmentation RNG are re-seeded from
``(seed, e)``. Resuming after an interruption therefore redoes the interrupted epoch exactly as it would have run,
and on CPU the final metrics equal those of an uninterrupted run.

Distributed: under ``torchrun`` the model is wrapped in ``DistributedDataParallel``, each rank sees its shard of
every epoch (``DistributedSampler``), the per-GPU batch is ``optim.batch_size // world_size`` (so the global batch
and the learning rate do not change with the number of processes), and evaluation gathers the detections on rank 0.
"""

from __future__ import annotations

import math
import time
from contextlib import nullcontext

import torch
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler, RandomSampler, Subset
from tqdm.auto import tqdm

from detpretrain import distributed
from detpretrain.config import TrainConfig, config_hash, to_dict
from detpretrain.data.builders import (
    build_classification_dataset,
    build_detection_dataset,
    collate_detection,
    training_target,
)
from detpretrain.errors import ConfigError
from detpretrain.models.backbones import backbone_state_dict, build_backbone
from detpretrain.models.detection import build_faster_rcnn


def epoch_seed(seed: int, epoch: int) -> int:
    """The RNG seed of one epoch (data order and augmentation)."""
    return 1_000_003 * seed + epoch


def seed_everything(seed: int) -> None:
    """Seed torch (CPU and CUDA). Python's and NumPy's RNGs are not used by the training code."""
    torch.manual_seed(seed)


def build_model(config: TrainConfig, num_classes: int, backbone_weights=None) -> nn.Module:
    """The model of a run: a ResNet classifier or a Faster R-CNN + FPN detector (heads freshly initialised)."""
    m = config.model
    if config.task == "classification":
        return build_backbone(m.arch, norm=m.norm, widths=m.widths, num_classes=num_classes, weights=backbone_weights)
    return build_faster_rcnn(
        num_classes,
        arch=m.arch,
        norm=m.norm,
        widths=m.widths,
        backbone_weights=backbone_weights,
        fpn_channels=m.fpn_channels,
        representation_size=m.representation_size,
        anchor_sizes=m.anchor_sizes,
        min_size=m.min_size,
        max_size=m.max_size,
        trainable_stages=m.trainable_stages,
        rpn_pre_nms_top_n=tuple(m.rpn_pre_nms_top_n),
        rpn_post_nms_top_n=tuple(m.rpn_post_nms_top_n),
        box_batch_size_per_image=m.box_batch_size_per_image,
    )


def resolve_init(init: str | None, store=None):
    """Backbone weights for ``config.init``: None, a path, a torchvision enum name, or a stored run's backbone."""
    if init is None:
        return None
    if init.startswith("run:"):
        from detpretrain.runs import RunStore

        run = (store or RunStore()).resolve(init)
        if not run.complete:
            raise ConfigError(f"{run.path}: the pre-training run {init} is not complete")
        return run.backbone_path
    if init.startswith("torchvision:"):
        return init.removeprefix("torchvision:")
    return init


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


def train_one_epoch(model, optimizer, loader, device, epoch: int, *, task: str, scheduler=None, scaler=None,
                    progress: bool = True) -> dict[str, float]:
    """One pass over ``loader``; returns the mean of each loss (averaged over ranks).

    Args:
        task: ``"detection"`` (``model(images, targets)`` returns torchvision's loss dict: loss_classifier,
            loss_box_reg, loss_objectness, loss_rpn_box_reg) or ``"classification"`` (cross-entropy on logits).
        scheduler: stepped once per iteration (warm-up + steps, :func:`lr_lambda`).
        scaler: a ``torch.amp.GradScaler`` for mixed precision on CUDA, else None.

    Raises:
        FloatingPointError: the loss became NaN or infinite (diverged); the last checkpoint stays intact.
    """
    model.train()
    sums: dict[str, float] = {}
    n = 0
    amp = torch.autocast(device.type, dtype=torch.float16) if scaler is not None else nullcontext()
    show = progress and distributed.is_main_process()
    bar = tqdm(loader, desc=f"epoch {epoch}", leave=False, disable=None if show else True)  # None: only on a TTY
    for it, (inputs, targets) in enumerate(bar):
        with amp:
            if task == "detection":
                images = [img.to(device, non_blocking=True) for img in inputs]
                tgts = [{k: v.to(device) for k, v in training_target(t).items()} for t in targets]
                losses = model(images, tgts)
            else:
                logits = model(inputs.to(device, non_blocking=True))
                losses = {"loss_ce": nn.functional.cross_entropy(logits, targets.to(device))}
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
        bar.set_postfix(loss=f"{float(loss.detach()):.3f}", lr=f"{optimizer.param_groups[0]['lr']:.4f}")
    return distributed.all_reduce_mean({k: v / max(n, 1) for k, v in sums.items()})


def _fmt(d: dict) -> str:
    return ", ".join(f"{k}={float(v):.4f}" for k, v in d.items())


def _shard(dataset):
    """This rank's shard for evaluation: indices rank, rank + W, rank + 2W, ... (no padding duplicates)."""
    if not distributed.is_distributed():
        return dataset
    return Subset(dataset, list(range(distributed.rank(), len(dataset), distributed.world_size())))


@torch.no_grad()
def evaluate_detector(model, dataset, device, *, iou_thresholds, metric: str = "voc07", batch_size: int = 4,
                      progress: bool = True) -> dict:
    """Detect on every image of ``dataset`` and compute AP per class and mAP at each IoU threshold.

    Args:
        dataset: a detection dataset of :mod:`detpretrain.data` (evaluation transforms).
        iou_thresholds: e.g. (0.1, ..., 0.9) for the paper's Figure 1.
        metric: ``"voc07"`` (11-point, the paper's), ``"voc"`` (all-point) or ``"coco"`` (pycocotools).

    Returns:
        the dict of :func:`detpretrain.evaluation.detection.evaluate_detections` (AP in percent), identical on
        every rank.
    """
    from detpretrain.data.coco import to_coco_gt
    from detpretrain.evaluation.detection import DetectionEvaluator

    model = getattr(model, "module", model)
    model.eval()
    evaluator = DetectionEvaluator(to_coco_gt(dataset), list(iou_thresholds), metric=metric)
    loader = DataLoader(_shard(dataset), batch_size=batch_size, shuffle=False, collate_fn=collate_detection)
    for images, targets in tqdm(loader, desc="evaluate", leave=False,
                                disable=None if (progress and distributed.is_main_process()) else True):
        outputs = model([img.to(device) for img in images])
        evaluator.process([int(t["image_id"]) for t in targets], [{k: v.cpu() for k, v in o.items()} for o in outputs])
    return evaluator.evaluate()  # gathers every rank's detections under torchrun


@torch.no_grad()
def evaluate_classifier(model, dataset, device, *, batch_size: int = 64) -> dict:
    """Top-1 accuracy in percent on ``dataset`` (gathered over ranks)."""
    model = getattr(model, "module", model)
    model.eval()
    loader = DataLoader(_shard(dataset), batch_size=batch_size, shuffle=False)
    correct = total = 0
    for x, y in loader:
        pred = model(x.to(device)).argmax(1).cpu()
        correct += int((pred == y).sum())
        total += len(y)
    counts = distributed.all_gather_objects((correct, total))
    correct, total = sum(c for c, _ in counts), sum(t for _, t in counts)
    return {"top1": 100.0 * correct / max(total, 1), "num_images": total}


def _datasets(config: TrainConfig):
    d, m, o = config.data, config.model, config.optim
    if config.task == "detection":
        train = build_detection_dataset(d, d.train_split, train=True, hflip=o.hflip)
        test = build_detection_dataset(d, d.eval_split, train=False)
    else:
        train = build_classification_dataset(d, d.train_split, train=True, size=m.image_size, hflip=o.hflip)
        test = build_classification_dataset(d, d.eval_split, train=False, size=m.image_size)
    return train, test


def _loader(config: TrainConfig, dataset, epoch: int) -> DataLoader:
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
        collate_fn=collate_detection if config.task == "detection" else None,
        drop_last=True,
        generator=generator,
        persistent_workers=False,
    )


def fit(config: TrainConfig, run, *, store=None, device: str = "auto", progress: bool = True) -> dict:
    """Train ``config`` into ``run`` (a :class:`detpretrain.runs.Run`), resuming from its last checkpoint.

    After each epoch a checkpoint (model, optimizer, scheduler, epoch, history) replaces ``checkpoints/last.pt``
    atomically. At the end the model is evaluated on ``data.eval_split`` and ``backbone.pt``, ``model.pt`` and,
    last, ``metrics.json`` are written (rank 0 only).

    Args:
        store: the run store that resolves ``init="run:<hash>"`` (default: :class:`~detpretrain.runs.RunStore`).
        device: ``"auto"``, ``"cpu"``, ``"cuda"``; under torchrun each rank takes ``cuda:LOCAL_RANK``.
        progress: tqdm bars (on a terminal, main process only).

    Returns:
        the metrics dict (also in ``metrics.json``).
    """
    from detpretrain.runs import atomic_torch_save, atomic_write_json

    dev = distributed.init(device)
    train_set, test_set = _datasets(config)
    num_classes = len(train_set.classes)
    seed_everything(config.seed)
    model = build_model(config, num_classes, backbone_weights=resolve_init(config.init, store)).to(dev)
    optimizer = make_optimizer(model, config.optim)
    iters_per_epoch = len(train_set) // config.optim.batch_size
    if iters_per_epoch == 0:
        raise ConfigError(f"{config.data.describe()}: {len(train_set)} training images < batch size "
                          f"{config.optim.batch_size}")
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(config.optim, iters_per_epoch))
    scaler = torch.amp.GradScaler("cuda") if (config.optim.amp and dev.type == "cuda") else None
    start_epoch, history = 0, []
    if run.checkpoint_path.exists():
        ckpt = torch.load(run.checkpoint_path, map_location="cpu", weights_only=True)
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        scheduler.load_state_dict(ckpt["scheduler"])
        start_epoch, history = ckpt["epoch"] + 1, ckpt["history"]
        if distributed.is_main_process():
            run.log(f"resumed from {run.checkpoint_path} after epoch {ckpt['epoch']}")
    train_model = model
    if distributed.is_distributed():
        train_model = nn.parallel.DistributedDataParallel(model, device_ids=[dev.index] if dev.type == "cuda" else None)
    for epoch in range(start_epoch, config.optim.epochs):
        torch.manual_seed(epoch_seed(config.seed, epoch))  # augmentation RNG of this epoch
        t0 = time.perf_counter()
        losses = train_one_epoch(train_model, optimizer, _loader(config, train_set, epoch), dev, epoch,
                                 task=config.task, scheduler=scheduler, scaler=scaler, progress=progress)
        entry = {"epoch": epoch, "seconds": round(time.perf_counter() - t0, 2),
                 "lr": optimizer.param_groups[0]["lr"], **{k: round(v, 5) for k, v in losses.items()}}
        history.append(entry)
        if distributed.is_main_process():
            atomic_torch_save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                               "scheduler": scheduler.state_dict(), "epoch": epoch, "history": history},
                              run.checkpoint_path)
            run.log(" ".join(f"{k}={v}" for k, v in entry.items()))
        distributed.barrier()
    t0 = time.perf_counter()
    if config.task == "detection":
        metrics = evaluate_detector(model, test_set, dev, iou_thresholds=config.eval_iou_thresholds,
                                    metric=config.eval_metric, progress=progress)
        ap = dict(zip([round(t, 2) for t in metrics["iou_thresholds"]], metrics["mAP"]))
        headline = " ".join(f"mAP@{t}={ap[t]:.1f}" for t in (0.5, 0.7) if t in ap)
    else:
        metrics = evaluate_classifier(model, test_set, dev)
        headline = f"top1={metrics['top1']:.1f}"
    metrics = {**metrics, "task": config.task, "name": config.name, "config_hash": config_hash(config),
               "headline": headline, "eval_split": config.data.eval_split, "num_train_images": len(train_set),
               "num_eval_images": len(test_set), "classes": list(train_set.classes),
               "eval_seconds": round(time.perf_counter() - t0, 2), "history": history,
               "world_size": distributed.world_size(), "device": str(dev)}
    if distributed.is_main_process():
        atomic_torch_save(backbone_state_dict(model), run.backbone_path)
        atomic_torch_save(model.state_dict(), run.model_path)
        atomic_write_json(run.path / "config.json", to_dict(config))
        run.log(f"evaluation: {headline}")
        atomic_write_json(run.path / "metrics.json", metrics)
    distributed.barrier()
    return metrics
