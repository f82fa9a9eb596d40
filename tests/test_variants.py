"""The mechanisms page's cue variants (issue 18): parsing, planning, execution and the claims x cue table."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from detpretrain.analysis import mechanisms as M
from detpretrain.book import ChapterError, execute_variants
from detpretrain.config import config_hash
from detpretrain.errors import ConfigError, ParameterError
from detpretrain.parameters import check_parameters, parse_variants, variant_values
from detpretrain.plan import CHAPTER_PLANNERS


def test_variants_parse_as_chapter_cue_and_refuse_typos():
    assert parse_variants(["visualisations:part+decoy", "classification:distributed",
                             "visualisations:part+decoy"]) == [("visualisations", "part+decoy"),
                                                               ("classification", "distributed")]
    for bad in ("visualisation:part", "classification", "classification:distributd", "detection:distributed",
                "visualisations:shared-backgrounds"):
        with pytest.raises(ConfigError, match="not chapter:condition; expected one of classification:part"):
            parse_variants([bad])
    assert parse_variants(["classification:shared-backgrounds"]) == [("classification", "shared-backgrounds")]
    with pytest.raises(ParameterError, match="variants"):  # the page's parameter check says the same first
        check_parameters("mechanisms", {"variants": ["feature_space:decoy"]})


def test_variant_values_keep_the_chapter_defaults_and_take_the_cue():
    values = variant_values("visualisations", "distributed", {"profile": "smoke", "seeds": [1], "variants": ["x"],
                                                                 "dataset": "coco", "replicates": 2})
    assert values["cue"] == "distributed" and values["profile"] == "smoke" and values["seeds"] == [1]
    assert values["dataset"] == "synthetic" and "variants" not in values and values["replicates"] == 2
    assert variant_values("classification", "part", {"replicates": 2})["replicates"] == 2
    # the SUN scene control: shared backgrounds, the cue at its default
    control = variant_values("classification", "shared-backgrounds", {"profile": "smoke"})
    assert (control["sun_backgrounds"], control["cue"]) == ("shared", "part")
    with pytest.raises(ConfigError, match="unknown condition 'shared'"):
        variant_values("classification", "shared", {})


def test_the_sun_control_plans_new_sun_runs_only():
    """classification:shared-backgrounds retrains what reads the SUN-role target and nothing else: its pre-trainings
    and its CALTECH / FLOWERS runs are the default chapter's."""
    from detpretrain.plan import chapter_runs

    params = {"profile": "smoke", "variants": ["classification:shared-backgrounds"]}
    planned = CHAPTER_PLANNERS["mechanisms"]("smoke", params, None)
    default = {config_hash(c) for c in chapter_runs("classification", "smoke",
                                                    variant_values("classification", "part", params))}
    new = [c for c in planned if config_hash(c) not in default]
    assert new and all(c.data.corpus["role"] == "sun" and c.data.corpus["sun_backgrounds"] == "shared" for c in new)
    assert all(c.task != "detection" and not c.name.startswith("pretrain/") for c in new)


def test_variants_plan_trains_pretrainings_on_the_cue_corpora():
    """The variant's runs are the chapter's runs under its cue: pre-trainings on corpora with that cue (new hashes),
    and the chapter's own runs at its default cue are not among them."""
    from detpretrain.plan import chapter_runs

    params = {"profile": "smoke", "variants": ["feature_space:distributed"]}
    planned = CHAPTER_PLANNERS["mechanisms"]("smoke", params, None)
    part = chapter_runs("feature_space", "smoke", variant_values("feature_space", "part", params))
    assert planned and {config_hash(c) for c in planned}.isdisjoint(config_hash(c) for c in part)
    assert all(c.data.corpus["cue"] == "distributed" for c in planned if c.data.kind == "synthetic")
    assert CHAPTER_PLANNERS["mechanisms"]("smoke", {"variants": []}, None) == []


def test_a_failing_variant_names_its_chapter_and_cue(tmp_path, monkeypatch):
    def fail(source, out, parameters, **kw):
        raise ChapterError("visualisations", "cell 3 raised ValueError: boom", cell_index=3)

    monkeypatch.setattr("detpretrain.book.execute_chapter", fail)
    with pytest.raises(ChapterError, match=r"cue part\+decoy: cell 3 raised ValueError: boom"):
        execute_variants(["visualisations:part+decoy"], {"profile": "smoke"}, tmp_path, log=lambda s: None)
    seen = []
    monkeypatch.setattr("detpretrain.book.execute_chapter",
                        lambda source, out, parameters, **kw: seen.append((source.name, out.name, parameters)) or 2.5)
    done = execute_variants(["classification:distributed"], {"profile": "smoke", "device": "cpu"}, tmp_path,
                              log=lambda s: None)
    assert seen[0][:2] == ("classification.py", "classification-distributed.ipynb")
    assert seen[0][2]["cue"] == "distributed" and seen[0][2]["device"] == "cpu"
    assert M.variants_frame(done).to_dict("records") == [
        {"chapter": "classification", "cue": "distributed", "seconds": 2.5, "notebook": "classification-distributed.ipynb"}]



def _stand_in(root, chapter: str, *cells: str) -> None:
    """``root/book/<chapter>.py``: the real chapter's parameters cell (the variant's values are checked against
    it), then ``cells``."""
    import jupytext

    from conftest import PROJECT_ROOT

    real = jupytext.read(PROJECT_ROOT / "book" / f"{chapter}.py")
    params = next(c.source for c in real.cells if "parameters" in c.metadata.get("tags", []))
    body = [f"# %% [markdown]\n# # {chapter}\n", f'# %% tags=["parameters"]\n{params}\n',
            *(f"# %%\n{c}\n" for c in cells)]
    (root / "book").mkdir(exist_ok=True)
    (root / "book" / f"{chapter}.py").write_text("\n".join(body))


def test_variants_execute_at_once_each_in_its_own_kernel(tmp_path, monkeypatch):
    """Two variants overlap in time, each kernel with the cue it was given and cores // 2 threads; the list comes
    back in the variants' order; a failing one is named with its cue after the other has finished."""
    import json

    from detpretrain.executor import cpu_count

    (tmp_path / "_toc.yml").write_text("format: jb-book\nroot: book/classification\nchapters:\n"
                                       "  - file: book/visualisations\n")
    stamp = ("import json, os, time\n"
             "def stamp(what):\n"
             "    with open(os.environ['STAMPS'], 'a') as f:\n"
             "        f.write(json.dumps([cue, what, time.time(), os.environ['OMP_NUM_THREADS']]) + '\\n')\n"
             "stamp('start')")
    for chapter in ("classification", "visualisations"):
        # each waits (up to 120 s) until both have started: they overlap whenever they execute at once
        _stand_in(tmp_path, chapter, stamp, "deadline = time.time() + 120\n"
                  "while time.time() < deadline and open(os.environ['STAMPS']).read().count('\"start\"') < 2:\n"
                  "    time.sleep(0.2)\nstamp('end')")
    monkeypatch.setenv("STAMPS", str(tmp_path / "stamps.jsonl"))
    variants = ["visualisations:part+decoy", "classification:distributed"]
    done = execute_variants(variants, {"profile": "smoke"}, tmp_path / "out", root=tmp_path, jobs=2,
                            log=lambda s: None)
    assert [(d["chapter"], d["cue"]) for d in done] == [("visualisations", "part+decoy"),
                                                         ("classification", "distributed")]
    assert all(Path(d["notebook"]).is_file() and d["seconds"] > 0 for d in done)
    stamps = {(cue, what): (t, threads) for cue, what, t, threads in
              map(json.loads, (tmp_path / "stamps.jsonl").read_text().splitlines())}
    assert stamps["part+decoy", "start"][0] < stamps["distributed", "end"][0]  # they overlapped
    assert stamps["distributed", "start"][0] < stamps["part+decoy", "end"][0]
    assert {threads for _, threads in stamps.values()} == {str(max(1, cpu_count() // 2))}
    _stand_in(tmp_path, "classification", "raise ValueError('boom')")
    with pytest.raises(ChapterError, match=r"(?s)cue distributed: .*ValueError: boom") as err:
        execute_variants(variants, {"profile": "smoke"}, tmp_path / "out", root=tmp_path, jobs=2, log=lambda s: None)
    assert err.value.chapter == "classification (cue distributed)"
    assert len((tmp_path / "stamps.jsonl").read_text().splitlines()) == 6  # the other variant ran to its end


def _claims(label: str, estimate: float) -> pd.DataFrame:
    return pd.DataFrame([{"claim": "Table 6 gap", "prediction": "", "estimate": estimate, "ci_low": estimate - 1,
                          "ci_high": estimate + 1, "n": 3, "unit": "pre-training run", "label": label,
                          "conditional": False}])


def test_claims_by_cue_filters_cues_and_chapters_and_the_summary_counts_label_changes(tmp_path):
    M.save_claims(_claims("holds", 5.0), chapter="classification", profile="mini", cue="part", root=tmp_path)
    M.save_claims(_claims("not resolved", 0.4), chapter="classification", profile="mini", cue="distributed",
                  root=tmp_path)
    M.save_claims(_claims("holds", 4.0), chapter="feature_space", profile="mini", cue="part+decoy", root=tmp_path)
    table = M.claims_by_cue("mini", tmp_path, cues=("part", "distributed"), chapters=["classification"])
    assert list(table.columns) == ["chapter", "claim", "part", "distributed"] and len(table) == 1
    assert table.loc[0, "part"] == "holds (+5.00, +4.00 to +6.00)"
    text = M.cue_summary(table)
    assert "0 of 1 claims keep their label" in text and "holds → not resolved" in text
    assert "no variant" in M.cue_summary(table[["chapter", "claim", "part"]])
    assert "execute the chapters first" in M.cue_summary(table[["chapter", "claim", "distributed"]])
    empty = M.claims_by_cue("mini", tmp_path / "nothing", cues=("part",))
    assert empty.empty and list(empty.columns) == ["chapter", "claim", "part"]
    every = M.predictions_by_cue()
    assert set(every["chapter"]) == set(M.PREDICTIONS) and list(every.columns[2:]) == list(M.CUE_ORDER)


def test_the_mechanisms_page_is_stale_when_a_chapter_it_executes_changes(tmp_path):
    from detpretrain.book import source_hash

    (tmp_path / "mechanisms.py").write_text("page\n")
    (tmp_path / "other.py").write_text("x\n")
    before, other = source_hash(tmp_path / "mechanisms.py"), source_hash(tmp_path / "other.py")
    (tmp_path / "visualisations.py").write_text("v1\n")
    v1 = source_hash(tmp_path / "mechanisms.py")
    (tmp_path / "visualisations.py").write_text("v2\n")
    assert len({before, v1, source_hash(tmp_path / "mechanisms.py")}) == 3
    (tmp_path / "visualisations.py").write_text("v3\n")
    assert source_hash(tmp_path / "other.py") == other  # an ordinary chapter hashes only itself


def test_the_sun_background_control_is_a_chapter_parameter_and_its_own_column(tmp_path):
    from detpretrain.analysis import stats
    from detpretrain.config import config_hash
    from detpretrain.parameters import declared
    from detpretrain.plan import CHAPTER_PLANNERS

    params = {name: p.default for name, p in declared("classification").items()}
    assert params["sun_backgrounds"] == "style"
    default = {config_hash(c) for c in CHAPTER_PLANNERS["classification"]("smoke", params, None)}
    shared = CHAPTER_PLANNERS["classification"]("smoke", {**params, "sun_backgrounds": "shared"}, None)
    changed = [c for c in shared if config_hash(c) not in default]
    assert changed and {c.data.corpus.get("sun_backgrounds") for c in changed} == {"shared"}
    verdicts = {"Table 8, SUN-397: IMAGENET-CLS > COCO": stats.verdict([1.0, 2.0, 3.0]),
                "Table 8, CALTECH-256: IMAGENET-CLS > COCO": stats.verdict([-1.0, 0.0, 1.0])}
    keys = dict.fromkeys(verdicts, "table8")
    # a cue together with shared backgrounds is no column: not saved
    frame = M.claims_beside_predictions(verdicts, "classification", "distributed", keys)
    assert M.save_claims(frame, chapter="classification", profile="smoke", cue="distributed", root=tmp_path,
                         corpus={"cue": "distributed", "sun_backgrounds": "shared"}) is None
    assert not list(tmp_path.rglob("*.csv"))
    assert M.save_claims(frame, chapter="classification", profile="smoke", cue="part", root=tmp_path,
                         corpus={"cue": "part", "sun_backgrounds": "style"}).name == "claims-part.csv"
    # part with shared backgrounds is the SUN control's column, with its SUN-397 claims only
    assert M.condition_of("part", {"cue": "part", "sun_backgrounds": "shared"}) == "shared-backgrounds"
    frame = M.claims_beside_predictions(verdicts, "classification", "shared-backgrounds", keys)
    assert list(frame["prediction"].str[:30]) == ["+ on SUN-397, as under part (t", "unchanged by this control (the"]
    path = M.save_claims(frame, chapter="classification", profile="smoke", cue="part", root=tmp_path,
                         corpus={"cue": "part", "sun_backgrounds": "shared"})
    assert path.name == "claims-shared-backgrounds.csv"
    table = M.claims_by_cue("smoke", tmp_path)
    assert list(table.columns) == ["chapter", "claim", "part", "shared-backgrounds"]
    row = table.set_index("claim").loc["Table 8, SUN-397: IMAGENET-CLS > COCO"]
    assert row["part"] == row["shared-backgrounds"] == "not resolved (+2.00, -0.48 to +4.48)"
    assert pd.isna(table.set_index("claim").loc["Table 8, CALTECH-256: IMAGENET-CLS > COCO", "shared-backgrounds"])
    _, contrasts = M.cue_contrasts("smoke", tmp_path, cues=["shared-backgrounds"])
    assert list(contrasts["claim"]) == ["Table 8, SUN-397: IMAGENET-CLS > COCO"]
    assert M.predicted_change(frame["prediction"].iloc[0]) == "same"
