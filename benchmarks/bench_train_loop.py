"""Our training loop (``detpretrain.engine.train_one_epoch``) against a bare torchvision-style loop, same model/data.

Both loops train the same Faster R-CNN + FPN (built by ``build_faster_rcnn`` from the same seed) on the same
generated smoke/mini VOC-like corpus, with the same batches in the same order; the bare loop is the minimal
``for images, targets in loader: loss = sum(model(images, targets).values()); loss.backward(); opt.step()``.
The ratio (ours / bare seconds per iteration) is the overhead of our loop: target drops of ignored boxes, the
finite-loss check, per-iteration scheduler, loss bookkeeping. Run:

    python benchmarks/bench_train_loop.py --profile smoke --iters 30 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time

import torch
from torch.utils.data import DataLoader, Subset

from detpretrain import engine
from detpretrain.models.build import build_model
from detpretrain.data import synthetic
from detpretrain.data.builders import build_detection_dataset, collate_detection
from detpretrain.experiments.common import pretrain_configs, target_spec
from detpretrain.experiments.detection import finetune_config
from detpretrain.profiles import get_profile


def bare_loop(model, optimizer, loader) -> None:
    model.train()
    for images, targets in loader:
        tgts = [{"boxes": t["boxes"].as_subclass(torch.Tensor), "labels": t["labels"]} for t in targets]
        loss = sum(model(list(images), tgts).values())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", default="smoke", choices=["smoke", "mini"])
    parser.add_argument("--iters", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()

    prof = get_profile(args.profile)
    cfg = finetune_config(prof, "scratch", 0, target_spec(prof), pretrain_configs(prof))
    with tempfile.TemporaryDirectory() as cache:
        os.environ["DETPRETRAIN_DATA"] = cache
        synthetic.generate(synthetic.CorpusSpec(**cfg.data.corpus), cache)
        dataset = build_detection_dataset(cfg.data, cfg.data.train_split, train=False)
        n = min(len(dataset), args.iters * cfg.optim.batch_size)
        loader = DataLoader(Subset(dataset, range(n)), batch_size=cfg.optim.batch_size, collate_fn=collate_detection)
        batches = list(loader)  # decode once: both loops time the model, not JPEG decoding
        times = {"ours": [], "bare": []}
        for _ in range(args.repeats):
            for name in ("bare", "ours"):
                torch.manual_seed(0)
                model = build_model(cfg, len(dataset.classes))
                optimizer = engine.make_optimizer(model, cfg.optim)
                t0 = time.perf_counter()
                if name == "bare":
                    bare_loop(model, optimizer, batches)
                else:
                    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, engine.lr_lambda(cfg.optim, len(batches)))
                    engine.train_one_epoch(model, optimizer, batches, torch.device("cpu"), 0, task="detection",
                                           scheduler=scheduler, progress=False)
                times[name].append((time.perf_counter() - t0) / len(batches))
    ours, bare = statistics.median(times["ours"]), statistics.median(times["bare"])
    report = {"profile": args.profile, "iterations": len(batches), "batch_size": cfg.optim.batch_size,
              "seconds_per_iter": {"ours": ours, "bare": bare}, "ratio_ours_over_bare": ours / bare,
              "torch_threads": torch.get_num_threads()}
    print(f"profile {args.profile}: {len(batches)} iterations of batch {cfg.optim.batch_size}, "
          f"median of {args.repeats}")
    print(f"  bare torchvision loop  {bare * 1000:8.1f} ms/iter")
    print(f"  detpretrain loop       {ours * 1000:8.1f} ms/iter")
    print(f"  ratio ours / bare      {ours / bare:8.3f}")
    if args.out:
        with open(args.out, "w") as f:
            json.dump(report, f, indent=2)


if __name__ == "__main__":
    main()
