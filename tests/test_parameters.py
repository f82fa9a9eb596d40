"""Chapter parameters declared once (detpretrain.parameters): in step with the notebooks, checked, tabulated."""

from __future__ import annotations

import ast

import pytest

from conftest import PROJECT_ROOT
from detpretrain import book
from detpretrain.cli import main as cli_main
from detpretrain.errors import ConfigError, ParameterError
from detpretrain.parameters import (
    CHAPTER_PARAMETERS,
    GENERIC_PARAMETERS,
    Parameter,
    check_namespace,
    check_parameters,
    rerun_markdown,
    rerun_table,
    unknown_parameter_message,
)

TOC = {book.chapter_name(e): book.chapter_source(PROJECT_ROOT, e) for e in book.toc_files(PROJECT_ROOT)}
CHAPTERS = [name for name, source in TOC.items() if source.suffix == ".py"]


def test_every_chapter_of_the_toc_is_declared_and_nothing_else():
    assert sorted(CHAPTER_PARAMETERS) == sorted(CHAPTERS)


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_declarations_match_the_parameters_cell(chapter):
    """Same names in the same order, same defaults: the declaration and the notebook cannot drift apart."""
    cell = book.chapter_parameters(book.load_chapter(TOC[chapter]))
    declared = CHAPTER_PARAMETERS[chapter]
    assert list(cell) == [p.name for p in declared], f"{TOC[chapter]}: parameters cell and declarations differ"
    for p in declared:
        assert ast.literal_eval(cell[p.name]) == p.default, f"{chapter}.{p.name}: default {cell[p.name]} in the cell"
    assert [p.name for p in declared[:7]] == list(book.REQUIRED_PARAMETERS)


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_defaults_pass_their_own_checks(chapter):
    defaults = {p.name: p.default for p in CHAPTER_PARAMETERS[chapter]}
    assert check_parameters(chapter, defaults) == defaults
    assert check_namespace(chapter, {**defaults, "unrelated": 1}) == defaults


def test_values_are_coerced_or_refused_with_parameter_expectation_and_value():
    p = {q.name: q for q in CHAPTER_PARAMETERS["eigenspectrum"]}
    assert p["seeds"].check(3) == [3] and p["seeds"].check((0, 1)) == [0, 1] and p["seeds"].check(None) is None
    assert p["n_images"].check(64.0) == 64 and p["threshold"].check(1) == 1.0
    assert p["device"].check("cuda:1") == "cuda:1"
    for name, bad in [("seeds", "abc"), ("seeds", [-1]), ("seeds", []), ("seeds", [0, 0]), ("n_images", True),
                      ("n_images", 0),
                      ("n_images", 2.5), ("threshold", float("nan")), ("normalisation", "sum"), ("device", "gpu"),
                      ("profile", "tiny"), ("store", 3)]:
        with pytest.raises(ParameterError) as info:
            check_parameters("eigenspectrum", {name: bad})
        message = str(info.value)
        assert f"eigenspectrum: parameter {name!r} expects" in message and f"got {bad!r}" in message
        assert info.value.parameter == name
    assert check_parameters("detection", {"pretrains": "scratch"}) == {"pretrains": ["scratch"]}
    with pytest.raises(ParameterError, match="expects a list of distinct items from"):  # a pre-training twice
        check_parameters("detection", {"pretrains": ["scratch", "scratch"]})
    with pytest.raises(ParameterError, match="data_root' expects the root of the coco dataset"):
        check_parameters("detection", {"dataset": "coco"})
    assert check_parameters("pretraining", {"dataset": "coco"}) == {"dataset": "coco"}  # it does not read it
    with pytest.raises(ValueError, match="unknown kind"):
        Parameter("x", "complex", 0, "")


def test_unknown_names_get_the_closest_name_and_the_list():
    message = unknown_parameter_message("intro", "profil")
    assert message.startswith("intro has no parameter 'profil'; did you mean 'profile'? Its parameters: profile,")
    assert "did you mean" not in unknown_parameter_message("intro", "zzz")
    with pytest.raises(ParameterError, match="did you mean 'pretrains'"):
        check_parameters("detection", {"pretrain": ["scratch"]})
    with pytest.raises(ConfigError, match="no parameters are declared for chapter 'nope'"):
        check_parameters("nope", {})


def test_a_chapter_without_declarations_accepts_its_cell_and_checks_the_common_values(tmp_path, capsys):
    """A user's own notebook: the names of its parameters cell, and the seven common parameters' values."""
    src = tmp_path / "mine.py"
    src.write_text('# %% tags=["parameters"]\nprofile = "mini"\nseeds = None\nmine = 1\n\n# %%\nprint(mine)\n')
    cell = book.chapter_parameters(book.load_chapter(src))
    assert book.checked_parameters("mine", {"mine": "x", "seeds": 2}, cell) == {"mine": "x", "seeds": [2]}
    with pytest.raises(ParameterError, match="did you mean 'mine'"):
        book.checked_parameters("mine", {"mien": 1}, cell)
    with pytest.raises(ParameterError, match="'profile' expects one of smoke | mini | paper"):
        book.checked_parameters("mine", {"profile": "huge"}, cell)
    assert cli_main(["run", str(src), "-p", "mien", "1", "-o", str(tmp_path / "out.ipynb")]) == 2
    assert "did you mean 'mine'" in capsys.readouterr().err and not (tmp_path / "out.ipynb").exists()
    assert [p.name for p in GENERIC_PARAMETERS] == list(book.REQUIRED_PARAMETERS)


def test_the_rerun_table_is_generated_from_the_declarations():
    table = rerun_table()
    assert len(table) == sum(len(v) for v in CHAPTER_PARAMETERS.values())
    row = table[(table.chapter == "eigenspectrum") & (table.parameter == "normalisation")].iloc[0]
    assert row.accepts == "one of none | max | trace" and row.default == '"max"'
    markdown = rerun_markdown(["detection"]).splitlines()
    assert markdown[0] == "| chapter | parameter | accepts | default | meaning |"
    assert len(markdown) == 2 + len(CHAPTER_PARAMETERS["detection"])
    assert "| detection | `seeds` | a list of distinct integers >= 0, e.g. [0, 1, 2], or None | `None` |" in markdown[5]
