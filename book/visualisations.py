# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Visualisations: activation maps, mask-out, qualitative detections
#
# *Li et al. 2019 {cite}`li2019analysis`, appendix 6.1-6.2 (Figures 4, 5 and 8).*
#
# The paper shows pictures; this chapter puts a number behind each one.
#
# * **Figure 4, activation maps.** "The IMAGENET-CLS pre-trained activation map tend to focus on discriminative
#   parts. On the other hand, OPENIMAGES pre-trained models emphasize on the entire spatial extent of the objects.
#   Moreover, the latter exhibits an instance-level representation, especially when multiple objects are present."
#   Our corpus knows every object's mask *and* the mask of its discriminative part, so we report where the
#   activation mass falls: on the part, on the rest of the object, outside.
# * **Figure 5, mask-out.** A blank square slides over the image and the probability of the correct class is read
#   at each position, with a linear classifier on each backbone; the paper: the IMAGENET-CLS classifier's score
#   "drops to zero" when a part (the camel's head) is covered, the OPENIMAGES one's does not. We report the drop when
#   the square's centre is on the part vs. on the rest of the object.
# * **Figure 8, qualitative detections.** The IMAGENET-CLS- and detection-pre-trained detectors on the same images,
#   cases chosen by a rule (largest IoU difference), not by hand, including occluded objects.
#
# Definitions and tests: `detpretrain.analysis.visualisation`. Each figure is also written for print, as a vector
# PDF and a 300-dpi PNG, to `_build/figures/<profile>/visualisations/` (`$DETPRETRAIN_FIGURES` moves the root;
# `detpretrain.figures`).

# %% tags=["parameters"]
profile = "mini"  # smoke | mini
dataset = "synthetic"  # detection target of Figure 8: synthetic (VOC-like) | coco | voc
data_root = None  # root of a real detection target
seeds = None  # fine-tuning seeds; Figure 8 uses the first; None means the profile's
device = "auto"  # auto | cpu | cuda
store = None  # run store folder; None means $DETPRETRAIN_RUNS or runs/
data_cache = None  # generated-corpus folder; None means $DETPRETRAIN_DATA or data/generated
target = "caltech"  # classification corpus of Figures 4 and 5 (object-centric, with part masks)
activation_images = 250  # test images measured for Figure 4 (capped by the split)
maskout_images = 40  # single-instance test images with a visible part measured for Figure 5
maskout_stride = 8  # px between mask positions (the square is the paper's 60/224 of the image side)
score_thresh = 0.5  # operating point of Figure 8: detections scoring at least this are drawn and matched
real_detection_root = "../shared/data/coco2017_subset"  # real images for the activation shares (COCO masks)
real_images = 24  # COCO val images measured

# %%
import os
from pathlib import Path

import matplotlib.patches as mpatches
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from IPython.display import Markdown, display

from detpretrain.experiments import features as F
from detpretrain.analysis import probes as P
from detpretrain.analysis import visualisation as V
from detpretrain.analysis.ablations import paired_verdict
from detpretrain.analysis.detection import provenance as run_provenance
from detpretrain.data.builders import build_detection_dataset
from detpretrain.experiments.detection import run_detection_experiment
from detpretrain.figures import show as show_figure
from detpretrain.runs import load_run_model
from detpretrain.profiles import get_profile
from detpretrain.runs import RunStore

if data_cache is not None:
    os.environ["DETPRETRAIN_DATA"] = str(data_cache)
prof = get_profile(profile)
run_store = RunStore(store) if store else RunStore()
seed_list = tuple(seeds) if seeds is not None else prof.seeds
dev = F.resolve_device(device)
quiet = lambda *args: None
BACKBONES = {"imagenet-cls": "IMAGENET-CLS", "detection": "OPENIMAGES"}
COLOURS = {"imagenet-cls": "tab:blue", "detection": "tab:orange"}

# %% [markdown]
# ## Configuration

# %%
# NBVAL_CHECK_OUTPUT
data = F.probe_datasets(prof, target)
window = V.scaled_mask_size(prof.model.image_size)
test_names = [Path(data.test.image_path(i)).relative_to(data.root).as_posix() for i in range(len(data.test))]
objects = V.corpus_objects(data.root, test_names)
pd.DataFrame([("corpus (Figures 4, 5)", f"{data.describe}, test split, {len(data.test)} images"),
              ("activation map", "channel mean of Conv5 (layer4), bilinear to the image"),
              ("mask-out square", (f"{window} px = 60 px x {prof.model.image_size}/224, stride {maskout_stride} px, "
                                  "filled with the dataset mean")),
              ("Figure 8 target", dataset), ("Figure 8 operating point", f"score >= {score_thresh}"),
              ("seed of Figure 8", seed_list[0])], columns=["setting", "value"]).set_index("setting")

# %%
backbones, sources = {}, {}
for pre in BACKBONES:
    backbones[pre], sources[pre], _ = F.load_backbone(pre, prof, store=run_store, device=dev, log=quiet)
provenance = f"profile {prof.name} · {data.describe} · backbones " + "; ".join(
    f"{k}: {v[:8]}" for k, v in sources.items())

# %% [markdown]
# ## Figure 4: where the activation mass falls
# For each test image, the Conv5 map's mass on the discriminative part (all instances' visible parts), on the rest
# of the objects and outside them, divided by the total. A uniform map would put on each region its share of the
# image area, so the **enrichment** (mass share / area share) says how much a backbone favours a region. For images
# with several instances, **instance balance** = min over instances of the mean activation inside the instance over
# the max (1 = all instances equally activated).

# %%
n_act = min(activation_images, len(data.test))
rows, maps = [], {}
for pre, backbone in backbones.items():
    for start in range(0, n_act, 32):
        idx = list(range(start, min(start + 32, n_act)))
        images = torch.stack([data.test[i][0] for i in idx]).to(dev)
        batch_maps = V.activation_maps(backbone, images).cpu().numpy()
        for i, m in zip(idx, batch_maps):
            o = objects[i]
            if i < 12:
                maps[(pre, i)] = m
            s = V.mass_shares(m, o["object"], o["part"])
            row = {"backbone": pre, "image": i, "instances": len(o["instances"]), "has_part": bool(o["part"].any()),
                   **s}
            if len([x for x in o["instances"] if x.any()]) >= 2:
                row["instance_balance"] = V.instance_balance(m, o["instances"])
            rows.append(row)
act = pd.DataFrame(rows)
act["part_enrichment"] = np.where(act["part_area"] > 0, act["part"] / act["part_area"].where(act["part_area"] > 0),
                                  np.nan)
act["object_rest_enrichment"] = act["object_rest"] / act["object_rest_area"].where(act["object_rest_area"] > 0)
summary = act.groupby("backbone").agg(
    images=("image", "size"), part_mass=("part", "mean"), part_area=("part_area", "mean"),
    part_enrichment=("part_enrichment", "mean"), object_rest_mass=("object_rest", "mean"),
    object_rest_area=("object_rest_area", "mean"), object_rest_enrichment=("object_rest_enrichment", "mean"),
    outside_mass=("outside", "mean"), instance_balance=("instance_balance", "mean"))
summary.rename(index=BACKBONES).style.format(precision=3)


# %%
def paired(col: str, a: str = "detection", b: str = "imagenet-cls") -> dict:
    wide = act.pivot(index="image", columns="backbone", values=col).dropna()
    return paired_verdict(wide[a] - wide[b])


checks = {
    "part enrichment, IMAGENET-CLS minus OPENIMAGES": paired("part_enrichment", "imagenet-cls", "detection"),
    "rest-of-object mass share, OPENIMAGES minus IMAGENET-CLS": paired("object_rest"),
    "instance balance (multi-instance images), OPENIMAGES minus IMAGENET-CLS": paired("instance_balance"),
}
verdicts = pd.DataFrame([{"claim (positive = the paper's direction)": k, "mean paired difference": v["mean"],
                          "stderr over images": v["stderr"], "images": v["seeds"], "verdict": v["verdict"]}
                         for k, v in checks.items()])
verdicts.style.format(precision=3).hide(axis="index")

# %%
shown = [i for i in range(min(12, n_act)) if objects[i]["part"].any() and len(objects[i]["instances"]) == 1][:3]
shown += [i for i in range(min(12, n_act)) if len(objects[i]["instances"]) >= 2][:2]
if shown:
    fig, axes = plt.subplots(3, len(shown), figsize=(1.9 * len(shown), 6), squeeze=False)
    pics = F.images_for_display(data, "test", shown)
    for col, (i, pic) in enumerate(zip(shown, pics)):
        axes[0][col].imshow(pic)
        axes[0][col].contour(objects[i]["part"], levels=[0.5], colors="red", linewidths=0.6)
        axes[0][col].set_title(f"{objects[i]['label']}, {len(objects[i]['instances'])} inst.", fontsize=7)
        for row, pre in enumerate(BACKBONES, start=1):
            axes[row][col].imshow(pic)
            axes[row][col].imshow(maps[(pre, i)], cmap="jet", alpha=0.5)
            axes[row][col].contour(objects[i]["object"], levels=[0.5], colors="white", linewidths=0.5)
        for row in range(3):
            axes[row][col].set_xticks([])
            axes[row][col].set_yticks([])
    for row, label in enumerate(["image (red: part)", *BACKBONES.values()]):
        axes[row][0].set_ylabel(label, fontsize=7)
    fig.text(0.01, 0.005, provenance, fontsize=5)
    fig.tight_layout(rect=(0, 0.02, 1, 1))
    show_figure(fig, "figure4_activation_maps", chapter="visualisations", profile=prof.name, provenance=provenance)

# %% [markdown]
# ### The same on real images
# COCO val images of `real_detection_root` (resized to the profile's real-image short side): mass on the annotated
# objects' masks vs. outside (COCO has no part masks). Our backbones never saw a photograph: this tests the path and
# the direction, not the paper's pictures.

# %%
root = Path(real_detection_root) if real_detection_root else None
if root is not None and (root / "annotations" / "instances_val2017.json").is_file():
    from torchvision.transforms import v2

    from detpretrain.data.builders import IMAGENET_MEAN, IMAGENET_STD
    from detpretrain.data.coco import CocoDetection

    coco = CocoDetection(root / "val2017", root / "annotations" / "instances_val2017.json", with_masks=True)
    resize = v2.Resize(prof.real_model.min_size, antialias=True)
    norm = v2.Normalize(IMAGENET_MEAN, IMAGENET_STD)
    real_rows = []
    for i in range(min(real_images, len(coco))):
        image, tgt = coco[i]
        if "masks" not in tgt or len(tgt["masks"]) == 0:
            continue
        image, masks = resize(v2.functional.to_dtype(image, torch.float32, scale=True), tgt["masks"])
        union = masks.any(dim=0).numpy()
        for pre, backbone in backbones.items():
            m = V.activation_maps(backbone, norm(image)[None].to(dev))[0].cpu().numpy()
            s = V.mass_shares(m, union)
            real_rows.append({"backbone": BACKBONES[pre], "image": i, "object mass": s["object_rest"],
                              "object area": s["object_rest_area"]})
    real = pd.DataFrame(real_rows)
    real["enrichment"] = real["object mass"] / real["object area"]
    display(real.groupby("backbone")[["object mass", "object area", "enrichment"]].mean()
            .style.format(precision=3))
    wide = real.pivot(index="image", columns="backbone", values="object mass")
    v = paired_verdict(wide["OPENIMAGES"] - wide["IMAGENET-CLS"])
    display(Markdown(f"On {len(wide)} COCO images the detection backbone puts {v['mean']:+.3f} ± {v['stderr']:.3f} "
                     f"more of its mass on objects ({v['verdict']})."))
else:
    display(Markdown(f"*`{real_detection_root}` is absent on this machine; the real-image check is skipped.*"))

# %% [markdown]
# ## Figure 5: mask-out
# A linear probe on each backbone's average-pooled Conv5 (the classification chapter's protocol) becomes a torch
# classifier; a blank square then slides over single-instance test images whose part is visible, and the
# probability of the correct class is read at every position. A position counts as "on the part" when the square's
# centre pixel lies on the part, "on the object" when it lies on the rest of the object.

# %%
heads = {}
for pre, backbone in backbones.items():
    arrays = F.backbone_features(pre, data, prof, store=run_store, device=dev, log=quiet)
    res = P.probe_features(arrays)
    heads[pre] = V.probe_head(backbone, res["model"]).to(dev)
    display(Markdown(f"{BACKBONES[pre]} probe: top-1 {res['top1']:.1f} % on test (C = {res['C']:g})."))
candidates = [i for i, o in enumerate(objects) if len(o["instances"]) == 1 and o["part"].any()][:maskout_images]
mo_rows, mo_maps = [], {}
for i in candidates:
    image, label = data.test[i]
    for pre, head in heads.items():
        r = V.maskout_map(head, image.to(dev), label, window=window, stride=maskout_stride)
        if len(mo_maps) < 6:
            mo_maps[(pre, i)] = r
        mo_rows.append({"backbone": pre, "image": i, **V.maskout_drops(r, objects[i]["object"], objects[i]["part"])})
mo = pd.DataFrame(mo_rows)
mo["part minus rest"] = mo["drop_part"] - mo["drop_object_rest"]
mo.groupby("backbone")[["clean", "drop_part", "drop_object_rest", "drop_outside", "part minus rest", "min_prob"]] \
    .mean().rename(index=BACKBONES).style.format(precision=3)

# %%
wide = mo.pivot(index="image", columns="backbone", values="part minus rest").dropna()
v5 = paired_verdict(wide["imagenet-cls"] - wide["detection"])
display(Markdown(
    f"Covering the part rather than the rest of the object costs the IMAGENET-CLS probe "
    f"{wide['imagenet-cls'].mean():.3f} and the OPENIMAGES probe {wide['detection'].mean():.3f} of probability "
    f"(mean over {len(wide)} images); the paired difference is {v5['mean']:+.3f} ± {v5['stderr']:.3f}: the paper's "
    f"reading (the classifier depends more on the part) **{v5['verdict']}** here."))

# %%
show = sorted({i for _, i in mo_maps})[:3]
if show:
    fig, axes = plt.subplots(len(show), 3, figsize=(6, 2.1 * len(show)), squeeze=False)
    for row, i in enumerate(show):
        pic = F.images_for_display(data, "test", [i])[0]
        axes[row][0].imshow(pic)
        axes[row][0].contour(objects[i]["part"], levels=[0.5], colors="red", linewidths=0.6)
        axes[row][0].set_ylabel(objects[i]["label"], fontsize=7)
        for col, pre in enumerate(BACKBONES, start=1):
            r = mo_maps[(pre, i)]
            h, w = pic.shape[:2]
            im = axes[row][col].imshow(r["prob"], vmin=0, vmax=1, cmap="viridis",
                                       extent=(r["centres_x"][0], r["centres_x"][-1], r["centres_y"][-1],
                                               r["centres_y"][0]))
            axes[row][col].set_xlim(0, w)
            axes[row][col].set_ylim(h, 0)
            axes[row][col].contour(objects[i]["part"], levels=[0.5], colors="red", linewidths=0.6)
            if row == 0:
                axes[row][col].set_title(f"{BACKBONES[pre]}: P(correct)", fontsize=7)
        for ax in axes[row]:
            ax.set_xticks([])
            ax.set_yticks([])
    fig.colorbar(im, ax=axes[:, -1].tolist(), shrink=0.6)
    fig.text(0.01, 0.005, provenance, fontsize=5)
    show_figure(fig, "figure5_maskout", chapter="visualisations", profile=prof.name, provenance=provenance)

# %% [markdown]
# ## Figure 8: detections of the two detectors on the same images
# The detection chapter's fine-tuned detectors (seed `seeds[0]`), loaded from the run store. For every ground-truth
# object, each detector's best same-class detection scoring at least `score_thresh`; the panels show the objects
# with the largest IoU gain of the detection-pre-trained detector (one per image), then the same among objects
# less than 75 % visible. Blue: IMAGENET-CLS; orange: detection pre-training; white dashed: ground truth.

# %%
det = run_detection_experiment(profile, dataset=dataset, data_root=data_root, pretrains=tuple(BACKBONES),
                               seeds=seed_list[:1], store=run_store, device=device, progress=False, log=quiet)
models = {}
for r in det["runs"]:
    models[r["pretrain"]], cfg, det_classes = load_run_model(r["run"], dev)
eval_data = build_detection_dataset(cfg.data, cfg.data.eval_split, train=False)
obj_frame, preds = V.detection_objects(models, eval_data, score_thresh=score_thresh, device=dev)
obj_frame.groupby(lambda _: "all objects")[[f"iou_{p}" for p in BACKBONES]].mean().rename(
    columns={f"iou_{p}": f"mean best IoU, {BACKBONES[p]}" for p in BACKBONES}).style.format(precision=3)


# %%
def draw_cases(cases: pd.DataFrame, title: str, name: str):
    if cases.empty:
        display(Markdown(f"*{title}: no object where detection pre-training localises better.*"))
        return
    fig, axes = plt.subplots(1, len(cases), figsize=(2.4 * len(cases), 2.8), squeeze=False)
    for ax, (_, case) in zip(axes[0], cases.iterrows()):
        image, _ = eval_data[int(case["image"])]
        ax.imshow(image.permute(1, 2, 0).numpy())
        x1, y1, x2, y2 = case["box"]
        ax.add_patch(mpatches.Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, ec="white", ls="--", lw=1))
        for pre in BACKBONES:
            p = preds[pre][int(case["image"])]
            keep = (p["scores"] >= score_thresh) & (p["labels"] == case["label"])
            if keep.any():
                iou = V.box_iou_matrix([case["box"]], p["boxes"][keep])[0]
                bx = p["boxes"][keep][int(iou.argmax())]
                ax.add_patch(mpatches.Rectangle((bx[0], bx[1]), bx[2] - bx[0], bx[3] - bx[1], fill=False,
                                                ec=COLOURS[pre], lw=1.2))
        vis = "" if np.isnan(case["visible_fraction"]) else f", {100 * case['visible_fraction']:.0f}% visible"
        ax.set_title(f"{det_classes[case['label']]}: IoU {case['iou_imagenet-cls']:.2f} -> "
                     f"{case['iou_detection']:.2f}{vis}", fontsize=6)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(title, fontsize=8)
    fig.text(0.01, 0.005, run_provenance(det), fontsize=5)
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    show_figure(fig, name, chapter="visualisations", profile=prof.name, provenance=run_provenance(det))


draw_cases(V.localisation_cases(obj_frame, "imagenet-cls", "detection", n=4), "better localisation",
           "figure8_better_localisation")
if obj_frame["visible_fraction"].notna().any():
    draw_cases(V.localisation_cases(obj_frame, "imagenet-cls", "detection", n=4, occluded_below=0.75),
               "occluded objects (< 75 % visible)", "figure8_occluded")
else:
    display(Markdown("*This target records no visible fraction: no occlusion panel.*"))

# %%
gain = obj_frame["iou_detection"] - obj_frame["iou_imagenet-cls"]
v8 = paired_verdict(gain)
occluded = obj_frame["visible_fraction"] < 0.75
v8o = paired_verdict(gain[occluded]) if occluded.sum() > 1 else None
text = (f"Over {len(obj_frame)} objects the detection-pre-trained detector's best IoU is {v8['mean']:+.3f} ± "
        f"{v8['stderr']:.3f} higher ({v8['verdict']}; better for {int((gain > 0).sum())}, worse for "
        f"{int((gain < 0).sum())} objects)")
if v8o is not None:
    text += f"; on the {int(occluded.sum())} objects under 75 % visible, {v8o['mean']:+.3f} ± {v8o['stderr']:.3f}"
display(Markdown(text + ". The panels above are the extreme cases of this distribution, chosen by the rule."))

# %% [markdown]
# ## What this shows
# Every verdict above is computed from this execution, with the standard error over images (one backbone per
# pre-training, as in the paper). Caveats:
#
# * The channel-mean Conv5 map is one of several ways to draw an "activation map" (the paper does not say which it
#   uses); mass shares are invariant to the map's scale but not to that choice.
# * The part is, by construction of the corpus, what tells categories apart within a super-category (module
#   `detpretrain.data.synthetic`), so "focus on discriminative parts" is measurable exactly here and only
#   approximately on photographs.
# * The blank square is the dataset mean; a black or noise square would change the absolute drops.
# * At `smoke` every run trains for seconds; its numbers exercise the code, they are not evidence.
