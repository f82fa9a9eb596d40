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
# # Do the paper's explanations survive a change of cue?
#
# *Li et al. 2019 {cite}`li2019analysis`, Section 2.3 (Tables 5, 6 and 8) and appendix 6.1-6.2 (Figures 3-8).*
#
# Li et al. explain their results by what each pre-training attends to: classification pre-training "focus[es] on
# discriminative parts", detection pre-training "emphasize[s] on the entire spatial extent of the objects". Our
# embedded corpora are generated, so where the category cue lives is a choice of the generator
# (`detpretrain.data.synthetic`, the `cue` of every corpus):
#
# * `part` (every other chapter of this book): a small, salient discriminative part names the category within its
#   super-category. This corpus *plants* the paper's mechanism, so the chapters' results under it are **positive
#   controls**: they show that our measurements can see the mechanism where it exists, not that pre-training works
#   this way.
# * `distributed`: no part; a body-wide texture motif names the category. If the explanation is what drives the
#   results, whatever the classification backbone gains from a part should shrink here.
# * `part+decoy`: the part, plus a category-independent patch of the same size and look. A trained classifier, and
#   only a trained classifier, should favour the part over the decoy.
#
# One more control is not a cue: under `part`, a SUN-role scene's class is readable from its background style
# alone, so the SUN-397 columns of Tables 6 and 8 are positive controls too. `shared-backgrounds` regenerates the
# SUN-role target with one background distribution for every scene (`sun_backgrounds = "shared"`), so the scene is
# named by which objects co-occur and where; its column keeps the SUN-397 claims only (the other datasets' runs are
# unchanged).
#
# This page executes the classification, feature-space and visualisation chapters again under the other cues
# (the `variants` parameter; the `part` column comes from the chapters themselves) and sets each claim's result
# beside what the explanation predicted for that cue, written in `detpretrain.analysis.mechanisms.PREDICTIONS`
# before any run. These are the **tests**. Claims about localisation and extent (Figure 8, Figure 3's size match,
# Table 5's pooling) are predicted not to depend on the cue.

# %% tags=["parameters"]
profile = "mini"  # smoke | mini (the cue is a property of the synthetic corpora)
dataset = "synthetic"  # unused: every variant runs on its chapter's synthetic target
data_root = None  # unused here
seeds = None  # passed to every variant; None means the profile's
device = "auto"  # auto | cpu | cuda
store = None  # run store folder; None means $DETPRETRAIN_RUNS or runs/
data_cache = None  # generated-corpus folder; None means $DETPRETRAIN_DATA or data/generated
replicates = None  # pre-training replicates per pre-trained backbone (the unit of every verdict); None: the profile's
variants = ["classification:distributed", "feature_space:distributed", "visualisations:distributed", "visualisations:part+decoy", "classification:shared-backgrounds"]  # chapter:condition, run again
real_data = {"flowers102": "../shared/data/flowers102_subset", "pet": "../shared/data/oxford_iiit_pet_subset"}  # genuine datasets of the classification variants' Table 6 and 8 rows, {name: root}
download = False  # the variants fetch an absent real dataset with torchvision (internet)

# %% tags=["hide-input"]
from pathlib import Path

from IPython.display import Markdown, display

from detpretrain.book import execute_variants
from detpretrain.analysis import claims as C
from detpretrain.analysis import mechanisms as M
from detpretrain.chapter import chapter_setup, table
from detpretrain.experiments.classification import sun_control
from detpretrain.overview import save_primary
from detpretrain.parameters import parse_variants

ch = chapter_setup("mechanisms", profile=profile, store=store, data_cache=data_cache, device=device, dataset=dataset,
                   data_root=data_root, seeds=seeds, replicates=replicates, variants=variants,
                   real_data=real_data, download=download)
asked = parse_variants(variants)
chapters = list(dict.fromkeys(chapter for chapter, _ in asked))

# %% [markdown]
# ## Before the results: the predictions
# What the paper's explanation predicts for each claim under each cue ("+": the paper's direction; "smaller": a
# smaller effect than under `part`; "n/a": not measurable under that cue).

# %% tags=["hide-input"]
table(M.predictions_by_cue(chapters))

# %% [markdown]
# ## The variants
# Each variant is its chapter executed with papermill under another `cue` (or the SUN control), with this page's
# profile, store, seeds and replicates; the pre-trainings of a cue variant are trained on corpora with that cue (new
# runs, listed by `python -m detpretrain runs plan --chapters mechanisms`); the SUN control reuses the `part`
# pre-trainings and retrains only what reads the SUN-role target. The executed notebooks are kept beside the book's
# build (`_build/variants/`), with every figure and table of the chapter under that cue.

# %%
executed = execute_variants(variants, ch.params)

# %% tags=["hide-input"]
table(M.variants_frame(executed))

# %% [markdown]
# ## The answer
# The primary contrast, declared before any variant ran; every claim and contrast behind it follows below.

# %% tags=["hide-input"]
contrasts, contrast_rows = M.cue_contrasts(ch.profile.name, cues=[cue for _, cue in asked], chapters=chapters)
primary = C.declared_primary("mechanisms", contrasts)
display(Markdown(C.answer("mechanisms", contrasts.get(primary) if primary else None,
                          note="" if primary else "The classification chapter was not executed under both cues.")))
_ = save_primary("mechanisms", contrasts.get(primary) if primary else None, profile=ch.profile.name,
                 store=ch.store, params=ch.params)  # for the intro's overview

# %% [markdown]
# ## The claims under each cue
# Each cell: the label, the estimate and its 95 % interval, as the chapter computed them (its unit of replication
# and n are in the chapter's claims table). An empty cell: the chapter was not executed under that cue, or, in the
# `shared-backgrounds` column, a claim the SUN control does not change (only the SUN-397 claims are kept).

# %% tags=["hide-input"]
results = M.claims_by_cue(ch.profile.name, cues=("part", *(cue for _, cue in asked)), chapters=chapters)
display(table(results))
print(ch.provenance(data=f"synthetic corpora, cues {', '.join(results.columns[2:])}",
                    runs={f"{c}:{q}": Path(e["notebook"]).name for (c, q), e in zip(asked, executed)}))

# %% tags=["hide-input"]
display(Markdown(M.cue_summary(results)))

# %% [markdown]
# ## Can the SUN control resolve its claims?
# A control whose classifiers read little of the scene cannot confirm or refute anything. Its Table 8 fine-tunings
# (test split) beside what the ground-truth object counts alone give (the bag-of-objects oracle: a logistic
# regression on each image's per-category counts, fitted on the same training images) and chance. The SUN-role
# training set was sized on val by the same comparison (selection 4 in `profiles.py`).

# %% tags=["hide-input"]
if ("classification", "shared-backgrounds") in asked:
    sun_transfer, sun_oracle = sun_control(ch.profile, seeds=ch.seeds, replicates=ch.replicates, store=ch.store,
                                           device=ch.device, log=lambda line: None)
    sun_frame, sun_sentence = M.sun_control_floor(sun_transfer, sun_oracle)
    display(table(sun_frame.set_index("backbone"), precision=1, index=True, roles=True))
    display(Markdown(sun_sentence))
    print(ch.provenance(data=sun_transfer["data"], runs={f"{r['pretrain']} r{r['replicate']}": Path(r["run"]).name
                                                         for r in sun_transfer["runs"]}))
else:
    display(Markdown("The SUN control (`classification:shared-backgrounds`) is not among this execution's variants."))

# %% [markdown]
# ## The tests: each claim under `part` against under the other cue
# "Smaller than under part" is a claim about a difference of two effects, so it gets its own interval: the effect
# under `part` minus the effect under the other cue, in the claim's direction (`holds`: larger under `part`). The
# two executions of a cue share no pre-training run, corpus or test image, so their intervals combine as in Welch's
# test (`detpretrain.analysis.stats.difference_verdict`). The SUN control shares its pre-training runs with the
# `part` column; the same combination then ignores their (positive) correlation, which widens the interval: that
# test loses power, and an unresolved difference there is weak evidence that the SUN result does not depend on the
# background shortcut. Claims predicted to be cue-independent are compared the same
# way: a resolved difference is against the prediction, an unresolved one is consistent with it but, with the
# `mini` profile's 3 pre-training runs a side, weak evidence for it (see `smallest detectable`). The primary contrast was declared in
# `detpretrain.analysis.claims` before any variant ran; the others are Holm-adjusted among themselves.

# %% tags=["hide-input"]
table(M.contrasts_frame(contrasts, contrast_rows), precision=2, formats={"p": "{:.3f}", "p (Holm)": "{:.3f}"})

# %% [markdown]
# ## What this can and cannot show
# * Under `part` the corpus contains the mechanism the paper proposes; agreement there is expected by construction.
#   The evidence for or against the explanation is in the other columns.
# * A claim "not resolved" under `distributed` is not evidence that the effect vanished; the contrasts above test the
#   change itself. A contrast is only as strong as its weaker side: where a chapter's claim is conditional on one
#   pre-training run (its interval over images), so is the contrast (`unit` says which).
# * The claims of Figures 3-7 are measured in every pre-training replicate pair, so their intervals are over
#   pre-training runs, except two: the untrained floor's own part-minus-decoy enrichment (one network, the same in
#   every pair) and Figure 8 (replicate 0's detectors); their intervals are over test images and conditional on
#   those networks.
