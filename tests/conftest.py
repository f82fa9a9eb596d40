"""Shared fixtures: the real-data subsets in ../shared/data (skipped with a reason where absent) and a corpus cache."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from detpretrain.plan import environment

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
