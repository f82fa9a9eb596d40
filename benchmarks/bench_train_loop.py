"""Training throughput of the ``mini`` detector: our loop against a bare torchvision loop, and the thread layout.

1. **Loop.** Our ``engine.train_one_epoch`` against the minimal torchvision-reference loop
   (``loss = sum(model(images, targets).values()); loss.backward(); optimizer.step(); scheduler.step()``) on
   IDENTICAL work: the same pre-collected batches (images after the training transforms), the same targets (the
   bare loop gets the training targets ready-made, ignored boxes already removed; ours removes them itself, which is
   part of its cost), the same model initialisation, optimizer and per-iteration LR schedule (warm-up included), the
   same RNG state (so the RPN and RoI samplers draw the same proposals), the same untimed warm-up iterations. Both
   loops therefore compute the same losses, which the script checks. Reported: images/s per core for each and the
   ratio ours / bare (>= 1.0: ours is not slower). A third line times ``fit``'s real pipeline (our loop over its
   DataLoader, decoding and augmenting on the fly) on the same images.
2. **Precision** (``--precision``): for each ``mini`` task (the detector fine-tuning, the IMAGENET-CLS classifier,
   DeepLabV3) the same pre-collected batches trained by ``engine.train_one_epoch`` in float32 and in bfloat16 autocast
   (``OptimSpec.cpu_bf16``), from the same initialisation and RNG state, in alternating order; images/s of each and
   their ratio, the training FLOPs of one step (``torch.utils.flop_counter.FlopCounterMode``: forward + backward),
   the share of this machine's measured one-thread GEMM peak that the step reaches (float32 and bfloat16 peaks,
   ``torch.mm`` of 2048 x 2048), and the largest difference between the two runs' per-iteration losses.
3. **Layout** (``--layout``): the same training step run as 1 process x 2 threads and as 2 processes x 1 thread at
   once (separate processes of this script, ``--worker``), total images/s of each: what ``runs execute`` should
   use on a 2-core machine.

    python benchmarks/bench_train_loop.py --profile mini --iters 20 --repeats 3 [--precision] [--layout] [--out r.json]

Corpora are generated into ``$DETPRETRAIN_DATA`` (default ``data/generated``) on first use.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import torch

from detpretrain import engine
from detpretrain.data.builders import training_target
from detpretrain.experiments.common import pretrain_configs, target_spec
from detpretrain.experiments.detection import finetune_config
from detpretrain.models.build import build_model
from detpretrain.profiles import get_profile


def bare_loop(model, optimizer, scheduler, batches) -> list[float]:
    """The torchvision reference's inner loop, nothing else; returns the loss of every iteration."""
    model.train()
    losses = []
    for images, targets in batches:
        loss = sum(model(images, targets).values())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        scheduler.step()
        losses.append(loss.item())
    return losses


def our_loop(model, optimizer, scheduler, batches) -> list[float]:
    """``engine.train_one_epoch`` (its per-iteration losses collected through ``on_step``)."""
    losses = []
    engine.train_one_epoch(model, optimizer, batches, torch.device("cpu"), 0, task="detection", scheduler=scheduler,
                           progress=False, on_step=lambda step: losses.append(step["loss"]))
    return losses


def _setup(cfg, num_classes: int, iters_per_epoch: int):
    torch.manual_seed(cfg.seed)
    model = build_model(cfg, num_classes)
    optimizer = engine.make_optimizer(model, cfg.optim)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, engine.lr_lambda(cfg.optim, iters_per_epoch))
    return model, optimizer, scheduler


def _config(profile: str):
    prof = get_profile(profile)
    return finetune_config(prof, "scratch", 0, target_spec(prof), pretrain_configs(prof))


def compare_loops(profile: str, iters: int, warmup: int, repeats: int) -> dict:
    cfg = _config(profile)
    train_set, _ = engine._datasets(cfg)
    torch.manual_seed(engine.epoch_seed(cfg.seed, 0))
    loader = engine._loader(cfg, train_set, 0)
    batches = []
    for images, targets in loader:  # decoded and augmented once, outside the timing
        batches.append((list(images), list(targets)))
        if len(batches) == warmup + iters:
            break
    ready = [(images, [training_target(t) for t in targets]) for images, targets in batches]
    loops = {"bare": (bare_loop, ready), "ours": (our_loop, batches)}
    seconds: dict[str, list[float]] = {"bare": [], "ours": [], "ours+data": []}
    losses: dict[str, list[float]] = {}
    n_images = iters * cfg.optim.batch_size
    for rep in range(repeats):
        for name in (("bare", "ours") if rep % 2 == 0 else ("ours", "bare")):
            loop, data = loops[name]
            model, optimizer, scheduler = _setup(cfg, len(train_set.classes), len(loader))
            torch.manual_seed(1234)  # the samplers' draws: the same in both loops
            first = loop(model, optimizer, scheduler, data[:warmup])
            t0 = time.perf_counter()
            rest = loop(model, optimizer, scheduler, data[warmup:])
            seconds[name].append(time.perf_counter() - t0)
            losses[name] = first + rest
        # fit's pipeline: the loop over the DataLoader (decoding and transforms inside the timing)
        model, optimizer, scheduler = _setup(cfg, len(train_set.classes), len(loader))
        torch.manual_seed(engine.epoch_seed(cfg.seed, 0))
        live = engine._loader(cfg, train_set, 0)
        it = iter(live)
        warm = [next(it) for _ in range(warmup)]
        engine.train_one_epoch(model, optimizer, warm, torch.device("cpu"), 0, task="detection", scheduler=scheduler,
                               progress=False)
        timed = _Take(it, iters)
        t0 = time.perf_counter()
        engine.train_one_epoch(model, optimizer, timed, torch.device("cpu"), 0, task="detection", scheduler=scheduler,
                               progress=False)
        seconds["ours+data"].append(time.perf_counter() - t0)
    threads = torch.get_num_threads()
    med = {k: statistics.median(v) for k, v in seconds.items()}
    best = {k: min(v) for k, v in seconds.items()}
    return {"profile": profile, "config": cfg.name, "batch_size": cfg.optim.batch_size, "iterations": iters,
            "warmup_iterations": warmup, "repeats": repeats, "threads": threads,
            "seconds": seconds, "median_seconds": med,
            "images_per_second_per_core": {k: n_images / v / threads for k, v in med.items()},
            "ratio_ours_over_bare": med["bare"] / med["ours"],
            "ratio_ours_over_bare_fastest": best["bare"] / best["ours"],
            "identical_losses": losses["bare"] == losses["ours"],
            "max_loss_difference": max(abs(a - b) for a, b in zip(losses["bare"], losses["ours"]))}


class _Take:
    """The next ``n`` batches of an iterator, with a length (``train_one_epoch`` reports it)."""

    def __init__(self, it, n: int):
        self.it, self.n = it, n

    def __len__(self) -> int:
        return self.n

    def __iter__(self):
        for _ in range(self.n):
            yield next(self.it)


def gemm_peak(dtype: torch.dtype, n: int = 2048, repeats: int = 5) -> float:
    """FLOP/s of ``torch.mm`` on two n x n matrices of ``dtype`` with the current thread count (best of ``repeats``)."""
    a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
    torch.mm(a, b)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best


def compare_precision(profile: str, tasks, iters: int, warmup: int, repeats: int) -> dict:
    """float32 against bfloat16 autocast on identical work, per task (see the module docstring, part 2)."""
    from torch.utils.flop_counter import FlopCounterMode

    from profile_step import _config as task_config  # the step profile_step.py profiles, per task

    prof = get_profile(profile)
    peaks = {"float32": gemm_peak(torch.float32), "bfloat16": gemm_peak(torch.bfloat16)}
    out = {"gemm_peak_gflops": {k: v / 1e9 for k, v in peaks.items()}, "tasks": {}}
    dtypes = {"float32": None, "bfloat16": torch.bfloat16}
    for task in tasks:
        cfg = task_config(prof, task)
        train_set, _ = engine._datasets(cfg)
        torch.manual_seed(engine.epoch_seed(cfg.seed, 0))
        loader = engine._loader(cfg, train_set, 0)
        batches = []
        for batch in loader:  # decoded and augmented once, outside the timing
            batches.append(batch)
            if len(batches) == warmup + iters:
                break
        classes = len(train_set.classes)

        def run(dtype, data, model, optimizer, scheduler):
            losses = []
            engine.train_one_epoch(model, optimizer, data, torch.device("cpu"), 0, task=cfg.task,
                                   scheduler=scheduler, progress=False, amp_dtype=dtype,
                                   on_step=lambda step: losses.append(step["loss"]))
            return losses

        flops = {}
        for name, dtype in dtypes.items():
            model, optimizer, scheduler = _setup(cfg, classes, len(loader))
            with FlopCounterMode(display=False) as counter:
                run(dtype, batches[:1], model, optimizer, scheduler)
            flops[name] = counter.get_total_flops()
        seconds: dict[str, list[float]] = {name: [] for name in dtypes}
        losses: dict[str, list[float]] = {}
        for rep in range(repeats):
            for name in (list(dtypes) if rep % 2 == 0 else list(dtypes)[::-1]):
                model, optimizer, scheduler = _setup(cfg, classes, len(loader))
                torch.manual_seed(1234)
                first = run(dtypes[name], batches[:warmup], model, optimizer, scheduler)
                t0 = time.perf_counter()
                rest = run(dtypes[name], batches[warmup:], model, optimizer, scheduler)
                seconds[name].append(time.perf_counter() - t0)
                losses[name] = first + rest
        batch_size = cfg.optim.batch_size
        med = {k: statistics.median(v) for k, v in seconds.items()}
        step = {k: v / iters for k, v in med.items()}
        out["tasks"][task] = {
            "config": cfg.name, "batch_size": batch_size, "seconds": seconds,
            "images_per_second": {k: iters * batch_size / v for k, v in med.items()},
            "ratio_bf16_over_fp32": med["float32"] / med["bfloat16"],
            "gflop_per_step": flops["float32"] / 1e9,
            "share_of_fp32_gemm_peak": {k: flops["float32"] / step[k] / peaks["float32"] for k in step},
            "share_of_bf16_gemm_peak_in_bf16": flops["float32"] / step["bfloat16"] / peaks["bfloat16"],
            "max_loss_difference": max(abs(a - b) for a, b in zip(losses["float32"], losses["bfloat16"])),
            "first_loss": {k: v[0] for k, v in losses.items()}, "last_loss": {k: v[-1] for k, v in losses.items()}}
    return out


def worker(profile: str, seconds: float, warmup: int) -> dict:
    """Train steps of the ``mini`` detector for ``seconds`` after ``warmup`` steps; images/s."""
    cfg = _config(profile)
    train_set, _ = engine._datasets(cfg)
    model, optimizer, scheduler = _setup(cfg, len(train_set.classes), 50)
    epoch, images, t0 = 0, 0, None
    while True:
        torch.manual_seed(engine.epoch_seed(cfg.seed, epoch))
        for k, (imgs, targets) in enumerate(engine._loader(cfg, train_set, epoch)):
            loss = sum(engine.detection_losses(model, imgs, targets, torch.device("cpu")).values())
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            scheduler.step()
            if t0 is None and k + 1 >= warmup:
                t0 = time.perf_counter()
            elif t0 is not None:
                images += len(imgs)
                if time.perf_counter() - t0 >= seconds:
                    return {"images": images, "seconds": time.perf_counter() - t0,
                            "images_per_second": images / (time.perf_counter() - t0)}
        epoch += 1


def layout(profile: str, seconds: float, warmup: int) -> dict:
    """1 process x 2 threads against 2 processes x 1 thread (started together), total images/s."""
    def start(threads: int):
        env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
        return subprocess.Popen([sys.executable, __file__, "--worker", "--profile", profile, "--threads", str(threads),
                                 "--seconds", str(seconds), "--warmup", str(warmup)], env=env,
                                stdout=subprocess.PIPE, text=True)

    out = {}
    for name, (processes, threads) in {"1x2": (1, 2), "2x1": (2, 1)}.items():
        procs = [start(threads) for _ in range(processes)]
        results = [json.loads(p.communicate()[0].strip().splitlines()[-1]) for p in procs]
        out[name] = {"processes": processes, "threads": threads,
                     "images_per_second": sum(r["images_per_second"] for r in results), "workers": results}
    out["ratio_2x1_over_1x2"] = out["2x1"]["images_per_second"] / out["1x2"]["images_per_second"]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", default="mini", choices=["smoke", "mini"])
    parser.add_argument("--iters", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch threads of the loop comparison")
    parser.add_argument("--precision", action="store_true",
                        help="also measure float32 against bfloat16 autocast for each mini task")
    parser.add_argument("--tasks", default="detection,classification,segmentation", help="--precision: tasks")
    parser.add_argument("--skip-loops", action="store_true", help="leave out the loop comparison (part 1)")
    parser.add_argument("--layout", action="store_true", help="also measure 1x2 against 2x1 threads")
    parser.add_argument("--seconds", type=float, default=60, help="--layout: timed seconds per worker")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.worker:
        print(json.dumps(worker(args.profile, args.seconds, args.warmup)))
        return
    report = {} if args.skip_loops else compare_loops(args.profile, args.iters, args.warmup, args.repeats)
    if report:
        per_core = report["images_per_second_per_core"]
        print(f"profile {args.profile}, {report['config']}: {args.iters} iterations of batch {report['batch_size']} "
              f"after {args.warmup} warm-up, {args.threads} thread(s), median of {args.repeats}")
        print(f"  bare torchvision loop         {per_core['bare']:7.2f} images/s per core")
        print(f"  detpretrain loop              {per_core['ours']:7.2f} images/s per core")
        print(f"  detpretrain loop + its data   {per_core['ours+data']:7.2f} images/s per core")
        print(f"  ours / bare (throughput)      {report['ratio_ours_over_bare']:7.3f} (fastest repeats: "
              f"{report['ratio_ours_over_bare_fastest']:.3f})")
        print(f"  identical losses              {report['identical_losses']} (max difference "
              f"{report['max_loss_difference']:.2e})")
    if args.precision:
        tasks = [t for t in args.tasks.split(",") if t]
        report["precision"] = prec = compare_precision(args.profile, tasks, args.iters, args.warmup, args.repeats)
        peak = prec["gemm_peak_gflops"]
        print(f"precision, {args.threads} thread(s), median of {args.repeats}; one-thread GEMM peak: float32 "
              f"{peak['float32']:.0f} GFLOP/s, bfloat16 {peak['bfloat16']:.0f} GFLOP/s "
              f"(native bfloat16: {engine.cpu_has_native_bf16()})")
        print(f"  {'task':<15} {'GFLOP/step':>10} {'fp32 img/s':>10} {'bf16 img/s':>10} {'bf16/fp32':>9} "
              f"{'fp32 % of fp32 peak':>19} {'bf16 % of fp32 / bf16 peak':>26} {'max loss diff':>13}")
        for task, r in prec["tasks"].items():
            ips, share = r["images_per_second"], r["share_of_fp32_gemm_peak"]
            print(f"  {task:<15} {r['gflop_per_step']:>10.2f} {ips['float32']:>10.1f} {ips['bfloat16']:>10.1f} "
                  f"{r['ratio_bf16_over_fp32']:>9.2f} {100 * share['float32']:>19.1f} "
                  f"{100 * share['bfloat16']:>14.1f} / {100 * r['share_of_bf16_gemm_peak_in_bf16']:>9.1f} "
                  f"{r['max_loss_difference']:>13.3f}")
    if args.layout:
        report["layout"] = lay = layout(args.profile, args.seconds, args.warmup)
        print(f"layout, {args.seconds:g} s per worker: 1 process x 2 threads {lay['1x2']['images_per_second']:.2f} "
              f"images/s, 2 processes x 1 thread {lay['2x1']['images_per_second']:.2f} images/s "
              f"(2x1 / 1x2 = {lay['ratio_2x1_over_1x2']:.2f})")
    if args.out:
        with open(args.out, "w") as f:
            json.dump(report, f, indent=2)


if __name__ == "__main__":
    main()
