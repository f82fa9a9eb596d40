"""Shared fixtures: the real-data subsets in ../shared/data (skipped with a reason where absent) and a corpus cache."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

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


@pytest.fixture(scope="module")
def corpus_dir(tmp_path_factory):
    """A generated-corpus cache ($DETPRETRAIN_DATA) shared by one test module (generation is cached by spec)."""
    path = tmp_path_factory.mktemp("corpora")
    old = os.environ.get("DETPRETRAIN_DATA")
    os.environ["DETPRETRAIN_DATA"] = str(path)
    yield path
    if old is None:
        os.environ.pop("DETPRETRAIN_DATA", None)
    else:
        os.environ["DETPRETRAIN_DATA"] = old
