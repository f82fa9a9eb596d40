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
# # Does classification pre-training focus on parts, and detection pre-training on whole objects? (Li et al., Figures 4, 5, 8)
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
profile = "mini"  # smoke | mini | torchvision | paper (Figures 4, 5 stay synthetic: see the first output)
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
coco_root = None  # paper profile: COCO 2017 root of its detection pre-training; None: $DETPRETRAIN_COCO or ~/data/coco
cue = "part"  # category cue of every synthetic corpus: part | distributed (no part) | part+decoy
replicates = None  # pre-training replicates per pre-trained backbone (the unit of the claims); None: the profile's

# %%
import matplotlib.patches as mpatches
import matplotlib.pyplot as plt
import numpy as np
from IPython.display import Markdown, display

from detpretrain.analysis import claims as C
from detpretrain.analysis import mechanisms as M
from detpretrain.analysis import stats
from detpretrain.analysis import visualisation as V
from detpretrain.chapter import chapter_setup, quiet, table
from detpretrain.experiments import features as F
from detpretrain.experiments.detection import run_detection_experiment
from detpretrain.figures import show as show_figure
from detpretrain.overview import save_primary
from detpretrain.paper import ROLE_NAMES

ch = chapter_setup("visualisations", profile=profile, store=store, data_cache=data_cache, device=device,
                   dataset=dataset, data_root=data_root, seeds=seeds, target=target,
                   activation_images=activation_images, maskout_images=maskout_images, maskout_stride=maskout_stride,
                   score_thresh=score_thresh, real_detection_root=real_detection_root, real_images=real_images,
                   cue=cue, coco_root=coco_root, replicates=replicates)
prof, dev = ch.profile, ch.torch_device
corpus = {"cue": cue}  # the corpora of Figures 4 and 5, the backbones' pre-training corpora and Figure 8's target
cue_suffix = "" if cue == "part" else "_cue-" + cue.replace("+", "_")  # figure files of a variant keep their own names
BACKBONES = {k: ROLE_NAMES[k] for k in ("imagenet-cls", "detection")}
COLOURS = {"imagenet-cls": "tab:blue", "detection": "tab:orange"}

# %% tags=["hide-input"]
from detpretrain.scope import chapter_note

if note := chapter_note("visualisations", ch.profile):
    display(Markdown(note))

# %% [markdown]
# ## Configuration

# %% tags=["hide-input"]
# NBVAL_CHECK_OUTPUT
data = F.probe_datasets(prof, target, data_cache=ch.data_cache, corpus=corpus)
objects = V.split_objects(data, "test")
table(V.configuration_table(data, image_size=prof.model.image_size, stride=maskout_stride, dataset=dataset,
                            score_thresh=score_thresh, seed=ch.seeds[0]), index=True)

# %% tags=["hide-input"]
display(Markdown(M.prediction_markdown("visualisations", cue)))

# %%
loaded = {pre: F.load_backbone(pre, prof, store=ch.store, device=dev, log=quiet, corpus=corpus) for pre in BACKBONES}
backbones = {pre: backbone for pre, (backbone, _, _) in loaded.items()}
provenance = ch.provenance(data=data.describe, runs={pre: source for pre, (_, source, _) in loaded.items()})
print(provenance)

# %% [markdown]
# ## The answer
# The primary claim, Figure 4's part enrichment at a layer that resolves the part (how it is measured is explained
# in the Figure 4 section below), is computed here from the backbones above, before the figures; the secondary
# claims are at the end.

# %%
floor, floor_source, _ = F.load_backbone("scratch", prof, store=ch.store, seed=0, device=dev)
RESOLVED = {**BACKBONES, "scratch": "untrained (floor)"}
all_heads, all_probes = V.probe_heads({**backbones, "scratch": floor}, data, prof, store=ch.store, device=dev,
                                      log=quiet, corpus=corpus)
resolved = V.resolved_activation_frame({**backbones, "scratch": floor}, data.test, objects, layer="layer3",
                                       n_images=min(activation_images, len(data.test)), heads=all_heads, device=dev)
# every pre-training replicate pair's maps, with each backbone's own probe for Grad-CAM (replicate 0's frame above
# is the first; the untrained floor and its probe are the same in each), so Figure 4's claims are over pre-training
# runs; the pairs' probes are kept for Figure 5
pairs = F.replicate_pairs("imagenet-cls", "detection", ch.replicates)
frames, replicate_sources, replicate_heads = [resolved], {}, []
for pair in pairs[1:]:
    pair_loaded = {pre: F.load_backbone(key, prof, store=ch.store, device=dev, log=quiet, corpus=corpus)
                   for pre, key in zip(BACKBONES, pair)}
    replicate_sources |= {key: pair_loaded[pre][1] for pre, key in zip(BACKBONES, pair)}
    pair_heads, _ = V.probe_heads({key: pair_loaded[pre][0] for pre, key in zip(BACKBONES, pair)}, data, prof,
                                  store=ch.store, device=dev, log=quiet, corpus=corpus)
    replicate_heads.append({pre: pair_heads[key] for pre, key in zip(BACKBONES, pair)})
    frames.append(V.resolved_activation_frame({**{pre: loaded_[0] for pre, loaded_ in pair_loaded.items()},
                                               "scratch": floor}, data.test, objects, layer="layer3",
                                              n_images=min(activation_images, len(data.test)),
                                              heads={**replicate_heads[-1], "scratch": all_heads["scratch"]},
                                              device=dev))
fig4_claims = {f"{claim} ({kind})": v for kind in ("channel mean", "Grad-CAM")
               for claim, v in V.enrichment_claims(frames, RESOLVED, kind=kind).items()}
replicated = V.replicated_part_enrichment(frames)
if replicated is not None:
    fig4_claims[C.PRIMARY_CLAIMS["visualisations"].name] = replicated
# without a part (every cue): how concentrated each map is inside the objects (issue 18)
fig4_claims |= {f"Figure 4: {claim} (channel mean)": v for claim, v in V.concentration_claims(frames, RESOLVED).items()}
print(f"primary claim over {len(pairs)} pre-training replicate pair(s): " + ", ".join(f"{a} vs {b}" for a, b in pairs))
if replicate_sources:
    print(ch.provenance(data=data.describe, runs=replicate_sources))

# %% tags=["hide-input"]
primary_result = fig4_claims.get(C.PRIMARY_CLAIMS["visualisations"].name)
display(Markdown(C.answer("visualisations", primary_result,
                          note="" if cue != "distributed" else "Under cue distributed there is no part to measure.")))
_ = save_primary("visualisations", primary_result, profile=ch.profile.name, store=ch.store,
                 params=ch.params)  # for the intro's overview

# %% [markdown]
# ## Figure 4: where the activation mass falls
# For each test image, the Conv5 map's mass on the discriminative part (all instances' visible parts), on the rest
# of the objects and outside them, divided by the total. A uniform map would put on each region its share of the
# image area, so the **enrichment** (mass share / area share) says how much a backbone favours a region. For images
# with several instances, **instance balance** = min over instances of the mean activation inside the instance over
# the max (1 = all instances equally activated).

# %%
act, maps = V.activation_frame(backbones, data.test, objects, n_images=min(activation_images, len(data.test)),
                               device=dev)

# %% tags=["hide-input"]
table(V.activation_summary(act).rename(index=BACKBONES), precision=3, index=True)

# %% tags=["hide-input"]
table(V.activation_verdicts(act, BACKBONES), precision=3)

# %% tags=["hide-input"]
shown = V.example_images(objects)
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
    show_figure(fig, "figure4_activation_maps" + cue_suffix, chapter="visualisations", profile=prof.name, provenance=provenance)

# %% [markdown]
# ### Figure 4 where the map resolves the part, class-specific, against a floor
# At the Conv5 stride (32 px) a part of 5-15 % of an object spans less than one cell of the map, so its "mass share"
# measures its neighbourhood. Here the maps are read at Conv4 (`layer3`, stride 16) and only on the images whose part
# spans at least one cell of it; beside the channel mean, the **Grad-CAM** of each backbone's linear probe for the
# correct class (which positions support that class); and an **untrained backbone** (random initialisation, seed 0)
# gives the floor: how much a network that learnt nothing favours a salient patch. Under `cue="part+decoy"` every
# object also carries a decoy as salient as its part that names nothing: only a backbone trained to use the part
# should favour the part over the decoy.

# %% tags=["hide-input"]
resolved_images = resolved[resolved["part_cells"] >= 1]
display(Markdown(f"{resolved_images['image'].nunique()} of {resolved['image'].nunique()} test images have a part "
                 "spanning at least one Conv4 cell."))
if len(resolved_images):
    display(table(resolved_images.groupby(["map", "backbone"])[
        ["part_enrichment", "decoy_enrichment", "object_rest_enrichment", "outside_enrichment"]].mean()
        .rename(index=RESOLVED), precision=2, index=True))
if fig4_claims:
    display(table(C.verdicts_table(fig4_claims, columns=("estimate", "ci_low", "ci_high", "n")), precision=2))

# %% [markdown]
# ### The same on real images
# COCO val images of `real_detection_root` (resized to the profile's real-image short side): mass on the annotated
# objects' masks vs. outside (COCO has no part masks). At the synthetic profiles (`smoke`, `mini`) our backbones never
# saw a photograph: this tests the path and the direction, not the paper's pictures; with published ImageNet weights
# (`torchvision`, `paper`) they did.

# %% tags=["hide-input"]
if V.coco_val_available(real_detection_root):
    real = V.real_activation_frame(backbones, real_detection_root, n_images=real_images,
                                   min_size=prof.real_model.min_size, device=dev)
    display(table(real.groupby("backbone")[["object mass", "object area", "enrichment"]].mean()
                  .rename(index=BACKBONES), precision=3, index=True))
    display(Markdown(V.real_activation_verdict(real, "detection", "imagenet-cls")["sentence"]))
else:
    display(Markdown(f"*`{real_detection_root}` is absent on this machine; the real-image check is skipped.*"))

# %% [markdown]
# ## Figure 5: mask-out
# A linear probe on each backbone's average-pooled Conv5 (the classification chapter's protocol) becomes a torch
# classifier; a blank square then slides over single-instance test images whose part is visible, and the
# probability of the correct class is read at every position. A position counts as "on the part" when the square's
# centre pixel lies on the part, "on the object" when it lies on the rest of the object.

# %%
heads, probes = {k: all_heads[k] for k in BACKBONES}, {k: all_probes[k] for k in BACKBONES}
for pre, res in probes.items():
    display(Markdown(f"{BACKBONES[pre]} probe: top-1 {res['top1']:.1f} % on test (C = {res['C']:g})."))
maskout = dict(window=V.scaled_mask_size(prof.model.image_size), stride=maskout_stride, device=dev)
mo, mo_maps = V.maskout_frame(heads, data.test, objects, V.maskout_candidates(objects, maskout_images), **maskout)
# the same images for every other pre-training replicate pair's probes (Figure 5's claims are over the pairs)
replicate_mo = [V.maskout_frame(pair_heads, data.test, objects, V.maskout_candidates(objects, maskout_images),
                                **maskout)[0] for pair_heads in replicate_heads]

# %% tags=["hide-input"]
if mo.empty:
    display(Markdown(f"*No test image has a visible part under `cue = \"{cue}\"`: Figure 5 is not measurable.*"))
else:
    display(table(V.maskout_summary(mo).rename(index=BACKBONES), precision=3, index=True))

# %% tags=["hide-input"]
if not mo.empty:
    display(Markdown(V.maskout_verdict(mo, BACKBONES)["sentence"]))

# %% [markdown]
# The same in log-odds, on the images both probes classify correctly, with "on the part" defined by coverage: a
# square covering at least half of the part, against squares covering none of it with their centre on the object
# (a probability that starts at 0.99 and one that starts at 0.4 cannot drop by comparable amounts). The tables and
# panels are replicate 0's; the claims are measured with every pre-training replicate pair's probes, so their
# interval is over pre-training runs.

# %% tags=["hide-input"]
fig5_claims = V.maskout_claims([mo, *replicate_mo], BACKBONES)
if fig5_claims:
    display(table(C.verdicts_table(fig5_claims, columns=("estimate", "ci_low", "ci_high", "n")), precision=2))

# %% tags=["hide-input"]
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
    show_figure(fig, "figure5_maskout" + cue_suffix, chapter="visualisations", profile=prof.name, provenance=provenance)

# %% [markdown]
# ## Figure 8: detections of the two detectors on the same images
# The detection chapter's fine-tuned detectors (seed `seeds[0]`), loaded from the run store. For every ground-truth
# object, each detector's best same-class detection scoring at least `score_thresh`; the panels show the objects
# with the largest IoU gain of the detection-pre-trained detector (one per image), then the same among objects
# less than 75 % visible. Blue: IMAGENET-CLS; orange: detection pre-training; white dashed: ground truth.

# %%
det = run_detection_experiment(prof, dataset=dataset, data_root=data_root, pretrains=tuple(BACKBONES),
                               seeds=ch.seeds[:1], replicates=1, store=ch.store, device=device, progress=False,
                               log=quiet, corpus=corpus if dataset == "synthetic" else None)
models, eval_data, det_classes = V.load_detectors(det, dev, data_cache=ch.data_cache)
obj_frame, preds = V.detection_objects(models, eval_data, score_thresh=score_thresh, device=dev)
det_provenance = ch.provenance(det)

# %% tags=["hide-input"]
table(V.mean_best_iou(obj_frame, BACKBONES), precision=3, index=True)


# %% tags=["hide-input"]
def draw_cases(cases, title: str, name: str):
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
            bx = V.best_box(preds[pre][int(case["image"])], case["box"], case["label"], score_thresh)
            if bx is not None:
                ax.add_patch(mpatches.Rectangle((bx[0], bx[1]), bx[2] - bx[0], bx[3] - bx[1], fill=False,
                                                ec=COLOURS[pre], lw=1.2))
        vis = "" if np.isnan(case["visible_fraction"]) else f", {100 * case['visible_fraction']:.0f}% visible"
        ax.set_title(f"{det_classes[case['label']]}: IoU {case['iou_imagenet-cls']:.2f} -> "
                     f"{case['iou_detection']:.2f}{vis}", fontsize=6)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(title, fontsize=8)
    fig.text(0.01, 0.005, det_provenance, fontsize=5)
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    show_figure(fig, name + cue_suffix, chapter="visualisations", profile=prof.name, provenance=det_provenance)


draw_cases(V.localisation_cases(obj_frame, "imagenet-cls", "detection", n=4), "better localisation",
           "figure8_better_localisation")
if obj_frame["visible_fraction"].notna().any():
    draw_cases(V.localisation_cases(obj_frame, "imagenet-cls", "detection", n=4, occluded_below=0.75),
               "occluded objects (< 75 % visible)", "figure8_occluded")
else:
    display(Markdown("*This target records no visible fraction: no occlusion panel.*"))

# %% tags=["hide-input"]
display(Markdown(V.localisation_verdict(obj_frame, "imagenet-cls", "detection", occluded_below=0.75)["sentence"]))

# %% [markdown]
# ### Localisation apart from recall
# Above, a missed object counts as IoU 0, so the gain mixes "found it" with "placed the box well". Here IoU is
# compared only on the objects **both** detectors detect (best same-class IoU >= 0.5), per visible-fraction band,
# with each detector's detection rate beside it; the verdict averages the objects of an image and is over images.

# %%
loc_table, loc_verdicts = V.paired_localisation(obj_frame, "imagenet-cls", "detection")

# %% tags=["hide-input"]
table(loc_table, precision=3, roles=True)

# %% [markdown]
# ## The claims beside the predictions
# Every claim of the chapter with its interval under this execution's cue, beside what the paper's explanation
# predicted above. The claims of Figures 4 and 5 (the primary claim first) are measured in every pre-training
# replicate pair, so their unit is the pre-training run; Figure 8's reads replicate 0's detectors, so its interval
# covers the test images and is conditional on those networks (the `conditional` column). The others are
# Holm-adjusted among themselves.

# %%
claims = {**fig4_claims, **{f"Figure 5: {k}": v for k, v in fig5_claims.items()},
          "Figure 8: IoU gain on jointly detected objects": loc_verdicts["all"]}


def prediction_key(name: str) -> str:
    if name.startswith("Figure 8"):
        return "figure8"
    if name.startswith("Figure 5"):
        return "figure5" if name.endswith(f"minus {BACKBONES['detection']}") else ""
    if "within-object concentration" in name:
        return "figure4_concentration"
    if "decoy" in name:
        return "figure4_decoy"
    return "figure4_floor" if "untrained" in name else "figure4_part"


if claims:
    beside = M.claims_beside_predictions(stats.adjust_claims(claims, C.declared_primary("visualisations", claims)), "visualisations", cue,
                                         {k: prediction_key(k) for k in claims})
    M.save_claims(beside, chapter="visualisations", profile=prof.name, cue=cue, params=ch.params)
    display(table(beside, precision=2))

# %% [markdown]
# ## What this shows
# Every verdict above is computed from this execution. The intervals of the claims of Figures 4 and 5 are over the
# pre-training replicate pairs (the unit of replication); the descriptive tables beside the figures and Figure 8's
# verdicts are t-intervals over the images (or objects) of replicate 0's networks, as in the paper: so they are about
# these particular networks, not about pre-training in general (`detpretrain.analysis.stats`: as a claim about
# pre-training each is "not resolved", followed by what it shows "for these particular networks alone"; Figure 4's
# table names its column "label (these two networks)"). So are the claims against the untrained floor: one untrained
# network in every replicate pair, whose own spread is not in their intervals.
# Figure 8 stays on replicate 0 because the other replicates' detectors are fine-tuned only under `cue="part"` (the
# detection chapter); the variants would need one more detector per arm and replicate. Caveats:
#
# * The channel-mean Conv5 map is one of several ways to draw an "activation map" (the paper does not say which it
#   uses); mass shares are invariant to the map's scale but not to that choice.
# * The part is, by construction of the corpus, what tells categories apart within a super-category (module
#   `detpretrain.data.synthetic`), so "focus on discriminative parts" is measurable exactly here and only
#   approximately on photographs.
# * The blank square is the dataset mean; a black or noise square would change the absolute drops.
# * At `smoke` every run trains for seconds; its numbers exercise the code, they are not evidence.
