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
    assert replace_path(a, "optim.cpu_bf16", "Yes").optim.cpu_bf16 is True
    assert replace_path(a, "optim.cpu_bf16", "0").optim.cpu_bf16 is False
    with pytest.raises(ConfigError, match=r"cannot convert 'ture' for config field 'cpu_bf16'"):
        replace_path(a, "optim.cpu_bf16", "ture")  # not silently False
    with pytest.raises(ConfigError, match="unknown config field"):
        replace_path(a, "optim.nope", "1")
    with pytest.raises(ConfigError, match="cannot convert"):
        replace_path(a, "optim.epochs", "three")


def test_replace_path_reaches_the_synthetic_corpus_spec():
    """The val selection of profiles.py (``train --set data.corpus.n_train=1600 --set data.eval_split=val``)."""
    from detpretrain.experiments.common import synthetic_spec

    a = TrainConfig(name="t", task="detection", data=synthetic_spec("mini", "voc"))
    b = replace_path(replace_path(a, "data.corpus.n_train", "800"), "data.eval_split", "val")
    assert b.data.corpus["n_train"] == 800 and a.data.corpus["n_train"] == 1600
    assert (b.data.train_split, b.data.eval_split) == ("trainval", "val")
    assert config_hash(b) != config_hash(a)
    with pytest.raises(ConfigError, match=r"unknown config field '(data\.)?corpus\.n_trains' \(keys of corpus"):
        replace_path(a, "data.corpus.n_trains", "800")
    with pytest.raises(ConfigError, match="cannot convert"):
        replace_path(a, "data.corpus.n_train", "many")


def test_bad_specs_raise():
    with pytest.raises(ConfigError, match="needs a data_root"):
        DataSpec(kind="voc")
    with pytest.raises(ConfigError, match="unknown data kind"):
        DataSpec(kind="imagenet", root="/x")
    with pytest.raises(ConfigError, match="unknown task"):
        TrainConfig(name="t", task="keypoints", data=DataSpec(kind="coco", root="/d"))
    with pytest.raises(ConfigError, match="unknown profile"):
        get_profile("huge")


@pytest.mark.parametrize("key, value, message", [
    ("optim.batch_size", "0", "optim.batch_size must be an integer >= 1; got 0"),  # was a ZeroDivisionError
    ("optim.batch_size", "-2", "optim.batch_size must be an integer >= 1; got -2"),
    ("optim.epochs", "-1", "optim.epochs must be an integer >= 0; got -1"),  # was a "complete" run, never trained
    ("optim.epochs", "0", "t: optim.epochs must be >= 1 for a run that trains; got 0"),
    ("optim.lr", "0", "optim.lr must be a number > 0; got 0.0"), ("optim.lr", "nan", "optim.lr must be a number > 0"),
    ("optim.momentum", "1.5", "optim.momentum must be a number in [0, 1)"),
    ("optim.warmup_iters", "-1", "optim.warmup_iters must be an integer >= 0"),
    ("optim.milestones", "0", "optim.milestones must be epochs >= 1"),
    ("optim.gamma", "-0.1", "optim.gamma must be a number > 0"),
    ("optim.num_workers", "-1", "optim.num_workers must be an integer >= 0"),
])
def test_a_schedule_no_run_can_train_with_is_refused_by_name(key, value, message):
    with pytest.raises(ConfigError) as info:
        replace_path(_cfg(), key, value)
    assert message in str(info.value)


def test_every_profiles_schedules_pass_their_own_checks():
    from detpretrain.config import OptimSpec

    for prof in PROFILES.values():
        for spec in vars(prof).values():
            if isinstance(spec, OptimSpec):
                assert dataclasses.replace(spec) == spec  # __post_init__ runs again, and passes


def test_profiles_are_ordered_by_size():
    smoke, mini, paper = (PROFILES[k] for k in ("smoke", "mini", "paper"))
    assert smoke.model.min_size < mini.model.min_size < paper.model.min_size
    assert paper.finetune.epochs == 7 and paper.finetune.milestones == (5,)  # the paper: 7 epochs, step after 5
    assert smoke.finetune.epochs <= mini.finetune.epochs  # mini: chosen on the target's validation split
    assert mini.pretrain_replicates >= 3 and len(mini.seeds) >= 1  # issue 17: >= 3 pre-training runs per arm
    assert paper.pretrain_replicates == 1 and smoke.pretrain_replicates == 1
    assert paper.imagenet_cls_weights.startswith("ResNet101_Weights")
    assert dataclasses.is_dataclass(paper.model)
