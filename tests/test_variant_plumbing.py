"""Issue 18, variant plumbing: a chain's corpus variant (``corpus={"cue": ...}``) reaches every synthetic corpus of
the chain and nothing else, and the default leaves every config hash as it was."""

from __future__ import annotations

import numpy as np
import pytest

from detpretrain.config import config_hash
from detpretrain.errors import ConfigError
from detpretrain.experiments import common
from detpretrain.experiments.classification import classification_chain
from detpretrain.experiments.detection import detection_chain
from detpretrain.experiments.features import plan_features
from detpretrain.profiles import get_profile

PROF = get_profile("smoke")


def _hashes(configs):
    return [config_hash(c) for c in configs]


@pytest.mark.parametrize("neutral", [None, {}, {"cue": "part"}, {"cue": "part", "sun_backgrounds": "style"}])
def test_the_default_corpus_is_hash_neutral(neutral):
    base = detection_chain(PROF, pretrains=("imagenet-cls", "detection", "imagenet-loc")).configs
    assert _hashes(detection_chain(PROF, pretrains=("imagenet-cls", "detection", "imagenet-loc"),
                                   corpus=neutral).configs) == _hashes(base)
    assert _hashes(classification_chain(PROF, role="sun", corpus=neutral).configs) == \
        _hashes(classification_chain(PROF, role="sun").configs)
    assert _hashes(plan_features(PROF, ("imagenet-cls", "detection"), corpus=neutral)) == \
        _hashes(plan_features(PROF, ("imagenet-cls", "detection")))
    for role in ("caltech", "sun", "flowers", "voc"):
        assert common.synthetic_spec("smoke", role, corpus=neutral) == common.synthetic_spec("smoke", role)


def test_a_cue_reaches_every_synthetic_corpus_of_the_chain():
    cue = {"cue": "distributed"}
    configs = detection_chain(PROF, pretrains=("imagenet-cls", "detection", "imagenet-loc"), corpus=cue).configs
    assert {c.data.corpus["cue"] for c in configs} == {"distributed"}
    assert not set(_hashes(configs)) & set(_hashes(detection_chain(PROF, pretrains=("imagenet-cls",)).configs))
    inits = {c.init for c in configs if c.init}
    assert inits <= {f"run:{h}" for h in _hashes(configs)}  # every fine-tuning starts from a variant pre-training
    flowers = classification_chain(PROF, role="flowers", corpus=cue).configs
    assert "cue" not in flowers[-1].data.corpus  # flowers have no part: the target stays the default
    assert flowers[0].data.corpus["cue"] == "distributed"  # its IMAGENET-CLS pre-training does not


def test_sun_backgrounds_reach_the_sun_target_only():
    shared = {"sun_backgrounds": "shared"}
    configs = classification_chain(PROF, role="sun", corpus=shared).configs
    assert [c.data.corpus.get("sun_backgrounds") for c in configs] == [None] * (len(configs) - 3) + ["shared"] * 3
    assert common.pretrain_configs(PROF, corpus=shared) == common.pretrain_configs(PROF)


def test_the_pages_real_data_and_download_reach_its_classification_variants_only(tmp_path):
    """``book -p real_data ...`` is given to every chapter that has the name: the classification chapter and the
    mechanisms page, which passes it (and ``download``) to the classification variants it executes; the other
    variants have no ``real_data``. Without it a variant keeps the classification chapter's default."""
    from detpretrain.book import _book_parameters, find_root, resolve_chapter
    from detpretrain.parameters import CHAPTER_PARAMETERS, variant_values

    roots = {"pet": str(tmp_path / "pets")}
    page = {"real_data": roots, "download": True}
    assert {k: variant_values("classification", "distributed", page)[k] for k in page} == page
    assert variant_values("classification", "shared-backgrounds", page)["real_data"] == roots
    feature_space = variant_values("feature_space", "distributed", page)
    assert "real_data" not in feature_space and feature_space["dataset"] == "synthetic"  # its variant: synthetic only
    default = {p.name: p.default for p in CHAPTER_PARAMETERS["classification"]}["real_data"]
    assert variant_values("classification", "distributed", {})["real_data"] == default
    sources = {c: resolve_chapter(c, find_root(None)) for c in ("classification", "mechanisms", "feature_space")}
    checked = _book_parameters({"real_data": roots}, sources)
    assert checked["mechanisms"]["real_data"] == checked["classification"]["real_data"] == roots
    assert "real_data" not in checked["feature_space"]


def test_bad_variants_are_refused_by_name():
    with pytest.raises(ConfigError, match="unknown variant key"):
        common.synthetic_spec("smoke", "voc", corpus={"exclude_supercategory": "animal"})
    with pytest.raises(ConfigError, match="unknown cue"):
        common.synthetic_spec("smoke", "voc", corpus={"cue": "parts"})
    with pytest.raises(ConfigError, match="real data"):
        common.target_spec(PROF, "voc", "/nowhere", corpus={"cue": "distributed"})
    from detpretrain.errors import DataError

    with pytest.raises(DataError):  # a neutral variant passes on to the reader, which finds no data
        common.target_spec(PROF, "voc", "/nowhere", corpus={"cue": "part"})


# ---- Table 1's same-images control -------------------------------------------------------------------------------
def test_same_images_config_mirrors_the_detection_pretraining():
    det = common.pretrain_configs(PROF)["detection"]
    cfg = common.same_images_config(PROF)
    assert cfg.task == "multilabel" and (cfg.data, cfg.optim, cfg.init, cfg.model) == (det.data, det.optim, det.init,
                                                                                        det.model)
    chain = detection_chain(PROF, pretrains=(common.SAME_IMAGES,)).configs
    assert chain[-1].init == f"run:{config_hash(cfg)}" and config_hash(cfg) in _hashes(chain)
    assert common.same_images_config(PROF, {"cue": "distributed"}).data.corpus["cue"] == "distributed"
    with pytest.raises(ConfigError):
        common.same_images_config(get_profile("torchvision"))


def test_multilabel_dataset_losses_and_evaluation(tmp_path):
    import json

    import torch

    from detpretrain.data import synthetic as syn
    from detpretrain.data.classification import ImageMultiLabels
    from detpretrain.engine import evaluate_multilabel, multilabel_losses

    root = syn.generate(syn.CorpusSpec("coco", 64, 6, 0, 0, seed=1), tmp_path)
    ann = json.loads((root / "annotations" / "instances_train.json").read_text())
    ds = ImageMultiLabels(root / "train", root / "annotations" / "instances_train.json")
    assert len(ds) == 6 and len(ds.classes) == 25
    cats = sorted(c["id"] for c in ann["categories"])
    first = ann["images"][0]["id"]
    present = {cats.index(a["category_id"]) for a in ann["annotations"] if a["image_id"] == first}
    image, target = ds[0]
    assert set(torch.nonzero(target).flatten().tolist()) == present and image.dtype == torch.uint8

    class Oracle(torch.nn.Module):  # scores = the targets: every class ranked perfectly
        def forward(self, x):
            return x.flatten(1)[:, :25] * 0 + self.t[: len(x)] * 20 - 10

    items = [(torch.zeros(3, 8, 8), ds.samples[i][1]) for i in range(6)]
    oracle = Oracle()
    oracle.t = torch.stack([t for _, t in items])
    assert evaluate_multilabel(oracle, items, "cpu")["mAP"] == pytest.approx(100.0)
    loss = multilabel_losses(lambda x: torch.zeros(len(x), 25), torch.zeros(2, 3), torch.ones(2, 25), "cpu")
    assert float(loss["loss_bce"]) == pytest.approx(np.log(2))  # logit 0 for every positive: -log(1/2)


# ---- the frozen-backbone control: rare classes absent from pre-training --------------------------------------------
def test_frozen_study_can_pretrain_without_its_rare_classes(tmp_path):
    from detpretrain.data.synthetic_taxonomy import CATEGORY_BY_NAME
    from detpretrain.experiments.frozen import frozen_chains

    kw = {"heads": ("FPN",), "seeds": (0,), "data_cache": tmp_path}
    target, base = frozen_chains(PROF, **kw)
    _, again = frozen_chains(PROF, exclude_rare_from_pretraining=None, **kw)
    assert [_hashes(c.configs) for c in base.values()] == [_hashes(c.configs) for c in again.values()]
    rare = target.long_tail["rare"]
    for scope in ("category", "supercategory"):
        _, chains = frozen_chains(PROF, exclude_rare_from_pretraining=scope, **kw)
        chain = chains[("FPN", "frozen")]
        cls_cfg = chain.configs[0]
        gone = set(cls_cfg.data.corpus["exclude_categories"])
        assert set(rare) <= gone and cls_cfg.task == "classification"
        if scope == "supercategory":
            supers = {CATEGORY_BY_NAME[c].supercategory for c in rare}
            assert gone == {n for n, c in CATEGORY_BY_NAME.items() if c.supercategory in supers}
        assert chain.finetunes[0][-1].init == f"run:{config_hash(cls_cfg)}"
        # the control's detectors are named for their backbone, never like the main study's
        names = {c.name for c in chain.configs if c.task == "detection"}
        assert names == {f"frozen/imagenet-cls-without-rare-{scope}/FPN/frozen"}
        assert not names & {c.name for chain in base.values() for c in chain.configs}
    _, replicated = frozen_chains(PROF, exclude_rare_from_pretraining="category", replicates=2, **kw)
    assert {c.name for c in replicated[("FPN", "fine-tuned")].configs if c.task == "detection"} == {
        "frozen/imagenet-cls-without-rare-category/FPN/fine-tuned",
        "frozen/imagenet-cls-without-rare-category@r1/FPN/fine-tuned"}
    assert {c.name for c in base[("FPN", "frozen")].configs if c.task == "detection"} == {"frozen/imagenet-cls/FPN/frozen"}
    with pytest.raises(ConfigError):
        frozen_chains(PROF, exclude_rare_from_pretraining="class", **kw)
    with pytest.raises(ConfigError):
        frozen_chains(PROF, pretrain="detection", exclude_rare_from_pretraining="category", **kw)


@pytest.mark.parametrize("chapter", ["classification", "feature_space", "visualisations"])
def test_the_planner_follows_a_chapters_cue(chapter):
    from detpretrain.parameters import CHAPTER_PARAMETERS
    from detpretrain.plan import chapter_runs

    values = {p.name: p.default for p in CHAPTER_PARAMETERS[chapter]}
    default = chapter_runs(chapter, "smoke", values)
    variant = chapter_runs(chapter, "smoke", {**values, "cue": "part+decoy"})
    assert _hashes(chapter_runs(chapter, "smoke", {**values, "cue": "part"})) == _hashes(default)
    assert len(variant) == len(default)
    for cfg in (c for c in variant if c.data.kind == "synthetic"):  # real data (Table 8) has no corpus variant
        assert cfg.data.corpus.get("cue", "part") == ("part" if cfg.data.corpus["role"] == "flowers" else "part+decoy")
