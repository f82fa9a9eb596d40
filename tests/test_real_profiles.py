"""The GPU profiles' real-data paths through the chapters, checked without a GPU: what each chapter plans and says,
the COCO root of the paper profile's detection pre-training, and the early, clear refusals."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from detpretrain.book import book_plan
from detpretrain.cli import main as cli_main
from detpretrain.config import config_hash
from detpretrain.errors import ConfigError, ParameterError
from detpretrain.executor import execute
from detpretrain.experiments.classification import run_classification_transfer, transfer_target
from detpretrain.experiments.common import target_spec
from detpretrain.parameters import check_parameters
from detpretrain.plan import chapter_runs
from detpretrain.profiles import get_profile
from detpretrain.runs import RunStore
from detpretrain.scope import chapter_note, real_pretrains

PROJECT = Path(__file__).resolve().parents[1]
REAL_CHAPTERS = ["intro", "pretraining", "detection", "segmentation", "classification", "feature_space",
                 "visualisations", "eigenspectrum", "frozen_backbone"]


def test_notes_say_what_is_real_only_at_the_gpu_profiles():
    assert chapter_note("detection", "smoke") == "" == chapter_note("classification", "mini")
    tv = chapter_note("classification", "torchvision")
    assert tv.startswith("**Real data at profile `torchvision`.**")
    assert "`ResNet50_Weights.IMAGENET1K_V1`" in tv and "`FasterRCNN_ResNet50_FPN_Weights.COCO_V1`" in tv
    assert "IMAGENET-LOC backbones are left out" in tv
    paper = chapter_note("detection", get_profile("paper"))
    assert "pre-trained here on COCO 2017" in paper and "ResNet101_Weights.IMAGENET1K_V2" in paper
    assert "Synthetic-only: Figures 4 and 5" in chapter_note("visualisations", "torchvision")
    assert "empty (–)" in chapter_note("feature_space", "torchvision", dataset="pet")
    assert real_pretrains("torchvision", ["imagenet-cls", "imagenet-loc", "imagenet-loc-no-animal", "scratch"]) == (
        ["imagenet-cls", "scratch"], ["imagenet-loc", "imagenet-loc-no-animal"])
    assert real_pretrains("mini", ["imagenet-loc"]) == (["imagenet-loc"], [])


def test_gpu_profiles_refuse_the_synthetic_target_and_synthetic_only_chapters_early():
    with pytest.raises(ParameterError, match="profile 'torchvision' fine-tunes on real data.*got 'synthetic'"):
        check_parameters("segmentation", {"profile": "torchvision"})
    with pytest.raises(ParameterError, match="expects one of smoke \\| mini; got 'torchvision'.*IMAGENET-LOC"):
        check_parameters("ablations", {"profile": "torchvision", "dataset": "voc", "data_root": "x"})
    with pytest.raises(ParameterError, match="got 'paper'.*property of the synthetic corpora"):
        check_parameters("mechanisms", {"profile": "paper"})
    with pytest.raises(ConfigError, match="profile 'paper' fine-tunes on real data"):
        target_spec(get_profile("paper"))  # what the chapters' experiments functions check too
    with pytest.raises(ParameterError, match="data_root' expects the root of the pet dataset"):
        check_parameters("feature_space", {"dataset": "pet"})
    assert check_parameters("classification", {"profile": "torchvision", "download": True})["download"] is True
    with pytest.raises(ParameterError, match="'download' expects true or false; got 'yes'"):
        check_parameters("classification", {"download": "yes"})


def test_every_real_chapter_plans_at_the_torchvision_profile(coco_subset, pet_subset, tmp_path):
    """The whole torchvision book (ablations aside) on the genuine COCO subset: planned without a GPU or weights,
    nothing pre-trained, no IMAGENET-LOC run, the real classification datasets fine-tuned on."""
    params = {"dataset": "coco", "data_root": str(coco_subset),
              "real_data": {"pet": str(pet_subset), "sun397": str(tmp_path / "absent")}}
    errors: dict = {}
    plan = book_plan("torchvision", None, params, root=PROJECT, store=RunStore(tmp_path / "runs"), errors=errors)
    assert not errors and set(plan.chapters) == {*REAL_CHAPTERS, "rerun"}  # the synthetic-only ablations left out
    names = {r.config.name for r in plan}
    assert not any(n.startswith("pretrain/") for n in names) and not any("imagenet-loc" in n for n in names)
    real = [r.config for r in plan if r.config.data.kind == "pet"]
    assert {c.name for c in real} == {"cls-finetune/imagenet-cls", "cls-finetune/detection", "cls-finetune/scratch"}
    assert all(c.model.arch == "resnet50" and c.data.train_split == "trainval" for c in real)
    assert {c.init for c in real} == {"torchvision:ResNet50_Weights.IMAGENET1K_V1",
                                      "torchvision:FasterRCNN_ResNet50_FPN_Weights.COCO_V1", None}
    assert {c for r in plan for c in r.chapters} == set(REAL_CHAPTERS) - {"pretraining", "feature_space"}


def test_coco_root_reaches_the_paper_profiles_detection_pretraining(coco_subset, vocdevkit, monkeypatch, capsys,
                                                                    tmp_path):
    monkeypatch.setenv("DETPRETRAIN_COCO", "/nowhere/coco")
    from detpretrain.parameters import CHAPTER_PARAMETERS

    defaults = {p.name: p.default for p in CHAPTER_PARAMETERS["detection"]}  # chapter_runs takes every parameter
    values = {**defaults, "dataset": "voc", "data_root": str(vocdevkit), "seeds": [0], "pretrains": ["detection"],
              "schedule_factors": [1],
              "coco_root": str(coco_subset)}
    pre = [c for c in chapter_runs("detection", "paper", values) if c.name == "pretrain/detection"]
    assert len(pre) == 1 and pre[0].data.root == str(coco_subset.resolve()) and pre[0].data.fingerprint
    with pytest.raises(Exception, match="/nowhere/coco: data_root does not exist.*pass coco_root / --coco-root"):
        chapter_runs("detection", "paper", {**values, "coco_root": None})
    # the same COCO data under another path is the same run (the hash records the fingerprint)
    copy = tmp_path / "coco"
    (copy / "annotations").mkdir(parents=True)
    for f in (coco_subset / "annotations").glob("instances_*.json"):
        (copy / "annotations" / f.name).write_bytes(f.read_bytes())
    other = chapter_runs("detection", "paper", {**values, "coco_root": str(copy)})
    assert other[0].data.root == str(copy) and config_hash(other[0]) == config_hash(pre[0])
    # the command line: train --coco-root, refused early where the root is wrong
    assert cli_main(["train", "--profile", "paper", "--dataset", "voc", "--data-root", str(vocdevkit),
                     "--coco-root", "/nowhere/else", "--pretrain", "detection", "--device", "cpu"]) == 1
    assert "/nowhere/else: data_root does not exist" in capsys.readouterr().err


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA")
def test_a_gpu_plan_stops_before_training_on_a_machine_without_cuda(coco_subset, tmp_path):
    plan = book_plan("torchvision", ["detection"], {"dataset": "coco", "data_root": str(coco_subset)}, root=PROJECT,
                     store=RunStore(tmp_path / "runs"))
    with pytest.raises(ConfigError, match="profile 'torchvision' is sized for GPUs"):
        execute(plan, RunStore(tmp_path / "runs"), log_dir=tmp_path / "logs", log=lambda line: None)
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_fine_tuning_on_a_real_classification_dataset(pet_subset, tmp_path, corpus_dir):
    """Table 8 on real images at smoke: one run from scratch on the genuine Pet subset (3 breeds)."""
    target = transfer_target(get_profile("smoke"), "pet", str(pet_subset))
    assert (target.kind, target.train_split, target.eval_split) == ("pet", "trainval", "test")
    result = run_classification_transfer("smoke", role="pet", data_root=str(pet_subset), pretrains=("scratch",),
                                         seeds=(0,), store=RunStore(tmp_path / "runs"), device="cpu", progress=False,
                                         log=lambda line: None)
    metrics = result["runs"][0]["metrics"]
    assert metrics["num_train_images"] == 150 and metrics["num_eval_images"] == 60
    assert metrics["classes"] == ["Abyssinian", "American Bulldog", "Bengal"] and 0 <= metrics["top1"] <= 100
    with pytest.raises(ConfigError, match="needs a data_root"):
        transfer_target(get_profile("smoke"), "sun397")
