"""End-to-end training on the smoke profile: determinism, torchrun DDP, real COCO subset (resuming after a kill is
in test_faults.py, with the other faults).

These train real (tiny) models; each run takes seconds on 2 cores.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from detpretrain import engine
from detpretrain.models.build import build_model
from detpretrain.experiments.common import pretrain_configs, target_spec
from detpretrain.experiments.detection import finetune_config, run_detection_experiment
from detpretrain.profiles import get_profile
from detpretrain.runs import RunStore, get_or_train

PAPER_IOUS = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]


@pytest.fixture(scope="module")
def experiment(corpus_dir, smoke_store):
    result = run_detection_experiment("smoke", store=smoke_store, progress=False, log=lambda s: None)
    return result, smoke_store


def _scratch_config(epochs=2):
    prof = get_profile("smoke")
    cfg = finetune_config(prof, "scratch", 0, target_spec(prof), pretrain_configs(prof))
    from detpretrain.config import replace_path

    return replace_path(cfg, "optim.epochs", epochs)


def test_smoke_experiment_trains_every_backbone_and_evaluates(experiment):
    result, store = experiment
    assert [r["pretrain"] for r in result["runs"]] == ["imagenet-cls", "detection", "scratch"]
    for r in result["runs"]:
        m = r["metrics"]
        assert m["iou_thresholds"] == pytest.approx(PAPER_IOUS)
        assert len(m["mAP"]) == 9 and all(0.0 <= v <= 100.0 for v in m["mAP"])
        # AP can only fall as the IoU threshold rises (a TP at IoU t is a TP at every lower threshold)
        assert all(a >= b - 1e-9 for a, b in zip(m["mAP"], m["mAP"][1:]))
        assert len(m["history"]) == get_profile("smoke").finetune.epochs
        run_dir = Path(r["run"])
        for name in ("config.json", "metrics.json", "backbone.pt", "model.pt", "log.txt", "checkpoints/last.pt"):
            assert (run_dir / name).exists(), name
    assert set(result["pretrain_runs"]) == {"imagenet-cls", "detection"}
    cls_metrics = json.loads((Path(result["pretrain_runs"]["imagenet-cls"]) / "metrics.json").read_text())
    assert cls_metrics["task"] == "classification" and 0 <= cls_metrics["top1"] <= 100
    # the classifier keeps its per-image predictions: top-1 is their agreement with the labels
    from detpretrain.runs import load_predictions

    pred = load_predictions(result["pretrain_runs"]["imagenet-cls"])
    assert len(pred["predicted"]) == cls_metrics["num_images"] == len(pred["label"])
    assert 100 * (pred["predicted"] == pred["label"]).mean() == pytest.approx(cls_metrics["top1"])
    assert "predictions" not in cls_metrics and "detections" not in result["runs"][0]["metrics"]


def test_second_call_reuses_the_run_store(experiment, monkeypatch):
    """Store reuse, proved once for every chain (they all train through ``runs.get_or_train``): nothing trains."""
    result, store = experiment
    before = {r["run"]: Path(r["run"], "metrics.json").stat().st_mtime_ns for r in result["runs"]}

    def no_training(config, *args, **kwargs):
        raise AssertionError(f"{config.name} was trained again")

    monkeypatch.setattr(engine, "fit", no_training)
    again = run_detection_experiment("smoke", store=store, progress=False, log=lambda s: None)
    assert {r["run"]: Path(r["run"], "metrics.json").stat().st_mtime_ns for r in again["runs"]} == before
    assert [r["metrics"]["mAP"] for r in again["runs"]] == [r["metrics"]["mAP"] for r in result["runs"]]


def test_detection_pretraining_starts_from_the_classification_backbone(experiment):
    result, store = experiment
    det_cfg = json.loads((Path(result["pretrain_runs"]["detection"]) / "config.json").read_text())
    cls_name = Path(result["pretrain_runs"]["imagenet-cls"]).name
    assert det_cfg["init"] == "run:" + cls_name.split("-", 1)[1]


def test_same_seed_same_metrics(corpus_dir, tmp_path):
    cfg = _scratch_config()
    a = get_or_train(cfg, RunStore(tmp_path / "a"), progress=False).metrics
    b = get_or_train(cfg, RunStore(tmp_path / "b"), progress=False).metrics
    assert a["mAP"] == b["mAP"]
    assert [h["loss"] for h in a["history"]] == [h["loss"] for h in b["history"]]


def _run_group(cmd, env, timeout):
    """subprocess.run in a new session; on timeout the whole group (torchrun and its workers) is killed."""
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def test_torchrun_two_processes_train_and_evaluate(corpus_dir, tmp_path):
    """DDP with gloo on CPU: 2 processes, each half of the global batch; evaluation gathered on rank 0."""
    out = tmp_path / "ddp.json"
    env = {**os.environ, "DETPRETRAIN_DATA": str(corpus_dir), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m",
           "detpretrain", "train", "--profile", "smoke", "--pretrain", "scratch", "--store", str(tmp_path / "runs"),
           "--out", str(out)]
    proc = _run_group(cmd, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(out.read_text())
    (run,) = result["runs"]
    m = run["metrics"]
    assert m["world_size"] == 2 and len(m["mAP"]) == 9
    assert "mAP (%) vs IoU threshold" in proc.stdout
    # the sharded, gathered evaluation equals a single-process evaluation of the same weights
    import torch

    from detpretrain.config import from_dict
    from detpretrain.data.builders import build_detection_dataset

    cfg = from_dict(json.loads((Path(run["run"]) / "config.json").read_text()))
    test_set = build_detection_dataset(cfg.data, cfg.data.eval_split, train=False)
    model = build_model(cfg, len(test_set.classes))
    model.load_state_dict(torch.load(Path(run["run"]) / "model.pt", weights_only=True))
    single = engine.evaluate_detector(model, test_set, torch.device("cpu"), iou_thresholds=cfg.eval_iou_thresholds,
                                      progress=False)
    assert single["mAP"] == pytest.approx(m["mAP"], abs=1e-9)


_TRAIN_TASKS = """
import json, sys
from detpretrain import distributed
from detpretrain.experiments.classification import cls_finetune_config, transfer_target
from detpretrain.experiments.common import pretrain_configs
from detpretrain.experiments.segmentation import segmentation_config, segmentation_target
from detpretrain.profiles import get_profile
from detpretrain.runs import RunStore, get_or_train

prof = get_profile("smoke")
pre = pretrain_configs(prof)
configs = {"classification": cls_finetune_config(prof, "scratch", 0, transfer_target(prof, "caltech"), pre),
           "segmentation": segmentation_config(prof, "scratch", 0, segmentation_target(prof), pre)}
runs = {task: str(get_or_train(cfg, RunStore(sys.argv[1]), device="cpu", progress=False).path)
        for task, cfg in configs.items()}
if distributed.is_main_process():
    json.dump(runs, open(sys.argv[2], "w"))
"""


def test_torchrun_trains_classification_and_segmentation(corpus_dir, tmp_path):
    """The other two tasks under DDP (gloo on CPU, 2 processes, each half of the global batch): they train, and the
    gathered evaluation of the stored model equals a single process's evaluation of it."""
    import torch

    from detpretrain.runs import load_run_model

    script, out = tmp_path / "train_tasks.py", tmp_path / "runs.json"
    script.write_text(_TRAIN_TASKS)
    env = {**os.environ, "DETPRETRAIN_DATA": str(corpus_dir), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(script),
           str(tmp_path / "runs"), str(out)]
    proc = _run_group(cmd, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs = json.loads(out.read_text())
    for task, path in runs.items():
        metrics = json.loads((Path(path) / "metrics.json").read_text())
        assert metrics["world_size"] == 2 and metrics["task"] == task and len(metrics["history"]) == 2
        model, cfg, _ = load_run_model(path)
        _, test_set = engine._datasets(cfg)
        if task == "classification":
            single = engine.evaluate_classifier(model, test_set, torch.device("cpu"))
            assert single["top1"] == pytest.approx(metrics["top1"], abs=1e-9)
            assert metrics["num_images"] == len(test_set)
        else:
            single = engine._evaluate_segmentation(model, test_set, torch.device("cpu"), cfg, False)[0]
            assert single["mIoU"] == pytest.approx(metrics["mIoU"], abs=1e-6)


def test_real_coco_subset_end_to_end(corpus_dir, coco_subset, tmp_path):
    """train2017 -> val2017 of the genuine COCO subset, from scratch, smoke schedule."""
    result = run_detection_experiment("smoke", dataset="coco", data_root=str(coco_subset), pretrains=("scratch",),
                                      store=RunStore(tmp_path), progress=False, log=lambda s: None,
                                      overrides={"optim.epochs": 1})
    (run,) = result["runs"]
    m = run["metrics"]
    assert m["num_train_images"] == 130 and m["num_eval_images"] == 128
    assert len(m["classes"]) == 81  # 80 COCO categories + background
    assert len(m["mAP"]) == 9


def test_channels_last_models_give_the_losses_of_contiguous_ones(task_step_cases):
    """What ``engine.prepare_model`` does on CUDA, run on the CPU: every task's model in the ``channels_last`` layout
    (weights and input batches) computes the same losses and gradients as the contiguous model, so the layout changes
    speed only (no view of a permuted tensor breaks in torchvision's detector, DeepLabV3 or our heads). In float64,
    where the two layouts' kernels round alike (in float32 a near-zero gradient, DeepLabV3's pooling branch, passes
    its rounding on to the first conv's gradient at the percent level)."""
    import copy

    import torch

    cases = task_step_cases(torch.float64)
    for task, (cfg, classes, (x, y)) in cases.items():
        torch.manual_seed(0)
        # DeepLabV3's head has dropout, whose mask follows the memory layout: compared without it (eval mode)
        plain = build_model(cfg, classes).train(task != "segmentation").double()
        nhwc = copy.deepcopy(plain).to(memory_format=torch.channels_last)
        grads = {}
        for name, model in (("plain", plain), ("nhwc", nhwc)):
            inputs = x if task == "detection" or name == "plain" else x.contiguous(memory_format=torch.channels_last)
            torch.manual_seed(1)  # the detector samples anchors and RoIs
            loss = sum(engine.TASK_HOOKS[task].losses(model, inputs, y, torch.device("cpu")).values())
            loss.backward()
            grads[name] = {"loss": loss.detach(), **{n: p.grad for n, p in model.named_parameters()
                                                     if p.grad is not None}}
        for key, value in grads["plain"].items():
            assert torch.allclose(grads["nhwc"][key], value, rtol=1e-7, atol=1e-12), (task, key)
