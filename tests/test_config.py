"""Config hashing, overrides and profiles."""

import dataclasses

import pytest

from detpretrain.config import DataSpec, ModelSpec, TrainConfig, config_hash, from_dict, replace_path, to_dict
from detpretrain.errors import ConfigError
from detpretrain.profiles import PROFILES, get_profile


def _cfg(**kw):
    return TrainConfig(name="t", task="detection", data=DataSpec(kind="coco", root="/d"), **kw)


def test_hash_is_stable_and_sensitive():
    a, b = _cfg(), _cfg()
    assert config_hash(a) == config_hash(b) and len(config_hash(a)) == 16
    assert config_hash(a) != config_hash(_cfg(seed=1))
    assert config_hash(a) != config_hash(replace_path(a, "optim.epochs", "3"))


def test_roundtrip_through_json():
    a = _cfg(model=ModelSpec(widths=(8, 16, 32, 64)))
    assert from_dict(to_dict(a)) == a
    assert config_hash(from_dict(to_dict(a))) == config_hash(a)


def test_replace_path_coerces_and_rejects_unknown():
    a = _cfg()
    assert replace_path(a, "optim.lr", "0.5").optim.lr == 0.5
    assert replace_path(a, "model.anchor_sizes", "4,8,16").model.anchor_sizes == (4, 8, 16)
    assert replace_path(a, "optim.hflip", "false").optim.hflip is False
    with pytest.raises(ConfigError, match="unknown config field"):
        replace_path(a, "optim.nope", "1")
    with pytest.raises(ConfigError, match="cannot convert"):
        replace_path(a, "optim.epochs", "three")


def test_bad_specs_raise():
    with pytest.raises(ConfigError, match="needs a data_root"):
        DataSpec(kind="voc")
    with pytest.raises(ConfigError, match="unknown data kind"):
        DataSpec(kind="imagenet", root="/x")
    with pytest.raises(ConfigError, match="unknown task"):
        TrainConfig(name="t", task="keypoints", data=DataSpec(kind="coco", root="/d"))
    with pytest.raises(ConfigError, match="unknown profile"):
        get_profile("huge")


def test_profiles_are_ordered_by_size():
    smoke, mini, paper = (PROFILES[k] for k in ("smoke", "mini", "paper"))
    assert smoke.model.min_size < mini.model.min_size < paper.model.min_size
    assert paper.finetune.epochs == 7 and paper.finetune.milestones == (5,)  # the paper: 7 epochs, step after 5
    assert smoke.finetune.epochs <= mini.finetune.epochs  # mini: chosen on the target's validation split
    assert mini.pretrain_replicates >= 3 and len(mini.seeds) >= 1  # issue 17: >= 3 pre-training runs per arm
    assert paper.pretrain_replicates == 1 and smoke.pretrain_replicates == 1
    assert paper.imagenet_cls_weights.startswith("ResNet101_Weights")
    assert dataclasses.is_dataclass(paper.model)
