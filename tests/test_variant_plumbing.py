"""Issue 18, variant plumbing: a chain's corpus variant (``corpus={"cue": ...}``) reaches every synthetic corpus of
the chain and nothing else, and the default leaves every config hash as it was."""

from __future__ import annotations

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
