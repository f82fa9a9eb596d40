"""The run plan and its executor, on the smoke profile (runs of a few seconds each).

* every ``plan_*`` function lists exactly the runs its ``run_*`` function trains (after executing the plan, the
  ``run_*`` functions train nothing and report the planned hashes);
* the plan is a dependency graph (a fine-tuning after its pre-training) with each run's status in the store;
* two executors on one store never train a run twice;
* an executor killed mid-plan resumes when run again, to the metrics of an uninterrupted execution;
* a failing run stops the build with its name, its logs and the exception; completed runs stay;
* the submitit path (its local executor: the same code in subprocesses) trains a plan.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from detpretrain import engine
from detpretrain.config import DataSpec, TrainConfig, config_hash, replace_path
from detpretrain.errors import ConfigError
from detpretrain.executor import ExecutionError, execute
from detpretrain.experiments.classification import plan_classification_transfer, run_classification_transfer
from detpretrain.experiments.detection import detection_chain, plan_detection, run_detection_experiment
from detpretrain.experiments.eigenspectrum import plan_eigenspectrum, run_eigenspectrum_study
from detpretrain.experiments.features import load_backbone, plan_features
from detpretrain.experiments.frozen import plan_frozen, run_frozen_study
from detpretrain.experiments.segmentation import plan_segmentation, run_segmentation_experiment
from detpretrain.book import book_plan
from detpretrain.plan import format_plan, make_plan
from detpretrain.runs import RunStore

PROJECT = Path(__file__).resolve().parents[1]
CHAPTERS = ["detection", "segmentation", "eigenspectrum", "frozen_backbone"]
QUIET = {"progress": False, "log": lambda line: None}


def _hashes(configs) -> set[str]:
    return {config_hash(c) for c in configs}


def _result_hashes(result: dict) -> set[str]:
    pre = {Path(p).name.split("-", 1)[1] for p in result.get("pretrain_runs", {}).values()}
    return pre | {r["hash"] for r in result["runs"]}


@pytest.fixture(scope="module")
def executed(corpus_dir, tmp_path_factory):
    """The smoke plan of four chapters, executed with two workers into a fresh store."""
    store = RunStore(tmp_path_factory.mktemp("runs"))
    logs = tmp_path_factory.mktemp("logs")

    def replan():
        return book_plan("smoke", CHAPTERS, {}, root=PROJECT, store=store)

    report = execute(replan(), store, jobs=2, threads=1, data_cache=corpus_dir, log_dir=logs, replan=replan, **QUIET)
    return store, report, replan()


@pytest.fixture
def no_training(monkeypatch):
    def refuse(config, *args, **kwargs):
        raise AssertionError(f"{config.name} was not in the plan")

    monkeypatch.setattr(engine, "fit", refuse)


def test_plan_is_a_dependency_graph_with_status(executed, tmp_path):
    store, report, plan = executed
    assert len(plan) > 10
    position = {h: i for i, h in enumerate(plan.runs)}
    for h, r in plan.runs.items():
        for parent in r.needs:
            assert position[parent] < position[h]
            assert r.config.init == f"run:{parent}"
    assert set(plan.status(store).values()) == {"complete"}
    assert set(report.trained) == set(plan.runs)  # a fresh store: every run trained, each once
    text = format_plan(plan, store)
    assert f"{len(plan)} runs ({len(plan)} complete, 0 partial, 0 to train)" in text
    cls = next(r for r in plan if r.config.name == "pretrain/imagenet-cls")
    assert set(cls.chapters) == set(CHAPTERS)
    fresh = format_plan(plan, RunStore(tmp_path))
    assert f"0 complete, 0 partial, {len(plan)} to train" in fresh
    lines = fresh.splitlines()
    det = next(i for i, line in enumerate(lines) if "pretrain/detection seed 0" in line)
    assert lines[det].startswith("todo") and "  pretrain/detection" in lines[det]  # indented under its parent


def test_plan_functions_list_what_run_functions_train(executed, no_training):
    store, _, _ = executed
    det = run_detection_experiment("smoke", store=store, **QUIET)
    assert _result_hashes(det) == _hashes(plan_detection("smoke"))
    seg = run_segmentation_experiment("smoke", store=store, **QUIET)
    assert _result_hashes(seg) == _hashes(plan_segmentation("smoke"))
    frozen = run_frozen_study("smoke", store=store, resource_iterations=1, **QUIET)
    planned = plan_frozen("smoke")
    assert {r["hash"] for r in frozen["rows"]} == _hashes(planned) - _hashes(plan_features("smoke", ["imagenet-cls"]))
    chapter = {"threshold": 1e-2, "normalisation": "max"}  # the eigenspectrum chapter's defaults
    eig = run_eigenspectrum_study("smoke", store=store, **chapter, **QUIET)
    assert _result_hashes(eig) == _hashes(plan_eigenspectrum("smoke", store=store, **chapter))
    _, _, run = load_backbone("detection", "smoke", store=store, log=lambda line: None)
    assert {run.hash} <= _hashes(plan_features("smoke", ["detection"]))


def test_classification_transfer_plan_matches(executed, no_training, monkeypatch):
    """The transfer chain's plan names the same runs its run function asks the store for."""
    store, _, _ = executed
    asked = []
    monkeypatch.setattr("detpretrain.experiments.common.get_or_train",
                        lambda cfg, store, **kw: asked.append(config_hash(cfg)) or store.run_for(cfg))
    monkeypatch.setattr("detpretrain.experiments.common.train_logged",
                        lambda cfg, *a, **kw: asked.append(config_hash(cfg)) or {"hash": config_hash(cfg)})
    run_classification_transfer("smoke", role="sun", pretrains=("imagenet-cls", "scratch"), store=store, **QUIET)
    assert set(asked) == _hashes(plan_classification_transfer("smoke", role="sun",
                                                              pretrains=("imagenet-cls", "scratch")))


def test_replicated_chains_plan_what_they_ask_for_and_keep_replicate_zero(monkeypatch, tmp_path):
    """Pre-training replicates: replicate r is seed r (replicate 0 is the unreplicated run, same hash), a detection
    pre-training of replicate r continues from the IMAGENET-CLS run of replicate r, every replicate is crossed with
    the fine-tuning seeds, and the run function asks for exactly the planned runs."""
    from detpretrain.experiments.common import pretrain_configs, pretrain_order, pretrained_for, replicate_key, split_key
    from detpretrain.profiles import get_profile

    prof = get_profile("smoke")
    pre = pretrained_for(prof, ("detection",), replicates=3)
    assert config_hash(pre["imagenet-cls"]) == config_hash(pretrain_configs(prof)["imagenet-cls"])
    assert pre["imagenet-cls@r2"].seed == 2 and pre["detection@r2"].init == f"run:{config_hash(pre['imagenet-cls@r2'])}"
    assert replicate_key("detection", 0) == "detection" and split_key("imagenet-loc-no-animal@r2") == (
        "imagenet-loc-no-animal", 2)
    chain = detection_chain("smoke", pretrains=("imagenet-cls", "scratch"), seeds=(0, 1), replicates=3)
    assert [(p, r, s) for p, r, s, _ in chain.finetunes] == [
        (p, r, s) for p in ("imagenet-cls", "scratch") for r in range(3) for s in (0, 1)]
    # from scratch, each replicate is a training run of its own: distinct training seeds, replicate 0 unchanged
    scratch_seeds = [cfg.seed for p, _, _, cfg in chain.finetunes if p == "scratch"]
    assert scratch_seeds == [0, 1, 2, 3, 4, 5]
    assert len({config_hash(cfg) for *_, cfg in chain.finetunes}) == len(chain.finetunes)
    asked, entries = [], []
    monkeypatch.setattr("detpretrain.experiments.common.ensure_pretrained",
                        lambda names, pretrained, store, **kw: asked.extend(
                            config_hash(pretrained[n]) for n in pretrain_order(names, pretrained)) or {})

    def train_logged(cfg, pretrain, seed, *args, replicate=0):
        asked.append(config_hash(cfg))
        entries.append((pretrain, replicate, seed))
        return {"hash": config_hash(cfg)}

    monkeypatch.setattr("detpretrain.experiments.common.train_logged", train_logged)
    run_detection_experiment("smoke", pretrains=("detection", "scratch"), seeds=(0, 1), replicates=2,
                             store=RunStore(tmp_path), **QUIET)
    planned = plan_detection("smoke", pretrains=("detection", "scratch"), seeds=(0, 1), replicates=2)
    assert asked == [config_hash(c) for c in planned] and len(planned) == 4 + 4 + 4
    assert entries[:4] == [("detection", 0, 0), ("detection", 0, 1), ("detection", 1, 0), ("detection", 1, 1)]
    with pytest.raises(ConfigError, match="published weights"):
        plan_detection("torchvision", dataset="voc", data_root=str(tmp_path), replicates=2)


def test_make_plan_refuses_a_missing_parent(tmp_path):
    child = detection_chain("smoke", pretrains=("detection",)).finetunes[0][3]
    with pytest.raises(ConfigError, match="neither in the plan nor a complete run"):
        make_plan([child], store=RunStore(tmp_path))


def _bad_child(parent: TrainConfig) -> TrainConfig:
    cfg = detection_chain("smoke", pretrains=("imagenet-cls",)).finetunes[0][3]
    cfg = replace_path(cfg, "init", f"run:{config_hash(parent)}")
    from dataclasses import replace

    return replace(cfg, name="finetune/broken", data=DataSpec(kind="coco", root="/nonexistent/coco",
                                                              train_split="train2017", eval_split="val2017"))


def test_a_failing_run_stops_the_build_with_its_name_logs_and_error(executed, tmp_path):
    store, _, plan = executed
    parent = next(r.config for r in plan if r.config.name == "pretrain/imagenet-cls")
    bad = _bad_child(parent)
    with pytest.raises(ExecutionError) as info:
        execute(make_plan([parent, bad], store=store), store, jobs=1, threads=1, log_dir=tmp_path, **QUIET)
    err = info.value
    message = str(err)
    assert "finetune/broken seed 0" in message and "DataError" in message and "/nonexistent/coco" in message
    assert str(store.path_for(bad) / "log.txt") in message
    assert Path(err.output).is_file() and "Traceback" in Path(err.output).read_text()
    assert "FAILED finetune/broken" in next(tmp_path.glob("*.log")).read_text()
    assert store.run_for(parent).complete and not store.run_for(bad).complete


def _execute_cmd(store: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "detpretrain", "runs", "execute", "--profile", "smoke", "--chapters", "detection",
            "--store", str(store), "--threads", "1", *extra]


def _env(corpus_dir) -> dict:
    return {**os.environ, "DETPRETRAIN_DATA": str(corpus_dir), "PYTHONPATH": str(PROJECT / "src"),
            "OMP_NUM_THREADS": "1"}


def _detection_chapter_runs() -> list[TrainConfig]:
    """The detection chapter's runs at smoke: its chain and the 2x schedule check."""
    return book_plan("smoke", ["detection"], {}, root=PROJECT, store=RunStore(PROJECT / "nonexistent")).configs


def _metrics(store: RunStore, configs) -> dict:
    out = {}
    for cfg in configs:
        m = store.run_for(cfg).metrics
        out[config_hash(cfg)] = (m.get("mAP") or m.get("top1"), [h["loss"] for h in m["history"]])
    return out


def test_two_executors_on_one_store_train_each_run_once(executed, corpus_dir, tmp_path):
    store = tmp_path / "shared"
    env = _env(corpus_dir)
    procs = [subprocess.Popen(_execute_cmd(store, "--jobs", "1"), cwd=PROJECT, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True) for _ in range(2)]
    outputs = [p.communicate(timeout=600)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs), outputs
    configs = _detection_chapter_runs()
    for cfg in configs:
        log = (RunStore(store).path_for(cfg) / "log.txt").read_text()
        assert log.count("evaluation:") == 1 and "resumed" not in log, log
    assert sum(out.count("\ntrained ") for out in outputs) == len(configs)  # the others: "found complete"
    assert _metrics(RunStore(store), configs) == _metrics(executed[0], configs)  # = the in-process execution


def test_killed_executor_resumes_to_the_uninterrupted_metrics(executed, corpus_dir, tmp_path):
    store = RunStore(tmp_path / "killed")
    configs = _detection_chapter_runs()
    proc = subprocess.Popen(_execute_cmd(store.root, "--jobs", "2"), cwd=PROJECT, env=_env(corpus_dir),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:  # kill once a run is complete and a later one has begun
        if any(store.run_for(c).complete for c in configs) and any(
                store.run_for(c).checkpoint_path.exists() and not store.run_for(c).complete for c in configs):
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the plan finished before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    complete = [c for c in configs if store.run_for(c).complete]
    assert 0 < len(complete) < len(configs)
    again = subprocess.run(_execute_cmd(store.root, "--jobs", "2"), cwd=PROJECT, env=_env(corpus_dir),
                           capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stdout + again.stderr
    assert all(store.run_for(c).complete for c in configs)
    assert any("resumed from" in (store.path_for(c) / "log.txt").read_text() for c in configs)
    assert _metrics(store, configs) == _metrics(executed[0], configs)


def test_submitit_local_executor_trains_a_plan(corpus_dir, tmp_path):
    configs = detection_chain("smoke", pretrains=("scratch",), seeds=(7, 8),
                              overrides={"optim.epochs": 1}).configs
    store = RunStore(tmp_path / "runs")
    report = execute(make_plan(configs), store, executor="slurm", cluster="local", jobs=2, threads=1,
                     data_cache=corpus_dir, log_dir=tmp_path / "logs", **QUIET)
    assert set(report.trained) == _hashes(configs)
    assert all(store.run_for(c).complete for c in configs)
    assert list((tmp_path / "logs").glob("*/submitit/*"))  # submitit's own job files


def test_every_chapter_of_the_book_has_a_planner_and_plans_at_smoke(corpus_dir, tmp_path, monkeypatch):
    from detpretrain.book import chapter_name, chapter_source, toc_files
    from detpretrain.plan import CHAPTER_PLANNERS

    from detpretrain.plan import CHAPTER_CALLS

    chapters = [chapter_name(e) for e in toc_files(PROJECT)
                if chapter_source(PROJECT, e).suffix != ".md"]  # prose pages run nothing
    assert set(CHAPTER_PLANNERS) == set(chapters) == set(CHAPTER_CALLS)
    from detpretrain.plan import missing_calls

    assert missing_calls("detection", "print('another book')") == ["run_detection_experiment"]
    plan = book_plan("smoke", None, {}, root=PROJECT, store=RunStore(tmp_path))
    assert set(plan.chapters) == set(chapters)
    assert {c for r in plan for c in r.chapters} == set(chapters) - {"rerun"}  # every other chapter reads a run
    errors = {}  # the long-tailed target is read at planning time: a missing data_root is reported, not raised
    partial = book_plan("smoke", ["detection", "frozen_backbone"], {"dataset": "coco", "data_root": str(tmp_path)},
                        root=PROJECT, store=RunStore(tmp_path), errors=errors)
    # a root without the data is named at planning time, before anything trains (the run hash fingerprints the data)
    assert sorted(errors) == ["detection", "frozen_backbone"]
    assert all("DataError" in e and "instances_train2017.json" in e for e in errors.values()), errors
    assert not list(partial)
    # a real dataset whose root is absent: its runs are left out of the plan, and the plan says so
    absent, present = tmp_path / "no_flowers_here", tmp_path
    real = book_plan("smoke", ["classification"], {"real_data": {"flowers102": str(absent), "pet": str(present)}},
                     root=PROJECT, store=RunStore(tmp_path))
    assert len(real.notes) == 1 and f"real_data flowers102 root {absent} not found" in real.notes[0]
    assert f"not planned: classification: real_data flowers102 root {absent}" in format_plan(real, RunStore(tmp_path))
    assert not book_plan("smoke", ["classification"], {"real_data": {}}, root=PROJECT, store=RunStore(tmp_path)).notes
    from detpretrain.plan import absent_real_data

    defaults = {"flowers102": "../shared/data/flowers102_subset", "pet": "../shared/data/oxford_iiit_pet_subset"}
    with monkeypatch.context() as m:
        m.chdir(tmp_path)  # where ../shared/data does not exist; the variant reads the classification chapter's default
        variant = absent_real_data({"mechanisms": {"variants": ["classification:distributed"]}})
    assert [line.split(":")[0] for line in variant] == ["mechanisms (classification under distributed)"] * 2
    assert all(defaults[name] in line for name, line in zip(defaults, variant))
    # a real_data given to the page reaches its classification variants: their plan has the rows of the roots given
    given = absent_real_data({"mechanisms": {"variants": ["classification:distributed", "feature_space:distributed"],
                                             "real_data": {"flowers102": str(absent), "pet": str(present)}}})
    assert given == [f"mechanisms (classification under distributed): real_data flowers102 root {absent} not found: "
                     "its runs are not planned (a chapter that downloads it trains them when it executes; else it "
                     "skips the dataset)"]


def test_a_run_trained_outside_the_plan_is_recorded_while_a_chapter_executes(corpus_dir, tmp_path, monkeypatch):
    from detpretrain.runs import get_or_train

    record = tmp_path / "unplanned.txt"
    monkeypatch.setenv("DETPRETRAIN_UNPLANNED_LOG", str(record))
    (cfg,) = detection_chain("smoke", pretrains=("scratch",), seeds=(9,), overrides={"optim.epochs": 1}).configs
    run = get_or_train(cfg, RunStore(tmp_path / "runs"), progress=False)
    assert record.read_text() == f"{run.path.name} (finetune/scratch seed 9)\n"
    get_or_train(cfg, RunStore(tmp_path / "runs"), progress=False)  # found complete: nothing trained, nothing noted
    assert record.read_text().count("\n") == 1


def test_scratch_seed_gives_each_replicate_its_own_run():
    from detpretrain.experiments.common import scratch_seed

    for seeds in [(0,), (0, 1, 2), (5, 7), (3,)]:
        got = [scratch_seed(r, s, seeds) for r in range(4) for s in seeds]
        assert len(set(got)) == len(got)  # distinct training runs
        assert [scratch_seed(0, s, seeds) for s in seeds] == list(seeds)  # replicate 0: the unreplicated runs
    with pytest.raises(ConfigError, match=">= 0"):
        scratch_seed(-1, 0, (0,))


def _recorded_seconds(run_dir: Path) -> tuple[float, float, int]:
    """(training seconds, evaluation seconds, threads) of a complete run, read from its metrics.json directly."""
    import json

    m = json.loads((run_dir / "metrics.json").read_text())
    return sum(e["seconds"] for e in m["history"]), m["eval_seconds"], m["environment"]["threads"]


def test_cost_of_an_executed_plan_is_what_its_runs_recorded(executed, capsys, monkeypatch):
    from detpretrain.cli import main as cli_main
    from detpretrain.plan import BUILD_PARTS, plan_cost

    store, report, plan = executed
    costs = plan_cost(plan, store)
    assert [c.hash for c in costs] == list(plan.runs)
    # while it ran, the build log said after each trained run how much training was left once it could estimate it
    log = Path(report.log_path).read_text()
    assert re.search(r"trained \S+ .* in \d+ s .*\[\d+ runs left: ~\d+\.\d h of training left", log), log[-2000:]
    total = 0.0
    for c in costs:
        train, evaluation, threads = _recorded_seconds(store.run_for(plan.runs[c.hash].config).path)
        assert (c.state, c.train_seconds, c.eval_seconds, c.threads) == ("complete", train, evaluation, 1)
        assert c.epochs_done == c.epochs == plan.runs[c.hash].config.optim.epochs
        assert c.estimate_seconds is None and c.chapter == plan.runs[c.hash].chapters[0]
        total += train + evaluation
    assert {c.part for c in costs} <= set(BUILD_PARTS.values())
    assert {c.part for c in costs if c.label.startswith("eigen/")} == {"eigenspectrum detectors"}
    monkeypatch.setenv("DETPRETRAIN_DATA", str(store.data_cache))
    assert cli_main(["runs", "cost", "--profile", "smoke", "--chapters", ",".join(CHAPTERS),
                     "--store", str(store.root), "--jobs", "2"]) == 0
    out = capsys.readouterr().out
    n = len(plan)
    assert f"| all | {n} | {n} | {total:,.0f} |  | 0 |" in out
    assert f"threads per run: 1: {n} runs" in out and "left: ~0 worker-seconds, at least 0 s" in out
    # one part's row and one chapter's row, summed here from the runs' own records
    pre = [s for r, s in zip(plan, (c.seconds for c in costs)) if r.config.name.startswith("pretrain/")]
    assert (f"| pre-trainings | {len(pre)} | {len(pre)} | {sum(pre):,.0f} | {min(pre):,.0f} / "
            f"{statistics.median(pre):,.0f} / {max(pre):,.0f} | 0 |") in out
    seg = [c.seconds for r, c in zip(plan, costs) if r.chapters[0] == "segmentation"]
    assert seg and f"| segmentation | {len(seg)} | {len(seg)} | {sum(seg):,.0f} |" in out
    from detpretrain.plan import cost_frame

    by_chapter = cost_frame(costs, "chapter").set_index("chapter (first to read the run)")
    assert by_chapter["runs"].sum() == n and list(by_chapter.index) == list(dict.fromkeys(c.chapter for c in costs))
    with pytest.raises(ValueError, match="by must be 'part' or 'chapter'"):
        cost_frame(costs, "run")
    with pytest.raises(SystemExit):
        cli_main(["runs", "cost", "--profile", "smoke", "--jobs", "0"])
    assert "--jobs: must be at least 1, got 0" in capsys.readouterr().err
    # chapters whose data is missing are named, not a traceback
    assert cli_main(["runs", "cost", "--profile", "smoke", "--chapters", "detection,segmentation", "--store",
                     str(store.root), "-p", "dataset", "coco", "-p", "data_root", str(store.root / "nowhere")]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Cost of the run plan (profile smoke")
    for chapter in ("detection", "segmentation"):
        assert f"not counted: chapter {chapter} could not be planned (DataError" in out


def test_cost_estimates_unfinished_runs_from_finished_ones_of_the_same_shape(corpus_dir, tmp_path):
    import shutil

    from detpretrain.plan import format_cost, plan_cost, synthetic_split_images
    from detpretrain.runs import get_or_train

    done, todo, partial = detection_chain("smoke", pretrains=("scratch",), seeds=(7, 8, 9),
                                          overrides={"optim.epochs": 2}).configs
    store = RunStore(tmp_path / "runs")
    get_or_train(done, store, progress=False)
    train, evaluation, _ = _recorded_seconds(store.run_for(done).path)
    ckpt = store.run_for(partial).checkpoint_path
    ckpt.parent.mkdir(parents=True)
    torch.save({"model": {}, "optimizer": {}, "scheduler": {}, "epoch": 0,
                "history": [{"epoch": 0, "seconds": 2.5}]}, ckpt)
    plan = make_plan([done, todo, partial])
    costs = {c.hash: c for c in plan_cost(plan, store)}
    per_epoch = train / 2
    c = costs[config_hash(todo)]
    assert (c.state, c.epochs_done, c.train_seconds) == ("todo", 0, 0.0)
    assert c.estimate_seconds == pytest.approx(2 * per_epoch + evaluation)
    c = costs[config_hash(partial)]
    assert (c.state, c.epochs_done, c.train_seconds, c.eval_seconds) == ("partial", 1, 2.5, None)
    assert c.estimate_seconds == pytest.approx(per_epoch + evaluation)
    # another number of epochs is the same shape; another batch size or precision is not: no estimate
    longer = replace_path(todo, "optim.epochs", 3)
    assert plan_cost(make_plan([done, longer]), store)[1].estimate_seconds == pytest.approx(3 * per_epoch + evaluation)
    for key, value in (("optim.batch_size", todo.optim.batch_size + 1), ("optim.cpu_bf16", True)):
        assert plan_cost(make_plan([done, replace_path(todo, key, value)]), store)[1].estimate_seconds is None
    # other data of the same kind (another corpus size): the seconds per image of the finished run, scaled
    metrics = json.loads((store.run_for(done).path / "metrics.json").read_text())
    n_train, n_eval = metrics["num_train_images"], metrics["num_eval_images"]
    corpus = dict(todo.data.corpus)
    assert synthetic_split_images(done, done.data.train_split) == n_train  # the spec states what the run saw
    corpus["n_train"] *= 2
    bigger = replace_path(todo, "data.corpus", corpus)
    c = plan_cost(make_plan([done, bigger]), store)[1]

    def seen(n):  # the loader drops the last incomplete batch
        return n // todo.optim.batch_size * todo.optim.batch_size

    assert c.estimate_basis == "kind" and c.estimate_seconds == pytest.approx(
        2 * seen(synthetic_split_images(bigger, bigger.data.train_split)) * train / (2 * seen(n_train))
        + synthetic_split_images(bigger, bigger.data.eval_split) * evaluation / n_eval)
    assert costs[config_hash(todo)].estimate_basis == "shape"
    assert "estimates: 1 run(s) from finished runs of the same shape, 1 from the seconds per image" in format_cost(
        plan_cost(make_plan([done, todo, bigger]), store))
    # another kind (a frozen backbone, a long-tailed subset whose images are known only once built): no estimate
    for other in (replace_path(bigger, "model.trainable_stages", 2),
                  dataclasses.replace(bigger, data=dataclasses.replace(bigger.data, long_tail={
                      "rare": ["a"], "max_images": 2, "seed": 0}))):
        assert plan_cost(make_plan([done, other]), store)[1].estimate_seconds is None
    real = dataclasses.replace(bigger, data=dataclasses.replace(bigger.data, kind="coco", root="/coco"))
    assert synthetic_split_images(real, "train") is None  # real data: its images are unknown before it is read
    assert synthetic_split_images(bigger, "minival") is None
    # damaged: a checkpoint whose history is not fit's, a checkpoint that is not one, a metrics.json that no longer
    # matches its manifest; each is "unreadable" (0 s, no estimate) and named in the table, none raises
    torch.save({"model": {}, "optimizer": {}, "scheduler": {}, "epoch": 0, "history": [1, 2]}, ckpt)
    assert plan_cost(plan, store)[2].state == "unreadable"
    ckpt.write_bytes(b"not a checkpoint")
    shutil.copytree(store.run_for(done).path, tmp_path / "copy" / store.run_for(done).path.name)
    copy = RunStore(tmp_path / "copy")
    (copy.run_for(done).path / "metrics.json").write_text("{}")
    damaged = plan_cost(plan, copy)
    states = [c.state for c in damaged] + [plan_cost(plan, store)[2].state]
    assert states == ["unreadable", "todo", "todo", "unreadable"]
    assert damaged[0].seconds == 0.0 and damaged[1].estimate_seconds is None
    from detpretrain.executor import time_left_text

    assert time_left_text(make_plan([done, todo]), store, jobs=1) == \
        f"~{(2 * per_epoch + evaluation) / 3600:.1f} h of training left"
    other = replace_path(todo, "optim.batch_size", todo.optim.batch_size + 1)
    assert time_left_text(make_plan([done, todo, other]), store, jobs=2) == \
        f"~{(2 * per_epoch + evaluation) / 2 / 3600:.1f} h of training left for 1 of the 2 runs not complete"
    assert time_left_text(make_plan([done, other]), store, jobs=1) == ""
    text = format_cost(damaged, jobs=1)
    assert f"1 run(s) with unreadable records (counted as 0 s, not estimated): {damaged[0].label}" in text
    assert "left: 3 runs, no estimate yet" in text


@pytest.mark.parametrize("executor", ["local", "slurm"])
def test_a_run_with_several_gpus_per_job_trains_under_torchrun_inside_its_job(executor, corpus_dir, tmp_path):
    """``--gpus-per-job 2``: the worker (a local process, or a submitit job) starts ``torchrun --nproc_per_node 2``
    for the run; here on the CPU (gloo), where the two ranks share the global batch as they would two GPUs."""
    (cfg,) = detection_chain("smoke", pretrains=("scratch",), seeds=(11,), overrides={"optim.epochs": 1}).configs
    store = RunStore(tmp_path / "runs")
    report = execute(make_plan([cfg]), store, executor=executor, cluster="local", jobs=1, threads=1,
                     gpus_per_job=2, device="cpu", data_cache=corpus_dir, log_dir=tmp_path / "logs", **QUIET)
    assert set(report.trained) == {config_hash(cfg)}
    metrics = store.run_for(cfg).metrics
    assert metrics["world_size"] == 2 and metrics["device"] == "cpu" and len(metrics["mAP"]) == 9


def test_runs_the_plan_gains_start_beside_the_runs_still_training(corpus_dir, tmp_path):
    """A run that can only be planned once another is trained (as the eigenspectrum's narrower detectors) starts on
    the first free worker after that run, while a longer run still trains, not after the whole plan."""
    short, long_, later = detection_chain("smoke", pretrains=("scratch",), seeds=(21, 22, 23),
                                          overrides={"optim.epochs": 1}).configs
    long_ = replace_path(long_, "optim.epochs", 8)
    store = RunStore(tmp_path / "runs")

    def replan():  # `later` becomes known once `short` is trained
        return make_plan([short, long_] + ([later] if store.run_for(short).complete else []))

    report = execute(replan(), store, jobs=2, threads=1, data_cache=corpus_dir, log_dir=tmp_path / "logs",
                     replan=replan, **QUIET)
    assert set(report.trained) == _hashes([short, long_, later])
    lines = Path(report.log_path).read_text().splitlines()
    start_later = next(i for i, line in enumerate(lines) if "start finetune/scratch seed 23" in line)
    long_done = next(i for i, line in enumerate(lines) if "trained finetune/scratch seed 22" in line)
    assert start_later < long_done, "\n".join(lines)
    assert any("the plan grew by 1 run(s) that depend on trained results: finetune/scratch seed 23" in line
               for line in lines)


def test_a_replan_that_fails_while_runs_train_does_not_stop_them(corpus_dir, tmp_path):
    """Planning again in the middle of a build (a damaged run a planner reads, say) is reported and the runs in
    progress finish; the failure surfaces when the executor plans again at the end."""
    short, long_ = detection_chain("smoke", pretrains=("scratch",), seeds=(31, 32),
                                   overrides={"optim.epochs": 1}).configs
    long_ = replace_path(long_, "optim.epochs", 6)
    store = RunStore(tmp_path / "runs")

    def replan():
        if store.run_for(short).complete:
            raise RuntimeError("a planner read a damaged run")
        return make_plan([short, long_])

    with pytest.raises(RuntimeError, match="damaged run"):
        execute(replan(), store, jobs=2, threads=1, data_cache=corpus_dir, log_dir=tmp_path / "logs", replan=replan,
                **QUIET)
    assert store.run_for(short).complete and store.run_for(long_).complete  # the long run was not stopped
    log = next((tmp_path / "logs").glob("*.log")).read_text()
    assert "planning again failed (RuntimeError: a planner read a damaged run)" in log
