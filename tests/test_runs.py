"""Run store: atomic writes, content addressing, listing."""

import json
import os

import pytest

from detpretrain.config import DataSpec, TrainConfig, config_hash, to_dict
from detpretrain.errors import ConfigError
from detpretrain.runs import RunStore, atomic_write_json, list_command


def _cfg(seed=0):
    return TrainConfig(name="finetune/scratch", task="detection", data=DataSpec(kind="coco", root="/d"), seed=seed)


def test_atomic_write_leaves_old_file_on_failure(tmp_path, monkeypatch):
    path = tmp_path / "m.json"
    atomic_write_json(path, {"a": 1})

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        atomic_write_json(path, {"a": 2})
    assert json.loads(path.read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["m.json"]  # no temporary file left behind


def test_run_dirs_are_content_addressed_and_resolvable(tmp_path):
    store = RunStore(tmp_path)
    a, b = store.run_for(_cfg(0)), store.run_for(_cfg(1))
    assert a.path != b.path and a.path.name == f"detection-{config_hash(_cfg(0))}"
    a.path.mkdir(parents=True)
    atomic_write_json(a.path / "config.json", to_dict(_cfg(0)))
    assert store.resolve(f"run:{a.hash}").path == a.path
    assert store.resolve(a.hash[:6]).config == _cfg(0)
    with pytest.raises(ConfigError, match="0 runs match"):
        store.resolve("run:ffffffff")
    assert not a.complete


def test_list_command(tmp_path, capsys):
    store = RunStore(tmp_path)
    assert list_command(str(tmp_path)) == 0
    assert "no runs" in capsys.readouterr().out
    run = store.run_for(_cfg())
    run.path.mkdir(parents=True)
    atomic_write_json(run.path / "config.json", to_dict(_cfg()))
    atomic_write_json(run.path / "metrics.json", {"headline": "mAP@0.5=12.0"})
    list_command(str(tmp_path))
    out = capsys.readouterr().out
    assert run.path.name in out and "complete" in out and "mAP@0.5=12.0" in out
