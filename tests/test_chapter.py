"""detpretrain.chapter: the chapters' setup, the one provenance format, tables with readable spacing; the corpus
cache passed explicitly (no environment side channel)."""

from __future__ import annotations

import datetime
import os
import re

import numpy as np
import pandas as pd
import pytest

from detpretrain import chapter as C
from detpretrain.config import config_hash
from detpretrain.errors import ConfigError
from detpretrain.runs import RunStore


def test_chapter_setup_resolves_profile_store_cache_and_keeps_every_parameter(tmp_path, monkeypatch):
    monkeypatch.setenv("DETPRETRAIN_DATA", str(tmp_path / "from-env"))
    ch = C.chapter_setup("detection", profile="smoke", store=tmp_path / "runs", data_cache=tmp_path / "corpora",
                         device="cpu", dataset="synthetic", seeds=[2, 1], pretrains=["scratch"])
    assert ch.name == "detection" and ch.profile.name == "smoke"
    assert ch.store.root == tmp_path / "runs"
    assert ch.data_cache == ch.store.data_cache == tmp_path / "corpora"  # the parameter, not the environment
    assert ch.seeds == (2, 1) and ch.device == "cpu" and str(ch.torch_device) == "cpu"
    assert ch.params == {"profile": "smoke", "store": str(tmp_path / "runs"), "data_cache": str(tmp_path / "corpora"),
                         "device": "cpu", "dataset": "synthetic", "seeds": [2, 1], "pretrains": ["scratch"]}
    assert ch.date == datetime.date.today().isoformat()
    # defaults: the profile's seeds, the user-level cache ($DETPRETRAIN_DATA) read through the store
    default = C.chapter_setup("intro", profile="smoke", store=tmp_path / "runs")
    assert default.seeds == default.profile.seeds and default.data_cache == tmp_path / "from-env"
    with pytest.raises(ConfigError):
        C.chapter_setup("intro", profile="huge")


def test_chapter_setup_checks_values_as_run_does_under_raw_papermill(tmp_path):
    """papermill injects whatever it is given; the chapter's setup cell refuses it before anything trains."""
    from detpretrain.errors import ParameterError

    with pytest.raises(ParameterError, match="seeds.*'abc'"):
        C.chapter_setup("detection", profile="smoke", store=tmp_path / "runs", seeds="abc")
    with pytest.raises(ParameterError, match="did you mean 'pretrains'"):
        C.chapter_setup("detection", profile="smoke", store=tmp_path / "runs", pretrain=["scratch"])
    with pytest.raises(ParameterError, match="device"):
        C.chapter_setup("detection", profile="smoke", store=tmp_path / "runs", device="tpu")
    assert not (tmp_path / "runs").exists()  # refused before any run directory appears
    own = C.chapter_setup("my_notebook", profile="smoke", store=tmp_path / "runs", k=3)  # undeclared: kept as given
    assert own.params["k"] == 3


def test_run_store_data_cache_default_and_explicit(tmp_path, monkeypatch):
    monkeypatch.delenv("DETPRETRAIN_DATA", raising=False)
    assert str(RunStore(tmp_path).data_cache) == os.path.join("data", "generated")
    monkeypatch.setenv("DETPRETRAIN_DATA", str(tmp_path / "env"))
    assert RunStore(tmp_path).data_cache == tmp_path / "env"  # read when asked, not frozen at construction
    assert RunStore(tmp_path, data_cache=tmp_path / "mine").data_cache == tmp_path / "mine"


def test_the_cache_location_never_enters_a_config_hash(tmp_path):
    from detpretrain.experiments.common import pretrain_configs
    from detpretrain.profiles import get_profile

    cfg = pretrain_configs(get_profile("smoke"))["imagenet-cls"]
    a = RunStore(tmp_path / "runs", data_cache=tmp_path / "a").path_for(cfg)
    b = RunStore(tmp_path / "runs", data_cache=tmp_path / "b").path_for(cfg)
    assert a == b and a.name.endswith(config_hash(cfg))


def test_datasets_are_built_in_the_cache_they_are_given(tmp_path, monkeypatch):
    from detpretrain.data.builders import build_classification_dataset, corpus_root
    from detpretrain.experiments.common import synthetic_spec

    monkeypatch.setenv("DETPRETRAIN_DATA", str(tmp_path / "env"))
    spec = synthetic_spec("smoke", "caltech")
    root = corpus_root(spec, tmp_path / "given")
    assert root.parent == tmp_path / "given" and root.is_dir()
    ds = build_classification_dataset(spec, "test", train=False, size=None, cache=tmp_path / "given")
    assert len(ds) > 0 and not (tmp_path / "env").exists()


def _result():
    return {"profile": "smoke", "data": "synthetic voc (64 px)",
            "runs": [{"pretrain": "imagenet-cls", "seed": 0, "hash": "0123456789abcdef"},
                     {"pretrain": "imagenet-cls", "seed": 1, "hash": "fedcba9876543210"},
                     {"pretrain": "detection", "seed": 0, "hash": "aaaabbbbccccdddd"}]}


def test_provenance_is_one_format():
    line = C.provenance(_result(), date="2026-01-02")
    assert line == ("profile smoke · synthetic voc (64 px) · runs imagenet-cls: 01234567, fedcba98; "
                    "detection: aaaabbbb · 2026-01-02")
    # the same format from explicit fields; ids that are not hashes (a random backbone) are kept whole
    line = C.provenance(profile="mini", data="d", runs={"scratch": "scratch-1a2b3c4d-s0", "x": ["abcdef0123456"]},
                        date="2026-01-02")
    assert line == "profile mini · d · runs scratch: scratch-1a2b3c4d-s0; x: abcdef01 · 2026-01-02"
    assert C.provenance(profile="p", data="d", runs={}, date="D") == "profile p · d · runs none · D"
    assert re.fullmatch(r".* · \d{4}-\d{2}-\d{2}", C.provenance(_result()))  # today by default
    ch = C.Chapter("c", type("P", (), {"name": "smoke", "seeds": (0,)})(), None, None, "cpu", {}, "2030-01-01")
    assert ch.provenance(_result()).endswith(" · 2030-01-01")


def test_run_hashes_groups_runs_and_frozen_rows():
    assert C.run_hashes(_result()) == {"imagenet-cls": ["0123456789abcdef", "fedcba9876543210"],
                                       "detection": ["aaaabbbbccccdddd"]}
    rows = {"rows": [{"head": "FPN", "mode": "frozen", "seed": 0, "hash": "h0"},
                     {"head": "FPN", "mode": "frozen", "seed": 1, "hash": "h1"},
                     {"head": "FPN", "mode": "fine-tuned", "seed": 0, "hash": "h2"}]}
    assert C.run_hashes(rows) == {"FPN/frozen": ["h0", "h1"], "FPN/fine-tuned": ["h2"]}
    assert C.run_hashes(_result(), by=("pretrain", "seed"))["imagenet-cls/1"] == ["fedcba9876543210"]


def test_format_value_follows_the_styler_rules():
    assert C.format_value(0.4449, precision=2) == "0.44" and C.format_value(3) == "3"
    assert C.format_value(float("nan")) == "–" and C.format_value(None, na_rep="n/a") == "n/a"
    assert C.format_value(1234567.0, precision=1, thousands=True) == "1,234,567.0"
    assert C.format_value(0.001, fmt="{:g}") == "0.001" and C.format_value(2.5, fmt=lambda v: f"<{v}>") == "<2.5>"
    assert C.format_value(0.02, numeric=False) == "0.02" and C.format_value(True) == "True"


def test_table_columns_never_run_together():
    """The rendered gap table ran its columns together ("0.100.44 2.823"): every cell is padded now, in HTML and in
    text, and numbers are formatted once for both."""
    gaps = pd.DataFrame({"iou": [0.1, 0.2], "gap": [0.44, np.nan], "sd": [2.823, 1.0], "seeds": [3, 3]})
    t = C.table(gaps, precision=2)
    text = repr(t)
    assert text.splitlines()[1].split() == ["0.10", "0.44", "2.82", "3"]
    assert "0.100.44" not in text
    html = t._repr_html_()
    assert "padding: 0.25em 0.8em" in html and 'class="dataframe detpretrain-table"' in html
    cells = re.findall(r"<td[^>]*>([^<]*)</td>", html)
    assert cells[:8] == ["0.10", "0.44", "2.82", "3", "0.20", "–", "1.00", "3"]
    assert 'class="row_heading' not in html  # index hidden by default
    assert t._repr_html_() == C.table(gaps, precision=2)._repr_html_()  # deterministic (nbval compares it)
    assert "text-align: left" in C.table(pd.DataFrame({"name": ["a"], "v": [1.0]}))._repr_html_()


def test_a_table_of_pre_trainings_names_them_by_the_papers_roles_in_its_headers_only():
    from detpretrain.paper import with_role_names

    assert with_role_names("imagenet-cls IoU") == "IMAGENET-CLS (imagenet-cls) IoU"
    assert with_role_names("detected by detection %") == "detected by COCO (detection) %"
    assert with_role_names("scratch") == "from scratch" and with_role_names("detection-multilabel") == "COCO (Cls) " \
        "(detection-multilabel)"
    for unchanged in ("detections", "detection@r1", "class", 0.5, ("detection", "mean")):
        assert with_role_names(unchanged) == unchanged
    per_class = pd.DataFrame({"class": ["car", "detection"], "imagenet-cls IoU": [54.31, 1.0],
                              "detection IoU": [53.52, 2.0], "gain": [-0.79, 1.0]})
    t = C.table(per_class, formats={"gain": "{:+.2f}"}, roles=True)
    assert list(t.text.columns) == ["class", "IMAGENET-CLS (imagenet-cls) IoU", "COCO (detection) IoU", "gain"]
    assert list(t.text["class"]) == ["car", "detection"]  # cells are not headers: left as they are
    assert repr(t).splitlines()[1].split() == ["car", "54.3", "53.5", "-0.79"]  # formats by the frame's own names
    assert list(C.table(per_class).text.columns) == list(per_class.columns)  # off unless asked
    pivot = pd.DataFrame([[13.8, 12.7]], index=pd.Index(["occluded Low % missed"]),
                         columns=pd.Index(["detection", "imagenet-cls"], name="pre-training"))
    shown = C.table(pivot, index=True, roles=True)
    assert list(shown.frame.columns) == ["COCO (detection)", "IMAGENET-CLS (imagenet-cls)"]
    assert shown.text.columns.name == "pre-training" and list(shown.text.index) == ["occluded Low % missed"]
    by_class = pd.DataFrame([[44.9, 30.3, 49.3]], index=pd.Index(["bus"], name="class"),
                            columns=pd.MultiIndex.from_tuples([("mAP", "detection"), ("mAP", "imagenet-cls"),
                                                               ("mAP", "scratch")], names=[None, "pretrain"]))
    html = C.table(by_class, index=True, roles=True)._repr_html_()
    assert all(f">{name}</th>" in html for name in ("COCO (detection)", "IMAGENET-CLS (imagenet-cls)", "from scratch"))
    own = C.table(pd.DataFrame({"scratch layer3": [42.0]}, index=pd.Index(["imagenet-cls"], name="detector")),
                  index=True, roles={"imagenet-cls": "I", "scratch": "S"})  # a chapter's own names, as given
    assert list(own.text.columns) == ["S layer3"] and list(own.text.index) == ["I"] and own.text.index.name == "detector"


def test_table_shows_an_index_and_mixed_settings_as_they_are():
    settings = C.settings_frame([("profile", "smoke"), ("base lr", 0.02), ("epochs", 7)])
    assert list(settings.index) == ["profile", "base lr", "epochs"]
    text = repr(C.table(settings, index=True))
    assert "0.02" in text and "smoke" in text and 'class="row_heading' in C.table(settings, index=True)._repr_html_()
    # a non-unique index that is not shown does not matter
    dup = pd.concat([pd.DataFrame({"a": [1.0]}), pd.DataFrame({"a": [2.0]})])
    assert "2.0" in C.table(dup)._repr_html_()
    formatted = C.table(pd.DataFrame({"t": [0.001], "v": [1.23456]}), precision=3, formats={"t": "{:g}"})
    assert repr(formatted).splitlines()[1].split() == ["0.001", "1.235"]


def test_chapters_use_the_setup_the_table_and_no_environment_side_channel():
    from conftest import PROJECT_ROOT

    for path in sorted((PROJECT_ROOT / "book").glob("*.py")):
        text = path.read_text()
        assert "os.environ" not in text, path.name
        assert f'chapter_setup("{path.stem}"' in text, path.name
        assert ".style." not in text, f"{path.name}: show tables with detpretrain.chapter.table"
        assert "hide-input" in text, path.name


def _discarded_tables(source: str) -> list[int]:
    """The lines of the ``table(...)`` calls whose result a cell throws away: a bare ``table(...)`` statement is shown
    only when it is the last top-level statement of its cell (IPython displays that value alone); anywhere else
    (earlier in the cell, or inside an ``if`` / ``for`` / ``with``) it must be wrapped in ``display(...)``. Cells
    split at jupytext's ``# %%`` lines; returns line numbers of ``source`` (1-based)."""
    import ast

    lines, found = source.splitlines(), []
    bounds = [i for i, line in enumerate(lines) if line.startswith("# %%")] + [len(lines)]
    for begin, end in zip([0, *[b + 1 for b in bounds[:-1]]], bounds):
        try:
            body = ast.parse("\n".join(lines[begin:end])).body
        except SyntaxError:  # not Python (a markdown cell parses: its lines are comments)
            continue
        for node in ast.walk(ast.Module(body=body, type_ignores=[])):
            if (isinstance(node, ast.Expr) and isinstance(node.value, ast.Call)
                    and isinstance(node.value.func, ast.Name) and node.value.func.id == "table"
                    and node is not body[-1]):
                found.append(begin + node.lineno)
    return found


def test_every_table_a_chapter_builds_is_shown():
    """A ``table(...)`` that is not its cell's last statement, or sits inside a block, builds a table nobody sees
    (the mechanisms page's claims by cue and the frozen study's control were lost that way until 2026-12-05). The
    check itself: a hand-made chapter with one shown and three lost tables."""
    from conftest import PROJECT_ROOT

    made = ("# %%\ntable(a)\n# %%\ntable(b)\nprint(1)\n# %%\nif x:\n    table(c)\n# %%\ndisplay(table(d))\n"
            "# %%\nfor i in y:\n    display(table(i))\n# %% [markdown]\n# a table(e) in prose\n# %%\nx = 1\ntable(f)\n")
    assert _discarded_tables(made) == [4, 8]
    for path in sorted((PROJECT_ROOT / "book").glob("*.py")):
        lost = _discarded_tables(path.read_text())
        assert not lost, f"{path.name}, lines {lost}: tables built and never shown; wrap them in display(...)"
