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


# ------------------------------------------------------------------------- manifest, states, verify, rm, gc, export

import fcntl
import time

import torch

from detpretrain import runs
from detpretrain.cli import main as cli_main
from detpretrain.errors import RunStoreError
from detpretrain.io import atomic_torch_save


def _fake_run(store: RunStore, seed=0, *, init=None, complete=True, manifest=True):
    """A run folder with small real artefacts (no training): config, checkpoint, log, backbone, model, metrics."""
    cfg = _cfg(seed)
    if init:
        import dataclasses

        cfg = dataclasses.replace(cfg, init=init)
    run = store.run_for(cfg)
    run.path.mkdir(parents=True)
    atomic_write_json(run.path / "config.json", to_dict(cfg))
    atomic_torch_save({"model": {"w": torch.ones(3)}, "optimizer": {}, "scheduler": {}, "epoch": 0,
                            "history": []}, run.checkpoint_path)
    run.log("epoch=0 loss=1.0")
    if complete:
        atomic_torch_save({"conv1.weight": torch.ones(4, 3)}, run.backbone_path)
        atomic_torch_save({"w": torch.ones(8)}, run.model_path)
        atomic_write_json(run.path / "metrics.json", {"headline": f"mAP@0.5={seed}", "classes": ["a"]})
        if manifest:
            run.write_manifest()
    runs.clear_verification_cache()
    return run


def test_manifest_lists_every_artefact_with_size_and_sha256(tmp_path):
    run = _fake_run(RunStore(tmp_path))
    (run.path / "checkpoints" / ".last.pt.abc.tmp").write_bytes(b"half")  # a temporary: not an artefact
    manifest = run.manifest()
    assert manifest["run"] == run.name and manifest["config_hash"] == run.hash
    assert sorted(manifest["files"]) == ["backbone.pt", "checkpoints/last.pt", "config.json", "log.txt",
                                         "metrics.json", "model.pt"]
    entry = manifest["files"]["model.pt"]
    assert entry["size"] == run.model_path.stat().st_size and entry["sha256"] == runs.sha256_file(run.model_path)
    assert run.problems() == [] and run.status(hashes=True) == "complete"


def test_states_and_list(tmp_path, capsys):
    store = RunStore(tmp_path)
    complete, legacy = _fake_run(store, 0), _fake_run(store, 1, manifest=False)
    corrupt, interrupted = _fake_run(store, 2), _fake_run(store, 3, complete=False)
    running = _fake_run(store, 4, complete=False)
    with open(corrupt.model_path, "ab") as f:
        f.write(b"x")
    with open(running.path / runs.LOCK, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        assert runs.lock_held(running.path) and not runs.lock_held(interrupted.path)
        states = {r.name: r.status() for r in store.runs()}
        assert list_command(str(tmp_path)) == 0
    assert states == {complete.name: "complete", legacy.name: "complete (no manifest)", corrupt.name: "corrupt",
                      interrupted.name: "interrupted", running.name: "running"}
    out = capsys.readouterr().out
    assert "interrupted (epoch 1/" in out and "mAP@0.5=0" in out and "corrupt" in out


def test_loads_check_the_manifest_and_name_the_remedy(tmp_path):
    store = RunStore(tmp_path)
    run = _fake_run(store)
    assert store.backbone_weights(f"run:{run.hash}") == run.backbone_path and run.metrics["classes"] == ["a"]
    data = bytearray(run.backbone_path.read_bytes())
    data[-30] ^= 1
    run.backbone_path.write_bytes(bytes(data))
    with pytest.raises(RunStoreError) as info:
        store.backbone_weights(f"run:{run.hash}")
    msg = str(info.value)
    assert str(run.backbone_path) in msg and run.name in msg and "expected sha256" in msg and "found" in msg
    assert f"runs rm {run.name} --store {tmp_path}" in msg


def test_hashing_costs_milliseconds_per_artefact(tmp_path, capsys):
    """The cost of verifying a load: SHA-256 of a 5 MB file (a smoke checkpoint's size; the file is in the page
    cache, as a just-written artefact is), printed with the throughput."""
    path = tmp_path / "a.pt"
    path.write_bytes(os.urandom(5_000_000))
    runs.sha256_file(path)
    t0 = time.perf_counter()
    for _ in range(5):
        runs.sha256_file(path)
    seconds = (time.perf_counter() - t0) / 5
    with capsys.disabled():
        print(f"\nsha256 of 5 MB: {seconds * 1e3:.1f} ms ({5 / seconds:.0f} MB/s)")
    assert seconds < 0.5


def test_verify_command_exit_status_and_write_manifest(tmp_path, capsys):
    store = RunStore(tmp_path)
    legacy = _fake_run(store, manifest=False)
    assert cli_main(["runs", "verify", "--store", str(tmp_path)]) == 0
    assert "complete (no manifest)" in capsys.readouterr().out
    assert cli_main(["runs", "verify", "--store", str(tmp_path), "--write-manifest"]) == 0
    assert legacy.manifest_path.exists() and legacy.status(hashes=True) == "complete"
    (legacy.path / "log.txt").write_text("edited\n")
    assert cli_main(["runs", "verify", legacy.hash[:6], "--store", str(tmp_path)]) == 1
    assert "CORRUPT log.txt" in capsys.readouterr().out


def test_rm_removes_runs_and_refuses_a_running_one(tmp_path, capsys):
    store = RunStore(tmp_path)
    a, b = _fake_run(store, 0), _fake_run(store, 1, complete=False)
    with open(b.path / runs.LOCK, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        assert cli_main(["runs", "rm", a.name, b.hash, "--store", str(tmp_path)]) == 1
        assert "being trained" in capsys.readouterr().err and a.path.exists()
    assert cli_main(["runs", "rm", a.name, f"run:{b.hash}", "--store", str(tmp_path)]) == 0
    assert not a.path.exists() and not b.path.exists() and list(tmp_path.iterdir()) == []
    assert cli_main(["runs", "rm", "ffff", "--store", str(tmp_path)]) == 1


def test_gc_removes_interrupted_runs_and_stale_temporaries(tmp_path, capsys):
    store = RunStore(tmp_path)
    keep, gone = _fake_run(store, 0), _fake_run(store, 1, complete=False)
    busy = _fake_run(store, 2, complete=False)
    stale = keep.path / "checkpoints" / ".last.pt.x1.tmp"
    stale.write_bytes(b"half")
    (tmp_path / ".import-abc").mkdir()
    feature_dir = tmp_path / "features" / "abc"
    feature_dir.mkdir(parents=True)
    old_tmp, fresh_tmp = feature_dir / ".conv5.npz.1.tmp", feature_dir / ".conv5.npz.2.tmp"
    old_tmp.write_bytes(b"x")
    fresh_tmp.write_bytes(b"x")
    os.utime(old_tmp, (time.time() - 2 * runs.STALE_AFTER_S,) * 2)
    with open(busy.path / runs.LOCK, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        assert cli_main(["runs", "gc", "--dry-run", "--store", str(tmp_path)]) == 0
        assert "would remove 4 item(s)" in capsys.readouterr().out and gone.path.exists()
        assert cli_main(["runs", "gc", "--store", str(tmp_path)]) == 0
    assert not gone.path.exists() and not stale.exists() and not (tmp_path / ".import-abc").exists()
    assert not old_tmp.exists() and fresh_tmp.exists() and busy.path.exists()
    assert keep.status(hashes=True) == "complete"



def test_prune_removes_the_runs_not_kept_but_never_one_being_trained(tmp_path, monkeypatch):
    from detpretrain import config

    store = RunStore(tmp_path)
    kept, old, partial, busy = (_fake_run(store, 0), _fake_run(store, 1), _fake_run(store, 2, complete=False),
                                _fake_run(store, 3, complete=False))
    monkeypatch.setattr(config, "ENGINE_VERSION", "an older engine")
    stale = _fake_run(store, 0)  # seed 0's config under the old engine: its config hashes to kept's name today
    monkeypatch.undo()
    assert stale.path != kept.path and runs.Run(stale.path, stale.config).hash == kept.hash
    for run in (kept, old):
        (tmp_path / "features" / run.hash).mkdir(parents=True)
        (tmp_path / "features" / run.hash / "conv5-test-x.npz").write_bytes(b"features")
    (tmp_path / "features" / "scratch-2e38800d-s0").mkdir()  # not a run's: never pruned
    with open(busy.path / runs.LOCK, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        listed, held = runs.prune_runs(store, {kept.hash}, dry_run=True)
        doomed = sorted([old.path, partial.path, stale.path]) + [tmp_path / "features" / old.hash]
        assert [p for p, _, _ in listed] == doomed and held == [busy.path]
        assert dict((p, w) for p, w, _ in listed)[partial.path] == "finetune/scratch seed 2, not complete"
        assert all(size > 0 for _, _, size in listed) and all(p.exists() for p in doomed)
        removed, held = runs.prune_runs(store, {kept.hash})
        assert [p for p, _, _ in removed] == doomed and held == [busy.path]
    assert not any(p.exists() for p in doomed) and busy.path.exists()
    assert kept.status(hashes=True) == "complete" and (tmp_path / "features" / kept.hash).is_dir()
    assert (tmp_path / "features" / "scratch-2e38800d-s0").is_dir()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".rm-")] == []  # removed whole, no leftovers
    assert runs.prune_runs(store, {kept.hash, busy.hash}) == ([], [])  # nothing left to prune


def test_prune_command_keeps_the_book_plan_and_refuses_when_a_chapter_cannot_be_planned(tmp_path, capsys,
                                                                                        monkeypatch):
    """``runs prune`` against the real smoke plan: a planned run (a folder with its config only) stays, a run of
    another configuration goes; a chapter that cannot be planned stops it before anything is removed."""
    import dataclasses

    from detpretrain import book

    monkeypatch.setenv("DETPRETRAIN_DATA", str(tmp_path / "data"))
    store = RunStore(tmp_path / "store")
    root, values, _ = book._runs_command_setup(None, str(store.root), "smoke")
    planned = next(iter(book.book_plan("smoke", ["pretraining"], values, root=root, store=store))).config
    stale = dataclasses.replace(planned, seed=planned.seed + 1000)  # e.g. an older configuration of that run
    for cfg in (planned, stale):
        store.run_for(cfg).path.mkdir(parents=True)
        atomic_write_json(store.run_for(cfg).path / "config.json", to_dict(cfg))
    assert cli_main(["runs", "prune", "--profile", "smoke", "--store", str(tmp_path / "typo")]) == 1
    assert f"{tmp_path / 'typo'}: no run store here" in capsys.readouterr().err
    args = ["runs", "prune", "--profile", "smoke", "--store", str(store.root)]
    assert cli_main([*args, "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert f"would remove {store.run_for(stale).name} ({stale.name} seed {stale.seed}, not complete" in out
    assert "would remove 1 run(s) and 0 feature cache(s)" in out and store.run_for(stale).path.exists()
    monkeypatch.setattr("detpretrain.plan.missing_calls", lambda chapter, text: ["a call"] if chapter == "detection"
                        else [])
    assert cli_main(args) == 1
    out = capsys.readouterr().out
    assert "chapter detection could not be planned" in out and "nothing removed" in out
    assert store.run_for(stale).path.exists()
    monkeypatch.undo()
    monkeypatch.setenv("DETPRETRAIN_DATA", str(tmp_path / "data"))
    assert cli_main([*args, "-p", "seedz", "[0]"]) == 2  # a typo is refused before anything is removed
    assert "has no parameter 'seedz'; did you mean 'seeds'?" in capsys.readouterr().err
    assert store.run_for(stale).path.exists()
    assert cli_main(args) == 0
    assert "removed 1 run(s) and 0 feature cache(s)" in capsys.readouterr().out
    assert not store.run_for(stale).path.exists() and store.run_for(planned).path.exists()
    # a planned run's starting point is kept though the plan does not list it (runs it reads through init)
    from detpretrain.plan import Plan, PlannedRun

    parent = _fake_run(store, 7)
    child = dataclasses.replace(_cfg(8), init=f"run:{parent.hash}")
    monkeypatch.setattr(book, "book_plan", lambda *a, **k: Plan({config_hash(child): PlannedRun(child,
                                                                                                 config_hash(child))}))
    assert cli_main(args) == 0
    assert parent.path.exists() and not store.run_for(planned).path.exists()


def test_export_takes_dependencies_and_refuses_what_cannot_travel(tmp_path):
    import tarfile

    store = RunStore(tmp_path / "store")
    parent = _fake_run(store, 0)
    child = _fake_run(store, 1, init=f"run:{parent.hash}")
    exported = runs.export_runs(store, [child.name], tmp_path / "a.tar.gz")
    assert [r.name for r in exported] == sorted([parent.name, child.name])
    with tarfile.open(tmp_path / "a.tar.gz") as tar:
        names = tar.getnames()
        assert all(m.uid == 0 and m.mode == 0o644 and m.isreg() for m in tar.getmembers())
    assert f"{parent.name}/manifest.json" in names and f"{child.name}/model.pt" in names
    legacy, partial = _fake_run(store, 2, manifest=False), _fake_run(store, 3, complete=False)
    with pytest.raises(RunStoreError, match="no manifest.*--write-manifest"):
        runs.export_runs(store, [legacy.name], tmp_path / "b.tar.gz")
    with pytest.raises(RunStoreError, match="not complete"):
        runs.export_runs(store, [partial.name], tmp_path / "b.tar.gz")
    with open(parent.model_path, "r+b") as f:
        f.write(b"\0\0")
    runs.clear_verification_cache()
    with pytest.raises(RunStoreError, match="model.pt: expected sha256"):
        runs.export_runs(store, [child.name], tmp_path / "b.tar.gz")
    assert not (tmp_path / "b.tar.gz").exists()


def test_store_errors_survive_pickling():
    """submitit and multiprocessing carry exceptions across processes by pickling them."""
    import pickle

    from detpretrain.errors import DiskFullError, ParameterError

    for err in (RunStoreError("/s/run/model.pt", "truncated", "runs rm"), DiskFullError("/s/x", "/s", 5_000_000, 10),
                ParameterError("detection", "seeds", "bad seeds")):
        again = pickle.loads(pickle.dumps(err))
        assert type(again) is type(err) and str(again) == str(err) and again.__dict__ == err.__dict__


def test_runs_commands_check_chapter_parameters_as_book_does(tmp_path, monkeypatch, capsys):
    """``runs plan / cost / execute`` took ``-p`` values unchecked: a typo was ignored (``runs prune`` would then
    remove the runs the typo meant to keep) and ``-p seeds abc`` ended in a TypeError inside the planner."""
    from detpretrain.cli import main as cli_main

    monkeypatch.setenv("DETPRETRAIN_DATA", str(tmp_path / "data"))
    store = ["--store", str(tmp_path / "store")]
    for command in ("plan", "cost", "execute"):
        assert cli_main(["runs", command, "--profile", "smoke", "-p", "seedz", "[0]", *store]) == 2
        assert "has no parameter 'seedz'; did you mean 'seeds'?" in capsys.readouterr().err
    assert cli_main(["runs", "plan", "--profile", "smoke", "--chapters", "detection", "-p", "seeds", "abc",
                     *store]) == 2
    assert "detection: parameter 'seeds' expects a list of distinct integers >= 0" in capsys.readouterr().err
    assert cli_main(["runs", "plan", "--profile", "smoke", "-p", "profile", "mini", *store]) == 1
    assert "give the profile with --profile, not -p profile" in capsys.readouterr().err
    assert not (tmp_path / "store").exists()  # nothing was planned into being


@pytest.mark.parametrize("chapters", ["", "detection,", " ,ablations"])
def test_an_empty_chapter_name_is_refused_not_read_as_every_chapter(chapters, capsys):
    from detpretrain.cli import main as cli_main

    for args in (["book", "--profile", "smoke", "--no-html"], ["runs", "plan", "--profile", "smoke"]):
        assert cli_main([*args, "--chapters", chapters]) == 1
        assert f"--chapters {chapters!r}: an empty chapter name" in capsys.readouterr().err


@pytest.mark.parametrize("error, code, message", [
    (KeyboardInterrupt(), 130, "interrupted: finished runs, and the epochs of the run that was training, are kept"),
    (FloatingPointError("epoch 0 iteration 3: loss is nan"), 1, "error: FloatingPointError: epoch 0 iteration 3"),
])
def test_ctrl_c_and_a_diverging_loss_end_with_one_line_not_a_traceback(error, code, message, monkeypatch, capsys):
    from detpretrain import cli
    from detpretrain.experiments import detection

    def train(args):
        raise error

    monkeypatch.setattr(detection, "train_command", train)
    assert cli.main(["train", "--profile", "smoke"]) == code
    err = capsys.readouterr().err
    assert err.startswith(message) and "Traceback" not in err and len(err.splitlines()) == 1
