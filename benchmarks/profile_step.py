"""Where one training step of the ``mini`` detector spends its time (torch.profiler), grouped by phase.

The step is exactly what :func:`detpretrain.engine.fit` runs for a ``mini`` detection fine-tuning (``resnet_tiny``,
128 px, batch 8, from scratch; ``--task classification`` profiles the IMAGENET-CLS pre-training instead): the DataLoader of :func:`detpretrain.engine._loader` (sampler, ``__getitem__``:
decoding + transforms, collate), then the task's loss (:data:`detpretrain.engine.TASK_HOOKS`: targets, forward),
``backward`` and the optimizer / scheduler step. Phases are marked with ``torch.profiler.record_function`` and the
table reports each phase's share of the wall time, then the most expensive operators (self CPU time).

    python benchmarks/profile_step.py --steps 20 --threads 1 [--out profile.json] [--trace trace.json]

Corpora are generated into ``$DETPRETRAIN_DATA`` (default ``data/generated``) on first use.
"""

from __future__ import annotations

import argparse
import json
import time

import torch
from torch.profiler import ProfilerActivity, profile, record_function

from detpretrain import engine
from detpretrain.experiments.common import pretrain_configs, target_spec
from detpretrain.experiments.detection import finetune_config
from detpretrain.models.build import build_model
from detpretrain.profiles import get_profile

PHASES = ("data", "forward", "backward", "optimizer")


def _timed_steps(model, optimizer, scheduler, loader, steps: int, device, task: str) -> dict[str, float]:
    """Run ``steps`` iterations, each phase under ``record_function`` and timed with perf_counter."""
    seconds = dict.fromkeys(PHASES, 0.0)
    it = iter(loader)
    for _ in range(steps):
        t0 = time.perf_counter()
        with record_function("phase:data"):
            images, targets = next(it)
        t1 = time.perf_counter()
        with record_function("phase:forward"):
            losses = engine.TASK_HOOKS[task].losses(model, images, targets, device)
            loss = sum(losses.values())
        t2 = time.perf_counter()
        with record_function("phase:backward"):
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
        t3 = time.perf_counter()
        with record_function("phase:optimizer"):
            optimizer.step()
            scheduler.step()
        t4 = time.perf_counter()
        for name, dt in zip(PHASES, (t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
            seconds[name] += dt
    return seconds


def _baseline(model, train_set) -> None:
    """Put back the library paths that the compute issue replaced (same numbers, slower)."""
    from torchvision.ops import MultiScaleRoIAlign
    from torchvision.transforms import v2

    from detpretrain.data._io import decode_image
    from detpretrain.data.builders import IMAGENET_MEAN, IMAGENET_STD

    heads = getattr(model, "roi_heads", None)
    if heads is not None:
        heads.box_roi_pool = MultiScaleRoIAlign(["0", "1", "2", "3"], 7, 2)
    if hasattr(train_set, "loader") and hasattr(train_set, "transform"):
        train_set.loader = decode_image
        train_set.transform = v2.Compose([v2.RandomHorizontalFlip(0.5), v2.ToDtype(torch.float32, scale=True),
                                          v2.Normalize(IMAGENET_MEAN, IMAGENET_STD)])


def _config(prof, task: str):
    pretrained = pretrain_configs(prof)
    if task == "classification":
        return pretrained["imagenet-cls"]
    if task == "segmentation":
        from detpretrain.experiments.segmentation import segmentation_config

        return segmentation_config(prof, "scratch", 0, target_spec(prof), pretrained)
    return finetune_config(prof, "scratch", 0, target_spec(prof), pretrained)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", default="mini", choices=["smoke", "mini"])
    parser.add_argument("--task", default="detection", choices=["detection", "classification", "segmentation"],
                        help="detection: a from-scratch fine-tuning; classification: the IMAGENET-CLS pre-training; "
                             "segmentation: a from-scratch DeepLabV3 fine-tuning")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--top", type=int, default=25, help="operators listed")
    parser.add_argument("--out", default=None, help="write the phase table and operator list as JSON")
    parser.add_argument("--trace", default=None, help="write a Chrome trace (chrome://tracing, Perfetto)")
    parser.add_argument("--baseline", action="store_true",
                        help="the code paths before the compute issue: torchvision's MultiScaleRoIAlign, the v2 "
                             "Compose of the classification transforms, decoding every epoch")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    prof = get_profile(args.profile)
    cfg = _config(prof, args.task)
    train_set, _ = engine._datasets(cfg)
    device = torch.device("cpu")
    torch.manual_seed(cfg.seed)
    model = build_model(cfg, len(train_set.classes)).to(device).train()
    if args.baseline:
        _baseline(model, train_set)
    optimizer = engine.make_optimizer(model, cfg.optim)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, engine.lr_lambda(cfg.optim, 50))
    torch.manual_seed(engine.epoch_seed(cfg.seed, 0))
    loader = engine._loader(cfg, train_set, 0)
    _timed_steps(model, optimizer, scheduler, loader, args.warmup, device, cfg.task)

    loader = engine._loader(cfg, train_set, 1)
    with profile(activities=[ProfilerActivity.CPU], record_shapes=False) as p:
        t0 = time.perf_counter()
        seconds = _timed_steps(model, optimizer, scheduler, loader, args.steps, device, cfg.task)
        wall = time.perf_counter() - t0
    total = sum(seconds.values())
    print(f"{'baseline ' if args.baseline else ''}profile {args.profile}, {cfg.name}: {args.steps} steps of batch {cfg.optim.batch_size}, {args.threads} thread(s), "
          f"{wall / args.steps * 1000:.1f} ms/step ({cfg.optim.batch_size * args.steps / wall:.1f} images/s; "
          "the profiler adds overhead)")
    print(f"{'phase':<12} {'ms/step':>9} {'share':>7}")
    for name in PHASES:
        print(f"{name:<12} {seconds[name] / args.steps * 1000:>9.1f} {seconds[name] / total:>7.1%}")
    events = [e for e in p.key_averages() if not e.key.startswith("phase:")]
    events.sort(key=lambda e: e.self_cpu_time_total, reverse=True)
    cpu_total = sum(e.self_cpu_time_total for e in events) or 1
    print(f"\ntop {args.top} operators by self CPU time (share of all operator self time)")
    print(f"{'operator':<52} {'calls':>7} {'self ms/step':>13} {'share':>7}")
    ops = []
    for e in events[:args.top]:
        ms = e.self_cpu_time_total / 1000 / args.steps
        ops.append({"op": e.key, "calls": e.count, "self_ms_per_step": ms, "share": e.self_cpu_time_total / cpu_total})
        print(f"{e.key[:52]:<52} {e.count:>7} {ms:>13.2f} {e.self_cpu_time_total / cpu_total:>7.1%}")
    if args.trace:
        p.export_chrome_trace(args.trace)
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"profile": args.profile, "baseline": args.baseline, "task": args.task, "steps": args.steps, "threads": args.threads,
                       "batch_size": cfg.optim.batch_size, "ms_per_step": wall / args.steps * 1000,
                       "phases_ms_per_step": {k: v / args.steps * 1000 for k, v in seconds.items()},
                       "operators": ops}, f, indent=2)


if __name__ == "__main__":
    main()
