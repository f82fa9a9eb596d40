"""Content-addressed run store: train once, reuse in every chapter.

Layout of one run, ``<store>/<task>-<hash>/``::

    config.json        the TrainConfig (written when the run starts)
    checkpoints/last.pt model, optimizer, scheduler and epoch after each finished epoch (atomic replace)
    log.txt            one line per epoch (losses, lr, time) and per evaluation
    backbone.pt        the trained ResNet state_dict (no fc) -- what later runs load with ``init="run:<hash>"``
    model.pt           the whole trained model's state_dict
    metrics.json       final metrics; its presence marks the run COMPLETE

Every file is written to a temporary name in the same folder and then ``os.replace``-d, so a crash never leaves a
half-written file under a final name. A run without metrics.json is incomplete: calling :func:`get_or_train` again
resumes it from ``checkpoints/last.pt`` (the epoch that was interrupted is redone from its start, with the same
seeds, so the result equals an uninterrupted run on CPU). A lock file keeps two processes from training the same
run at once.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import torch

from detpretrain import distributed, engine
from detpretrain.config import TrainConfig, config_hash, from_dict, to_dict
from detpretrain.errors import ConfigError
from detpretrain.io import atomic_write_json
from detpretrain.models.build import build_model

DEFAULT_STORE_ENV = "DETPRETRAIN_RUNS"


def default_store_root() -> Path:
    """``$DETPRETRAIN_RUNS`` if set, else ``runs/`` under the current directory."""
    return Path(os.environ.get(DEFAULT_STORE_ENV, "runs"))


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
    def complete(self) -> bool:
        """True once ``metrics.json`` exists (it is written last)."""
        return (self.path / "metrics.json").exists()

    @property
    def metrics(self) -> dict:
        """The final metrics (raises FileNotFoundError while the run is incomplete)."""
        return json.loads((self.path / "metrics.json").read_text())

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

    def epoch_checkpoint_path(self, epochs_done: int) -> Path:
        """``checkpoints/epoch_<k>.pt``: the model ``state_dict`` after ``k`` epochs (``k = 0``: at initialisation),
        written when ``optim.keep_epoch_checkpoints`` is set."""
        return self.path / "checkpoints" / f"epoch_{epochs_done:03d}.pt"

    def epoch_checkpoints(self) -> dict[int, Path]:
        """The kept per-epoch models of this run, ``{epochs done: path}`` in order (empty if none were kept)."""
        found = {}
        for p in (self.path / "checkpoints").glob("epoch_*.pt"):
            with contextlib.suppress(ValueError):
                found[int(p.stem.removeprefix("epoch_"))] = p
        return dict(sorted(found.items()))

    def log(self, line: str) -> None:
        """Append one line to log.txt (appends are small and line-buffered; the log is informational)."""
        with open(self.path / "log.txt", "a") as f:
            f.write(line.rstrip("\n") + "\n")


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
        """The run named by ``"run:<hash>"`` (or a bare hash prefix).

        Raises:
            ConfigError: no run, or several runs, match.
        """
        key = ref.removeprefix("run:")
        matches = [p for p in self.root.glob(f"*-{key}*") if (p / "config.json").exists()]
        if len(matches) != 1:
            raise ConfigError(f"{self.root}: {len(matches)} runs match {ref!r}")
        return Run(matches[0], from_dict(json.loads((matches[0] / "config.json").read_text())))

    def runs(self) -> list[Run]:
        """Every run with a readable ``config.json``, sorted by directory name; unreadable ones are reported."""
        out = []
        for path in sorted(self.root.glob("*-*")):
            cfg = path / "config.json"
            if cfg.exists():
                try:
                    out.append(Run(path, from_dict(json.loads(cfg.read_text()))))
                except (TypeError, KeyError, ValueError, ConfigError) as err:
                    print(f"warning: {cfg}: unreadable config ({err}); skipped", file=sys.stderr)
        return out

    def backbone_weights(self, init: str | None):
        """The backbone weights a config's ``init`` names, as :func:`~detpretrain.models.build.build_model` takes them.

        Args:
            init: None (random initialisation), ``"run:<hash>"`` (a complete pre-training run of this store: its
                ``backbone.pt``), ``"torchvision:<Weights enum name>"`` (e.g. ``ResNet50_Weights.IMAGENET1K_V1``) or a
                file path of a ResNet ``state_dict``.

        Returns:
            None, the ``backbone.pt`` / file path, or the enum name.

        Raises:
            ConfigError: no complete run matches ``run:<hash>``.
        """
        if init is None:
            return None
        if init.startswith("run:"):
            run = self.resolve(init)
            if not run.complete:
                raise ConfigError(f"{run.path}: the pre-training run {init} is not complete")
            return run.backbone_path
        return init.removeprefix("torchvision:")

    @contextlib.contextmanager
    def lock(self, config: TrainConfig):
        """Exclusive lock on one run directory (blocks while another process trains it)."""
        path = self.path_for(config)
        path.mkdir(parents=True, exist_ok=True)
        with open(path / ".lock", "w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


def get_or_train(config: TrainConfig, store: RunStore | None = None, **train_kwargs) -> Run:
    """The completed run for ``config``: loaded from the store, or trained (resuming a partial run) and stored.

    Under ``torchrun`` every rank calls this; rank 0 writes the files, all ranks train.

    Args:
        config: the run's :class:`~detpretrain.config.TrainConfig`.
        store: the run store (default :class:`RunStore` at ``$DETPRETRAIN_RUNS`` or ``runs/``).
        **train_kwargs: passed to :func:`detpretrain.engine.fit` (``device``, ``progress``).

    Returns:
        the complete :class:`Run`; ``run.metrics`` holds the evaluation.
    """
    store = store or RunStore()
    run = store.run_for(config)
    if run.complete:
        return run
    distributed.init(train_kwargs.get("device", "auto"))  # before any rank decides it is the main process
    is_main = distributed.is_main_process()
    if is_main:
        run.path.mkdir(parents=True, exist_ok=True)
        cfg_path = run.path / "config.json"
        if not cfg_path.exists():
            atomic_write_json(cfg_path, to_dict(config))
    distributed.barrier()
    lock = store.lock(config) if is_main else contextlib.nullcontext()
    with lock:
        if not run.complete:  # another process may have finished it while we waited for the lock
            engine.fit(config, run, store, **train_kwargs)
    distributed.barrier()
    return run


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
    """
    path = Path(getattr(run, "path", run))
    files = [path / "config.json", path / "metrics.json", path / "model.pt"]
    missing = [f.name for f in files if not f.is_file()]
    if missing:
        raise ConfigError(f"{path}: not a complete run (missing {', '.join(missing)})")
    config = from_dict(json.loads(files[0].read_text(encoding="utf-8")))
    classes = list(json.loads(files[1].read_text(encoding="utf-8"))["classes"])
    model = build_model(config, len(classes))
    model.load_state_dict(torch.load(files[2], map_location="cpu", weights_only=True))
    return model.to(device).eval(), config, classes


def list_command(store_root: str | None = None, stream=None) -> int:
    """``python -m detpretrain runs list``: one line per run (hash, task, name, data, status, headline metric)."""
    stream = stream or sys.stdout
    store = RunStore(store_root)
    runs = store.runs()
    if not runs:
        print(f"no runs in {store.root.resolve()}", file=stream)
        return 0
    print(f"{'run':<30} {'name':<34} {'data':<42} {'status':<10} headline", file=stream)
    for run in runs:
        status = "complete" if run.complete else _progress(run)
        headline = ""
        if run.complete:
            m = run.metrics
            headline = m.get("headline", "")
        print(f"{run.path.name:<30} {run.config.name:<34} {run.config.data.describe()[:42]:<42} {status:<10} {headline}",
              file=stream)
    return 0


def _progress(run: Run) -> str:
    if run.checkpoint_path.exists():
        try:
            epoch = torch.load(run.checkpoint_path, map_location="cpu", weights_only=True)["epoch"]
            return f"epoch {epoch + 1}/{run.config.optim.epochs}"
        except Exception:  # noqa: BLE001 - a listing must not fail on one unreadable checkpoint
            return "partial"
    return "started"
