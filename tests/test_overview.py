"""The introduction's overview reads the primary claims the feature, map and spectrum chapters record."""

import json

import numpy as np
import pytest

from detpretrain.analysis import stats as S
from detpretrain.analysis.claims import PRIMARY_CLAIMS, claim_row
from detpretrain.overview import READERS, load_primary, primary_overview, primary_record_path, save_primary
from detpretrain.profiles import get_profile
from detpretrain.runs import RunStore


def _verdict():
    return S.verdict(np.array([6.1, 7.4, 6.9]))  # three pre-training replicate pairs


def test_recorded_primary_reaches_the_overview(tmp_path):
    v = _verdict()
    store = RunStore(tmp_path / "store")
    path = save_primary("feature_space", v, profile="mini", store=store, params={"store": "/x", "device": "cpu"},
                        root=tmp_path)
    assert path == primary_record_path("feature_space", "mini", tmp_path) and path.is_file()
    record = load_primary("feature_space", "mini", tmp_path)
    assert record["row"] == claim_row("feature_space", v) and record["row"]["label"] == v.label == "holds"
    frame = primary_overview(get_profile("mini"), store, figures=tmp_path)
    assert list(frame["chapter"]) == list(PRIMARY_CLAIMS)
    row = frame.set_index("chapter").loc["feature_space"]
    assert row["label"] == "holds" and row["here"].startswith(f"{v.estimate:+.1f} (95 % CI {v.ci_low:+.1f}")
    assert "recorded by the chapter's execution of" in row["here"]
    others = frame[~frame["chapter"].isin(["feature_space", *READERS])]
    assert (others["label"] == "see the chapter").all()  # visualisations, eigenspectrum, mechanisms: no record
    # the profile's replicate count given explicitly (as the intro passes it) is the same question ...
    same = primary_overview(get_profile("mini"), RunStore(tmp_path / "store"), figures=tmp_path, replicates=3)
    assert same.set_index("chapter").loc["feature_space", "label"] == "holds"
    # ... other replicates, or another store, are not: the record is not shown for them
    other = primary_overview(get_profile("mini"), RunStore(tmp_path / "store"), figures=tmp_path, replicates=2)
    assert other.set_index("chapter").loc["feature_space", "label"] == "see the chapter"
    elsewhere = primary_overview(get_profile("mini"), RunStore(tmp_path / "other"), figures=tmp_path)
    assert elsewhere.set_index("chapter").loc["feature_space", "label"] == "see the chapter"
    # a default execution that no longer gives a verdict removes the record
    assert save_primary("feature_space", None, profile="mini", store=store, root=tmp_path) is None
    assert load_primary("feature_space", "mini", tmp_path) is None


def test_non_default_questions_and_missing_verdicts_are_not_recorded(tmp_path):
    assert save_primary("feature_space", None, profile="mini", root=tmp_path) is None
    assert save_primary("feature_space", _verdict(), profile="mini", params={"cue": "distributed"},
                        root=tmp_path) is None
    assert save_primary("visualisations", _verdict(), profile="mini", params={"target": "sun"}, root=tmp_path) is None
    assert not any(tmp_path.rglob("primary.json"))


def test_damaged_record_is_absent(tmp_path):
    path = primary_record_path("eigenspectrum", "mini", tmp_path)
    path.parent.mkdir(parents=True)
    path.write_text("{not json")
    assert load_primary("eigenspectrum", "mini", tmp_path) is None
    path.write_text(json.dumps({"row": "x"}))
    assert load_primary("eigenspectrum", "mini", tmp_path) is None


def test_synthetic_only_chapters_are_said_so_at_a_published_profile(tmp_path, coco_subset):
    """At ``torchvision`` the ablations and mechanisms pages do not run: their rows say why, nothing is read."""
    from detpretrain.parameters import SYNTHETIC_ONLY

    frame = primary_overview(get_profile("torchvision"), RunStore(tmp_path / "store"), figures=tmp_path,
                             dataset="coco", data_root=str(coco_subset))
    rows = frame.set_index("chapter")
    assert list(frame["chapter"]) == list(PRIMARY_CLAIMS)
    for chapter in SYNTHETIC_ONLY:
        assert rows.loc[chapter, "here"].startswith("synthetic-only, not run at profile torchvision: ")
        assert rows.loc[chapter, "label"] == "–"
    assert rows.loc["detection", "here"] == "not run in this store"


def test_book_cost_lists_every_planned_run_and_says_when_the_book_cannot_be_planned(tmp_path, monkeypatch,
                                                                                   corpus_root):
    from detpretrain import book
    from detpretrain.errors import RunStoreError
    from detpretrain.overview import book_cost

    store = RunStore(tmp_path / "runs")
    costs, errors = book_cost("smoke", store, corpus_root)
    planned = book.book_plan("smoke", None, {"store": str(store.root), "data_cache": str(corpus_root)}, store=store)
    assert [c.hash for c in costs] == list(planned.runs) and not errors
    assert {c.state for c in costs} == {"todo"} and "intro" not in {c.chapter for c in costs}  # under their chapters

    def no_book(*args, **kwargs):
        raise FileNotFoundError("no _toc.yml in /somewhere: run from the project root")

    monkeypatch.setattr(book, "book_plan", no_book)
    assert book_cost("smoke", store) == ([], {"book": "FileNotFoundError: no _toc.yml in /somewhere: run from the "
                                                      "project root"})

    def damaged(chapter, *args, **kwargs):  # a planner that meets a damaged run: reported, not raised
        raise RunStoreError(tmp_path / "backbone.pt", "truncated", "runs rm RUN")

    monkeypatch.undo()
    from detpretrain import plan as P

    monkeypatch.setattr(P, "chapter_runs", damaged)
    costs, errors = book_cost("smoke", store, corpus_root)
    assert not costs and set(errors) >= {"detection", "eigenspectrum"}
    assert all(e.startswith("RunStoreError") for e in errors.values())


def test_the_introductions_prose_states_the_regime_thresholds_the_code_uses():
    from pathlib import Path

    from detpretrain.analysis.claims import REGIME_MIN_MAP50, REGIME_MIN_RATIO

    text = " ".join(line.lstrip("# ").strip() for line in
                    (Path(__file__).resolve().parents[1] / "book" / "intro.py").read_text().splitlines())
    assert f"below {REGIME_MIN_MAP50:g} mAP@0.5" in text
    assert REGIME_MIN_RATIO == 0.5 and "mAP@0.7 below half its mAP@0.5" in text
