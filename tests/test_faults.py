"""The fault campaign: what happens to a run store and to a chapter when things go wrong.

Every fault here must end in one of two ways: the work is resumed to the same result as if nothing had happened, or
a *named* error (``RunStoreError`` / ``DiskFullError`` / ``ParameterError``) says which run, file or parameter is
at fault, what was expected and found, and what to do -- and no run is lost or left half-written.

* kill -9 of a training process, mid-epoch and in the middle of writing a checkpoint, then resume: the same metrics
  as an uninterrupted run;
* a full disk: ``OSError(ENOSPC)`` injected into a checkpoint write (the last good checkpoint stays intact and the
  run resumes to the same metrics), and a real 1 MB tmpfs (only as root, where ``mount`` works);
* truncated and bit-flipped artefacts of a complete run, a damaged resume checkpoint, an older run without manifest;
* two processes training one plan on one store (each run trained once);
* tampered and malicious archives (nothing imported, nothing left behind);
* for every chapter, an unknown parameter name and a wrong-typed value of every parameter (generated from the
  declarations), each refused before any run directory or corpus appears.

The trainings are the smoke profile's scratch fine-tuning (seconds each, in subprocesses through the command line, as
a user would run them). Figures for the README's reliability section: ``pytest tests/test_faults.py -q -rA``.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import numpy as np
import pytest

from detpretrain import book, runs
from detpretrain.cli import main as cli_main
from detpretrain.errors import DiskFullError, RunStoreError
from detpretrain.io import atomic_torch_save, atomic_write_json
from detpretrain.parameters import CHAPTER_PARAMETERS
from detpretrain.runs import RunStore, get_or_train, load_run_model

EPOCHS = 4
TRAIN_ARGS = ("train", "--profile", "smoke", "--pretrain", "scratch", "--set", f"optim.epochs={EPOCHS}")

#: a child that trains through the command line with ``torch.save`` sabotaged on the K-th write of
#: ``checkpoints/last.pt`` ($FAULT_AT): half the bytes are written, then the process is SIGKILLed ($FAULT=kill) or the
#: write fails with ENOSPC ($FAULT=enospc). The package's own atomic_torch_save runs unchanged around it.
SABOTEUR = r"""
import errno, io, os, signal, sys
import torch
real_save, count = torch.save, 0
def save(obj, f, *args, **kwargs):
    global count
    name = getattr(f, "name", str(f))
    if ".last.pt." in os.path.basename(str(name)):
        count += 1
        if count == int(os.environ["FAULT_AT"]):
            buf = io.BytesIO()
            real_save(obj, buf, *args, **kwargs)
            f.write(buf.getvalue()[: len(buf.getvalue()) // 2])
            f.flush()
            os.fsync(f.fileno())
            if os.environ["FAULT"] == "kill":
                os.kill(os.getpid(), signal.SIGKILL)
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    return real_save(obj, f, *args, **kwargs)
torch.save = save
from detpretrain.cli import main
sys.exit(main(sys.argv[1:]))
"""


def _env(data: Path, **extra) -> dict:
    return {**os.environ, "DETPRETRAIN_DATA": str(data), "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1", **extra}


def _train(store: Path, data: Path, *, check: bool = True, sabotage: dict | None = None):
    """``python -m detpretrain train`` (smoke, scratch, EPOCHS epochs) into ``store``; with ``sabotage`` the
    :data:`SABOTEUR` child instead. Returns the CompletedProcess."""
    cmd = [sys.executable, "-c", SABOTEUR] if sabotage else [sys.executable, "-m", "detpretrain"]
    proc = subprocess.run([*cmd, *TRAIN_ARGS, "--store", str(store)], env=_env(data, **(sabotage or {})),
                          capture_output=True, text=True, timeout=600)
    if check:
        assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def _only_run(store: Path) -> Path:
    (run_dir,) = [p for p in store.iterdir() if runs.RUN_NAME.match(p.name)]
    return run_dir


def _metrics(run_dir: Path) -> dict:
    return json.loads((run_dir / "metrics.json").read_text())


def _same_result(a: Path, b: Path) -> None:
    ma, mb = _metrics(a), _metrics(b)
    assert a.name == b.name
    assert ma["mAP"] == mb["mAP"]
    assert [h["loss"] for h in ma["history"]] == [h["loss"] for h in mb["history"]]


@pytest.fixture(scope="module")
def reference(corpus_dir, tmp_path_factory) -> Path:
    """An uninterrupted run (its directory), the yardstick of every resumed one."""
    store = tmp_path_factory.mktemp("reference")
    _train(store, corpus_dir)
    return _only_run(store)


def _copy_store(run_dir: Path, dest: Path) -> Run:
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copytree(run_dir, dest / run_dir.name)
    runs.clear_verification_cache()
    return RunStore(dest).resolve(run_dir.name)


Run = runs.Run


def run_metrics(path):
    return json.loads((path / "metrics.json").read_text())


def test_a_completed_run_ends_with_its_manifest(reference):
    """The manifest is the last file written and covers every artefact; every .pt loads with weights_only=True."""
    run = RunStore(reference.parent).resolve(reference.name)
    manifest = run.manifest()
    assert sorted(manifest["files"]) == ["backbone.pt", "checkpoints/last.pt", "config.json", "detections.npz",
                                         "log.txt", "metrics.json", "model.pt"]
    last = run.manifest_path.stat().st_mtime_ns
    assert all((reference / rel).stat().st_mtime_ns <= last for rel in manifest["files"])
    assert run.status(hashes=True) == "complete" and run.problems() == []
    model, config, classes = load_run_model(run)  # torch.load(..., weights_only=True) inside
    assert config == run.config and classes == run.metrics["classes"]


def test_a_detection_run_keeps_its_test_detections_and_an_older_run_has_none(reference, tmp_path):
    """detections.npz: every test image's detections, compact; a run written before it existed reads as None."""
    from detpretrain.runs import load_predictions

    det = load_predictions(reference)
    assert len(det["image_ids"]) == len(det["counts"]) == run_metrics(reference)["num_eval_images"]
    assert det["boxes"].shape == (int(det["counts"].sum()), 4) and det["boxes"].dtype == np.float16
    assert det["scores"].dtype == np.float16 and det["labels"].dtype == np.int16
    assert set(det["labels"].tolist()) <= set(range(1, len(run_metrics(reference)["classes"])))
    older = tmp_path / reference.name
    shutil.copytree(reference, older)
    (older / "detections.npz").unlink()
    assert load_predictions(older) is None


# ------------------------------------------------------------------------------------------- kill -9, resume


def test_killed_training_resumes_to_the_same_metrics(corpus_dir, reference, tmp_path):
    """SIGKILL a training process mid-epoch (moved here from test_engine), run it again, and get what an
    uninterrupted run gets."""
    store = tmp_path / "killed"
    cmd = [sys.executable, "-m", "detpretrain", *TRAIN_ARGS, "--store", str(store)]
    proc = subprocess.Popen(cmd, env=_env(corpus_dir), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    checkpoint = None
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        found = list(store.glob("*/checkpoints/last.pt"))
        if found:
            checkpoint = found[0]
            break
        time.sleep(0.05)
    assert checkpoint is not None, f"no checkpoint appeared: {proc.stderr.read().decode()[-2000:] if proc.poll() is not None else ''}"
    time.sleep(0.3)  # into the next epoch
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    run_dir = checkpoint.parent.parent
    assert not (run_dir / "metrics.json").exists(), "the run finished before it could be killed"
    assert RunStore(store).resolve(run_dir.name).status() == "interrupted"
    _train(store, corpus_dir)
    assert "resumed from" in (run_dir / "log.txt").read_text()
    _same_result(run_dir, reference)


def test_kill_during_a_checkpoint_write_leaves_the_last_checkpoint_and_resumes(corpus_dir, reference, tmp_path):
    """SIGKILL while ``checkpoints/last.pt`` of epoch 1 is half written: the epoch-0 checkpoint is intact under its
    name, the half file is a hidden temporary; the next run removes it, resumes after epoch 0 and ends exactly like
    the uninterrupted run."""
    store = tmp_path / "store"
    proc = _train(store, corpus_dir, check=False, sabotage={"FAULT": "kill", "FAULT_AT": "2"})
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    run_dir = _only_run(store)
    leftovers = [p for p in (run_dir / "checkpoints").iterdir() if p.name != "last.pt"]
    assert len(leftovers) == 1 and leftovers[0].name.startswith(".last.pt.")  # the half-written temporary
    run = RunStore(store).resolve(run_dir.name)
    assert run.load_checkpoint()["epoch"] == 0 and run.status() == "interrupted"
    _train(store, corpus_dir)
    assert "resumed from" in (run_dir / "log.txt").read_text()
    assert not leftovers[0].exists()  # cleaned by the resuming process (it holds the run's lock)
    _same_result(run_dir, reference)
    assert cli_main(["runs", "verify", "--store", str(store)]) == 0


# ------------------------------------------------------------------------------------------------- full disk


def test_enospc_in_a_checkpoint_write_is_named_and_the_run_resumes(corpus_dir, reference, tmp_path):
    store = tmp_path / "store"
    proc = _train(store, corpus_dir, check=False, sabotage={"FAULT": "enospc", "FAULT_AT": "2"})
    assert proc.returncode == 1
    err = proc.stderr
    assert "Traceback" not in err, err[-3000:]
    assert f"DiskFullError: no space left on the device holding {store} while writing" in err
    assert "checkpoints/last.pt (about" in err and "MB needed" in err and "resumes from the last checkpoint" in err
    run_dir = _only_run(store)
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == ["last.pt"]  # no temporary left
    assert RunStore(store).resolve(run_dir.name).load_checkpoint()["epoch"] == 0  # the last good one, intact
    _train(store, corpus_dir)
    _same_result(run_dir, reference)


def test_enospc_and_edquot_in_any_atomic_write_are_named(tmp_path, monkeypatch):
    import torch

    target = tmp_path / "store" / "run" / "model.pt"
    atomic_torch_save({"w": torch.zeros(10)}, target)
    before = target.read_bytes()
    for code in (errno.ENOSPC, errno.EDQUOT):
        def full(obj, f, *a, code=code, **k):
            raise OSError(code, os.strerror(code))

        monkeypatch.setattr(torch, "save", full)
        with pytest.raises(DiskFullError, match=r"no space left on the device holding .*run while writing .*model\.pt"):
            atomic_torch_save({"w": torch.zeros(10)}, target)
        monkeypatch.undo()
    assert target.read_bytes() == before and sorted(os.listdir(target.parent)) == ["model.pt"]

    real_replace = os.replace

    def full_replace(src, dst):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "replace", full_replace)
    with pytest.raises(DiskFullError, match=r"about 13 bytes needed"):
        atomic_write_json(tmp_path / "m.json", {"a": 1})
    monkeypatch.setattr(os, "replace", real_replace)


@pytest.fixture
def tiny_tmpfs(tmp_path):
    """A real 1 MB tmpfs mounted at ``tmp_path/full`` (root only), unmounted afterwards."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root; the ENOSPC injection tests cover the logic")
    mnt = tmp_path / "full"
    mnt.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)], capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.strip() or proc.returncode}")
    try:
        yield mnt
    finally:
        if subprocess.run(["umount", str(mnt)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def test_a_real_full_disk_is_named_and_keeps_the_last_good_file(tiny_tmpfs, corpus_dir):
    import torch

    path = tiny_tmpfs / "run" / "checkpoints" / "last.pt"
    atomic_torch_save({"w": torch.ones(50_000)}, path)  # 200 KB: fits
    good = path.read_bytes()
    with pytest.raises(DiskFullError) as info:
        atomic_torch_save({"w": torch.ones(500_000)}, path)  # 2 MB: does not
    err = info.value
    assert err.needed_bytes > 2_000_000 and err.free_bytes < 1_100_000
    assert f"no space left on the device holding {path.parent} while writing {path}" in str(err)
    assert path.read_bytes() == good and os.listdir(path.parent) == ["last.pt"]
    # end to end: a training whose store is on the full device stops with the named error, nothing half-written
    store = tiny_tmpfs / "runs"
    proc = _train(store, corpus_dir, check=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert f"no space left on the device holding {store} while writing" in proc.stderr
    run_dir = _only_run(store)
    assert not [p for p in run_dir.rglob(".*") if p.name != runs.LOCK]
    assert RunStore(store).resolve(run_dir.name).status() == "interrupted"


# -------------------------------------------------------------------------------------- damaged artefacts


def _truncate(path: Path, size: int = 5000) -> None:
    with open(path, "r+b") as f:
        f.truncate(min(size, path.stat().st_size - 1))


def _flip(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x10
    path.write_bytes(bytes(data))


LOADERS = {
    "backbone.pt": lambda run, store: store.backbone_weights(f"run:{run.hash}"),
    "model.pt": lambda run, store: load_run_model(run),
    "metrics.json": lambda run, store: run.metrics,
    "config.json": lambda run, store: load_run_model(run),
    "checkpoints/last.pt": lambda run, store: run.verified("checkpoints/last.pt"),
}


@pytest.mark.parametrize("damage", ["truncated", "bit-flipped"])
@pytest.mark.parametrize("artefact", list(LOADERS))
def test_damaged_artefact_is_named_with_the_remedy(artefact, damage, reference, tmp_path):
    run = _copy_store(reference, tmp_path / "store")
    store = RunStore(tmp_path / "store")
    (_truncate if damage == "truncated" else _flip)(run.path / artefact)
    with pytest.raises(RunStoreError) as info:
        LOADERS[artefact](run, store)
    message = str(info.value)
    assert run.name in message and Path(artefact).name in message
    assert "expected" in message and "found" in message
    assert f"runs rm {run.name}" in message
    assert run.status(hashes=True) == "corrupt"
    out = tmp_path / "verify.txt"
    with open(out, "w") as stream:
        assert runs.verify_command(str(store.root), stream=stream) == 1
    assert "CORRUPT" in out.read_text() and "remedy" in out.read_text()


def _not_a_torch_file(path: Path) -> None:
    path.write_bytes(b"not a checkpoint")  # torch.load raises pickle.UnpicklingError, not a RuntimeError


#: damage that torch.load meets on a file it should read: a truncated zip, bytes that are no torch.save file at all
UNREADABLE = {"truncated": (_truncate, "truncated or damaged: "),
              "not a torch file": (_not_a_torch_file, r"UnpicklingError: not a torch\.save file of tensors")}


@pytest.mark.parametrize("damage", list(UNREADABLE))
def test_a_damaged_resume_checkpoint_is_named_with_the_remedy(damage, reference, corpus_dir, tmp_path):
    run = _copy_store(reference, tmp_path / "store")
    for name in ("metrics.json", runs.MANIFEST, "model.pt", "backbone.pt"):
        (run.path / name).unlink()
    spoil, why = UNREADABLE[damage]
    spoil(run.checkpoint_path)
    with pytest.raises(RunStoreError, match=rf"{run.name}.*resume checkpoint cannot be read \({why}.*delete it"):
        get_or_train(run.config, RunStore(tmp_path / "store"), progress=False)


def test_an_older_run_without_manifest_loads_and_its_damage_is_still_named(reference, tmp_path):
    run = _copy_store(reference, tmp_path / "store")
    store = RunStore(tmp_path / "store")
    run.manifest_path.unlink()
    assert run.status() == "complete (no manifest)" and store.backbone_weights(f"run:{run.hash}")
    load_run_model(run)
    _truncate(run.backbone_path)
    runs.clear_verification_cache()
    with pytest.raises(RunStoreError, match="backbone.pt: not a complete torch archive"):
        store.backbone_weights(f"run:{run.hash}")


# ------------------------------------------------------------------------------------ two processes, one plan


def test_two_processes_training_one_plan_train_each_run_once(corpus_dir, tmp_path):
    """Two ``train`` processes on one store, same plan (a classification pre-training and the fine-tuning that
    starts from it): both succeed, each run is trained exactly once (the second process waits on the lock and then
    loads)."""
    store = tmp_path / "store"
    cmd = [sys.executable, "-m", "detpretrain", "train", "--profile", "smoke", "--pretrain", "imagenet-cls",
           "--store", str(store)]
    procs = [subprocess.Popen(cmd, env=_env(corpus_dir), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    outs = [p.communicate(timeout=600) for p in procs]
    assert all(p.returncode == 0 for p in procs), [e[-2000:] for _, e in outs]
    run_dirs = [p for p in store.iterdir() if runs.RUN_NAME.match(p.name)]
    assert len(run_dirs) == 2
    for run_dir in run_dirs:
        log = (run_dir / "log.txt").read_text().splitlines()
        epochs = [line for line in log if line.startswith("epoch=")]
        assert len(epochs) == len({line.split()[0] for line in epochs}), f"{run_dir.name} trained twice:\n{log}"
        assert not any("resumed" in line for line in log)
        assert RunStore(store).resolve(run_dir.name).status(hashes=True) == "complete"
    assert outs[0][0].splitlines()[-1] == outs[1][0].splitlines()[-1]  # the same mAP row


# ------------------------------------------------------------------------------------------------ archives


def _export(run_dir: Path, tmp_path: Path) -> Path:
    store = RunStore(tmp_path / "src")
    _copy_store(run_dir, store.root)
    archive = tmp_path / "runs.tar.gz"
    runs.export_runs(store, None, archive)
    return archive


def _rewrite(archive: Path, out: Path, edit) -> Path:
    """Copy ``archive`` to ``out`` with ``edit(name, bytes) -> bytes | None`` applied (None drops the member)."""
    with tarfile.open(archive) as src, tarfile.open(out, "w:gz") as dst:
        for m in src.getmembers():
            data = edit(m.name, src.extractfile(m).read())
            if data is None:
                continue
            m.size = len(data)
            import io

            dst.addfile(m, io.BytesIO(data))
    return out


def _nothing_left(store: Path) -> None:
    assert not store.exists() or not any(store.iterdir()), sorted(p.name for p in store.iterdir())


def test_export_import_round_trip_loads_warm(reference, tmp_path):
    archive = _export(reference, tmp_path)
    store = RunStore(tmp_path / "dst")
    assert runs.import_runs(archive, store) == {reference.name: "imported"}
    run = store.resolve(reference.name)
    assert run.status(hashes=True) == "complete" and run.metrics == _metrics(reference)
    log = run.path.joinpath("log.txt").read_text()
    assert get_or_train(run.config, store).path == run.path  # warm: nothing trained
    assert run.path.joinpath("log.txt").read_text() == log
    assert runs.import_runs(archive, store) == {reference.name: "already present"}
    _flip(run.model_path)  # a damaged copy in the store is replaced by the archive's
    runs.clear_verification_cache()
    assert runs.import_runs(archive, store) == {reference.name: "replaced"}
    assert store.resolve(reference.name).status(hashes=True) == "complete"
    assert sorted(p.name for p in store.root.iterdir()) == [reference.name]


def _tamper_bytes(name, data):
    return data[:100] + bytes([data[100] ^ 1]) + data[101:] if name.endswith("model.pt") else data


TAMPERED = {
    "altered model.pt": (_tamper_bytes, "model.pt: expected sha256"),
    "truncated model.pt": (lambda n, d: d[:5000] if n.endswith("model.pt") else d, "model.pt: expected"),
    "missing backbone.pt": (lambda n, d: None if n.endswith("backbone.pt") else d, "backbone.pt: missing"),
    "extra file": (None, "evil.py: not in the manifest"),
    "no manifest": (lambda n, d: None if n.endswith("manifest.json") else d, "no manifest.json"),
    "edited config, manifest updated": (None, "hashes to detection-"),
}


@pytest.mark.parametrize("case", list(TAMPERED))
def test_tampered_archive_is_refused_whole(case, reference, tmp_path):
    archive = _export(reference, tmp_path)
    edit, expected = TAMPERED[case]
    if case == "extra file":
        out = tmp_path / "bad.tar.gz"
        with tarfile.open(archive) as src, tarfile.open(out, "w:gz") as dst:
            for m in src.getmembers():
                dst.addfile(m, src.extractfile(m))
            info = tarfile.TarInfo(f"{reference.name}/evil.py")
            info.size = 4
            import io

            dst.addfile(info, io.BytesIO(b"pass"))
    elif case.startswith("edited config"):
        import hashlib

        with tarfile.open(archive) as src:
            files = {m.name: src.extractfile(m).read() for m in src.getmembers()}
        cfg_name, man_name = f"{reference.name}/config.json", f"{reference.name}/manifest.json"
        config = json.loads(files[cfg_name])
        config["seed"] = 99
        files[cfg_name] = json.dumps(config).encode()
        manifest = json.loads(files[man_name])
        manifest["files"]["config.json"] = {"size": len(files[cfg_name]),
                                            "sha256": hashlib.sha256(files[cfg_name]).hexdigest()}
        files[man_name] = json.dumps(manifest).encode()
        out = _rewrite(archive, tmp_path / "bad.tar.gz", lambda n, d: files[n])
    else:
        out = _rewrite(archive, tmp_path / "bad.tar.gz", edit)
    dst = tmp_path / "dst"
    rc = cli_main(["runs", "import", str(out), "--store", str(dst)])
    assert rc == 1
    with pytest.raises(RunStoreError, match="nothing was imported") as info:
        runs.import_runs(out, RunStore(dst))
    assert expected in str(info.value)
    _nothing_left(dst)


def _malicious(tmp_path: Path, kind: str, run_name: str) -> Path:
    import io

    out = tmp_path / f"{kind}.tar.gz"
    with tarfile.open(out, "w:gz") as tar:
        good = tarfile.TarInfo(f"{run_name}/config.json")
        good.size = 2
        tar.addfile(good, io.BytesIO(b"{}"))
        info = tarfile.TarInfo({"absolute": f"/tmp/{run_name}/x", "dotdot": f"{run_name}/../../evil",
                                "symlink": f"{run_name}/link", "hardlink": f"{run_name}/hard",
                                "device": f"{run_name}/dev", "fifo": f"{run_name}/fifo",
                                "outside a run": "notarun/x", "hidden": f"{run_name}/.bashrc"}[kind])
        info.type = {"symlink": tarfile.SYMTYPE, "hardlink": tarfile.LNKTYPE, "device": tarfile.CHRTYPE,
                     "fifo": tarfile.FIFOTYPE}.get(kind, tarfile.REGTYPE)
        if kind == "symlink":
            info.linkname = "/etc/passwd"
        if kind == "hardlink":
            info.linkname = f"{run_name}/config.json"
        data = b"evil" if info.type == tarfile.REGTYPE else b""
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return out


MALICIOUS = {"absolute": "an absolute path", "dotdot": "a path that leaves its folder", "symlink": "a symbolic link",
             "hardlink": "a hard link", "device": "a device or fifo", "fifo": "a device or fifo",
             "outside a run": "not inside a run folder", "hidden": "a hidden name"}


@pytest.mark.parametrize("kind", list(MALICIOUS))
def test_malicious_archive_is_refused_before_extraction(kind, tmp_path):
    name = "detection-0123456789abcdef"
    archive = _malicious(tmp_path, kind, name)
    dst = tmp_path / "dst"
    with pytest.raises(RunStoreError, match=f"refused member .*: {MALICIOUS[kind]}.*nothing was imported"):
        runs.import_runs(archive, RunStore(dst))
    _nothing_left(dst)
    assert not (tmp_path / "evil").exists() and not Path(f"/tmp/{name}").exists()


def test_truncated_archive_is_refused(reference, tmp_path):
    archive = _export(reference, tmp_path)
    data = archive.read_bytes()
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(RunStoreError, match="not a readable .tar.gz archive.*nothing was imported"):
        runs.import_runs(cut, RunStore(tmp_path / "dst"))
    _nothing_left(tmp_path / "dst")


# -------------------------------------------------------------------------------------------- chapter parameters


def _wrong_value(p) -> str:
    """A ``-p`` value of the wrong type for parameter ``p`` (as the command line reads it: YAML)."""
    return {"str": "12345", "path": "12345", "int": "abc", "float": "abc", "int list": "abc",
            "str list": "12345", "str dict": "abc", "bool": "abc"}[p.kind]


@pytest.mark.parametrize("chapter", list(CHAPTER_PARAMETERS))
def test_chapter_refuses_unknown_names_and_wrong_values_before_any_run(chapter, tmp_path, monkeypatch, capsys):
    """For every chapter: a misspelt name (the closest is offered), and a wrong-typed value of every declared
    parameter; each exits 2 naming the parameter, and no run directory, corpus or notebook appears."""

    def never(*a, **k):
        raise AssertionError("executed despite a refused parameter")

    monkeypatch.setattr(book, "execute_chapter", never)
    monkeypatch.setattr(book, "_generate_corpora", never)
    store, data, out = tmp_path / "runs", tmp_path / "data", tmp_path / "out.ipynb"
    base = ["run", chapter, "-o", str(out), "-p", "store", str(store), "-p", "data_cache", str(data)]
    first = CHAPTER_PARAMETERS[chapter][-1].name
    assert cli_main([*base, "-p", first[:-1], "1"]) == 2
    err = capsys.readouterr().err
    assert f"has no parameter {first[:-1]!r}; did you mean {first!r}?" in err and "Its parameters:" in err
    for p in CHAPTER_PARAMETERS[chapter]:
        assert cli_main([*base, "-p", p.name, _wrong_value(p)]) == 2, p.name
        err = capsys.readouterr().err
        assert f"parameter {p.name!r} expects" in err and "got" in err, err
    assert not store.exists() and not data.exists() and not out.exists()


def test_book_refuses_unknown_names_and_unsupported_profiles_before_any_corpus(tmp_path, monkeypatch, capsys):
    def never(*a, **k):
        raise AssertionError("executed despite a refused parameter")

    monkeypatch.setattr(book, "execute_chapter", never)
    monkeypatch.setattr(book, "_generate_corpora", never)
    store = tmp_path / "runs"
    assert cli_main(["book", "--profile", "smoke", "--no-html", "-p", "store", str(store), "-p", "bogus", "1"]) == 2
    assert "the book has no parameter 'bogus'" in capsys.readouterr().err
    assert cli_main(["book", "--profile", "paper", "--no-html", "-p", "store", str(store)]) == 2
    err = capsys.readouterr().err
    assert "intro: profile 'paper' fine-tunes on real data, so parameter 'dataset' expects voc or coco" in err
    assert not store.exists()


@pytest.mark.parametrize("damage", list(UNREADABLE))
def test_a_damaged_backbone_loaded_by_path_is_named(damage, reference, tmp_path):
    """Code that builds a backbone straight from a run's backbone.pt (not through the store) still gets a named
    error, not torch's ``OSError: [Errno 22] Invalid argument`` nor its advice to load with ``weights_only=False``."""
    from detpretrain.models.backbones import build_backbone

    run = _copy_store(reference, tmp_path / "store")
    spoil, why = UNREADABLE[damage]
    spoil(run.backbone_path)
    spec = run.config.model
    with pytest.raises(RunStoreError, match=rf"backbone\.pt: weights file cannot be read \({why}.*runs verify"):
        build_backbone(spec.arch, norm=spec.norm, widths=spec.widths, weights=run.backbone_path)
