"""Selection 4 of profiles.py (issue 18's SUN scene control): the bag-of-objects oracle on hand-made annotation files,
the floor rule's known values, and ``python -m detpretrain sun-check`` end to end at the smoke profile (train on the
SUN-role train split with shared backgrounds, score on VAL only)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from detpretrain.analysis.mechanisms import bag_of_objects_oracle, sun_control_floor, sun_floor_rule
from detpretrain.cli import main as cli_main
from detpretrain.errors import DataError


def _write(path: Path, images, annotations, categories=("car", "cow", "sofa")) -> Path:
    data = {"images": images, "annotations": annotations,
            "categories": [{"id": i + 1, "name": n} for i, n in enumerate(categories)]}
    path.write_text(json.dumps(data))
    return path


def _corpus(path: Path, rows) -> Path:
    """rows: (split, label, {category_id: count}) per image."""
    images, annotations = [], []
    for iid, (split, label, counts) in enumerate(rows, start=1):
        images.append({"id": iid, "split": split, "label": label, "file_name": f"{split}/{iid}.jpg"})
        for cid, n in counts.items():
            annotations += [{"id": len(annotations) + 1, "image_id": iid, "category_id": cid}] * n
    return _write(path, images, annotations)


def test_oracle_reads_a_scene_named_by_its_objects(tmp_path):
    # street has cars, farm has cows: the counts name the scene; the held-out images are read perfectly
    rows = [(s, lab, {1: 2} if lab == "street" else {2: 3}) for s in ("train", "val") for lab in ("street", "farm")
            for _ in range(4)]
    out = bag_of_objects_oracle(_corpus(tmp_path / "a.json", rows))
    assert out == {"top1": 100.0, "chance": 50.0, "n_train": 8, "n_eval": 8, "classes": 2}
    # eval_split chooses the scored images
    out = bag_of_objects_oracle(_corpus(tmp_path / "b.json", rows + [("test", "farm", {1: 2})]), eval_split="test")
    assert out["top1"] == 0.0 and out["n_eval"] == 1  # a farm full of cars is read as a street


def test_oracle_equals_an_independent_fit_on_the_count_matrix(tmp_path):
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(0)
    scenes = ["street", "farm", "kitchen"]
    rows = []
    for split, n in (("train", 60), ("val", 30)):
        for _ in range(n):
            k = int(rng.integers(3))
            lam = np.full(3, 0.5)
            lam[k] += 1.0  # the scene's own category is likelier, not certain
            rows.append((split, scenes[k], {c + 1: int(v) for c, v in enumerate(rng.poisson(lam)) if v}))
    x = {s: np.array([[r[2].get(c, 0) for c in (1, 2, 3)] for r in rows if r[0] == s], float) for s in ("train", "val")}
    y = {s: np.array([r[1] for r in rows if r[0] == s]) for s in ("train", "val")}
    scaler = StandardScaler().fit(x["train"])
    model = LogisticRegression(C=0.5, max_iter=5000).fit(scaler.transform(x["train"]), y["train"])
    expected = 100 * np.mean(model.predict(scaler.transform(x["val"])) == y["val"])
    out = bag_of_objects_oracle(_corpus(tmp_path / "c.json", rows), C=0.5)
    assert out["top1"] == pytest.approx(expected)
    assert 40 < out["top1"] < 100 and out["chance"] == pytest.approx(100 / 3)


def test_oracle_fits_with_one_blas_thread(tmp_path, monkeypatch):
    """Like the linear probes (analysis.blas): the fit sees one BLAS thread whatever the caller had."""
    from sklearn.linear_model import LogisticRegression
    from threadpoolctl import threadpool_info, threadpool_limits

    seen, fit = [], LogisticRegression.fit

    def recording(self, *args, **kwargs):
        seen.append({i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"})
        return fit(self, *args, **kwargs)

    monkeypatch.setattr(LogisticRegression, "fit", recording)
    rows = [(s, lab, {1: 2} if lab == "street" else {2: 3}) for s in ("train", "val") for lab in ("street", "farm")
            for _ in range(4)]
    with threadpool_limits(limits=2, user_api="blas"):
        assert bag_of_objects_oracle(_corpus(tmp_path / "a.json", rows))["top1"] == 100.0
    assert seen == [{1}]


def test_oracle_names_the_file_and_the_problem(tmp_path):
    with pytest.raises(DataError, match="does not exist") as err:
        bag_of_objects_oracle(tmp_path / "missing.json")
    assert "missing.json" in str(err.value)
    no_label = _write(tmp_path / "d.json", [{"id": 1, "split": "train"}], [])
    with pytest.raises(DataError, match="d.json.*not a synthetic SUN-role annotation file.*label"):
        bag_of_objects_oracle(no_label)
    unknown = _write(tmp_path / "e.json", [{"id": 1, "split": "train", "label": "a"}],
                     [{"id": 1, "image_id": 7, "category_id": 1}])
    with pytest.raises(DataError, match="e.json"):
        bag_of_objects_oracle(unknown)
    rows = [("train", "street", {1: 1}), ("train", "street", {2: 1}), ("val", "farm", {2: 1})]
    with pytest.raises(ValueError, match="single class"):
        bag_of_objects_oracle(_corpus(tmp_path / "f.json", rows))
    with pytest.raises(ValueError, match="no image in split 'test'"):
        bag_of_objects_oracle(_corpus(tmp_path / "g.json", rows), eval_split="test")


def test_floor_rule_known_values():
    # chance 11.1, oracle 84.4: threshold halfway, 47.8 (selection 4's 30-per-scene val numbers)
    out = sun_floor_rule([25.6, 23.3, 31.1], 84.4, 100 / 9)
    assert out["threshold"] == pytest.approx(100 / 9 + (84.4 - 100 / 9) / 2)
    assert out["mean"] == pytest.approx(80.0 / 3) and not out["escapes"]
    assert sun_floor_rule([50.0, 46.0], 80.0, 20.0) == {"mean": 48.0, "threshold": 50.0, "escapes": False}
    assert sun_floor_rule([50.0, 50.0], 80.0, 20.0)["escapes"]  # on the threshold counts
    with pytest.raises(ValueError, match="at least one"):
        sun_floor_rule([], 80.0, 20.0)


def test_sun_control_floor_table_and_sentence():
    runs = [{"pretrain": p, "metrics": {"top1": v}} for p, v in
            (("imagenet-cls", 40.0), ("imagenet-cls", 44.0), ("detection", 30.0), ("detection", 34.0))]
    frame, sentence = sun_control_floor({"runs": runs}, {"top1": 90.0, "chance": 10.0})
    rows = frame.set_index("backbone")
    assert rows.loc["imagenet-cls", "mean top-1 %"] == 42.0 and rows.loc["imagenet-cls", "runs"] == 2
    assert (rows.loc["detection", "min"], rows.loc["detection", "max"]) == (30.0, 34.0)
    assert rows.loc["bag-of-objects oracle (ground-truth counts)", "mean top-1 %"] == 90.0
    assert rows.loc["chance", "mean top-1 %"] == 10.0
    assert "floor-limited" in sentence and "42.0 %" in sentence and "half way: 50.0 %" in sentence
    _, sentence = sun_control_floor({"runs": runs}, {"top1": 70.0, "chance": 10.0})  # threshold 40: off the floor
    assert "off the floor" in sentence and "floor-limited" not in sentence
    with pytest.raises(ValueError, match="IMAGENET-CLS"):
        sun_control_floor({"runs": runs[2:]}, {"top1": 90.0, "chance": 10.0})


@pytest.mark.slow
def test_sun_check_trains_on_shared_scenes_scores_val_and_prints_the_rule(corpus_dir, smoke_store, capsys):
    args = ["sun-check", "--profile", "smoke", "--store", str(smoke_store.root), "--per-scene", "3",
            "--replicates", "2", "--jobs", "1", "--threads", "1", "--device", "cpu"]
    code = cli_main(args)
    out = capsys.readouterr().out
    assert code in (0, 3), out
    assert ("escapes the floor" in out) == (code == 0) and ("stays at the floor" in out) == (code == 3)
    lines = [line for line in out.splitlines() if line.startswith("imagenet-cls r")]
    assert len(lines) == 2
    top1 = []
    for line in lines:
        run = Path(line.rsplit("(", 1)[1].rstrip(")"))
        config = json.loads((run / "config.json").read_text())
        data = config["data"]
        assert (data["train_split"], data["eval_split"]) == ("train", "val")
        assert data["corpus"]["role"] == "sun" and data["corpus"]["sun_backgrounds"] == "shared"
        assert data["corpus"]["n_train"] == 27  # 3 per scene x 9 scenes
        assert config["optim"]["epochs"] == 2  # the profile's cls_finetune schedule
        top1.append(json.loads((run / "metrics.json").read_text())["top1"])
    roots = [p for p in corpus_dir.iterdir() if p.name.startswith("sun-")
             and json.loads((p / "corpus.json").read_text())["spec"].get("n_train") == 27]
    assert len(roots) == 1
    oracle = bag_of_objects_oracle(roots[0] / "annotations.json")
    rule = sun_floor_rule(top1, oracle["top1"], oracle["chance"])
    assert f"IMAGENET-CLS mean {rule['mean']:.1f} %" in out
    assert f"bag-of-objects oracle {oracle['top1']:.1f} %" in out and f"threshold {rule['threshold']:.1f} %" in out
    assert (code == 0) == rule["escapes"]


@pytest.mark.parametrize("extra, message", [(["--per-scene", "0"], "--per-scene >= 1"),
                                            (["--per-scene", "2", "--replicates", "0"], "replicate")])
def test_sun_check_refuses_bad_input_before_training(tmp_path, capsys, extra, message):
    code = cli_main(["sun-check", "--profile", "smoke", "--store", str(tmp_path / "runs"), *extra])
    err = capsys.readouterr().err
    assert code == 1 and "ConfigError" in err and message in err
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_sun_control_reads_the_runs_the_mechanisms_page_plans():
    from detpretrain.book import chapter_values, find_root
    from detpretrain.experiments.classification import TABLE8_PRETRAINS, sun_control_configs
    from detpretrain.plan import chapter_runs
    from detpretrain.config import config_hash

    root = find_root()
    assert tuple(chapter_values(root / "book" / "classification.py")["finetune_pretrains"]) == TABLE8_PRETRAINS
    planned = {config_hash(c) for c in chapter_runs("mechanisms", "smoke",
                                                    chapter_values(root / "book" / "mechanisms.py"))}
    configs = sun_control_configs("smoke")
    assert len(configs) > len(TABLE8_PRETRAINS)  # pre-trainings and fine-tunings
    assert {config_hash(c) for c in configs} <= planned  # the page trains nothing of its own
    sun = [c for c in configs if c.name.startswith("cls-finetune/")]
    assert {c.data.corpus["sun_backgrounds"] for c in sun} == {"shared"}
