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
# # Are classes clustered in IMAGENET-CLS feature space and fragmented in detection feature space? (Li et al., Figures 3, 6, 7)
#
# *Li et al. 2019 {cite}`li2019analysis`, appendix 6.1 (Figures 3, 6 and 7).*
#
# The classification chapter measured *how well* a linear classifier reads classes from each backbone's Conv5
# features. This chapter looks at the geometry of those spaces, on the CALTECH-256 role, as the paper does:
#
# * **Figure 3 (top).** "The most similar images in Conv5 feature space": for IMAGENET-CLS they "can have multiple
#   objects; however for OPENIMAGES, the most similar image pairs typically match in shape and size."
# * **Figure 6.** k-means with K from 2 to 1000 in each space; "given an image pair in the same cluster in an
#   embedding (like OPENIMAGES), we check if the same image pair belongs to the same cluster in another embedding
#   (like ImageNet)". The paper finds: similar in OPENIMAGES implies similar in IMAGENET-CLS, not the converse.
# * **Figure 3 (middle).** Pairs close in IMAGENET-CLS space but distant in OPENIMAGES space: "close" = in the same
#   cluster when the number of clusters is large (> 1000), "distant" = not in the same cluster when it is small (< 5).
#   The paper: "objects of different scale and similar texture can be close in the IMAGENET-CLS space but far away
#   in the OPENIMAGES space".
# * **Figure 7.** t-SNE of Conv5 features coloured by class: "features from the same class are clustered and close to
#   each other in the IMAGENET-CLS space; however, OPENIMAGES features are fragmented." Here a picture is not
#   enough: the k-nearest-neighbour class agreement and the number of kNN-graph components per class measure it.
#
# Definitions are those of `detpretrain.analysis.feature_space` (its docstrings state them in full); features are
# the cached average-pooled Conv5 features of `detpretrain.experiments.features`, L2-normalised (cosine geometry).

# %% tags=["parameters"]
profile = "mini"  # smoke | mini | torchvision | paper (the GPU profiles embed with published backbones)
dataset = "synthetic"  # synthetic (the corpus named by target) | flowers102 | pet | caltech256 | sun397 (real images)
data_root = None  # root of a real dataset (dataset other than synthetic)
seeds = None  # k-means seeds of Figure 6 and random backbones; None means the profile's
device = "auto"  # auto | cpu | cuda
store = None  # run store folder; None means $DETPRETRAIN_RUNS or runs/
data_cache = None  # generated-corpus folder; None means $DETPRETRAIN_DATA or data/generated
target = "caltech"  # caltech (CALTECH-256 role, as in the paper) | sun | flowers
classification_backbone = "imagenet-cls"  # the IMAGENET-CLS space
detection_backbone = "detection"  # the detection space (multi-category detection pre-training: the COCO role)
k_max = 1000  # largest K of the sweep (capped at half the number of images)
knn_k = 10  # neighbours for the class-agreement and fragmentation numbers (Figure 7)
n_pairs = 6  # image pairs shown per panel of Figure 3
top_pairs = 50  # nearest pairs whose attributes are compared (Figure 3)
download = False  # fetch an absent real classification dataset into its root with torchvision (internet)
coco_root = None  # paper profile: COCO 2017 root of its detection pre-training; None: $DETPRETRAIN_COCO or ~/data/coco
cue = "part"  # category cue of every synthetic corpus: part | distributed (no part) | part+decoy
sun_backgrounds = "style"  # SUN-role scenes: style (the background names the scene) | shared (objects and layout do)
replicates = None  # pre-training replicates per pre-trained backbone (the unit of the claims); None: the profile's

# %%
import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns
from IPython.display import Markdown, display

from detpretrain.analysis import feature_space as S
from detpretrain.analysis import claims as C
from detpretrain.analysis import mechanisms as M
from detpretrain.analysis import stats
from detpretrain.chapter import chapter_setup, quiet, table
from detpretrain.experiments import features as F
from detpretrain.overview import save_primary
from detpretrain.paper import ROLE_NAMES, role_label

ch = chapter_setup("feature_space", profile=profile, store=store, data_cache=data_cache, device=device,
                   dataset=dataset, data_root=data_root, seeds=seeds, target=target,
                   classification_backbone=classification_backbone, detection_backbone=detection_backbone,
                   k_max=k_max, knn_k=knn_k, n_pairs=n_pairs, top_pairs=top_pairs, cue=cue,
                   sun_backgrounds=sun_backgrounds, download=download, coco_root=coco_root, replicates=replicates)
prof = ch.profile
corpus = {"cue": cue, "sun_backgrounds": sun_backgrounds}  # the target corpus and the backbones' pre-training corpora
names = {classification_backbone: ROLE_NAMES["imagenet-cls"], detection_backbone: ROLE_NAMES["detection"]}
cls_name, det_name = names[classification_backbone], names[detection_backbone]

# %% tags=["hide-input"]
from detpretrain.scope import chapter_note

if note := chapter_note("feature_space", ch.profile, dataset=dataset):
    display(Markdown(note))

# %% [markdown]
# ## Data and features
# All images of the target corpus (train, validation and test splits together: the analyses fit nothing on labels).

# %% tags=["hide-input"]
# NBVAL_CHECK_OUTPUT
data = F.probe_datasets(prof, target if dataset == "synthetic" else dataset, data_root, data_cache=ch.data_cache,
                        download=download, corpus=corpus if dataset == "synthetic" else None)
attrs = F.split_attributes(data)
ks = S.default_ks(len(attrs), k_max)
table(S.configuration_table(data, len(attrs), ks, ch.seeds, knn_k), index=True)

# %% tags=["hide-input"]
display(Markdown(M.prediction_markdown("feature_space", cue)))

# %%
stacked = {pre: F.stacked_features(pre, data, prof, store=ch.store, device=device, log=quiet, corpus=corpus)
           for pre in (classification_backbone, detection_backbone)}
stacked |= {f"scratch-s{seed}": F.stacked_features("scratch", data, prof, store=ch.store, seed=seed, device=device,
                                                     log=quiet) for seed in ch.seeds}
spaces = {key: arrays["features"] for key, arrays in stacked.items()}
labels = stacked[classification_backbone]["labels"]
provenance = ch.provenance(data=data.describe, runs={k: stacked[k]["source"] for k in names})
print(provenance)

# %% [markdown]
# ## The answer
# The primary claim, Figure 7's kNN class agreement, needs only Conv5 features, so it is computed here, before the
# figures (its details are in the Figure 7 section; the secondary claims are at the end). It is measured in every
# pre-training replicate's pair of spaces (IMAGENET-CLS run r against detection run r), so its unit is the
# pre-training run; so are the claims of Figures 3 and 6. The figures below show replicate 0.

# %% tags=["hide-input"]
pairs = F.replicate_pairs(classification_backbone, detection_backbone, ch.replicates)
replicates_stacked = {key: F.stacked_features(key, data, prof, store=ch.store, device=device, log=quiet,
                                              corpus=corpus)
                      for pair in pairs[1:] for key in pair if key not in stacked}
replicate_spaces = {**{k: v["features"] for k, v in replicates_stacked.items()}, **spaces}
agreement = S.knn_agreement_verdict([replicate_spaces[a] for a, _ in pairs], [replicate_spaces[b] for _, b in pairs],
                                    labels, k=knn_k)
print(f"primary claim over {len(pairs)} pre-training replicate pair(s): " + ", ".join(f"{a} vs {b}" for a, b in pairs))
if replicates_stacked:
    print(ch.provenance(data=data.describe, runs={k: v["source"] for k, v in replicates_stacked.items()}))
primary_name = f"Figure 7: kNN agreement, {cls_name} minus {det_name}"
primary_result = agreement if primary_name == C.PRIMARY_CLAIMS["feature_space"].name else None
display(Markdown(C.answer("feature_space", primary_result)))
_ = save_primary("feature_space", primary_result, profile=ch.profile.name, store=ch.store,
                 params=ch.params)  # for the intro's overview


# %% tags=["hide-input"]
def show_pairs(pairs, title: str):
    """One column per pair, the two images above each other, with class, object count and largest-object area."""
    pairs = np.asarray(pairs)[:n_pairs]
    if len(pairs) == 0:
        display(Markdown(f"*{title}: no pair.*"))
        return
    fig, axes = plt.subplots(2, len(pairs), figsize=(1.5 * len(pairs), 3.4), squeeze=False)
    for col, pair in enumerate(pairs):
        for row, (k, image) in enumerate(zip(pair, F.stacked_images(data, attrs, pair))):
            ax = axes[row][col]
            ax.imshow(image)
            ax.set_xticks([])
            ax.set_yticks([])
            r = attrs.iloc[k]
            objects = ("" if np.isnan(r["area_fraction"])  # real images: no annotated objects
                       else f" · {r['n_objects']} obj · {100 * r['area_fraction']:.0f}%")
            ax.set_xlabel(f"{r['label']}{objects}", fontsize=6)
    fig.suptitle(title, fontsize=8)
    fig.text(0.01, 0.005, provenance, fontsize=5)
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    plt.show()


# %% [markdown]
# ## Figure 3 (top): the nearest image pairs in each space
# The closest pairs by cosine distance. Below them, the `top_pairs` nearest pairs of each space are compared on
# what the images show: the mean absolute difference between the two images' largest-object log-area, their
# log-aspect ratio and their object count, each divided by the same mean over *all* pairs (1 = no more alike than
# random pairs; smaller = more alike), and the share of pairs of the same class.

# %% tags=["hide-input"]
near_table, near = S.nearest_pair_table({k: spaces[k] for k in names}, labels, attrs, names, top_pairs)
for pre, frame in near.items():
    show_pairs(frame[["i", "j"]].to_numpy(), f"nearest pairs, {names[pre]} space ({pre})")

# %% tags=["hide-input"]
table(near_table, precision=2)

# %% tags=["hide-input"]
display(Markdown(S.size_match_summary(near_table, cls_name, det_name)["sentence"]))
# the claim in every replicate pair's spaces (replicate 0's pairs are the ones above)
nearest_sets = [tuple(near[key][["i", "j"]].to_numpy() if key in near
                      else S.nearest_pairs(replicate_spaces[key], top_pairs)[["i", "j"]].to_numpy() for key in pair)
                for pair in pairs]
size_match = S.size_match_verdict(nearest_sets, attrs["log_area"].to_numpy())
display(Markdown("With an interval (positive = the detection space's pairs match better in size; "
                 + ("each space's nearest pairs resampled, these two networks): " if len(pairs) == 1
                    else f"over {len(pairs)} pre-training replicate pairs): ")
                 + size_match.sentence("of a random pair's size difference", digits=2)))

# %% [markdown]
# ## Figure 6: cluster consistency
# For each K, k-means in both spaces; over all unordered image pairs, P(same cluster in B | same cluster in A) for
# A = the detection space (OPENIMAGES in the paper, COCO here), B = IMAGENET-CLS and the reverse. One curve per
# k-means seed (`seeds`), mean line with the spread.

# %%
curves, labelings = S.consistency_curves(spaces[detection_backbone], spaces[classification_backbone], ks, ch.seeds)

# %% tags=["hide-input"]
fig, ax = plt.subplots(figsize=(7, 4))
sns.lineplot(data=S.consistency_directions(curves, det_name, cls_name), x="K", y="p", hue="direction",
             errorbar=("pi", 100), marker="o", ax=ax)
ax.set_xscale("log")
ax.set_xlabel("number of clusters K")
ax.set_ylabel("P(pair shares a cluster in the other space)")
ax.set_title(provenance, fontsize=6, loc="left")
fig.tight_layout()
plt.show()

# %% tags=["hide-input"]
asymmetry = S.asymmetry_summary(curves, det_name, cls_name)
display(table(asymmetry["table"], precision=3, index=True))
display(Markdown(asymmetry["sentence"]))

# %% [markdown]
# ### Figure 6 against a null that keeps the cluster sizes
# Over the same image pairs, P(same in B | same in A) / P(same in A | same in B) = pairs_B / pairs_A exactly: the
# asymmetry above says which k-means partition has more same-cluster pairs (is less balanced), whatever the
# features. What the spaces share shows in the **lift** = pairs in both x all pairs / (pairs_A x pairs_B), 1 for
# independent partitions. The null shuffles one space's cluster labels over the images (every cluster keeps its
# size); the **corrected asymmetry** is the observed asymmetry minus the null's mean. The table is replicate 0's;
# the verdict is over the pre-training replicate pairs (each pair's k-means sweep and null computed the same way),
# or over the k-means seeds when there is one pair.

# %%
null = S.consistency_null_curves(labelings, n_perm=200)
replicate_nulls = [S.consistency_null_curves(S.consistency_curves(replicate_spaces[det], replicate_spaces[cls], ks,
                                                                  ch.seeds)[1], n_perm=200)
                   for cls, det in pairs[1:]]
asymmetry_null = S.corrected_asymmetry_verdict([null, *replicate_nulls])

# %% tags=["hide-input"]
display(table(null.groupby("K")[["pairs_a", "pairs_b", "pairs_both", "lift", "p_lift", "asymmetry",
                                 "null_asymmetry", "corrected_asymmetry", "p_asymmetry"]].mean()
              .rename(columns={"pairs_a": f"pairs, {det_name}", "pairs_b": f"pairs, {cls_name}"}),
              precision=3, index=True))
display(Markdown("Null-corrected asymmetry, averaged over K per k-means seed"
                 + (f", over {len(pairs)} pre-training replicate pairs: " if len(pairs) > 1 else ": ")
                 + asymmetry_null.sentence("P(same) points", digits=3)))

# %% [markdown]
# How much this can say: with pairs_A, pairs_B and pairs in both, the asymmetry is pairs_both x (pairs_B - pairs_A) /
# (pairs_A x pairs_B), and the null keeps pairs_A and pairs_B, so the corrected asymmetry is (pairs_both - its null
# mean) x (pairs_B - pairs_A) / (pairs_A x pairs_B). Its sign is (lift above 1) x (which partition has more
# same-cluster pairs). A resolved corrected asymmetry therefore says that the spaces share structure (the lift) and
# which k-means partition is less balanced; it is not separate evidence that similarity in one space implies
# similarity in the other "and not the converse". Read it with the lift and pairs columns above.

# %% [markdown]
# ## Figure 3 (middle): close in IMAGENET-CLS space, distant in the detection space
# "Close" = the same cluster at the largest K of the sweep (the paper: K > 1000; ours is capped by the number of
# images, see the configuration), "distant" = different clusters at every K < 5 (2, 3, 4), k-means seed
# `seeds[0]`. The table compares these pairs with all pairs on the same attributes as above.

# %% tags=["hide-input"]
la, lb = labelings[ch.seeds[0]]
cd = S.close_distant_pairs(lb, la, close_k=max(ks))
show_pairs(cd, f"close in {cls_name}, distant in {det_name} ({len(cd)} pairs)")
close_distant = S.close_distant_summary(cd, labels, attrs)
if close_distant["table"] is not None:
    display(table(close_distant["table"], precision=2))
    display(Markdown(close_distant["sentence"]))

# %% [markdown]
# ## Figure 7: t-SNE and how fragmented the classes are
# t-SNE (scikit-learn, PCA init, fixed seed) of each space, coloured by class. The numbers are computed in the
# Conv5 space itself, not in the 2-D picture: **kNN agreement** = mean share of an image's `knn_k` nearest
# neighbours with its class (higher = classes are tighter); **components per class** = connected components of the
# kNN graph restricted to each class (1 = one clump per class; higher = fragmented). Random backbones (one per
# seed) give the floor.

# %% tags=["hide-input"]
frag, frag_summary = S.fragmentation_table(spaces, labels, knn_k)
table(frag_summary.set_index("space"), precision=2, index=True, roles={**{k: role_label(k) for k in ROLE_NAMES},
                                                                      "scratch": "random init"})

# %% tags=["hide-input"]
fig, axes = plt.subplots(1, 2, figsize=(9, 4.5))
palette = sns.color_palette("husl", len(data.classes))
for ax, pre in zip(axes, (classification_backbone, detection_backbone)):
    xy = S.tsne_embedding(spaces[pre], seed=0)
    for c in range(len(data.classes)):
        m = labels == c
        ax.scatter(xy[m, 0], xy[m, 1], s=4, color=palette[c], label=data.classes[c])
    row = frag[frag["space"] == pre].iloc[0]
    ax.set_title(f"{names[pre]} ({pre}): kNN agreement {row['kNN agreement %']:.1f} %, "
                 f"{row['components per class']:.1f} components/class", fontsize=7)
    ax.set_xticks([])
    ax.set_yticks([])
axes[1].legend(fontsize=5, markerscale=2, ncol=2, bbox_to_anchor=(1.01, 1), loc="upper left")
fig.text(0.01, 0.01, provenance, fontsize=5)
fig.tight_layout(rect=(0, 0.03, 1, 1))
plt.show()

# %% tags=["hide-input"]
display(Markdown(S.fragmentation_summary(frag, classification_backbone, detection_backbone, names)["sentence"]))
display(Markdown(f"kNN agreement, {cls_name} minus {det_name}, "
                 + ("with a paired bootstrap over images: " if len(pairs) == 1
                    else f"over {len(pairs)} pre-training replicate pairs: ")
                 + agreement.sentence("points")))

# %% [markdown]
# ## The claims beside the predictions
# Each figure's claim with its interval under this execution's cue, beside what the paper's explanation predicted
# above (Figure 7 is the primary claim; the others are Holm-adjusted). Every interval is over the pre-training
# replicate pairs when there are two or more; with one pair, Figures 3 and 6 resample nearest pairs or k-means
# seeds, conditional on those two networks (the `conditional` column).

# %%
claims = {primary_name: agreement,
          f"Figure 3: size match, {cls_name} minus {det_name} pairs": size_match,
          "Figure 6: null-corrected asymmetry": asymmetry_null}
predictions = dict(zip(claims, ("figure7", "figure3", "figure6")))
if size_match.n == 0:  # real images have no object sizes: no Figure 3 claim (nor one more test for Holm to count)
    claims = {name: v for name, v in claims.items() if v is not size_match}
beside = M.claims_beside_predictions(stats.adjust_claims(claims, C.declared_primary("feature_space", claims)),
                                     "feature_space", cue, {name: predictions[name] for name in claims})
M.save_claims(beside, chapter="feature_space", profile=prof.name, cue=cue, corpus=corpus, params=ch.params)

# %% tags=["hide-input"]
table(beside, precision=3)

# %% [markdown]
# ## What this shows
# The sentences above are computed from this execution. Caveats:
#
# * The figures show one pre-trained backbone per space (replicate 0), as the paper does; the three claims are
#   measured in every replicate pair, so their intervals are over pre-training runs (at `mini`, 3 pairs, df = 2: only a
#   large effect can resolve, see the smallest detectable effect).
# * Our K sweep stops at half the number of images, far below the paper's 1000 clusters of CALTECH-256's 30,607
#   images, so "close" is a coarser notion here.
# * The synthetic corpus knows each image's objects exactly, which is what lets "match in shape and size" be a
#   number rather than an impression.
# * At `smoke` the backbones train for seconds; its numbers exercise the code, they are not evidence.
