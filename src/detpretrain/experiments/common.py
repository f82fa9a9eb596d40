"""What every chain of runs shares: the corpora and targets, the pre-training runs and the fine-tuning loop.

The paper's comparisons start from backbones pre-trained by

* ``imagenet-cls`` -- image classification (IMAGENET-CLS role; ``paper`` profile: torchvision ImageNet weights),
* ``detection``   -- object detection on a large detection corpus (COCO role), itself initialised
  from the IMAGENET-CLS backbone ("All our detection networks are pre-trained first on IMAGENET-CLS"),
* ``scratch``     -- no pre-training (a reference point the paper's related work discusses, He et al. 2019),

and the ablations of Section 2.1 (Tables 2 and 7) add IMAGENET-LOC pre-trainings (:func:`loc_pretrain_configs`), each
continuing from the IMAGENET-CLS backbone on the same object-centric images (the ``imagenet_loc`` corpus):

* ``imagenet-loc``          -- detection pre-training with boxes (IMAGENET-LOC),
* ``imagenet-loc-cls``      -- classification on the same images with image-level labels only (IMAGENET-LOC (Cls)),
* ``imagenet-loc-no-<sc>``  -- detection pre-training with super-category ``<sc>`` removed from the corpus
  ("IMAGENET-LOC without Category").

**Replicates.** A claim about pre-training is about the pre-training run, so every trained pre-training is replicated
(:attr:`~detpretrain.profiles.Profile.pretrain_replicates`: ``mini`` 3): replicate ``r`` is the same config with
``seed=r``, its pre-trainings keyed ``<name>@r<r>`` (:func:`replicate_key`; replicate 0 keeps the plain name and
today's config hash). A detection or IMAGENET-LOC pre-training of replicate ``r`` continues from the IMAGENET-CLS run
of replicate ``r``. Published weights have no replicate: they are one network. A backbone trained from random weights
(``scratch``) has no pre-training, so its replicate ``r`` is a training run of its own (:func:`scratch_seed`).

:func:`finetune_chain` is the loop every transfer chapter runs: each pre-training once (through the run store),
then one fine-tuning per backbone, replicate and fine-tuning seed (replicates crossed with seeds).
"""

from __future__ import annotations

import dataclasses
import os
import time

from detpretrain.config import DataSpec, TrainConfig, config_hash, replace_path
from detpretrain.data.fingerprint import with_fingerprint
from detpretrain.errors import ConfigError, DataError
from detpretrain.profiles import Profile
from detpretrain.runs import Run, RunStore, get_or_train



PRETRAINS = ("imagenet-cls", "detection", "scratch")
#: separates a pre-training's name from its replicate in a pre-training key (``imagenet-cls@r1``)
REPLICATE_SEP = "@r"


def replicate_key(name: str, replicate: int = 0) -> str:
    """The key of replicate ``replicate`` of pre-training ``name``: ``name`` itself for replicate 0 (so the runs and
    names of an unreplicated store stay as they were), else ``<name>@r<replicate>``."""
    if replicate < 0:
        raise ConfigError(f"a replicate is a number >= 0, got {replicate}")
    return name if replicate == 0 else f"{name}{REPLICATE_SEP}{replicate}"


def split_key(key: str) -> tuple[str, int]:
    """``(name, replicate)`` of a pre-training key (inverse of :func:`replicate_key`)."""
    name, sep, rep = key.rpartition(REPLICATE_SEP)
    return (name, int(rep)) if sep and name and rep.isdigit() else (key, 0)


def replicate_count(profile: Profile, replicates: int | None = None) -> int:
    """The pre-training replicates a chain uses: ``replicates``, or the profile's
    (:attr:`~detpretrain.profiles.Profile.pretrain_replicates`) when None.

    Raises:
        ConfigError: fewer than 1, or more than 1 for a profile that takes a backbone from published weights (one
            published network is one pre-training: it cannot be replicated here).
    """
    count = profile.pretrain_replicates if replicates is None else int(replicates)
    if count < 1:
        raise ConfigError(f"replicates must be >= 1, got {count}")
    if count > 1 and profile.published:
        raise ConfigError(f"profile {profile.name!r} takes {', '.join(profile.published)} from published weights: one "
                          f"network, unreplicated; replicates must be 1 (got {count})")
    return count


#: the super-categories the paper removes from IMAGENET-LOC in Table 2
REMOVED_SUPERCATEGORIES = ("vehicle", "animal")


#: real-data layouts: dataset name -> (data kind, train split, eval split)
REAL_DATASETS = {
    "coco": ("coco", "train2017", "val2017"),
    "voc": ("voc", "2007:trainval+2012:trainval", "2007:test"),
}


#: the corpus variants a chain may ask for (issue 18; :mod:`detpretrain.data.synthetic`): ``corpus={"cue": ...}``
#: reaches every synthetic corpus of the chain that has objects, ``sun_backgrounds`` the SUN-role target
CORPUS_VARIANTS = ("cue", "sun_backgrounds")


def corpus_overrides(role: str, corpus: dict | None) -> dict:
    """The ``CorpusSpec`` overrides of a chain's corpus variant ``corpus`` that apply to ``role``: ``cue`` to every
    role with objects (not ``flowers``), ``sun_backgrounds`` to ``sun`` only. ``None`` or ``{}``: none (the
    default corpora, hash-neutral).

    Raises:
        ConfigError: a key other than :data:`CORPUS_VARIANTS`, or a value the corpus does not know.
    """
    from detpretrain.data.synthetic import CUES, SUN_BACKGROUNDS

    if not corpus:
        return {}
    unknown = sorted(set(corpus) - set(CORPUS_VARIANTS))
    if unknown:
        raise ConfigError(f"corpus: unknown variant key(s) {unknown}; expected {list(CORPUS_VARIANTS)}")
    for key, allowed in (("cue", CUES), ("sun_backgrounds", SUN_BACKGROUNDS)):
        if key in corpus and corpus[key] not in allowed:
            raise ConfigError(f"corpus: unknown {key} {corpus[key]!r}; expected one of {allowed}")
    out = {}
    if "cue" in corpus and role != "flowers":
        out["cue"] = corpus["cue"]
    if "sun_backgrounds" in corpus and role == "sun":
        out["sun_backgrounds"] = corpus["sun_backgrounds"]
    return out


def is_default_corpus(corpus: dict | None) -> bool:
    """True when ``corpus`` asks for nothing beyond the default corpora (None, ``{}``, or neutral values)."""
    from detpretrain.config import CORPUS_LATER_FIELDS

    return all(CORPUS_LATER_FIELDS.get(k) == v for k, v in (corpus or {}).items())


def synthetic_spec(profile: str, role: str, seed: int = 0, corpus: dict | None = None, **overrides) -> DataSpec:
    """DataSpec of a synthetic corpus of ``profile`` (``role`` as in :mod:`detpretrain.data.synthetic`), with the
    chain's corpus variant (:func:`corpus_overrides`) and then ``overrides`` applied."""
    from detpretrain.data import synthetic

    specs = synthetic.profile_specs(profile if profile != "paper" else "mini", seed=seed)
    if role not in specs:
        raise ConfigError(f"no synthetic corpus for role {role!r}; roles: {sorted(specs)}")
    overrides = {**corpus_overrides(role, corpus), **overrides}
    corpus = dataclasses.replace(specs[role], **overrides) if overrides else specs[role]
    splits = {"voc": ("trainval", "test"), "imagenet_cls": ("train", "val")}.get(role, ("train", "val"))
    return DataSpec(kind="synthetic", corpus=dataclasses.asdict(corpus), train_split=splits[0], eval_split=splits[1])


def target_spec(profile: Profile, dataset: str = "synthetic", data_root: str | None = None,
                corpus: dict | None = None) -> DataSpec:
    """The fine-tuning target: the synthetic VOC-like corpus (with the chain's ``corpus`` variant), or a real COCO /
    VOC root (no variant).

    Raises:
        ConfigError: an unknown dataset, a real one without ``data_root`` or with a corpus variant, or the synthetic
            target at a profile with published weights (``torchvision``, ``paper``: sized for real images; the
            synthetic target belongs to ``smoke`` and ``mini``).
    """
    if dataset == "synthetic":
        if profile.published:
            raise ConfigError(f"profile {profile.name!r} fine-tunes on real data: pass dataset voc or coco with a "
                              "data_root (the synthetic target belongs to profiles smoke and mini)")
        return synthetic_spec(profile.name, "voc", corpus=corpus)
    if not is_default_corpus(corpus):
        raise ConfigError(f"corpus variant {corpus} applies to the synthetic corpus, not to real data ({dataset})")
    if dataset not in REAL_DATASETS:
        raise ConfigError(f"unknown dataset {dataset!r}; expected synthetic, {', '.join(REAL_DATASETS)}")
    if not data_root:
        raise ConfigError(f"dataset {dataset!r} needs a data_root")
    kind, train, test = REAL_DATASETS[dataset]
    return with_fingerprint(DataSpec(kind=kind, root=str(data_root), train_split=train, eval_split=test))


def pretrain_configs(profile: Profile, detection_root: str | None = None,
                     replicate: int = 0, corpus: dict | None = None, *,
                     with_detection: bool = True) -> dict[str, TrainConfig | None]:
    """The backbone pre-training runs of a profile: ``{"imagenet-cls": cfg or None, "detection": cfg or None}``.

    A value is ``None`` when the profile takes that backbone from published torchvision weights instead of training
    it (:attr:`~detpretrain.profiles.Profile.published`: ``paper`` and ``torchvision`` for IMAGENET-CLS,
    ``torchvision`` for detection, whose COCO role is the ResNet-50 body of torchvision's COCO Faster R-CNN).

    Args:
        detection_root: for the ``paper`` profile, the COCO 2017 root of the detection pre-training
            (``annotations/instances_train2017.json``, ``train2017/``, ``val2017/``); default the profile's
            :attr:`~detpretrain.profiles.Profile.coco_root` (a chapter's ``coco_root`` parameter,
            ``train --coco-root``), else ``$DETPRETRAIN_COCO``, else ``~/data/coco``. The other profiles pre-train on
            the synthetic ``coco`` corpus or take published weights.
        replicate: which replicate (module docstring): its configs have ``seed=replicate``, and its detection
            pre-training continues from the IMAGENET-CLS run of the same replicate. Replicate 0 is the one run of an
            unreplicated design (its config hashes are those of the store before replicates existed).
        corpus: the corpus variant of the synthetic pre-training corpora (:func:`corpus_overrides`).
        with_detection: False: IMAGENET-CLS only, no ``"detection"`` key (a chapter that never uses the detection
            backbone, e.g. the eigenspectrum's I and S, then needs no COCO root at ``paper``).

    Raises:
        ConfigError: ``replicate`` > 0 for a profile with published weights (:func:`replicate_count`).
        DataError: ``paper``'s COCO root does not exist (named, with where the path came from).
    """
    if replicate:
        replicate_count(profile, replicate + 1)
    out: dict[str, TrainConfig | None] = {"imagenet-cls": None}
    cls_init = f"torchvision:{profile.imagenet_cls_weights}" if profile.imagenet_cls_weights else None
    if profile.imagenet_cls_weights is None:
        cls_cfg = TrainConfig(name="pretrain/imagenet-cls", task="classification",
                              data=synthetic_spec(profile.name, "imagenet_cls", corpus=corpus), model=profile.model,
                              optim=profile.cls_pretrain, seed=replicate)
        out["imagenet-cls"] = cls_cfg
        cls_init = f"run:{config_hash(cls_cfg)}"
    if not with_detection:
        return out
    if profile.detection_weights:
        det_data = det_model = None
    elif profile.name == "paper":
        root = detection_root or profile.coco_root or os.environ.get("DETPRETRAIN_COCO") or "~/data/coco"
        try:
            det_data = with_fingerprint(DataSpec(kind="coco", root=str(root), train_split="train2017",
                                                 eval_split="val2017"))
        except DataError as err:
            raise DataError(err.path, f"{err.problem} (the paper profile's COCO detection pre-training: pass "
                                      "coco_root / --coco-root or set $DETPRETRAIN_COCO)") from None
        det_model = profile.real_model
    else:
        det_data, det_model = synthetic_spec(profile.name, "coco", corpus=corpus), profile.model
    if profile.detection_weights:
        out["detection"] = None
        return out
    out["detection"] = TrainConfig(name="pretrain/detection", task="detection", data=det_data, model=det_model,
                                   optim=profile.det_pretrain, init=cls_init, eval_metric="coco", seed=replicate)
    return out


def loc_pretrain_configs(profile: Profile, removed=REMOVED_SUPERCATEGORIES, replicate: int = 0,
                         corpus: dict | None = None) -> dict[str, TrainConfig]:
    """The IMAGENET-LOC pre-trainings of Tables 2 and 7, keyed ``imagenet-loc``, ``imagenet-loc-cls`` and
    ``imagenet-loc-no-<super-category>`` for each of ``removed``.

    All continue from the IMAGENET-CLS backbone of :func:`pretrain_configs` for ``profile.loc_pretrain`` epochs on
    the ``imagenet_loc`` corpus (one category per image, 1-3 instances). The classifier sees exactly the detector's
    images with their image-level label (IMAGENET-LOC (Cls)); the "without category" detectors see a corpus of the
    same size regenerated with no instance of that super-category (its images are replaced by images of the
    remaining categories, so the amount of pre-training is equal; the paper's corpus simply shrinks). Replicate
    ``replicate`` continues from the IMAGENET-CLS run of that replicate, with ``seed=replicate``.

    Raises:
        ConfigError: a profile with published IMAGENET-CLS weights (``paper``, ``torchvision``; IMAGENET-LOC with
            3,130 classes is not distributed, so these ablations run on the synthetic corpora only), or an unknown
            super-category.
    """
    from detpretrain.data.synthetic_taxonomy import SUPERCATEGORIES

    if profile.imagenet_cls_weights is not None:
        raise ConfigError(f"the IMAGENET-LOC ablations (Tables 2, 7) need the synthetic imagenet_loc corpus and an "
                          f"IMAGENET-CLS run of ours to continue from; profile {profile.name!r} has neither: run them "
                          "with profile smoke or mini (the 3,130-class IMAGENET-LOC of the paper is not available)")
    unknown = [sc for sc in removed if sc not in SUPERCATEGORIES]
    if unknown:
        raise ConfigError(f"unknown super-category {unknown[0]!r}; expected one of {', '.join(SUPERCATEGORIES)}")
    cls_cfg = pretrain_configs(profile, replicate=replicate, corpus=corpus)["imagenet-cls"]
    init = f"run:{config_hash(cls_cfg)}"
    loc = synthetic_spec(profile.name, "imagenet_loc", corpus=corpus)
    out = {
        "imagenet-loc-cls": TrainConfig(name="pretrain/imagenet-loc-cls", task="classification",
                                        data=loc, model=profile.model, optim=profile.loc_pretrain, init=init,
                                        seed=replicate),
        "imagenet-loc": TrainConfig(name="pretrain/imagenet-loc", task="detection", data=loc, model=profile.model,
                                    optim=profile.loc_pretrain, init=init, eval_metric="coco", seed=replicate),
    }
    for sc in removed:
        out[f"imagenet-loc-no-{sc}"] = TrainConfig(
            name=f"pretrain/imagenet-loc-no-{sc}", task="detection",
            data=synthetic_spec(profile.name, "imagenet_loc", corpus=corpus, exclude_supercategory=sc),
            model=profile.model,
            optim=profile.loc_pretrain, init=init, eval_metric="coco", seed=replicate)
    return out


#: Table 1's same-images control (issue 18), as Table 7 has IMAGENET-LOC (Cls): a multi-label classifier trained on
#: exactly the images of the detection pre-training, with the same epochs and initialisation
SAME_IMAGES = "detection-multilabel"


def same_images_config(profile: Profile, corpus: dict | None = None, replicate: int = 0) -> TrainConfig:
    """The :data:`SAME_IMAGES` pre-training: task ``multilabel`` (which categories each image holds, no boxes) on the
    detection pre-training's corpus, with its model, schedule (``profile.det_pretrain``) and IMAGENET-CLS init;
    fine-tuned like the other backbones (``finetune_config`` with pre-training :data:`SAME_IMAGES`). Replicate
    ``replicate`` continues from the IMAGENET-CLS run of that replicate, with ``seed=replicate``.

    Raises:
        ConfigError: a profile whose detection pre-training is not on the synthetic corpus (published weights, or
            ``paper``'s COCO).
    """
    det = pretrain_configs(profile, replicate=replicate, corpus=corpus)["detection"]
    if det is None or det.data.kind != "synthetic":
        raise ConfigError(f"the same-images control needs the synthetic detection pre-training corpus; profile "
                          f"{profile.name!r} takes its detection backbone from elsewhere")
    return TrainConfig(name=f"pretrain/{SAME_IMAGES}", task="multilabel", data=det.data, model=det.model,
                       optim=det.optim, init=det.init, seed=replicate)


def pretrained_for(prof: Profile, pretrains, removed=REMOVED_SUPERCATEGORIES,
                   replicates: int = 1, corpus: dict | None = None, *,
                   with_detection: bool = True) -> dict[str, TrainConfig | None]:
    """The pre-training configs that backbones ``pretrains`` may need, keyed by :func:`replicate_key`:
    :func:`pretrain_configs` (``with_detection`` passed on), plus :func:`loc_pretrain_configs` (``removed`` super-categories) when an
    ``imagenet-loc*`` backbone is asked for, and :func:`same_images_config` when :data:`SAME_IMAGES` is, for
    replicates ``0 .. replicates - 1`` (and any replicate a key of ``pretrains`` names, e.g. ``imagenet-cls@r2``).
    Published weights (None) exist as replicate 0 only. ``corpus``: the chain's corpus variant."""
    count = max([int(replicates)] + [split_key(p)[1] + 1 for p in pretrains])
    names = [split_key(p)[0] for p in pretrains]
    loc = any(n.startswith("imagenet-loc") for n in names)
    pretrained: dict[str, TrainConfig | None] = {}
    for r in range(count):
        configs = dict(pretrain_configs(prof, replicate=r, corpus=corpus, with_detection=with_detection))
        if loc:
            configs.update(loc_pretrain_configs(prof, removed, replicate=r, corpus=corpus))
        if SAME_IMAGES in names:
            configs[SAME_IMAGES] = same_images_config(prof, corpus, replicate=r)
        pretrained.update({replicate_key(k, r): c for k, c in configs.items() if r == 0 or c is not None})
    return pretrained


def pretrain_order(names, pretrained: dict[str, TrainConfig | None]) -> list[str]:
    """The pre-trainings that backbones ``names`` need, dependencies first (no training).

    A pre-training whose ``init`` is ``run:<hash>`` of another config of ``pretrained`` needs that run first (the
    detection and IMAGENET-LOC pre-trainings continue from IMAGENET-CLS). ``scratch``, unknown names and configs that
    are None (torchvision weights) need nothing.
    """
    by_hash = {config_hash(c): k for k, c in pretrained.items() if c is not None}
    order: list[str] = []

    def visit(name: str) -> None:
        cfg = pretrained.get(name)
        if cfg is None or name in order:
            return
        if cfg.init and cfg.init.startswith("run:") and cfg.init[4:] in by_hash:
            visit(by_hash[cfg.init[4:]])
        order.append(name)

    for name in names:
        visit(name)
    return order


def ensure_pretrained(names, pretrained: dict[str, TrainConfig | None], store: RunStore, *, device: str = "auto",
                      progress: bool = True, log=print, prefix: str = "") -> dict[str, Run]:
    """Train (or find in the store) the pre-training runs that backbones ``names`` need, in
    :func:`pretrain_order`.

    Returns:
        ``{name: Run}`` for every pre-training trained or found, dependencies included.
    """
    runs: dict[str, Run] = {}
    for name in pretrain_order(names, pretrained):
        cfg = pretrained[name]
        t0 = time.perf_counter()
        runs[name] = get_or_train(cfg, store, device=device, progress=progress)
        log(f"{prefix}{cfg.name:<32} {runs[name].path.name}  {runs[name].metrics['headline']}"
            f"  ({time.perf_counter() - t0:.0f} s)")
    return runs


def check_device(prof: Profile, device: str = "auto") -> None:
    """Refuse to start a GPU-sized profile on the CPU by accident.

    Raises:
        ConfigError: ``device`` asks for CUDA that this machine lacks, or ``prof.needs_gpu`` and ``device="auto"``
            resolves to the CPU (pass ``device="cpu"`` to run there anyway).
    """
    from detpretrain.distributed import resolve_device

    if resolve_device(device).type == "cpu" and prof.needs_gpu and str(device) == "auto":
        raise ConfigError(f"profile {prof.name!r} is sized for GPUs and this machine has no CUDA device; "
                          f"pass device='cpu' to run it on the CPU anyway (days for a detection pre-training)")


@dataclasses.dataclass(frozen=True)
class ChainPlan:
    """The runs of one chain, without training: what :func:`finetune_chain` trains, in that order.

    Attributes:
        pretrained: the pre-training configs the chain may name (:func:`pretrained_for`), by pre-training key.
        pretrains: the backbones asked for (``scratch`` included).
        finetunes: ``(pretrain, replicate, seed, config)`` per fine-tuning run, backbone-major, then replicate, then
            seed (the fine-tuning from replicate ``r`` of ``pretrain`` starts from pre-training key
            ``replicate_key(pretrain, r)``).
    """

    pretrained: dict[str, TrainConfig | None]
    pretrains: tuple[str, ...]
    finetunes: tuple[tuple[str, int, int, TrainConfig], ...]

    @property
    def keys(self) -> tuple[str, ...]:
        """The pre-training keys the fine-tunings start from (``scratch`` included), in order."""
        return tuple(dict.fromkeys(replicate_key(p, r) for p, r, _, _ in self.finetunes))

    @property
    def pretrain_configs(self) -> dict[str, TrainConfig]:
        """``{key: config}`` of the pre-trainings to train first, dependencies first."""
        return {name: self.pretrained[name] for name in pretrain_order(self.keys, self.pretrained)}

    @property
    def configs(self) -> list[TrainConfig]:
        """Every run of the chain: pre-trainings (dependencies first), then the fine-tunings."""
        return [*self.pretrain_configs.values(), *(cfg for *_, cfg in self.finetunes)]


#: backbones trained from random weights (no pre-training run): in a replicated design each of their replicates is
#: an independent training run of its own (:func:`scratch_seed`), so their run-to-run spread enters every interval
FROM_SCRATCH = ("scratch", "scratch-narrow")


def scratch_seed(replicate: int, seed: int, seeds) -> int:
    """The training seed of fine-tuning seed ``seed`` in replicate ``replicate`` of a backbone trained from random
    weights (:data:`FROM_SCRATCH`): ``seed`` itself for replicate 0 (the runs of an unreplicated design), else
    ``replicate * (max(seeds) + 1) + seed``, distinct from every other (replicate, seed) of ``seeds``.

    >>> [scratch_seed(r, 0, (0,)) for r in range(3)]
    [0, 1, 2]
    >>> [scratch_seed(1, s, (0, 1, 2)) for s in (0, 1, 2)]
    [3, 4, 5]

    Raises:
        ConfigError: a negative replicate or seed.
    """
    if replicate < 0 or seed < 0 or min(seeds, default=0) < 0:
        raise ConfigError(f"replicates and seeds are numbers >= 0, got replicate {replicate}, seeds {tuple(seeds)}")
    return replicate * (max(seeds, default=seed) + 1) + seed


def chain_plan(prof: Profile, target: DataSpec, make_config, *, pretrains, pretrained: dict[str, TrainConfig | None],
               seeds=None, replicates: int | None = None, overrides: dict | None = None) -> ChainPlan:
    """The runs of a fine-tuning chain (arguments as in :func:`finetune_chain`), computed without training.

    Each backbone of ``pretrains`` is fine-tuned once per replicate (:func:`replicate_count`) and seed; published
    weights (one network, no replicated pre-training run in ``pretrained``) once per seed, as replicate 0. A backbone
    trained from random weights (:data:`FROM_SCRATCH`) is trained once per replicate and seed, replicate ``r`` with
    the training seed :func:`scratch_seed` (each of its replicates is an independent run, paired with replicate ``r``
    of the other arms). ``make_config`` receives the pre-training key (:func:`replicate_key`; the plain name and the
    training seed for a :data:`FROM_SCRATCH` backbone).

    Raises:
        ConfigError: an unknown pre-training name (from ``make_config``), override key or replicate count.
    """
    count = replicate_count(prof, replicates)
    seeds = tuple(seeds if seeds is not None else prof.seeds)
    finetunes = []
    for pretrain in pretrains:
        if pretrain in FROM_SCRATCH:  # its replicate is its own training run (scratch_seed)
            runs = [(r, seed, pretrain, scratch_seed(r, seed, seeds)) for r in range(count) for seed in seeds]
        else:
            reps = [r for r in range(count) if r == 0 or replicate_key(pretrain, r) in pretrained]
            runs = [(r, seed, replicate_key(pretrain, r), seed) for r in reps for seed in seeds]
        for r, seed, key, config_seed in runs:
            cfg = make_config(prof, key, config_seed, target, pretrained)
            for path, value in (overrides or {}).items():
                cfg = replace_path(cfg, path, value)
            finetunes.append((pretrain, r, seed, cfg))
    return ChainPlan(dict(pretrained), tuple(pretrains), tuple(finetunes))


def train_chain(plan: ChainPlan, prof: Profile, dataset: str, target: DataSpec, *, store: RunStore | None = None,
                device: str = "auto", progress: bool = True, log=print) -> dict:
    """Train (or find in the store) every run of ``plan``, pre-trainings first; the result of
    :func:`finetune_chain`."""
    store = store or RunStore()
    pre_runs = ensure_pretrained(plan.keys, plan.pretrained, store, device=device, progress=progress, log=log,
                                 prefix=f"[{prof.name}] ")
    out_runs = [train_logged(cfg, pretrain, seed, store, prof, device, progress, log, replicate=r)
                for pretrain, r, seed, cfg in plan.finetunes]
    return {"profile": prof.name, "dataset": dataset, "data": target.describe(), "runs": out_runs,
            "pretrain_runs": {k: str(r.path) for k, r in pre_runs.items()}}


def finetune_chain(prof: Profile, dataset: str, target: DataSpec, make_config, *, pretrains,
                   pretrained: dict[str, TrainConfig | None], seeds=None, replicates: int | None = None,
                   store: RunStore | None = None, overrides: dict | None = None, device: str = "auto",
                   progress: bool = True, log=print) -> dict:
    """The chain every transfer experiment runs: pre-train each backbone once per replicate (through the run store),
    then one fine-tuning per backbone, replicate and seed (detection, segmentation and classification transfer share
    it): :func:`chain_plan`, then :func:`train_chain`.

    Args:
        dataset: the name reported as the result's ``"dataset"``.
        target: the fine-tuning data.
        make_config: ``(profile, pretrain, seed, target, pretrained) -> TrainConfig`` of one fine-tuning run
            (:func:`finetune_config`, :func:`cls_finetune_config`, ``segmentation.segmentation_config``).
        pretrained: the pre-training configs the backbones may need (:func:`pretrained_for`), by key.
        seeds: fine-tuning seeds (default: the profile's).
        replicates: pre-training replicates (default: the profile's; :func:`replicate_count`).
        overrides: ``{"optim.epochs": 3, ...}`` applied to the fine-tuning configs (not to the pre-trainings).

    Returns:
        ``{"profile", "dataset", "data", "runs": [{"pretrain", "replicate", "seed", "run", "hash", "metrics"}],
        "pretrain_runs": {key: path}}``.

    Raises:
        ConfigError: an unknown pre-training name (from ``make_config``).
    """
    check_device(prof, device)
    plan = chain_plan(prof, target, make_config, pretrains=pretrains, pretrained=pretrained, seeds=seeds,
                      replicates=replicates, overrides=overrides)
    return train_chain(plan, prof, dataset, target, store=store, device=device, progress=progress, log=log)


def train_logged(cfg: TrainConfig, pretrain: str, seed: int, store: RunStore, prof: Profile, device: str,
                 progress: bool, log, replicate: int = 0) -> dict:
    """Train (or find in ``store``) one fine-tuning run and log one line with its headline and seconds.

    Returns:
        its entry of a result's ``runs`` list: ``{"pretrain", "replicate", "seed", "run" (path), "hash",
        "metrics"}`` (``replicate``: the pre-training replicate it starts from, 0 for ``scratch``).
    """
    t0 = time.perf_counter()
    run = get_or_train(cfg, store, device=device, progress=progress)
    log(f"[{prof.name}] {cfg.name:<32} seed {seed}  {run.path.name}  {run.metrics['headline']}"
        f"  ({time.perf_counter() - t0:.0f} s)")
    return {"pretrain": pretrain, "replicate": replicate, "seed": seed, "run": str(run.path), "hash": run.hash,
            "metrics": run.metrics}
