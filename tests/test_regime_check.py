"""``python -m detpretrain regime-check``: the schedule selection of profiles.py, end to end at the smoke profile.

It must train on the target's train split and score on VAL only (never test), read the stored detections, and print
the prediction bound that :func:`detpretrain.analysis.stats.prediction_lower_bound` gives for the runs' own values.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from detpretrain.analysis.claims import map_at
from detpretrain.analysis.detection import regime_prediction
from detpretrain.analysis.stats import prediction_lower_bound
from detpretrain.cli import main as cli_main
from detpretrain.experiments.detection import run_detection_experiment


@pytest.mark.slow
def test_regime_check_trains_on_train_scores_on_val_and_prints_the_bound(corpus_dir, smoke_store, capsys):
    args = ["regime-check", "--profile", "smoke", "--store", str(smoke_store.root), "--replicates", "2",
            "--set", "optim.epochs=1", "--jobs", "1", "--threads", "1", "--device", "cpu", "--n-boot", "200"]
    code = cli_main(args)
    out = capsys.readouterr().out
    assert code in (0, 3), out
    assert "mAP@0.5" in out and "mAP@0.7 / mAP@0.5" in out
    assert ("meets the regime" in out) == (code == 0) and ("misses the regime" in out) == (code == 3)

    chain = dict(pretrains=("imagenet-cls",), seeds=(0,), replicates=2,
                 overrides={"data.train_split": "train", "data.eval_split": "val", "optim.epochs": "1"})
    result = run_detection_experiment("smoke", store=smoke_store, device="cpu", log=lambda line: None, **chain)
    assert [(r["pretrain"], r["replicate"]) for r in result["runs"]] == [("imagenet-cls", 0), ("imagenet-cls", 1)]
    for r in result["runs"]:
        data = json.loads((Path(r["run"]) / "config.json").read_text())["data"]
        assert (data["train_split"], data["eval_split"]) == ("train", "val")

    table = regime_prediction(result, data_cache=corpus_dir, n_boot=200).set_index("measure")
    values = [map_at(r["metrics"], 0.5) for r in result["runs"]]
    row = table.loc["mAP@0.5"]
    expected = prediction_lower_bound(values, row["image sd"])
    assert row["mean"] == pytest.approx(sum(values) / 2)
    assert row["bound"] == pytest.approx(expected.bound)
    assert row["image sd"] >= 0  # smoke detectors score ~0 after 1 epoch: the resampled mean may not move
    assert math.isfinite(row["image sd"]) and row["meets"] == (row["bound"] >= 60.0)
    assert f"{row['bound']:.2f}" in out  # the printed table: 2 decimals

    with pytest.raises(ValueError, match=">= 2 runs"):
        regime_prediction({"runs": result["runs"][:1]}, data_cache=corpus_dir)


@pytest.mark.parametrize("extra, message", [(["--replicates", "1"], "2 pre-training replicates"),
                                            (["--replicates", "2", "--n-boot", "0"], "2 image resamples"),
                                            (["--replicates", "2", "--set", "optim.epoch=8"], "unknown config field")])
def test_regime_check_refuses_bad_input_before_training(tmp_path, capsys, extra, message):
    code = cli_main(["regime-check", "--profile", "smoke", "--store", str(tmp_path / "runs"), *extra])
    err = capsys.readouterr().err
    assert code == 1 and "ConfigError" in err and message in err
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())  # nothing trained
