"""Shared fixtures: the real-data subsets in ../shared/data (skipped with a reason where absent) and a corpus cache."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

# One intra-op thread in the test process and everything it starts (papermill kernels, book builds, training
# subprocesses that set no count of their own), unless the caller sets one: the tests' tensors are small, and on the
# 2-core CI machine a second OpenMP thread buys little and stalls whenever another process holds the other core
# (benchmarks/README.md, "Training loop and thread layout"). Measured on the whole suite, 2 cores: 794 s against
# 1039 s with torch's default of one thread per core. Set before torch is imported, and again below in case a plugin
# imported it first.
for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import pytest  # noqa: E402
import torch  # noqa: E402

from detpretrain.plan import environment  # noqa: E402

_threads = os.environ["OMP_NUM_THREADS"].split(",")[0].strip()  # OpenMP also allows a list per nesting level
torch.set_num_threads(int(_threads) if _threads.isdigit() and int(_threads) > 0 else 1)

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("DETPRETRAIN_SHARED_DATA", PROJECT_ROOT.parent / "shared" / "data"))


def _shared(sub: str) -> Path:
    path = SHARED_DATA / sub
    if not path.exists():
        pytest.skip(f"real-data subset {path} is absent (set DETPRETRAIN_SHARED_DATA to the folder holding it)")
    return path


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Root of the genuine data subsets (../shared/data from the project root)."""
    return _shared("")


@pytest.fixture(scope="session")
def coco_subset() -> Path:
    return _shared("coco2017_subset")


@pytest.fixture(scope="session")
def vocdevkit() -> Path:
    return _shared("VOCdevkit")


@pytest.fixture(scope="session")
def voc_extras() -> Path:
    return _shared("voc_extras")


@pytest.fixture
def voc_copy(vocdevkit, tmp_path) -> Path:
    """A writable copy of the real VOC2007 subset (``<tmp>/VOCdevkit/VOC2007``), for tests that edit its files."""
    dst = tmp_path / "VOCdevkit" / "VOC2007"
    shutil.copytree(vocdevkit / "VOC2007", dst)
    for p in dst.rglob("*"):
        p.chmod(0o644 if p.is_file() else 0o755)
    return dst


@pytest.fixture(scope="session")
def flowers_subset() -> Path:
    return _shared("flowers102_subset")


@pytest.fixture(scope="session")
def pet_subset() -> Path:
    return _shared("oxford_iiit_pet_subset")


@pytest.fixture(scope="session")
def corpus_root(tmp_path_factory) -> Path:
    """One generated-corpus cache for the whole test session (corpora are cached by their spec, so sharing them
    between modules only saves generation time)."""
    return tmp_path_factory.mktemp("corpora")


@pytest.fixture(scope="module")
def corpus_dir(corpus_root):
    """The session's corpus cache as ``$DETPRETRAIN_DATA`` for one test module."""
    with environment(DETPRETRAIN_DATA=corpus_root):
        yield corpus_root


@pytest.fixture(scope="session")
def smoke_store(corpus_root, tmp_path_factory):
    """One run store for the session holding the ``smoke`` pre-trainings (IMAGENET-CLS and detection), trained once.

    Tests that need a pre-trained backbone fine-tune from it instead of pre-training in a private store; tests that
    need an empty store keep their own.
    """
    from detpretrain.experiments.common import ensure_pretrained, pretrain_configs
    from detpretrain.profiles import get_profile
    from detpretrain.runs import RunStore

    store = RunStore(tmp_path_factory.mktemp("smoke_runs"))
    with environment(DETPRETRAIN_DATA=corpus_root):
        ensure_pretrained(("imagenet-cls", "detection"), pretrain_configs(get_profile("smoke")), store,
                          device="cpu", progress=False, log=lambda line: None)
    return store


@pytest.fixture
def task_step_cases():
    """A factory ``make(dtype=torch.float32)`` -> ``{task: (config, num_classes, (inputs, targets))}``: one hand-made
    training batch (2 images, 64 px) for each task's model at the ``smoke`` sizes (the from-scratch detector, the
    CALTECH-role classifier, DeepLabV3), for tests that compare one training step under two settings."""
    import torch

    from detpretrain.experiments.classification import cls_finetune_config, transfer_target
    from detpretrain.experiments.common import pretrain_configs, target_spec
    from detpretrain.experiments.detection import finetune_config
    from detpretrain.experiments.segmentation import segmentation_config, segmentation_target
    from detpretrain.profiles import get_profile

    def make(dtype=torch.float32) -> dict:
        prof = get_profile("smoke")
        pre = pretrain_configs(prof)
        torch.manual_seed(0)
        images = torch.rand(2, 3, 64, 64, dtype=dtype)
        boxes = [{"boxes": torch.tensor([[4.0, 4.0, 30.0, 40.0]], dtype=dtype), "labels": torch.tensor([1])},
                 {"boxes": torch.tensor([[10.0, 8.0, 60.0, 50.0]], dtype=dtype), "labels": torch.tensor([3])}]
        return {
            "detection": (finetune_config(prof, "scratch", 0, target_spec(prof), pre), 5, (list(images), boxes)),
            "classification": (cls_finetune_config(prof, "scratch", 0, transfer_target(prof, "caltech"), pre), 5,
                               (images, torch.tensor([1, 4]))),
            "segmentation": (segmentation_config(prof, "scratch", 0, segmentation_target(prof), pre), 6,
                             (images, torch.randint(0, 6, (2, 64, 64)))),
        }

    return make


@pytest.fixture(autouse=True, scope="session")
def _float32_runs():
    """The suite's runs are float32 whatever the shell says: ``$DETPRETRAIN_CPU_BF16`` (``--cpu-bf16``) is removed
    for the session; tests of the switch set it themselves with ``monkeypatch``."""
    saved = os.environ.pop("DETPRETRAIN_CPU_BF16", None)
    yield
    if saved is not None:
        os.environ["DETPRETRAIN_CPU_BF16"] = saved
