"""The book's run plan: every training run the chapters need for their parameters, as a dependency graph.

Each ``experiments`` module lists, without training, the runs of its chain (``plan_detection``,
``plan_segmentation``, ``plan_classification_transfer``, ``plan_features``, ``plan_eigenspectrum``,
``plan_frozen``); its ``run_*`` function trains exactly those (both go through the same ``*_chain`` function).
:data:`CHAPTER_PLANNERS` maps each chapter of the book to the calls its notebook makes, with the chapter's parameters
(defaults read from the notebook's ``parameters`` cell, overridden like papermill's ``-p``, by
:func:`detpretrain.book.book_plan`). :func:`chapters_plan` collects them into a :class:`Plan`: the runs without duplicates, each with the runs it starts from
(``init = "run:<hash>"``: a fine-tuning after its pre-training) and the chapters that read it, in an order where
every run comes after its dependencies.

A chapter whose calls change must change its planner here too; ``python -m detpretrain book`` executes the plan
before the chapters and warns when a chapter still trains a run the plan did not list (the notebooks then only
read finished runs).

Plans are printed by ``python -m detpretrain runs plan`` and executed by :mod:`detpretrain.executor`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import statistics
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import torch

from detpretrain.config import TrainConfig, config_hash
from detpretrain.errors import ConfigError
from detpretrain.runs import Run, RunStore


@dataclasses.dataclass
class PlannedRun:
    """One run of a plan.

    Attributes:
        config: the run's configuration; hash: its config hash (names the run directory).
        needs: hashes of the runs it starts from (its ``init = "run:<hash>"``), at most one.
        chapters: the chapters that read it (empty for a plan not made from chapters).
    """

    config: TrainConfig
    hash: str
    needs: tuple[str, ...] = ()
    chapters: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        """``name seed S`` (fine-tunings repeat their name once per seed)."""
        return f"{self.config.name} seed {self.config.seed}"


@dataclasses.dataclass
class Plan:
    """Runs in dependency order (``runs`` is ordered: every run after the runs it needs)."""

    runs: dict[str, PlannedRun]
    profile: str = ""
    chapters: tuple[str, ...] = ()
    #: what the plan leaves out and why, one line each (e.g. a real dataset whose root is absent:
    #: :func:`absent_real_data`)
    notes: tuple[str, ...] = ()

    def __len__(self) -> int:
        return len(self.runs)

    def __iter__(self):
        return iter(self.runs.values())

    @property
    def configs(self) -> list[TrainConfig]:
        """The configs in dependency order."""
        return [r.config for r in self.runs.values()]

    def status(self, store: RunStore) -> dict[str, str]:
        """``{hash: "complete" | "partial" | "todo"}`` against ``store`` (partial: a checkpoint exists)."""
        out = {}
        for h, r in self.runs.items():
            run = store.run_for(r.config)
            out[h] = "complete" if run.complete else ("partial" if run.checkpoint_path.exists() else "todo")
        return out


def make_plan(configs, chapters_of: dict[str, list[str]] | None = None, *, profile: str = "",
              chapters: tuple[str, ...] = (), store: RunStore | None = None) -> Plan:
    """A :class:`Plan` of ``configs`` (duplicates dropped, first occurrence kept), topologically sorted.

    Args:
        configs: TrainConfigs in any order.
        chapters_of: ``{hash: [chapter, ...]}`` of the chapters reading each run.
        store: where a dependency that is not in ``configs`` must already be complete.

    Raises:
        ConfigError: a run starts from a run that is neither planned nor complete in ``store``.
    """
    by_hash: dict[str, TrainConfig] = {}
    for cfg in configs:
        by_hash.setdefault(config_hash(cfg), cfg)
    needs: dict[str, tuple[str, ...]] = {}
    for h, cfg in by_hash.items():
        parent = cfg.init[4:] if cfg.init and cfg.init.startswith("run:") else None
        if parent is None:
            needs[h] = ()
        elif parent in by_hash:
            needs[h] = (parent,)
        else:
            complete = False
            if store is not None:
                with contextlib.suppress(ConfigError):
                    complete = store.resolve(cfg.init).complete
            if not complete:
                raise ConfigError(f"run {cfg.name} ({h}) starts from {cfg.init}, which is neither in the plan nor a "
                                  "complete run of the store")
            needs[h] = ()
    ordered: dict[str, PlannedRun] = {}

    def visit(h: str) -> None:
        if h in ordered:
            return
        for parent in needs[h]:
            visit(parent)
        ordered[h] = PlannedRun(by_hash[h], h, needs[h], tuple((chapters_of or {}).get(h, ())))

    for h in by_hash:
        visit(h)
    return Plan(ordered, profile=profile, chapters=chapters)


# ------------------------------------------------------------------------------------------- chapters -> runs


def _seeds(params: dict):
    return tuple(params["seeds"]) if params.get("seeds") is not None else None


def _replicates(params: dict):
    return params.get("replicates")


def _corpus(params: dict) -> dict | None:
    """The chapter's corpus variant (its ``cue`` and ``sun_backgrounds`` parameters; issue 18), None where it has
    none."""
    corpus = {key: params[key] for key in ("cue", "sun_backgrounds") if params.get(key) is not None}
    return corpus or None


def _profile(profile):
    from detpretrain.profiles import get_profile

    return get_profile(profile) if isinstance(profile, str) else profile


def _plan_pretraining(profile, p: dict, store) -> list[TrainConfig]:
    from detpretrain.experiments.common import pretrained_for, replicate_count

    prof = _profile(profile)
    pretrained = pretrained_for(prof, (), replicates=replicate_count(prof, _replicates(p)))
    return [c for c in pretrained.values() if c is not None]


def _plan_detection(profile, p: dict, store) -> list[TrainConfig]:
    from detpretrain.experiments.detection import plan_detection, schedule_check_arguments
    from detpretrain.scope import real_pretrains

    pretrains = tuple(real_pretrains(profile, p["pretrains"])[0])
    common = {"dataset": p["dataset"], "data_root": p["data_root"], "replicates": _replicates(p)}
    configs = plan_detection(profile, pretrains=pretrains, seeds=_seeds(p), **common)
    for factor in p["schedule_factors"]:
        if factor != 1:
            configs += plan_detection(profile, **common, **schedule_check_arguments(
                _profile(profile), factor, pretrains, _seeds(p)))
    return configs


def _plan_intro(profile, p: dict, store) -> list[TrainConfig]:
    from detpretrain.experiments.common import PRETRAINS
    from detpretrain.experiments.detection import plan_detection

    return plan_detection(profile, dataset=p["dataset"], data_root=p["data_root"], pretrains=PRETRAINS,
                          seeds=_seeds(p), replicates=_replicates(p))


def _plan_ablations(profile, p: dict, store) -> list[TrainConfig]:
    from detpretrain.experiments.classification import plan_classification_transfer
    from detpretrain.experiments.detection import plan_detection

    removed = tuple(p["removed"])
    loc_keys = ("imagenet-loc-cls", "imagenet-loc", *(f"imagenet-loc-no-{sc}" for sc in removed))
    common = {"dataset": p["dataset"], "data_root": p["data_root"], "seeds": _seeds(p),
              "replicates": _replicates(p)}
    return (plan_detection(profile, pretrains=loc_keys, removed=removed, **common)
            + plan_classification_transfer(profile, role=p["transfer_role"],
                                           pretrains=("imagenet-loc-cls", "imagenet-loc"), seeds=_seeds(p),
                                           replicates=_replicates(p), removed=removed)
            + plan_detection(profile, pretrains=("imagenet-cls", "detection"), **common))


def _plan_segmentation(profile, p: dict, store) -> list[TrainConfig]:
    from detpretrain.experiments.segmentation import plan_segmentation

    return plan_segmentation(profile, dataset=p["dataset"], data_root=p["data_root"],
                             pretrains=tuple(p["pretrains"]), seeds=_seeds(p), replicates=_replicates(p))


def _plan_classification(profile, p: dict, store) -> list[TrainConfig]:
    from detpretrain.analysis.probes import probe_keys
    from detpretrain.experiments.classification import plan_classification_transfer, real_transfer_roots
    from detpretrain.experiments.common import replicate_count
    from detpretrain.experiments.features import plan_features
    from detpretrain.scope import real_pretrains

    corpus = _corpus(p)
    count = replicate_count(_profile(profile), _replicates(p))
    probe_pretrains, _ = real_pretrains(profile, p["probe_pretrains"])
    finetune_pretrains, _ = real_pretrains(profile, p["finetune_pretrains"])
    # Table 6 probes (every replicate of each trained backbone), Table 5 head (every replicate of the detector)
    configs = plan_features(profile, tuple(dict.fromkeys((*probe_keys(probe_pretrains, count),
                                                          *probe_keys(("detection",), count)))), corpus=corpus)
    for target in p["targets"]:
        configs += plan_classification_transfer(profile, role=target, pretrains=tuple(finetune_pretrains),
                                                seeds=_seeds(p), replicates=count, corpus=corpus)
    for name, root in real_transfer_roots(p["real_data"]).items():  # Table 8 on the real datasets found
        configs += plan_classification_transfer(profile, role=name, data_root=root, pretrains=tuple(finetune_pretrains),
                                                seeds=_seeds(p), replicates=count, corpus=corpus)
    return configs


def _plan_feature_space(profile, p: dict, store) -> list[TrainConfig]:
    from detpretrain.experiments.features import plan_features, replicate_pairs

    count = _replicates(p) or _profile(profile).pretrain_replicates
    pairs = replicate_pairs(p["classification_backbone"], p["detection_backbone"], count)
    return plan_features(profile, tuple(dict.fromkeys(k for pair in pairs for k in pair)), corpus=_corpus(p))


def _plan_visualisations(profile, p: dict, store) -> list[TrainConfig]:
    from detpretrain.experiments.detection import plan_detection
    from detpretrain.experiments.features import plan_features, replicate_pairs

    backbones = ("imagenet-cls", "detection")
    seeds = _seeds(p) or _profile(profile).seeds
    corpus = _corpus(p)
    count = _replicates(p) or _profile(profile).pretrain_replicates
    pairs = replicate_pairs(*backbones, count)  # every cue: Figure 4's concentration and Figure 5 in every pair
    keys = tuple(dict.fromkeys(k for pair in pairs for k in pair))
    return plan_features(profile, keys, corpus=corpus) + plan_detection(
        profile, dataset=p["dataset"], data_root=p["data_root"], pretrains=backbones, seeds=tuple(seeds[:1]),
        replicates=1, corpus=corpus)


def _plan_eigenspectrum(profile, p: dict, store) -> list[TrainConfig]:
    from detpretrain.experiments.eigenspectrum import plan_eigenspectrum

    return plan_eigenspectrum(profile, dataset=p["dataset"], data_root=p["data_root"], seeds=_seeds(p),
                              replicates=_replicates(p), scratch_factor=p["scratch_factor"], threshold=p["threshold"],
                              normalisation=p["normalisation"], n_images=p["n_images"], multiple=p["multiple"],
                              store=store)


def _plan_frozen_backbone(profile, p: dict, store) -> list[TrainConfig]:
    from detpretrain.experiments.frozen import exclusion_control_note, plan_frozen

    common = {"dataset": p["dataset"], "data_root": p["data_root"], "pretrain": p["pretrain"], "rare": p["rare"],
              "max_images": p["max_images"], "seeds": _seeds(p), "replicates": _replicates(p)}
    configs = plan_frozen(profile, heads=tuple(p["heads"]), **common)
    scope = p.get("exclusion_control")
    if not exclusion_control_note(profile, p["pretrain"], p["dataset"], scope):
        configs += plan_frozen(profile, heads=tuple(p["heads"])[-1:], exclude_rare_from_pretraining=scope, **common)
    return configs


def _plan_mechanisms(profile, p: dict, store) -> list[TrainConfig]:
    """The runs of every cue variant of the page's ``variants``: each chapter's runs under that cue
    (:func:`detpretrain.parameters.variant_values`)."""
    from detpretrain.parameters import parse_variants, variant_values

    name = _profile(profile).name
    return [cfg for chapter, cue in parse_variants(p.get("variants"))
            for cfg in chapter_runs(chapter, name, variant_values(chapter, cue, p), store)]


def _plan_nothing(profile, p: dict, store) -> list[TrainConfig]:
    """A page that trains and reads no run (the "Re-run it yourself" page)."""
    return []


#: chapter name -> ``(profile, parameters, store) -> [TrainConfig]``: the runs the chapter's notebook trains or
#: reads, mirroring its calls into :mod:`detpretrain.experiments` (``book/<chapter>.py``); ``profile`` is the
#: :class:`~detpretrain.profiles.Profile` with the chapter's ``coco_root`` set.
CHAPTER_PLANNERS: dict[str, Callable[[str, dict, RunStore | None], list[TrainConfig]]] = {
    "intro": _plan_intro,
    "pretraining": _plan_pretraining,
    "detection": _plan_detection,
    "ablations": _plan_ablations,
    "segmentation": _plan_segmentation,
    "classification": _plan_classification,
    "feature_space": _plan_feature_space,
    "visualisations": _plan_visualisations,
    "eigenspectrum": _plan_eigenspectrum,
    "frozen_backbone": _plan_frozen_backbone,
    "mechanisms": _plan_mechanisms,
    "rerun": _plan_nothing,
}


#: chapter name -> the functions its notebook calls that :data:`CHAPTER_PLANNERS` mirrors. A notebook of that name
#: that calls none of them (another book) or not all of them (an edited chapter) is not planned from here.
CHAPTER_CALLS: dict[str, tuple[str, ...]] = {
    "intro": ("run_detection_experiment",),
    "pretraining": ("pretrained_for", "get_or_train"),
    "detection": ("run_detection_experiment",),
    "ablations": ("run_detection_experiment", "run_classification_transfer"),
    "segmentation": ("run_segmentation_experiment",),
    "classification": ("conv5_probes", "detector_head_features", "run_classification_transfer"),
    "feature_space": ("stacked_features",),
    "visualisations": ("load_backbone", "probe_heads", "run_detection_experiment"),
    "eigenspectrum": ("run_eigenspectrum_study",),
    "frozen_backbone": ("run_frozen_study",),
    "mechanisms": ("execute_variants",),
    "rerun": (),
}


def missing_calls(chapter: str, source_text: str) -> list[str]:
    """The functions of :data:`CHAPTER_CALLS` that a chapter's source does not call (empty: its planner applies)."""
    return [f for f in CHAPTER_CALLS.get(chapter, ()) if f"{f}(" not in source_text]


def chapter_runs(chapter: str, profile: str, values: dict, store: RunStore | None = None) -> list[TrainConfig]:
    """The runs of one chapter for ``profile`` and its parameter ``values`` (every name of its ``parameters``
    cell; :func:`detpretrain.book.chapter_values` merges the notebook's defaults with the ones given).

    Raises:
        ConfigError: a chapter without a planner, or bad parameters (from the experiments modules).
    """
    from detpretrain.profiles import get_profile, with_coco_root

    if chapter not in CHAPTER_PLANNERS:
        raise ConfigError(f"no run plan for chapter {chapter!r}; chapters with one: {', '.join(CHAPTER_PLANNERS)}")
    prof = with_coco_root(get_profile(profile), values.get("coco_root"))  # as chapter_setup sets it
    return CHAPTER_PLANNERS[chapter](prof, values, store)


@contextlib.contextmanager
def environment(**values):
    """Environment variables set (those given as None: left as they are) for the duration of a block."""
    values = {k: str(v) for k, v in values.items() if v is not None}
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def book_store(params: dict, root: Path) -> RunStore:
    """The run store the chapters use: ``store`` parameter, else ``$DETPRETRAIN_RUNS``, else ``<root>/runs`` (the
    kernels run in the book's root)."""
    path = params.get("store") or os.environ.get("DETPRETRAIN_RUNS") or "runs"
    path = Path(path).expanduser()
    return RunStore(path if path.is_absolute() else root / path)


def book_data_cache(params: dict, root: Path) -> Path:
    """The generated-corpus folder the chapters use (``data_cache``, ``$DETPRETRAIN_DATA``, ``data/generated``)."""
    path = Path(params.get("data_cache") or os.environ.get("DETPRETRAIN_DATA") or "data/generated").expanduser()
    return path if path.is_absolute() else root / path


def chapters_plan(profile: str, values: dict[str, dict], *, store: RunStore, data_cache: str | os.PathLike | None,
                  errors: dict[str, str] | None = None) -> Plan:
    """The runs of the chapters ``values`` (``{chapter: its parameter values}``, in order) at ``profile``.

    Args:
        store: the run store; a run starting from a complete run of it that is not planned is allowed.
        data_cache: the generated-corpus folder (planning reads a corpus's annotations where a chapter needs them).
        errors: if given, a chapter that cannot be planned (its parameters refused, its real data missing) is left
            out and ``errors[chapter]`` says why, instead of raising.

    Raises:
        ConfigError: a chapter without a planner, or a chapter's parameters refused by its experiments module (the
            message names the chapter).
    """
    from detpretrain.errors import DataError, RunStoreError

    configs, chapters_of = [], {}
    with environment(DETPRETRAIN_DATA=data_cache):  # the chapters' data_cache
        for chapter, chapter_values in values.items():
            try:
                found = chapter_runs(chapter, profile, chapter_values, store)
            except (ConfigError, DataError, FileNotFoundError, RunStoreError) as err:
                if errors is None:
                    raise ConfigError(f"chapter {chapter}: {type(err).__name__}: {err}") from None
                errors[chapter] = f"{type(err).__name__}: {err}"
                continue
            for cfg in found:
                readers = chapters_of.setdefault(config_hash(cfg), [])
                if chapter not in readers:
                    readers.append(chapter)
            configs += found
    plan = make_plan(configs, chapters_of, profile=profile, chapters=tuple(values), store=store)
    return dataclasses.replace(plan, notes=tuple(absent_real_data(values)))


def absent_real_data(values: dict[str, dict]) -> list[str]:
    """The real datasets a chapter's ``real_data`` names (``{dataset: root}``, the classification chapter's Table 6
    and 8 rows on real images; for the mechanisms page, its variants' ``real_data``) whose root does not exist here:
    the plan has no runs for them (the chapter skips them and says so, or downloads them where it may and trains
    their runs as it executes), so a plan that counts fewer runs than expected says why.

    Args:
        values: ``{chapter: its parameter values}`` as :func:`chapters_plan` takes them.

    Returns:
        one line per absent root, e.g. ``"classification: real_data flowers102 root ../shared/data/flowers102_subset
        not found: its runs are not planned"``.
    """
    from detpretrain.experiments.classification import real_transfer_roots
    from detpretrain.parameters import parse_variants, variant_values

    lines = []
    for chapter, chapter_values in values.items():
        reals = [(chapter, chapter_values.get("real_data"))]
        if chapter == "mechanisms":  # its variants: the page's real_data, else the chapters' defaults
            reals = [(f"{chapter} ({c} under {q})", variant_values(c, q, chapter_values).get("real_data"))
                     for c, q in parse_variants(chapter_values.get("variants"))]
        for where, real in reals:
            if not isinstance(real, dict):
                continue
            found = real_transfer_roots(real)
            lines += [f"{where}: real_data {name} root {root} not found: its runs are not planned (a chapter that "
                      "downloads it trains them when it executes; else it skips the dataset)"
                      for name, root in real.items() if name not in found]
    return lines


# ----------------------------------------------------------------------------------------------- printing


def _progress(run: Run) -> str:
    try:
        return f"partial ({_checkpoint_progress(run)[0]}/{run.config.optim.epochs} epochs)"
    except Exception:  # noqa: BLE001 - a listing must not fail on one unreadable checkpoint
        return "partial"


def format_plan(plan: Plan, store: RunStore) -> str:
    """The plan as a tree (a run under the run it starts from), with its status in ``store`` and its chapters."""
    status = plan.status(store)
    counts = {s: sum(v == s for v in status.values()) for s in ("complete", "partial", "todo")}
    children: dict[str, list[str]] = {}
    for h, r in plan.runs.items():
        for parent in r.needs:
            children.setdefault(parent, []).append(h)
    lines = [f"run plan: profile {plan.profile or '?'}, {len(plan)} runs ({counts['complete']} complete, "
             f"{counts['partial']} partial, {counts['todo']} to train), store {store.root.resolve()}",
             f"{'status':<26} {'run':<38} {'directory':<30} chapters"]

    def show(h: str, depth: int) -> None:
        r = plan.runs[h]
        state = status[h] if status[h] != "partial" else _progress(store.run_for(r.config))
        label = "  " * depth + r.label
        lines.append(f"{state:<26} {label:<38} {store.path_for(r.config).name:<30} {', '.join(r.chapters)}")
        for child in children.get(h, []):
            show(child, depth + 1)

    for h, r in plan.runs.items():
        if not r.needs:
            show(h, 0)
    lines += [f"not planned: {note}" for note in plan.notes]
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------- cost

#: a run name's first component -> its part of the build, in the order the cost table lists them
BUILD_PARTS: dict[str, str] = {
    "pretrain": "pre-trainings",
    "finetune": "detection fine-tunings",
    "cls-finetune": "classification fine-tunings",
    "segmentation": "segmentation fine-tunings (DeepLabV3)",
    "eigen": "eigenspectrum detectors",
    "frozen": "frozen-backbone detectors",
}


#: pages that only summarise the runs of other chapters (the introduction reads the detection experiment): a run is
#: counted under the first chapter that reads it outside these (under them only when nothing else reads it)
SUMMARY_CHAPTERS = ("intro",)


def build_part(name: str) -> str:
    """The part of the build (:data:`BUILD_PARTS`) of a run named ``name`` (by its first ``/`` component; a name
    outside the table is its own part)."""
    head = name.split("/", 1)[0]
    return BUILD_PARTS.get(head, head)


@dataclasses.dataclass
class RunCost:
    """What one planned run has cost so far, read from the run store (:func:`plan_cost`).

    Attributes:
        hash, label: the run (:attr:`PlannedRun.label`); part: its part of the build (:func:`build_part`);
            chapter: the first chapter that reads it, the summary pages (:data:`SUMMARY_CHAPTERS`) aside.
        state: ``"complete"``, ``"partial"`` (a resume checkpoint after some epochs), ``"todo"``, or
            ``"unreadable"`` (its ``metrics.json`` or resume checkpoint is damaged: its seconds are unknown).
        epochs_done, epochs: finished and planned epochs.
        train_seconds: wall seconds of the finished epochs: the sum of the per-epoch ``seconds`` that
            :func:`detpretrain.engine.fit` records in ``history`` (the training loop with its DataLoader).
        eval_seconds: the final evaluation's wall seconds (None until complete).
        threads, processor: the torch threads and the CPU model (the CUDA device's name for a run on a GPU) it
            trained with, as recorded in ``metrics.json`` ``environment`` when it finished (for a run resumed
            over several sittings: the last one's); None when not recorded.
        estimate_seconds: for an unfinished run, the seconds still to spend, from the complete runs of the same
            shape (:func:`run_shape`): their median seconds per epoch x epochs left + their median evaluation;
            else, for a run on a synthetic corpus, from the complete runs of the same kind on other data
            (:func:`run_kind`): their median seconds per training image seen (full batches) x the images it still
            has to see + their median seconds per evaluation image x its evaluation images; None when neither is
            complete yet.
        estimate_basis: ``"shape"``, ``"kind"`` (per image, other data) or None (no estimate).
    """

    hash: str
    label: str
    part: str
    chapter: str
    state: str
    epochs_done: int
    epochs: int
    train_seconds: float = 0.0
    eval_seconds: float | None = None
    threads: int | None = None
    processor: str | None = None
    estimate_seconds: float | None = None
    estimate_basis: str | None = None

    @property
    def seconds(self) -> float:
        """Seconds spent: training plus the evaluation once complete."""
        return self.train_seconds + (self.eval_seconds or 0.0)


def run_shape(config: TrainConfig) -> str:
    """What decides a run's seconds per epoch besides the machine and its layout (threads, GPUs, world size, which
    the estimate assumes unchanged): part, task, data, model, batch size, DataLoader workers and precision."""
    import json

    from detpretrain.config import to_dict

    o = config.optim
    return json.dumps([build_part(config.name), config.task, to_dict(config.data), to_dict(config.model),
                       o.batch_size, o.num_workers, o.amp, o.cpu_bf16], sort_keys=True)


def run_kind(config: TrainConfig) -> str:
    """:func:`run_shape` without the data, with the corpus' image size: runs whose seconds per image are alike,
    whatever corpus, role, cue or split sizes they train on."""
    import json

    from detpretrain.config import to_dict

    o = config.optim
    return json.dumps([build_part(config.name), config.task, (config.data.corpus or {}).get("image_size"),
                       to_dict(config.model), o.batch_size, o.num_workers, o.amp, o.cpu_bf16], sort_keys=True)


def synthetic_split_images(config: TrainConfig, split: str) -> int | None:
    """The images of ``split`` (``train``, ``val``, ``test`` or ``trainval``) of a run's synthetic corpus, as its
    spec states them (a corpus with excluded categories is regenerated at the same size); None for real data, a
    long-tailed subset (known only once built), another split name."""
    data, corpus = config.data, config.data.corpus or {}
    if data.kind != "synthetic" or data.long_tail:
        return None
    parts = {"train": ("n_train",), "val": ("n_val",), "test": ("n_test",), "trainval": ("n_train", "n_val")}
    names = parts.get(split)
    if names is None or any(not isinstance(corpus.get(n), int) for n in names):
        return None
    return sum(corpus[n] for n in names)


def _seen(n_train: int, config: TrainConfig) -> int:
    """The training images an epoch sees: the loader drops the last incomplete batch."""
    return n_train // config.optim.batch_size * config.optim.batch_size


def _epoch_seconds(history) -> float:
    return float(sum(float(e["seconds"]) for e in history or ()))


def _checkpoint_progress(run: Run) -> tuple[int, list]:
    """(epochs done, history) of a partial run's resume checkpoint, read memory-mapped (the model and optimizer
    states are not loaded). Raises what :data:`~detpretrain.io.TORCH_LOAD_ERRORS` lists, or TypeError."""
    ckpt = torch.load(run.checkpoint_path, map_location="cpu", weights_only=True, mmap=True)
    return int(ckpt["epoch"]) + 1, list(ckpt["history"])


def plan_cost(plan: Plan, store: RunStore) -> list[RunCost]:
    """The seconds each run of ``plan`` has cost in ``store``, with an estimate for the runs not complete yet.

    Read from what training records, not from build logs (so a build resumed over several sittings, or trained by
    several executors, is counted): a complete run's ``metrics.json`` (``history`` per-epoch ``seconds``,
    ``eval_seconds``, ``environment``), a partial run's resume checkpoint (``history`` so far). What a run spends
    outside its epochs and its evaluation is not recorded and not counted: the process start, building the dataset
    and the model, checkpoint writes, the manifest, and the part of an epoch killed and then redone. So the
    seconds are a lower bound of a worker's time, and a few percent below the executor's "trained ... in N s" lines.

    Returns:
        one :class:`RunCost` per planned run, in plan order. A damaged ``metrics.json`` or checkpoint gives state
        ``"unreadable"`` (``python -m detpretrain runs verify`` names the damage), not an exception.
    """
    from detpretrain.errors import RunStoreError
    from detpretrain.io import TORCH_LOAD_ERRORS

    costs: list[RunCost] = []
    per_image: dict[str, tuple[list[float], list[float]]] = {}  # run_kind -> (train s / image, eval s / image)
    for h, r in plan.runs.items():
        run = store.run_for(r.config)
        readers = [c for c in r.chapters if c not in SUMMARY_CHAPTERS] or list(r.chapters)
        cost = RunCost(h, r.label, build_part(r.config.name), readers[0] if readers else "", "todo", 0,
                       r.config.optim.epochs)
        try:
            if run.complete:
                metrics = run.metrics
                env = metrics.get("environment") or {}
                history = metrics.get("history") or []
                cost.train_seconds = _epoch_seconds(history)
                cost.eval_seconds = float(metrics.get("eval_seconds") or 0.0)
                cost.state, cost.epochs_done = "complete", len(history)
                cost.threads, cost.processor = env.get("threads"), env.get("cuda_device") or env.get("cpu")
                n_train, n_eval = metrics.get("num_train_images"), metrics.get("num_eval_images")
                if isinstance(n_train, int) and isinstance(n_eval, int) and n_train > 0 and n_eval > 0 and history:
                    rates = per_image.setdefault(run_kind(r.config), ([], []))
                    rates[0].append(cost.train_seconds / (len(history) * _seen(n_train, r.config)))
                    rates[1].append(cost.eval_seconds / n_eval)
            elif run.checkpoint_path.exists():
                cost.epochs_done, history = _checkpoint_progress(run)
                cost.train_seconds, cost.state = _epoch_seconds(history), "partial"
        except (RunStoreError, AttributeError, TypeError, *TORCH_LOAD_ERRORS):  # damaged, or not what fit writes
            cost = dataclasses.replace(cost, state="unreadable", train_seconds=0.0, eval_seconds=None,
                                       epochs_done=0, threads=None, processor=None)
        costs.append(cost)
    per_epoch: dict[str, list[float]] = {}
    evals: dict[str, list[float]] = {}
    shapes = {h: run_shape(r.config) for h, r in plan.runs.items()}
    for c in costs:
        if c.state == "complete" and c.epochs_done:
            per_epoch.setdefault(shapes[c.hash], []).append(c.train_seconds / c.epochs_done)
            evals.setdefault(shapes[c.hash], []).append(c.eval_seconds or 0.0)
    for c in costs:
        if c.state not in ("partial", "todo"):  # an unreadable run's progress is unknown
            continue
        shape, config = shapes[c.hash], plan.runs[c.hash].config
        left = max(c.epochs - c.epochs_done, 0)
        if shape in per_epoch:
            c.estimate_seconds = left * statistics.median(per_epoch[shape]) + statistics.median(evals[shape])
            c.estimate_basis = "shape"
            continue
        rates = per_image.get(run_kind(config))
        n_train = synthetic_split_images(config, config.data.train_split)
        n_eval = synthetic_split_images(config, config.data.eval_split)
        if rates and n_train and n_eval and _seen(n_train, config):
            c.estimate_seconds = (left * _seen(n_train, config) * statistics.median(rates[0])
                                  + n_eval * statistics.median(rates[1]))
            c.estimate_basis = "kind"
    return costs


def estimate_left(costs: list[RunCost]) -> tuple[float, int, int]:
    """``(worker-seconds, estimated, waiting)``: the summed estimates of the runs of ``costs`` not complete that have
    one, how many have one, and how many are not complete."""
    waiting = [c for c in costs if c.state != "complete"]
    known = [c.estimate_seconds for c in waiting if c.estimate_seconds is not None]
    return float(sum(known)), len(known), len(waiting)


def _seconds(s: float) -> str:
    return f"{s:,.0f}"


def _left(group: list[RunCost]) -> str:
    seconds, known, waiting = estimate_left(group)
    if not waiting:
        return "0"
    text = f"{waiting} runs" + (f", ~{_seconds(seconds)} s" if known else "")
    return text + (f" ({waiting - known} not estimated)" if known < waiting else "")


#: the columns of :func:`cost_frame` after its first (the part of the build, or the chapter)
COST_COLUMNS = ("runs", "complete", "worker-seconds spent", "per complete run, min / median / max",
                "left (estimate, worker-seconds)")


def cost_frame(costs: list[RunCost], by: str = "part") -> pd.DataFrame:
    """:func:`plan_cost` summed per part of the build (``by="part"``, in :data:`BUILD_PARTS` order, then a total
    row ``all``) or per chapter (``by="chapter"``: each run under the first chapter that reads it, in plan order).

    Returns:
        columns ``part of the build`` / ``chapter (first to read the run)``, then :data:`COST_COLUMNS` (numbers as
        text: seconds with thousands separators, ``"—"`` where no run is complete, the left column as
        ``"N runs, ~S s (K not estimated)"`` or ``"0"``).

    Raises:
        ValueError: ``by`` is neither ``"part"`` nor ``"chapter"``.
    """
    if by not in ("part", "chapter"):
        raise ValueError(f"by must be 'part' or 'chapter', got {by!r}")
    groups: dict[str, list[RunCost]] = {}
    if by == "part":
        first, order = "part of the build", {part: i for i, part in enumerate(BUILD_PARTS.values())}
        for c in sorted(costs, key=lambda c: order.get(c.part, len(order))):
            groups.setdefault(c.part, []).append(c)
        groups["all"] = list(costs)
    else:
        first = "chapter (first to read the run)"
        for c in costs:
            groups.setdefault(c.chapter or "—", []).append(c)
    rows = []
    for name, group in groups.items():
        done = [c.seconds for c in group if c.state == "complete"]
        spread = f"{min(done):,.0f} / {statistics.median(done):,.0f} / {max(done):,.0f}" if done else "—"
        if name == "all" and by == "part":
            spread = ""
        rows.append(dict(zip((first, *COST_COLUMNS), (
            name, len(group), sum(c.state == "complete" for c in group), _seconds(sum(c.seconds for c in group)),
            spread, _left(group)))))
    return pd.DataFrame(rows, columns=[first, *COST_COLUMNS])


def format_cost(costs: list[RunCost], *, profile: str = "", store: RunStore | None = None,
                jobs: int | None = None) -> str:
    """Markdown tables of :func:`plan_cost`: per part of the build, then per chapter (each run under the first
    chapter that reads it), with totals, the runs whose records are unreadable, the threads and processors the runs
    trained with, and the wall-clock bound of what is left.

    A run's seconds are *worker-seconds*: the wall time of the one process (of ``threads`` threads) that trained
    it (a lower bound, :func:`plan_cost`); with ``jobs`` such processes at once, the runs left take at least the
    sum of their estimates / ``jobs`` of wall clock.

    Raises:
        ConfigError: ``jobs`` < 1.
    """
    from collections import Counter

    from detpretrain.markdown import markdown_table

    if jobs is not None and jobs < 1:
        raise ConfigError(f"jobs must be at least 1, got {jobs}")
    complete = sum(c.state == "complete" for c in costs)
    where = f", store {store.root.resolve()}" if store is not None else ""
    lines = [f"Cost of the run plan (profile {profile or '?'}{where}): {len(costs)} runs, {complete} complete. "
             "Worker-seconds of the training epochs and the final evaluation, read from the runs' metrics.json and "
             "resume checkpoints (a lower bound: process start, dataset and model building and checkpoint writes "
             "are not recorded).", "", markdown_table(cost_frame(costs, "part")), "",
             markdown_table(cost_frame(costs, "chapter")), ""]
    unreadable = [c for c in costs if c.state == "unreadable"]
    if unreadable:
        lines.append(f"{len(unreadable)} run(s) with unreadable records (counted as 0 s, not estimated): "
                     + ", ".join(f"{c.label} ({c.hash})" for c in unreadable)
                     + "; python -m detpretrain runs verify names the damage")
    threads = Counter(c.threads for c in costs if c.state == "complete")
    if threads:
        lines.append("threads per run: " + ", ".join(f"{t if t is not None else 'not recorded'}: {n} runs"
                                                     for t, n in sorted(threads.items(), key=lambda kv: str(kv[0]))))
    processors = Counter(c.processor for c in costs if c.state == "complete")
    if processors:
        lines.append("trained on: " + "; ".join(f"{p or 'not recorded'}: {n} runs"
                                                for p, n in processors.most_common()))
    bases = Counter(c.estimate_basis for c in costs if c.estimate_basis)
    if bases:
        lines.append(f"estimates: {bases.get('shape', 0)} run(s) from finished runs of the same shape, "
                     f"{bases.get('kind', 0)} from the seconds per image of finished runs of the same kind on other "
                     "data")
    if jobs:
        left, known, waiting = estimate_left(costs)
        if waiting and not known:
            lines.append(f"left: {waiting} runs, no estimate yet (no finished run of the same shape or kind)")
            return "\n".join(lines)
        lines.append(f"left: ~{_seconds(left)} worker-seconds, at least {_seconds(left / jobs)} s of wall clock "
                     f"({left / jobs / 3600:.1f} h) with {jobs} worker process(es) (waiting on dependencies only adds "
                     "to it)" + ("" if known == waiting else
                                 f"; not counting the {waiting - known} runs without an estimate"))
    return "\n".join(lines)
