"""What a chapter runs at the profiles with published weights (``torchvision``, ``paper``), and what stays synthetic.

At ``smoke`` and ``mini`` every chapter runs on the embedded synthetic corpora (or on real roots where a chapter
takes them). The GPU profiles take their backbones from torchvision's published weights and fine-tune on real data;
some analyses exist only where the synthetic corpus annotates what they measure (discriminative parts, exact object
sizes, IMAGENET-LOC's super-categories). Each chapter shows :func:`chapter_note` as its first output, so a reader of
a ``torchvision`` build sees at once which parts are real and which are synthetic-only and why. Chapters that are
synthetic-only as a whole (:data:`detpretrain.parameters.SYNTHETIC_ONLY`) refuse those profiles before anything
executes.

:func:`real_pretrains` is the one rule of which backbones exist at a profile; the classification chapter and its
planner (:mod:`detpretrain.plan`) both apply it.
"""

from __future__ import annotations

from detpretrain.profiles import Profile, get_profile

#: backbones that only exist as pre-training runs on the synthetic corpora (IMAGENET-LOC continues from an
#: IMAGENET-CLS run of ours; the paper's 3,130-class IMAGENET-LOC is not distributed)
SYNTHETIC_PRETRAINS = ("imagenet-loc", "imagenet-loc-cls", "detection-multilabel")


def _profile(profile) -> Profile:
    return get_profile(profile) if isinstance(profile, str) else profile


def real_pretrains(profile, pretrains) -> tuple[list[str], list[str]]:
    """``(kept, dropped)``: the backbones of ``pretrains`` that exist at ``profile``, and those that do not.

    At a profile with published IMAGENET-CLS weights the IMAGENET-LOC backbones (``imagenet-loc``,
    ``imagenet-loc-cls``, ``imagenet-loc-no-<sc>``) are dropped: they are pre-trained on the synthetic corpus from an
    IMAGENET-CLS run of ours; so is Table 1's same-images control (``detection-multilabel``), a multi-label
    classifier on the synthetic detection pre-training's images. Elsewhere nothing is dropped.
    """
    prof = _profile(profile)
    if prof.imagenet_cls_weights is None:
        return list(pretrains), []
    dropped = [p for p in pretrains if p.startswith(SYNTHETIC_PRETRAINS)]
    return [p for p in pretrains if p not in dropped], dropped


def backbones_sentence(profile) -> str:
    """Where the profile's backbones come from, in one sentence (Markdown)."""
    prof = _profile(profile)
    parts = [f"{name}: torchvision `{weights}` (published, not trained here)" for name, weights in
             prof.published.items()]
    if "detection" not in prof.published:
        root = prof.coco_root or "the `coco_root` parameter, `$DETPRETRAIN_COCO` or `~/data/coco`"
        parts.append(f"detection: pre-trained here on COCO 2017 train2017 ({root}), from IMAGENET-CLS")
    return f"Backbones of profile `{prof.name}`: " + "; ".join(parts) + "; scratch: random initialisation."


def _synthetic_parts(chapter: str, params: dict) -> str:
    dataset = params.get("dataset", "synthetic")
    return {
        "pretraining": "Nothing below is pre-trained on the synthetic corpora at this profile; the corpus samples are "
                       "the `mini` corpora that the synthetic-only parts of other chapters read.",
        "classification": "Synthetic-only: the CALTECH / SUN / FLOWERS roles of `targets` are the `mini` corpora "
                          "(128 px), probed and fine-tuned from the published backbones, and the IMAGENET-LOC "
                          "backbones are left out (they are pre-trained on the synthetic corpus from an IMAGENET-CLS "
                          "run of ours). Real: the datasets of `real_data` (probes and fine-tuning at the profile's "
                          "input size).",
        "feature_space": ("Synthetic-only: Figure 3's object-size comparison reads each image's annotated objects, "
                          "which only the synthetic corpus records; on the real images of this execution its "
                          "attribute columns are empty (–). Figures 6 and 7 use the real images' class labels."
                          if dataset != "synthetic" else
                          "The images are the synthetic `mini` corpus named by `target` (128 px), embedded by the "
                          "published backbones; pass `-p dataset flowers102 -p data_root ...` (or pet, caltech256, "
                          "sun397) for real images."),
        "visualisations": "Synthetic-only: Figures 4 and 5 measure activation on each object's discriminative part "
                          "and whole extent, which only the synthetic corpus annotates (the `mini` corpus named by "
                          "`target`, embedded by the published backbones). Real: the activation shares on COCO "
                          "images (`real_detection_root`) and Figure 8 (detections on the real target).",
        "detection": "Table 1's same-images control (COCO (Cls): a multi-label classifier on the detection "
                     "pre-training's images) is left out: it needs the synthetic detection pre-training corpus, and "
                     "at this profile the detection backbone is not pre-trained here on it. Everything else runs on "
                     "the real target.",
        "eigenspectrum": "Everything below runs on the real target; the from-scratch detector (S) is trained here.",
        "frozen_backbone": "Everything below runs on the real target (its rare classes subsampled as the chapter "
                           "describes).",
    }.get(chapter, "Everything below runs on the real target.")


def chapter_note(chapter: str, profile, **params) -> str:
    """The first output of ``chapter`` at ``profile`` (Markdown): empty at ``smoke`` / ``mini``; at a profile with
    published weights, where the backbones come from and which parts are real, which synthetic-only and why.

    Args:
        params: the chapter's parameters (``dataset`` decides, for the feature-space chapter, what is real).
    """
    prof = _profile(profile)
    if not prof.published:
        return ""
    return f"**Real data at profile `{prof.name}`.** {backbones_sentence(prof)} {_synthetic_parts(chapter, params)}"
