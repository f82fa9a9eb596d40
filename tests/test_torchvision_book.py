"""Every chapter of the ``torchvision`` profile executed end to end on the CPU, on the genuine data subsets.

The ``torchvision`` profile is meant for one GPU (ResNet-50 at min_size 600, 7 epochs on VOC 07+12); no GPU is lent
to CI, so this module shrinks it, keeping every code path: the same architectures (torchvision ResNet-50, Faster
R-CNN + FPN, DeepLabV3), the same published-weight loading by enum name (from weight files in torchvision's
state-dict format written here into ``TORCH_HOME``, same keys, random values), the same real readers (COCO 2017,
VOC2012 segmentation, Oxford-IIIT Pet). What shrinks: image sizes (min_size 128), proposal counts, one epoch, one
seed, and the datasets (a few images of each subset; 8 + 8 COCO images). Each chapter's cells then run in this process, with the
chapter's own parameters cell followed by the parameters a researcher would pass (``profile="torchvision"``,
``device="cpu"``, the data roots).

What this shows: no chapter crashes at the profile, each trains/loads what it should and renders its tables and
figures. What it cannot show: numbers (random weights, a few images) or GPU speed (``benchmarks/gpu_check.sh``).

Stand-in weights: plain random ResNet-50 weights make activations grow ~45x by layer4 and the losses NaN within a few
steps. The stand-ins here are ``resnet50(zero_init_residual=True)`` with BatchNorm running statistics measured on
random images (3 train-mode passes, cumulative average), the detector's ResNet body replaced by that network, so
the fine-tunings behave like fine-tunings from a trained network: finite losses.
"""

from __future__ import annotations

import ast
import dataclasses
import json
import os
import shutil
import time
from pathlib import Path

import jupytext
import matplotlib
import pytest
import torch

from conftest import PROJECT_ROOT
from detpretrain import book, profiles
from detpretrain.config import OptimSpec
from detpretrain.data import synthetic

matplotlib.use("Agg")
pytestmark = pytest.mark.slow  # about 4 minutes on 2 cores

# Execution order: pre-training first, the chapters that train next, the summaries (intro, rerun) last.
CHAPTERS = ["pretraining", "detection", "segmentation", "classification", "feature_space", "visualisations",
            "eigenspectrum", "frozen_backbone", "intro", "rerun"]


def _stand_in_resnet50() -> dict:
    """A ResNet-50 state dict with finite, calibrated activations (see the module docstring)."""
    from torchvision.models import resnet50

    torch.manual_seed(0)
    net = resnet50(zero_init_residual=True)
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.momentum = None  # cumulative average of the calibration batches
            m.reset_running_stats()
    net.train()
    with torch.no_grad():
        for _ in range(3):
            net(torch.randn(8, 3, 96, 96))
    return net.state_dict()


def _write_hub(home: Path) -> dict:
    from torchvision.models import ResNet50_Weights
    from torchvision.models.detection import FasterRCNN_ResNet50_FPN_Weights, fasterrcnn_resnet50_fpn

    checkpoints = home / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True)
    classifier = _stand_in_resnet50()
    detector = fasterrcnn_resnet50_fpn(weights=None, weights_backbone=None, num_classes=91).state_dict()
    prefix = "backbone.body."
    for key in [k for k in detector if k.startswith(prefix)]:
        detector[key] = classifier[key[len(prefix):]].clone()  # FrozenBatchNorm2d: same keys less num_batches_tracked
    torch.save(classifier, checkpoints / ResNet50_Weights.IMAGENET1K_V1.url.rsplit("/", 1)[-1])
    torch.save(detector, checkpoints / FasterRCNN_ResNet50_FPN_Weights.COCO_V1.url.rsplit("/", 1)[-1])
    return {"classifier": classifier, "detector": detector}


def _few_coco(src: Path, dst: Path, n_train: int, n_val: int) -> Path:
    """A COCO root with the first images (those with annotations) of each split of ``src``; images linked."""
    (dst / "annotations").mkdir(parents=True)
    for split, n in (("train2017", n_train), ("val2017", n_val)):
        data = json.loads((src / "annotations" / f"instances_{split}.json").read_text())
        annotated = {a["image_id"] for a in data["annotations"]}
        images = [im for im in data["images"] if im["id"] in annotated][:n]
        keep = {im["id"] for im in images}
        data["images"] = images
        data["annotations"] = [a for a in data["annotations"] if a["image_id"] in keep]
        (dst / "annotations" / f"instances_{split}.json").write_text(json.dumps(data))
        (dst / split).symlink_to(src / split)
    return dst


def _few_pet(src: Path, dst: Path, per_split: dict[str, int]) -> Path:
    """An Oxford-IIIT Pet root with the first lines of each official split list, balanced over the breeds."""
    (dst / "annotations").mkdir(parents=True)
    (dst / "images").symlink_to(src / "images")
    for sub in ("trimaps", "xmls"):
        if (src / "annotations" / sub).exists():
            (dst / "annotations" / sub).symlink_to(src / "annotations" / sub)
    kept: list[str] = []
    for split, n in per_split.items():
        by_breed: dict[str, list[str]] = {}
        for line in (src / "annotations" / f"{split}.txt").read_text().splitlines():
            by_breed.setdefault(line.split()[2], []).append(line)  # third column: the 37-way breed id
        lines = [line for group in by_breed.values() for line in group[:n]]
        (dst / "annotations" / f"{split}.txt").write_text("\n".join(lines) + "\n")
        kept += lines
    (dst / "annotations" / "list.txt").write_text("\n".join(kept) + "\n")
    return dst


def _voc_segmentation(src: Path, dst: Path) -> Path:
    """A VOCdevkit whose VOC2012 segmentation train list holds the one genuine sample twice (under a second id).

    DeepLabV3's ASPP pooling branch has BatchNorm after a global pool, which needs at least 2 images per batch.
    """
    shutil.copytree(src, dst)
    for p in dst.rglob("*"):
        p.chmod(0o644 if p.is_file() else 0o755)
    voc12 = dst / "VOC2012"
    shutil.copy(voc12 / "JPEGImages" / "2007_001763.jpg", voc12 / "JPEGImages" / "2007_901763.jpg")
    shutil.copy(voc12 / "SegmentationClass" / "2007_001763.png", voc12 / "SegmentationClass" / "2007_901763.png")
    (voc12 / "ImageSets" / "Segmentation" / "train.txt").write_text("2007_001763\n2007_901763\n")
    return dst


def _small_torchvision_profile() -> profiles.Profile:
    """The ``torchvision`` profile with CPU-sized images, proposals and schedules (architectures unchanged)."""
    tv = profiles.PROFILES["torchvision"]
    model = dataclasses.replace(tv.model, min_size=128, max_size=160, rpn_pre_nms_top_n=(200, 100),
                                rpn_post_nms_top_n=(100, 50), box_batch_size_per_image=32, image_size=64)
    one_epoch = OptimSpec(epochs=1, batch_size=2, lr=0.0025, warmup_iters=30, milestones=(), amp=True, num_workers=0)
    return dataclasses.replace(tv, model=model, real_model=model, finetune=one_epoch, seg_finetune=one_epoch,
                               cls_finetune=dataclasses.replace(one_epoch, batch_size=8), seeds=(0,))


@pytest.fixture(scope="module")
def torchvision_book(tmp_path_factory, coco_subset, vocdevkit, pet_subset):
    """Stand-in weights, the shrunken profile and small copies of the subsets; yields the chapters' parameters."""
    tmp = tmp_path_factory.mktemp("torchvision_book")
    hub = _write_hub(tmp / "torch_home")
    coco = _few_coco(coco_subset, tmp / "coco", n_train=8, n_val=8)
    common = {"profile": "torchvision", "device": "cpu", "store": str(tmp / "runs"), "data_cache": str(tmp / "data")}
    detection = {"dataset": "coco", "data_root": str(coco)}
    params = {
        "pretraining": {},
        "detection": {**detection, "schedule_factors": [1]},
        "segmentation": {"dataset": "voc", "data_root": str(_voc_segmentation(vocdevkit, tmp / "VOCdevkit"))},
        "classification": {"real_data": {"pet": str(_few_pet(pet_subset, tmp / "pet", {"trainval": 8, "test": 4}))},
                           "targets": ["sun"], "head_target": "sun"},  # 9 classes; the other roles: same code
        "feature_space": {"dataset": "pet", "data_root": str(tmp / "pet")},
        "visualisations": {**detection, "real_detection_root": str(coco), "real_images": 4, "activation_images": 16,
                           "maskout_images": 4},
        "eigenspectrum": {**detection, "n_images": 8, "scratch_factor": 1},
        "frozen_backbone": {**detection, "resource_iterations": 1},
        "intro": detection,
        "rerun": {},
    }
    with pytest.MonkeyPatch.context() as mp:  # undone whatever happens in the tests
        mp.setenv("TORCH_HOME", str(tmp / "torch_home"))
        mp.setenv("DETPRETRAIN_FIGURES", str(tmp / "figures"))  # the chapters' saved figures: not in the checkout
        mp.setitem(profiles.PROFILES, "torchvision", _small_torchvision_profile())
        # the synthetic-only parts (Figures 4 and 5, synthetic probe roles) use mini's corpora at this profile; smoke's
        specs = synthetic.profile_specs
        mp.setattr(synthetic, "profile_specs",
                   lambda profile, seed=0: specs("smoke" if profile == "torchvision" else profile, seed))
        yield {"params": {name: {**common, **p} for name, p in params.items()}, "hub": hub, "store": tmp / "runs",
               "figures": tmp / "figures"}
    # ResNet-50-sized runs keep ~0.5 GB each (model, backbone, resume checkpoint): about 11 GB for this module,
    # removed here instead of waiting for pytest's rotation of old temporary folders
    shutil.rmtree(tmp, ignore_errors=True)


def _display(*objs, **_kwargs) -> None:
    """IPython's ``display`` outside a kernel prints ``repr``; print what a rendered page would show instead."""
    for obj in objs:
        for method in ("_repr_markdown_", "to_string"):
            if hasattr(obj, method):
                print(getattr(obj, method)())
                break
        else:
            print(getattr(obj, "data", obj))  # HTML and the like: their source text


def _run_cell(source: str, name: str, namespace: dict) -> None:
    """Execute one cell as a kernel does: its statements, then its last expression's value displayed."""
    tree = ast.parse(source, name)
    last = tree.body.pop() if tree.body and isinstance(tree.body[-1], ast.Expr) else None
    exec(compile(tree, name, "exec"), namespace)  # noqa: S102
    if last is not None:
        value = eval(compile(ast.Expression(last.value), name, "eval"), namespace)  # noqa: S307
        if value is not None:
            _display(value)


def execute_in_process(chapter: str, overrides: dict) -> dict:
    """Run ``book/<chapter>.py``'s code cells in this process from the project root (where ``book`` executes
    chapters), ``overrides`` checked as ``book`` checks them and injected after its parameters cell (as papermill
    injects them), each cell's last value and ``IPython.display.display`` printed as text; returns the namespace."""
    import IPython.display
    import matplotlib.pyplot as plt

    source = PROJECT_ROOT / "book" / f"{chapter}.py"
    checked = book.checked_parameters(chapter, overrides, book.chapter_parameters(book.load_chapter(source)))
    notebook = jupytext.read(source)
    namespace: dict = {"__name__": "__main__"}
    injected = False
    cwd = os.getcwd()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(IPython.display, "display", _display)
        os.chdir(PROJECT_ROOT)
        try:
            for i, cell in enumerate(notebook.cells):
                if cell.cell_type != "code":
                    continue
                _run_cell(cell.source, f"book/{chapter}.py, cell {i}", namespace)
                if "parameters" in cell.metadata.get("tags", []):
                    namespace.update(checked)
                    injected = True
        finally:
            os.chdir(cwd)
            plt.close("all")
    assert injected, f"book/{chapter}.py has no parameters cell"
    return namespace


CLS_INIT = "torchvision:ResNet50_Weights.IMAGENET1K_V1"
DET_INIT = "torchvision:FasterRCNN_ResNet50_FPN_Weights.COCO_V1"


def _fine_tunings(result: dict, store: Path) -> dict[str, dict]:
    """``{pretrain: run config}`` of a chapter result's fine-tunings, read back from their run folders."""
    configs = {}
    for entry in result["runs"]:
        config = json.loads((Path(entry["run"]) / "config.json").read_text())
        assert Path(entry["run"]).is_relative_to(store) and config["init"] == configs.setdefault(
            entry["pretrain"], config)["init"]
    return configs


def _check_detection(ns, out, store):
    configs = _fine_tunings(ns["result"], store)
    assert set(configs) == {"imagenet-cls", "detection", "scratch"}  # no same-images control at this profile
    assert configs["imagenet-cls"]["init"] == CLS_INIT and configs["detection"]["init"] == DET_INIT
    assert configs["scratch"]["init"] is None
    assert all(c["data"]["kind"] == "coco" and c["model"]["arch"] == "resnet50" for c in configs.values())
    frame = ns["A"].map_frame(ns["result"])
    assert sorted(frame["iou"].unique()) == pytest.approx([i / 10 for i in range(1, 10)])  # Figure 1's thresholds
    assert frame["mAP"].between(0, 100).all()


def _check_segmentation(ns, out, store):
    configs = _fine_tunings(ns["result"], store)
    assert {c["init"] for c in configs.values()} == {CLS_INIT, DET_INIT, None}
    assert all(c["task"] == "segmentation" and c["data"]["kind"] == "voc" for c in configs.values())


def _check_classification(ns, out, store):
    configs = _fine_tunings(ns["real_transfer"]["OXFORD-IIIT PET"], store)  # Table 8 on the genuine Pet images
    assert {c["init"] for c in configs.values()} == {CLS_INIT, DET_INIT, None}
    assert all(c["data"]["kind"] == "pet" for c in configs.values())
    assert not any("imagenet-loc" in str(r.get("pretrain")) for r in ns["probe_rows"])


def _check_feature_space(ns, out, store):
    assert ns["size_match"].n == 0  # real photographs: no object sizes, no Figure 3 size verdict
    assert "not measured: these images have no annotated object sizes" in out
    assert not any(name.startswith("Figure 3") for name in ns["claims"])  # not counted by Holm either


def _check_intro(ns, out, store):
    assert out.count("synthetic-only, not run at profile torchvision") == 2  # ablations, mechanisms


CHECKS = {"detection": _check_detection, "segmentation": _check_segmentation,
          "classification": _check_classification, "feature_space": _check_feature_space, "intro": _check_intro}


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_chapter_runs_at_the_torchvision_profile(torchvision_book, chapter, capsys):
    start = time.monotonic()
    ns = execute_in_process(chapter, torchvision_book["params"][chapter])
    out = capsys.readouterr().out
    assert ns["profile"] == "torchvision", "the injected parameters did not reach the chapter"
    if chapter != "rerun":  # the re-run page trains nothing and shows no data
        assert "Real data at profile `torchvision`" in out, f"{chapter}: the first output does not say what is real"
    if chapter in CHECKS:
        CHECKS[chapter](ns, out, torchvision_book["store"])
    if chapter in ("eigenspectrum", "frozen_backbone", "visualisations"):  # their saved figures, under the profile
        assert list((torchvision_book["figures"] / "torchvision" / chapter).glob("*.pdf"))
    with capsys.disabled():
        print(f" {chapter}: {time.monotonic() - start:.0f} s", end="")
