"""Content-addressed run store: train once, reuse in every chapter; a store that verifies itself and travels.

Layout of one run, ``<store>/<task>-<hash>/``::

    config.json        the TrainConfig (written when the run starts)
    checkpoints/last.pt model, optimizer, scheduler and epoch after each finished epoch (atomic replace)
    log.txt            one line per epoch (losses, lr, time) and per evaluation
    backbone.pt        the trained ResNet state_dict (no fc) -- what later runs load with ``init="run:<hash>"``
    model.pt           the whole trained model's state_dict
    metrics.json       final metrics; its presence marks the run COMPLETE
    manifest.json      written LAST, atomically: size and SHA-256 of every other file of the run
    .lock              flock'ed while a process trains the run

Every file is written to a temporary name in the same folder and then ``os.replace``-d, so a crash never leaves a
half-written file under a final name. A run without metrics.json is incomplete: calling :func:`get_or_train` again
resumes it from ``checkpoints/last.pt`` (the epoch that was interrupted is redone from its start, with the same
seeds, so the result equals an uninterrupted run on CPU). A lock file keeps two processes from training the same
run at once.

The completion rule
-------------------
A run is **complete** when ``metrics.json`` exists (as before: stores written before manifests existed stay usable).
Since the manifest is written after metrics.json, a complete run normally has one; a complete run without one
("complete (no manifest)": an older store, or a process killed in the milliseconds between the two writes) still
loads -- its ``.pt`` files are checked as zip archives (CRC of every member) instead of against hashes -- and
``python -m detpretrain runs verify --write-manifest`` adds the manifest of its files as they are now.

Verification
------------
Loading an artefact (:attr:`Run.metrics`, :func:`load_run_model`, :meth:`RunStore.backbone_weights`,
:meth:`Run.epoch_checkpoints`) checks its size and SHA-256 against the manifest first and raises
:class:`~detpretrain.errors.RunStoreError` naming the run, the file, what was expected and found, and the remedy.
Hashing runs at disk speed (about 1.5 GB/s here: milliseconds for smoke and mini artefacts, a fraction of a second for
a paper checkpoint); a file once verified is not hashed again in the same process while its size, mtime, ctime and
inode stay the same.

States (``runs list``)
----------------------
``complete``, ``complete (no manifest)``, ``corrupt`` (a file differs from the manifest, or is missing),
``running`` (not complete and the ``.lock`` is held: probed with a non-blocking ``flock``), ``interrupted`` (not
complete, lock free: the next execution resumes it; ``runs gc`` removes it). ``runs list`` compares sizes only
(cheap on any store); ``runs verify`` compares hashes.

Travelling
----------
``runs export`` writes complete, verified runs (and the pre-training runs they name with ``init="run:<hash>"``) with
their manifests into a ``.tar.gz``; ``runs import`` extracts it into a temporary folder inside the store, refusing
absolute names, ``..``, links, devices and anything but regular files and folders (on top of tarfile's ``data``
filter), checks every hash and that each run's config hashes to its name, and only then renames the runs into
place: a failed import leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import sys
import tarfile
import tempfile
import time
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import torch

from detpretrain import distributed, engine
from detpretrain.config import TrainConfig, config_hash, from_dict, to_dict
from detpretrain.errors import ConfigError, DiskFullError, RunStoreError
from detpretrain.io import (
    TORCH_LOAD_ERRORS,
    atomic_path,
    atomic_write_json,
    free_bytes,
    is_temporary,
    raise_if_disk_full,
    sha256_file,
    torch_load_problem,
)
from detpretrain.models.build import build_model

DEFAULT_STORE_ENV = "DETPRETRAIN_RUNS"
#: the manifest file of a complete run (written last).
MANIFEST = "manifest.json"
MANIFEST_FORMAT = 1
LOCK = ".lock"
#: a config hash as it names a run folder (after ``<task>-``) and a run's feature cache (``features/<hash>/``)
RUN_HASH = re.compile(r"[0-9a-f]{8,64}")
#: a run directory's name: ``<task>-<hex config hash>``.
RUN_NAME = re.compile(rf"^[a-z]+-{RUN_HASH.pattern}$")
#: temporary files outside any run (the feature cache) older than this are stale for ``runs gc`` (seconds).
STALE_AFTER_S = 3600.0
#: ``(path, size, mtime_ns, ctime_ns, inode) -> sha256`` of files verified in this process.
_VERIFIED: dict[tuple, str] = {}


def default_store_root() -> Path:
    """``$DETPRETRAIN_RUNS`` if set, else ``runs/`` under the current directory."""
    return Path(os.environ.get(DEFAULT_STORE_ENV, "runs"))


def _stat_key(path: Path) -> tuple:
    st = path.stat()
    return (str(path.resolve()), st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)


def clear_verification_cache() -> None:
    """Forget which files this process has verified (the next load hashes them again)."""
    _VERIFIED.clear()


def lock_held(run_path: str | os.PathLike) -> bool:
    """Whether another open file holds the ``flock`` on ``<run>/.lock`` (a process is training the run)."""
    try:
        fd = os.open(Path(run_path) / LOCK, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


@contextlib.contextmanager
def _try_lock(run_path: Path):
    """Hold ``<run>/.lock`` without waiting; yields False (and holds nothing) if another process holds it."""
    try:
        fd = os.open(run_path / LOCK, os.O_RDONLY)
    except OSError:
        yield True  # no lock file: nobody trains it
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def artefact_files(run_path: str | os.PathLike) -> list[str]:
    """The files a run's manifest covers, as sorted POSIX paths relative to the run: every regular file below it
    but ``manifest.json`` and hidden names (``.lock``, temporary files of :mod:`detpretrain.io`)."""
    root = Path(run_path)
    out = []
    for path in root.rglob("*"):
        rel = path.relative_to(root)
        if any(part.startswith(".") for part in rel.parts) or rel.as_posix() == MANIFEST:
            continue
        if path.is_file() and not path.is_symlink():
            out.append(rel.as_posix())
    return sorted(out)


def _human(n: int) -> str:
    return f"{n:,} bytes"


@dataclass(frozen=True)
class Run:
    """A run directory and its config."""

    path: Path
    config: TrainConfig

    @property
    def hash(self) -> str:
        """The config hash that names this run."""
        return config_hash(self.config)

    @property
    def name(self) -> str:
        """The run directory's name, ``<task>-<hash>``."""
        return self.path.name

    @property
    def complete(self) -> bool:
        """True once ``metrics.json`` exists (see "The completion rule" in the module docstring)."""
        return (self.path / "metrics.json").exists()

    @property
    def metrics(self) -> dict:
        """The final metrics, verified against the manifest.

        Raises:
            FileNotFoundError: the run is incomplete.  RunStoreError: metrics.json is damaged.
        """
        path = self.verified("metrics.json")
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise self._damaged("metrics.json", f"not readable JSON ({err})") from None

    @property
    def backbone_path(self) -> Path:
        """``backbone.pt``: the trained ResNet ``state_dict`` without ``fc`` (what ``init="run:<hash>"`` loads)."""
        return self.path / "backbone.pt"

    @property
    def model_path(self) -> Path:
        """``model.pt``: the whole trained model's ``state_dict``."""
        return self.path / "model.pt"

    @property
    def checkpoint_path(self) -> Path:
        """``checkpoints/last.pt``: the state after the last finished epoch (resume point)."""
        return self.path / "checkpoints" / "last.pt"

    @property
    def manifest_path(self) -> Path:
        """``manifest.json``: size and SHA-256 of every artefact, written last."""
        return self.path / MANIFEST

    def epoch_checkpoint_path(self, epochs_done: int) -> Path:
        """``checkpoints/epoch_<k>.pt``: the model ``state_dict`` after ``k`` epochs (``k = 0``: at initialisation),
        written when ``optim.keep_epoch_checkpoints`` is set."""
        return self.path / "checkpoints" / f"epoch_{epochs_done:03d}.pt"

    def epoch_checkpoints(self) -> dict[int, Path]:
        """The kept per-epoch models of this run, ``{epochs done: path}`` in order (empty if none were kept); each
        verified against the manifest when the run has one.

        Raises:
            RunStoreError: a kept checkpoint is damaged.
        """
        found = {}
        for p in (self.path / "checkpoints").glob("epoch_*.pt"):
            with contextlib.suppress(ValueError):
                found[int(p.stem.removeprefix("epoch_"))] = p
        if self.manifest_path.exists():
            for p in found.values():
                self.verified(p.relative_to(self.path).as_posix())
        return dict(sorted(found.items()))

    def log(self, line: str) -> None:
        """Append one line to log.txt (appends are small and line-buffered; the log is informational).

        Raises:
            DiskFullError: no space left on the device.
        """
        try:
            with open(self.path / "log.txt", "a") as f:
                f.write(line.rstrip("\n") + "\n")
        except OSError as err:
            raise_if_disk_full(err, self.path / "log.txt", len(line) + 1)
            raise

    # ---- the manifest ------------------------------------------------------------------------------------------

    def manifest(self) -> dict | None:
        """The parsed ``manifest.json``, or None if the run has none.

        Raises:
            RunStoreError: the manifest is not readable JSON of the expected form.
        """
        try:
            text = self.manifest_path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        try:
            data = json.loads(text)
            files = data["files"]
            if not isinstance(files, dict) or not all({"size", "sha256"} <= set(v) for v in files.values()):
                raise ValueError("'files' must map names to {size, sha256}")
        except (ValueError, KeyError, TypeError) as err:
            raise self._damaged(MANIFEST, f"not a readable manifest ({err})") from None
        return data

    def build_manifest(self) -> dict:
        """The manifest of the run's files as they are now (:func:`artefact_files`: size in bytes, SHA-256)."""
        files = {}
        for rel in artefact_files(self.path):
            path = self.path / rel
            files[rel] = {"size": path.stat().st_size, "sha256": sha256_file(path)}
        return {"format": MANIFEST_FORMAT, "run": self.name, "config_hash": self.hash, "files": files,
                "written_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}

    def write_manifest(self) -> dict:
        """Hash every artefact and write ``manifest.json`` atomically (the last file of a complete run).

        Raises:
            DiskFullError: no space left for it (the run stays "complete (no manifest)").
        """
        manifest = self.build_manifest()
        atomic_write_json(self.manifest_path, manifest)
        for rel, entry in manifest["files"].items():
            _VERIFIED[_stat_key(self.path / rel)] = entry["sha256"]
        return manifest

    def _remedy(self) -> str:
        store = self.path.parent
        return (f"remove the run (python -m detpretrain runs rm {self.name} --store {store}) and execute again to "
                f"retrain it, or import it again from an archive (runs import FILE --store {store})")

    def _damaged(self, rel: str, problem: str) -> RunStoreError:
        return RunStoreError(self.path / rel, f"run {self.name} of store {self.path.parent}: {problem}",
                             self._remedy())

    def verified(self, rel: str) -> Path:
        """The path of artefact ``rel`` (POSIX, relative to the run) after checking it against the manifest.

        Without a manifest (an older store), ``.pt`` files are checked as zip archives (the CRC of every member) and
        other files are only required to exist.

        Raises:
            RunStoreError: missing, of another size or SHA-256 than the manifest says, or (no manifest) a damaged
                torch archive; the message names the run, the file, expected and found, and the remedy.
        """
        path = self.path / rel
        manifest = self.manifest()
        if manifest is None:
            if not path.is_file():
                raise FileNotFoundError(f"{path}: no such file (run {self.name} is not complete)")
            if path.suffix == ".pt":
                _check_zip(path, self)
            return path
        entry = manifest["files"].get(rel)
        if entry is None:
            raise self._damaged(rel, f"{rel} is not in the run's manifest")
        problem = _mismatch(path, entry)
        if problem:
            raise self._damaged(rel, problem)
        return path

    def problems(self, *, hashes: bool = True) -> list[str]:
        """What is wrong with a complete run's files: one line per problem (empty: all good).

        Args:
            hashes: compare SHA-256 (else sizes only: what ``runs list`` does).
        """
        try:
            manifest = self.manifest()
        except RunStoreError as err:
            return [err.problem]
        if manifest is None:
            out = []
            for rel in artefact_files(self.path):
                if rel.endswith(".pt") and hashes:
                    try:
                        _check_zip(self.path / rel, self)
                    except RunStoreError as err:
                        out.append(err.problem)
            return out
        out = []
        if manifest.get("config_hash") != self.name.rsplit("-", 1)[-1]:
            out.append(f"the manifest is for config {manifest.get('config_hash')}, not {self.name}")
        for rel, entry in manifest["files"].items():
            problem = _mismatch(self.path / rel, entry, hashes=hashes)
            if problem:
                out.append(problem)
        return out

    def status(self, *, hashes: bool = False) -> str:
        """``complete``, ``complete (no manifest)``, ``corrupt``, ``running`` or ``interrupted`` (module docstring)."""
        if self.complete:
            if self.problems(hashes=hashes):
                return "corrupt"
            return "complete" if self.manifest_path.exists() else "complete (no manifest)"
        return "running" if lock_held(self.path) else "interrupted"

    def load_checkpoint(self) -> dict | None:
        """The resume checkpoint ``checkpoints/last.pt`` (``weights_only``), or None if there is none.

        Raises:
            RunStoreError: it exists but cannot be read (truncated or damaged); names the remedy.
        """
        path = self.checkpoint_path
        if not path.exists():
            return None
        try:
            ckpt = torch.load(path, map_location="cpu", weights_only=True)
            if not isinstance(ckpt, dict) or not {"model", "optimizer", "scheduler", "epoch", "history"} <= set(ckpt):
                raise ValueError("not a training checkpoint (keys model, optimizer, scheduler, epoch, history)")
            return ckpt
        except TORCH_LOAD_ERRORS as err:
            raise RunStoreError(path, f"run {self.name} of store {self.path.parent}: the resume checkpoint cannot "
                                      f"be read ({torch_load_problem(err)})",
                                f"delete it (rm {path}) to train this run again from its first epoch, or remove "
                                f"the run (python -m detpretrain runs rm {self.name} --store {self.path.parent})"
                                ) from None


def _mismatch(path: Path, entry: dict, *, hashes: bool = True) -> str:
    """'' if ``path`` matches its manifest ``entry``, else what differs (expected and found)."""
    if not path.is_file():
        return f"{path.name}: missing (expected {_human(entry['size'])}, sha256 {entry['sha256'][:12]}…)"
    key = _stat_key(path)
    size = key[1]
    if size != entry["size"]:
        return f"{path.name}: expected {_human(entry['size'])}, found {_human(size)} (truncated or replaced)"
    if not hashes:
        return ""
    found = _VERIFIED.get(key) or sha256_file(path)
    if found != entry["sha256"]:
        return (f"{path.name}: expected sha256 {entry['sha256'][:16]}…, found {found[:16]}… "
                f"(same size, {_human(size)}: the bytes were altered)")
    _VERIFIED[key] = found
    return ""


def _check_zip(path: Path, run: Run) -> None:
    """A torch file (zip archive) of a run without manifest: every member's CRC (RunStoreError if damaged)."""
    key = _stat_key(path)
    if key in _VERIFIED:
        return
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except (zipfile.BadZipFile, OSError, EOFError) as err:
        raise run._damaged(path.relative_to(run.path).as_posix(),
                           f"{path.name}: not a complete torch archive ({_human(key[1])}; {err})") from None
    if bad is not None:
        raise run._damaged(path.relative_to(run.path).as_posix(), f"{path.name}: member {bad} fails its CRC")
    _VERIFIED[key] = "zip-ok"


class RunStore:
    """A folder of runs, each named ``<task>-<config hash>``.

    Args:
        root: the folder; None means :func:`default_store_root`.
        data_cache: where the synthetic corpora its runs train on are generated (or found cached); None means
            :func:`detpretrain.data.builders.corpus_cache_dir` (``$DETPRETRAIN_DATA`` or ``data/generated``),
            read when a dataset is built. The location never enters a config hash: a corpus is named by its spec.
    """

    def __init__(self, root: str | os.PathLike | None = None, *, data_cache: str | os.PathLike | None = None):
        self.root = Path(root) if root is not None else default_store_root()
        self._data_cache = Path(data_cache) if data_cache is not None else None

    @property
    def data_cache(self) -> Path:
        """The corpus cache of this store's runs (see the class docstring)."""
        from detpretrain.data.builders import corpus_cache_dir

        return self._data_cache if self._data_cache is not None else corpus_cache_dir()

    def path_for(self, config: TrainConfig) -> Path:
        """The run directory of ``config``: ``<root>/<task>-<config hash>``."""
        return self.root / f"{config.task}-{config_hash(config)}"

    def run_for(self, config: TrainConfig) -> Run:
        """The :class:`Run` of ``config`` (complete or not, existing or not)."""
        return Run(self.path_for(config), config)

    def resolve(self, ref: str) -> Run:
        """The run named by ``"run:<hash>"``, a bare hash prefix or its directory name ``<task>-<hash>``.

        Raises:
            ConfigError: no run, or several runs, match.  RunStoreError: its config.json is unreadable.
        """
        path = self.find(ref)
        return Run(path, _read_config(path))

    def find(self, ref: str) -> Path:
        """The directory of the one run ``ref`` names (as :meth:`resolve`; a directory name also finds a run folder
        without a readable config.json).

        Raises:
            ConfigError: no run, or several runs, match.
        """
        key = ref.removeprefix("run:").rstrip("/")
        if RUN_NAME.match(key) and (self.root / key).is_dir():
            return self.root / key
        matches = [p for p in self.root.glob(f"*-{key}*") if (p / "config.json").exists() and RUN_NAME.match(p.name)]
        if len(matches) != 1:
            raise ConfigError(f"{self.root}: {len(matches)} runs match {ref!r}")
        return matches[0]

    def run_dirs(self) -> list[Path]:
        """Every run directory (``<task>-<hash>`` with a config.json), sorted by name."""
        if not self.root.is_dir():
            return []
        return sorted(p for p in self.root.iterdir()
                      if p.is_dir() and RUN_NAME.match(p.name) and (p / "config.json").exists())

    def runs(self) -> list[Run]:
        """Every run with a readable ``config.json``, sorted by directory name; unreadable ones are reported."""
        out = []
        for path in self.run_dirs():
            try:
                out.append(Run(path, _read_config(path)))
            except RunStoreError as err:
                print(f"warning: {err.path}: unreadable config ({err.problem}); skipped", file=sys.stderr)
        return out

    def backbone_weights(self, init: str | None):
        """The backbone weights a config's ``init`` names, as :func:`~detpretrain.models.build.build_model` takes them.

        Args:
            init: None (random initialisation), ``"run:<hash>"`` (a complete pre-training run of this store: its
                ``backbone.pt``, verified against the run's manifest), ``"torchvision:<Weights enum name>"`` (e.g.
                ``ResNet50_Weights.IMAGENET1K_V1``) or a file path of a ResNet ``state_dict``.

        Returns:
            None, the ``backbone.pt`` / file path, or the enum name.

        Raises:
            ConfigError: no complete run matches ``run:<hash>``.
            RunStoreError: its ``backbone.pt`` is damaged (names the run, the file and the remedy).
        """
        if init is None:
            return None
        if init.startswith("run:"):
            run = self.resolve(init)
            if not run.complete:
                raise ConfigError(f"{run.path}: the pre-training run {init} is not complete")
            return run.verified("backbone.pt")
        return init.removeprefix("torchvision:")

    @contextlib.contextmanager
    def lock(self, config: TrainConfig):
        """Exclusive lock on one run directory (blocks while another process trains it)."""
        path = self.path_for(config)
        path.mkdir(parents=True, exist_ok=True)
        with open(path / LOCK, "w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


def _read_config(path: Path) -> TrainConfig:
    """The TrainConfig of run folder ``path``; config.json is checked against the manifest first if there is one.

    Raises:
        RunStoreError: config.json differs from the manifest, or is not a readable config.
    """
    cfg = path / "config.json"
    if (path / MANIFEST).exists():
        Run(path, None).verified("config.json")  # the check needs no config
    try:
        return from_dict(json.loads(cfg.read_text(encoding="utf-8")))
    except (TypeError, KeyError, ValueError, UnicodeDecodeError, ConfigError) as err:
        raise RunStoreError(cfg, f"run {path.name}: unreadable config ({type(err).__name__}: {err})",
                            f"remove the run (python -m detpretrain runs rm {path.name} --store {path.parent})"
                            ) from None


def _remove_stale_temporaries(run_path: Path) -> list[Path]:
    """Delete the temporary files a killed writer left in a run (call only while holding the run's lock).

    config.json's temporaries are spared: :func:`get_or_train` writes config.json before it takes the lock, so one
    may belong to a live process (``runs gc`` removes them once the run is complete)."""
    removed = []
    for p in run_path.rglob(".*"):
        if is_temporary(p.name) and not p.name.startswith(".config.json."):
            shutil.rmtree(p) if p.is_dir() else p.unlink(missing_ok=True)
            removed.append(p)
    return removed


def get_or_train(config: TrainConfig, store: RunStore | None = None, **train_kwargs) -> Run:
    """The completed run for ``config``: loaded from the store, or trained (resuming a partial run) and stored.

    Under ``torchrun`` every rank calls this; rank 0 writes the files, all ranks train.

    Args:
        config: the run's :class:`~detpretrain.config.TrainConfig`.
        store: the run store (default :class:`RunStore` at ``$DETPRETRAIN_RUNS`` or ``runs/``).
        **train_kwargs: passed to :func:`detpretrain.engine.fit` (``device``, ``progress``).

    Returns:
        the complete :class:`Run`; ``run.metrics`` holds the evaluation.

    Raises:
        DiskFullError: no space left on the device holding the store (the last checkpoint stays intact; run again
            after freeing space and training resumes from it).
        RunStoreError: the resume checkpoint or a pre-training's backbone is damaged.
    """
    store = store or RunStore()
    run = store.run_for(config)
    if run.complete:
        return run
    distributed.init(train_kwargs.get("device", "auto"))  # before any rank decides it is the main process
    is_main = distributed.is_main_process()
    try:
        if is_main:
            run.path.mkdir(parents=True, exist_ok=True)
            cfg_path = run.path / "config.json"
            if not cfg_path.exists():
                atomic_write_json(cfg_path, to_dict(config))
        distributed.barrier()
        lock = store.lock(config) if is_main else contextlib.nullcontext()
        with lock:
            if not run.complete:  # another process may have finished it while we waited for the lock
                if is_main:
                    _remove_stale_temporaries(run.path)  # a killed writer's leftovers (we hold the lock)
                engine.fit(config, run, store, **train_kwargs)
    except DiskFullError as err:
        raise DiskFullError(err.path, store.root, err.needed_bytes, err.free_bytes,
                            "free space (or move the store: $DETPRETRAIN_RUNS / --store) and run again: training "
                            "resumes from the last checkpoint, which is intact") from err
    except OSError as err:
        raise_if_disk_full(err, run.path, None, store.root)
        raise
    distributed.barrier()
    return run


def load_predictions(run: Run | str | os.PathLike) -> dict | None:
    """A complete run's per-image test predictions (:data:`detpretrain.engine.PREDICTIONS`), verified against its
    manifest: ``{array name: ndarray}`` (a detector: ``image_ids``, ``counts``, ``boxes``, ``scores``, ``labels``, see
    :meth:`~detpretrain.evaluation.detection.DetectionEvaluator.detection_arrays`; a classifier: ``predicted``,
    ``label``), or None for a run trained before predictions were kept (or a task that keeps none).

    Raises:
        RunStoreError: the file differs from the manifest or cannot be read.
    """
    import numpy as np

    path = Path(getattr(run, "path", run))
    config = json.loads((path / "config.json").read_text(encoding="utf-8"))
    name = engine.PREDICTIONS.get(config.get("task", ""))
    if name is None or not (path / name).is_file():
        return None
    run = Run(path, _read_config(path))
    checked = run.verified(name)
    try:
        with np.load(checked) as data:
            return {k: data[k] for k in data.files}
    except (OSError, ValueError, zipfile.BadZipFile) as err:
        raise run._damaged(name, f"{name} cannot be read ({type(err).__name__}: {err})") from None


def load_run_model(run: Run | str | os.PathLike, device: str | torch.device = "cpu"):
    """The trained model of a complete run, in eval mode: the analyses' entry point to a finished model.

    Args:
        run: a :class:`Run` or its directory (``config.json`` + ``metrics.json`` + ``model.pt``).
        device: where to put the model.

    Returns:
        ``(model, config, classes)``: the ``nn.Module`` (Faster R-CNN for detection runs, ResNet classifier for
        classification runs, DeepLabV3 for segmentation runs) with the run's ``model.pt`` loaded, its
        :class:`~detpretrain.config.TrainConfig` and its class names (index = label; detection runs include
        ``__background__`` at 0).

    Raises:
        ConfigError: the run is not complete (no ``metrics.json`` / ``model.pt``).
        RunStoreError: an artefact differs from the run's manifest or cannot be read.
    """
    path = Path(getattr(run, "path", run))
    files = [path / "config.json", path / "metrics.json", path / "model.pt"]
    missing = [f.name for f in files if not f.is_file()]
    if missing:
        raise ConfigError(f"{path}: not a complete run (missing {', '.join(missing)})")
    run = Run(path, _read_config(path))
    classes = list(run.metrics["classes"])
    model = build_model(run.config, len(classes))
    model_path = run.verified("model.pt")
    try:
        state = torch.load(model_path, map_location="cpu", weights_only=True)
    except TORCH_LOAD_ERRORS as err:
        raise run._damaged("model.pt", f"model.pt cannot be read ({torch_load_problem(err)})") from None
    model.load_state_dict(state)
    return model.to(device).eval(), run.config, classes


# ------------------------------------------------------------------------------------------- keeping a store healthy


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def _dispose(path: Path, root: Path) -> None:
    """Remove a file or folder; a folder is first renamed to a hidden ``.rm-`` name so it vanishes at once (a kill
    during the deletion leaves a ``.rm-`` folder for ``runs gc``, never half a run under its name)."""
    if path.is_dir():
        doomed = Path(tempfile.mkdtemp(prefix=f".rm-{path.name}-", dir=root))
        os.replace(path, doomed / path.name)
        shutil.rmtree(doomed, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def remove_runs(store: RunStore, refs: list[str]) -> list[Path]:
    """Remove the runs ``refs`` names (``run:<hash>``, hash prefix or directory name) from the store.

    Returns:
        the removed run directories.

    Raises:
        ConfigError: a name matches no run or several.  RunStoreError: a run is being trained (its lock is held);
            nothing is removed then.
    """
    paths = [store.find(ref) for ref in refs]
    busy = [p.name for p in paths if lock_held(p)]
    if busy:
        raise RunStoreError(store.root, f"run(s) {', '.join(busy)} are being trained by another process",
                            "wait until they finish (runs list shows 'running'), then remove them")
    removed = []
    for path in dict.fromkeys(paths):
        with _try_lock(path) as free:
            if not free:
                raise RunStoreError(path, "a process started training this run meanwhile", "remove it later")
            _dispose(path, store.root)
        removed.append(path)
    return removed


def collect_garbage(store: RunStore, *, dry_run: bool = False, now: float | None = None) -> list[tuple[Path, str, int]]:
    """Find (and unless ``dry_run`` remove) what no run needs.

    * interrupted runs (no metrics.json, lock free) and run folders without a config.json;
    * temporary files of :mod:`detpretrain.io` inside runs whose lock is free (a killed writer's leftovers);
    * unfinished imports (``.import-*``, lock free) and removals (``.rm-*``) at the top of the store;
    * temporary files elsewhere in the store (the feature cache) older than :data:`STALE_AFTER_S`.

    Returns:
        ``(path, reason, bytes)`` per item, in store order.
    """
    now = time.time() if now is None else now
    found: list[tuple[Path, str, int]] = []
    if not store.root.is_dir():
        return found
    for path in sorted(store.root.iterdir()):
        name = path.name
        if path.is_dir() and RUN_NAME.match(name):
            if lock_held(path):
                continue
            if not (path / "config.json").exists():
                found.append((path, "run folder without config.json", _size(path)))
            elif not (path / "metrics.json").exists():
                found.append((path, "interrupted run", _size(path)))
            else:
                found += [(p, "stale temporary file", _size(p)) for p in sorted(path.rglob(".*")) if is_temporary(p.name)]
        elif name.startswith(".import-") and path.is_dir():
            if not lock_held(path):
                found.append((path, "unfinished import", _size(path)))
        elif name.startswith(".rm-"):
            found.append((path, "unfinished removal", _size(path)))
        elif is_temporary(name):
            if now - path.stat().st_mtime > STALE_AFTER_S:
                found.append((path, "stale temporary file", _size(path)))
        elif path.is_dir():
            found += [(p, "stale temporary file", _size(p)) for p in sorted(path.rglob(".*"))
                      if is_temporary(p.name) and now - p.stat().st_mtime > STALE_AFTER_S]
    if not dry_run:
        for path, reason, _ in found:
            if reason in ("interrupted run", "run folder without config.json"):
                with _try_lock(path) as free:
                    if free:
                        _dispose(path, store.root)
            elif path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
    return found



def _pruned_label(path: Path) -> str:
    """``"<name> seed <seed>, complete"`` (or ``not complete``) of a run folder, or why its config is unreadable."""
    state = "complete" if (path / "metrics.json").exists() else "not complete"
    try:
        cfg = _read_config(path)
    except RunStoreError as err:
        return f"{state}; {err.problem}"
    return f"{cfg.name} seed {cfg.seed}, {state}"


def prune_runs(store: RunStore, keep, *, dry_run: bool = False) -> tuple[list[tuple[Path, str, int]], list[Path]]:
    """Find (and unless ``dry_run`` remove) every run folder of ``store`` whose name's hash is not in ``keep``, and
    the feature cache (``features/<run hash>/``) of those runs: the runs of configurations nothing asks for any
    more (e.g. a run store cached across builds keeps the runs of every configuration the chapters ever had, and
    grows with each change of a run configuration or of the engine).

    The folder's NAME is compared, not the hash of its config.json: after a change of
    :data:`~detpretrain.config.ENGINE_VERSION` an old run's config hashes to the new name, but its folder keeps the
    old one and no reader finds it. A run being trained (its lock held) is never removed, nor its features; a run
    folder whose config.json is unreadable is removed like any other (``runs gc`` removes folders without one).

    Args:
        store: the run store.
        keep: the config hashes to keep (e.g. the keys of :class:`detpretrain.plan.Plan` ``runs`` and the runs they
            start from).
        dry_run: only list what would be removed.

    Returns:
        ``(removed, busy)``: ``(path, what, bytes)`` per run folder or feature cache removed (or, with ``dry_run``,
        that would be), runs first, in store order; and the run folders outside ``keep`` left because a process
        holds their lock.
    """
    keep = set(keep)
    removed: list[tuple[Path, str, int]] = []
    busy: list[Path] = []
    for path in store.run_dirs():
        if path.name.split("-", 1)[1] in keep:
            continue
        if lock_held(path):
            busy.append(path)
            continue
        what, size = _pruned_label(path), _size(path)
        if not dry_run:
            with _try_lock(path) as free:
                if not free:  # a process started training it meanwhile
                    busy.append(path)
                    continue
                _dispose(path, store.root)
        removed.append((path, what, size))
    held = {p.name.split("-", 1)[1] for p in busy}
    features = store.root / "features"
    for path in sorted(features.iterdir()) if features.is_dir() else ():
        if path.is_dir() and RUN_HASH.fullmatch(path.name) and path.name not in keep | held:
            size = _size(path)
            if not dry_run:
                _dispose(path, store.root)
            removed.append((path, "feature cache of a run not kept", size))
    return removed, busy

# ------------------------------------------------------------------------------------------------------ travelling


def _with_dependencies(store: RunStore, runs: list[Run]) -> list[Run]:
    """``runs`` and, recursively, the pre-training runs their configs name with ``init="run:<hash>"``."""
    out: dict[Path, Run] = {}
    todo = list(runs)
    while todo:
        run = todo.pop()
        if run.path in out:
            continue
        out[run.path] = run
        if run.config.init and run.config.init.startswith("run:"):
            todo.append(store.resolve(run.config.init))
    return sorted(out.values(), key=lambda r: r.name)


def export_runs(store: RunStore, refs: list[str] | None, output: str | os.PathLike) -> list[Run]:
    """Write complete, verified runs with their manifests to a ``.tar.gz`` (atomically).

    Args:
        refs: the runs (``run:<hash>``, hash prefix, directory name); None or empty: every complete run. The
            pre-training runs they were initialised from come along.
        output: the archive to write; members are ``<task>-<hash>/<file>`` (regular files, mode 0644, owner 0).

    Returns:
        the exported runs.

    Raises:
        RunStoreError: a run is incomplete, has no manifest (``runs verify --write-manifest`` adds one) or differs
            from it; nothing is written then.  DiskFullError: no space for the archive.
    """
    runs = [store.resolve(r) for r in refs] if refs else [r for r in store.runs() if r.complete]
    if not runs:
        raise RunStoreError(store.root, "no complete runs to export", "train some first (python -m detpretrain book)")
    runs = _with_dependencies(store, runs)
    for run in runs:
        if not run.complete:
            raise RunStoreError(run.path, f"run {run.name} is not complete ({run.status()})",
                                "only complete runs travel: finish it (execute its chapter again) or leave it out")
        if not run.manifest_path.exists():
            raise RunStoreError(run.path, f"run {run.name} has no manifest (written before manifests existed)",
                                f"add one with python -m detpretrain runs verify --write-manifest --store {store.root}")
        problems = run.problems(hashes=True)
        if problems:
            raise run._damaged(MANIFEST, "; ".join(problems))
    output = Path(output)
    with atomic_path(output) as tmp, tarfile.open(tmp, "w:gz") as tar:
        for run in runs:
            for rel in [*run.manifest()["files"], MANIFEST]:
                path = run.path / rel
                info = tar.gettarinfo(str(path), f"{run.name}/{rel}")
                info.uid = info.gid = 0
                info.uname = info.gname = ""
                info.mode = 0o644
                with open(path, "rb") as f:
                    tar.addfile(info, f)
    return runs


def _refuse(archive: Path, member: str, why: str) -> RunStoreError:
    return RunStoreError(archive, f"refused member {member!r}: {why}; nothing was imported",
                         "import only archives written by python -m detpretrain runs export")


def _checked_members(archive: Path, tar: tarfile.TarFile) -> tuple[list[tarfile.TarInfo], list[str]]:
    """The archive's members if every one is a regular file or folder inside a run folder ``<task>-<hash>/``, with
    a relative name free of ``..`` and hidden parts; else RunStoreError naming the first bad member."""
    members = tar.getmembers()
    runs: dict[str, None] = {}
    for m in members:
        name = m.name
        parts = PurePosixPath(name).parts
        if name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name):
            raise _refuse(archive, name, "an absolute path")
        if not parts or ".." in parts or "\\" in name:
            raise _refuse(archive, name, "a path that leaves its folder ('..')")
        if m.issym() or m.islnk():
            raise _refuse(archive, name, f"a {'symbolic' if m.issym() else 'hard'} link (to {m.linkname!r})")
        if m.ischr() or m.isblk() or m.isfifo():
            raise _refuse(archive, name, "a device or fifo")
        if not (m.isreg() or m.isdir()):
            raise _refuse(archive, name, "not a regular file or folder")
        if not RUN_NAME.match(parts[0]):
            raise _refuse(archive, name, "not inside a run folder named <task>-<config hash>")
        if any(p.startswith(".") for p in parts):
            raise _refuse(archive, name, "a hidden name")
        runs[parts[0]] = None
    if not runs:
        raise RunStoreError(archive, "the archive holds no runs", "export runs with python -m detpretrain runs export")
    return members, list(runs)


def _imported_problems(path: Path) -> list[str]:
    """What is wrong with a run folder extracted from an archive (empty: complete, verified, hash = name)."""
    run_name = path.name
    try:
        config = _read_config(path)
    except RunStoreError as err:
        return [f"{run_name}: {err.problem}"]
    run = Run(path, config)
    try:
        manifest = run.manifest()
    except RunStoreError as err:
        return [f"{run_name}: {err.problem}"]
    if manifest is None:
        return [f"{run_name}: no manifest.json"]
    out = []
    task, _, name_hash = run_name.rpartition("-")
    actual = config_hash(config)
    if actual != name_hash or config.task != task:
        out.append(f"{run_name}: its config.json hashes to {config.task}-{actual} under this version of the package "
                   f"(a tampered config, or a run of another engine version)")
    if manifest.get("config_hash") != name_hash:
        out.append(f"{run_name}: the manifest is for config {manifest.get('config_hash')}")
    if "metrics.json" not in manifest["files"]:
        out.append(f"{run_name}: not a complete run (no metrics.json)")
    present = set(artefact_files(path))
    out += [f"{run_name}/{rel}: not in the manifest" for rel in sorted(present - set(manifest["files"]))]
    for rel, entry in manifest["files"].items():
        problem = _mismatch(path / rel, entry)
        if problem:
            out.append(f"{run_name}/{rel}: {problem.split(': ', 1)[1]}")
    return out


def import_runs(archive: str | os.PathLike, store: RunStore) -> dict[str, str]:
    """Import the runs of an archive written by :func:`export_runs` into ``store``, all verified or none.

    The archive is extracted into a temporary folder ``<store>/.import-*`` (same device, so the final step is a
    rename). Refused before anything is extracted: absolute names, ``..``, links, devices and fifos, anything but
    regular files and folders, names outside a ``<task>-<hash>/`` folder, hidden names, and archives larger than the
    free space (tarfile's ``data`` filter is applied as well). After extraction every run must have a manifest that
    lists exactly its files with their sizes and SHA-256, a metrics.json, and a config.json that hashes to the run's
    name. Only then are the runs renamed into place; a run already present and verified is kept, an incomplete or
    damaged one is replaced.

    Returns:
        ``{run name: "imported" | "replaced" | "already present"}``.

    Raises:
        RunStoreError: a refused member, a damaged or truncated archive, a hash mismatch (all listed), or a run
            being trained in the store; nothing is imported then.  DiskFullError: no space in the store.
    """
    archive = Path(archive)
    if not archive.is_file():
        raise FileNotFoundError(f"{archive}: no such archive")
    store.root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".import-", dir=store.root))
    outcome: dict[str, str] = {}
    try:
        with open(staging / LOCK, "w") as lock:  # held while importing: runs gc leaves this folder alone
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                with tarfile.open(archive, "r:*") as tar:
                    members, names = _checked_members(archive, tar)
                    needed = sum(m.size for m in members if m.isreg())
                    free = free_bytes(store.root)
                    if free is not None and needed > free:
                        raise DiskFullError(archive, store.root, needed, free,
                                            "free space or import into another store; nothing was imported")
                    extra = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
                    tar.extractall(staging, members=members, **extra)
            except getattr(tarfile, "FilterError", ()) as err:  # what the checks above already refuse
                raise _refuse(archive, getattr(err, "tarinfo", None) and err.tarinfo.name or "?", str(err)) from None
            except (tarfile.TarError, EOFError, zlib.error) as err:
                raise RunStoreError(archive, f"not a readable .tar.gz archive ({type(err).__name__}: {err}); "
                                             "nothing was imported",
                                    "the file is truncated or damaged: copy or download it again") from None
            problems = [p for name in names for p in _imported_problems(staging / name)]
            if problems:
                raise RunStoreError(archive, f"{len(problems)} problem(s), nothing was imported: "
                                    + "; ".join(problems[:10]) + (" ..." if len(problems) > 10 else ""),
                                    "the archive was altered or damaged: export it again from a verified store")
            plan = []
            for name in names:
                dest = store.root / name
                if dest.exists():
                    existing = Run(dest, _read_config(staging / name))
                    if existing.complete and existing.manifest_path.exists() and not existing.problems(hashes=True):
                        outcome[name] = "already present"
                        continue
                    if lock_held(dest):
                        raise RunStoreError(dest, f"run {name} is being trained in this store; nothing was imported",
                                            "import again once it has finished")
                plan.append((name, dest))
            for name, dest in plan:
                if dest.exists():
                    os.replace(dest, staging / f".old-{name}")
                    outcome[name] = "replaced"
                else:
                    outcome[name] = "imported"
                os.replace(staging / name, dest)
    except OSError as err:
        raise_if_disk_full(err, staging, None, store.root)
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return outcome


# ----------------------------------------------------------------------------------------------------- commands


def list_command(store_root: str | None = None, stream=None) -> int:
    """``python -m detpretrain runs list``: one line per run (directory, name, data, status, headline metric).

    The status (module docstring) compares file sizes with the manifest; ``runs verify`` compares hashes.
    """
    stream = stream or sys.stdout
    store = RunStore(store_root)
    runs = store.runs()
    if not runs:
        print(f"no runs in {store.root.resolve()}", file=stream)
        return 0
    print(f"{'run':<30} {'name':<34} {'data':<42} {'status':<24} headline", file=stream)
    for run in runs:
        status = run.status()
        headline = ""
        if status.startswith("complete"):
            with contextlib.suppress(RunStoreError, FileNotFoundError):
                headline = run.metrics.get("headline", "")
        else:
            status += _progress(run)
        print(f"{run.name:<30} {run.config.name:<34} {run.config.data.describe()[:42]:<42} {status:<24} {headline}",
              file=stream)
    return 0


def _progress(run: Run) -> str:
    if not run.complete and run.checkpoint_path.exists():
        try:
            ckpt = torch.load(run.checkpoint_path, map_location="cpu", weights_only=True, mmap=True)
            return f" (epoch {ckpt['epoch'] + 1}/{run.config.optim.epochs})"
        except Exception:  # noqa: BLE001 - a listing must not fail on one unreadable checkpoint
            return " (unreadable checkpoint)"
    return ""


def verify_command(store_root: str | None = None, refs: list[str] | None = None, *, write_manifest: bool = False,
                   stream=None) -> int:
    """``python -m detpretrain runs verify [RUN...] [--write-manifest]``: hash every artefact against its manifest.

    Prints one line per run. Problems: a file that differs from the manifest or is missing, an unreadable config or
    manifest, a damaged torch archive in a run without manifest. Not problems: running and interrupted runs (said
    so), complete runs without manifest (said so; ``--write-manifest`` writes one for their files as they are).

    Returns:
        1 if any run has a problem, else 0.
    """
    stream = stream or sys.stdout
    store = RunStore(store_root)
    paths = [store.find(r) for r in refs] if refs else store.run_dirs()
    bad = 0
    t0 = time.perf_counter()
    for path in paths:
        try:
            run = Run(path, _read_config(path))
        except RunStoreError as err:
            bad += 1
            print(f"{path.name}: CORRUPT {err.problem}", file=stream)
            print(f"  remedy: {err.remedy}", file=stream)
            continue
        if not run.complete:
            print(f"{run.name}: {run.status()}{_progress(run)} (not verified: not complete)", file=stream)
            continue
        problems = run.problems(hashes=True)
        if problems:
            bad += 1
            print(f"{run.name}: CORRUPT " + "; ".join(problems), file=stream)
            print(f"  remedy: {run._remedy()}", file=stream)
        elif not run.manifest_path.exists():
            if write_manifest:
                run.write_manifest()
                print(f"{run.name}: ok (manifest written: {len(artefact_files(run.path))} files)", file=stream)
            else:
                print(f"{run.name}: complete (no manifest): torch archives intact; add one with --write-manifest",
                      file=stream)
        else:
            files = run.manifest()["files"]
            print(f"{run.name}: ok ({len(files)} files, {sum(f['size'] for f in files.values()) / 1e6:.1f} MB)",
                  file=stream)
    print(f"{len(paths)} run(s) in {store.root}, {bad} with problems ({time.perf_counter() - t0:.2f} s)", file=stream)
    return 1 if bad else 0


def rm_command(store_root: str | None, refs: list[str], stream=None) -> int:
    """``python -m detpretrain runs rm RUN...``: remove runs (refused while one is being trained)."""
    stream = stream or sys.stdout
    for path in remove_runs(RunStore(store_root), refs):
        print(f"removed {path}", file=stream)
    return 0


def gc_command(store_root: str | None = None, *, dry_run: bool = False, stream=None) -> int:
    """``python -m detpretrain runs gc [--dry-run]``: remove interrupted runs and stale temporary files
    (:func:`collect_garbage`); with ``--dry-run`` only list them."""
    stream = stream or sys.stdout
    store = RunStore(store_root)
    found = collect_garbage(store, dry_run=dry_run)
    verb = "would remove" if dry_run else "removed"
    for path, reason, size in found:
        print(f"{verb} {path} ({reason}, {size / 1e6:.1f} MB)", file=stream)
    print(f"{verb} {len(found)} item(s), {sum(s for _, _, s in found) / 1e6:.1f} MB in {store.root}", file=stream)
    return 0


def export_command(store_root: str | None, refs: list[str] | None, output: str, stream=None) -> int:
    """``python -m detpretrain runs export [RUN...] --store S -o FILE.tar.gz`` (:func:`export_runs`)."""
    stream = stream or sys.stdout
    runs = export_runs(RunStore(store_root), refs, output)
    print(f"exported {len(runs)} run(s) to {output} ({Path(output).stat().st_size / 1e6:.1f} MB)", file=stream)
    return 0


def import_command(archive: str, store_root: str | None = None, stream=None) -> int:
    """``python -m detpretrain runs import FILE --store S`` (:func:`import_runs`)."""
    stream = stream or sys.stdout
    store = RunStore(store_root)
    outcome = import_runs(archive, store)
    for name, what in outcome.items():
        print(f"{name}: {what}", file=stream)
    print(f"{sum(v != 'already present' for v in outcome.values())} run(s) imported into {store.root}", file=stream)
    return 0
