"""Publishing: the workflows, one repository address, citations, the Binder environment, the install matrix, the
"Re-run it yourself" tables and the results table.

Everything here runs offline: the GitHub-workflow and Citation-File-Format schemas are the ones vendored inside
check-jsonschema (its ``--builtin-schema``), and the subprocess that validates gets a proxy that refuses every
connection, so a schema fetched from the network would fail the test.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tomllib

import pytest
import yaml

from conftest import PROJECT_ROOT
from detpretrain import book, rerun, results
from detpretrain.cli import main as cli_main
from detpretrain.config import DataSpec, OptimSpec, TrainConfig, to_dict
from detpretrain.errors import ConfigError
from detpretrain.runs import RunStore

WORKFLOWS = PROJECT_ROOT / ".github" / "workflows"
CPU_INDEX = "https://download.pytorch.org/whl/cpu"
OFFLINE = {"HTTP_PROXY": "http://127.0.0.1:9", "HTTPS_PROXY": "http://127.0.0.1:9", "NO_PROXY": ""}


def check_jsonschema(schema: str, *files) -> subprocess.CompletedProcess:
    """``check-jsonschema --builtin-schema SCHEMA FILES`` in a subprocess that cannot reach the network."""
    env = {**os.environ, **OFFLINE, **{k.lower(): v for k, v in OFFLINE.items()}}
    return subprocess.run([sys.executable, "-m", "check_jsonschema", "--builtin-schema", schema, *map(str, files)],
                          capture_output=True, text=True, env=env, timeout=120)


def load_workflow(name: str) -> dict:
    """A workflow as YAML 1.1 reads it (PyYAML turns the key ``on`` into True; given back as ``"on"``)."""
    data = yaml.safe_load((WORKFLOWS / name).read_text())
    data["on"] = data.pop(True, data.get("on"))
    return data


def steps(workflow: dict) -> list[dict]:
    """Every step of every job, in order."""
    return [step for job in workflow["jobs"].values() for step in job.get("steps", [])]


def pyproject() -> dict:
    return tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())


def pin(requirement_list, name: str) -> str:
    """The ``==`` version pinned for ``name`` in a list of requirement strings (local label kept)."""
    for req in requirement_list:
        match = re.fullmatch(rf"\s*{re.escape(name)}\s*==\s*([^\s;#]+).*", req)
        if match:
            return match.group(1)
    raise AssertionError(f"{name} is not pinned with == in {requirement_list}")


# ------------------------------------------------------------------------------------------------- workflows


def test_workflows_validate_against_the_vendored_github_schema(tmp_path):
    files = sorted(WORKFLOWS.glob("*.yml"))
    assert [f.name for f in files] == ["book.yml", "ci.yml"]
    for schema in ("vendor.github-workflows", "custom.github-workflows-require-timeout"):
        result = check_jsonschema(schema, *files)
        assert result.returncode == 0, result.stdout + result.stderr
    # the validation can fail: a job without runs-on and a step with an unknown key
    bad = tmp_path / "bad.yml"
    bad.write_text("on: push\njobs:\n  x:\n    timeout-minutes: 5\n    steps:\n      - ran: echo\n")
    result = check_jsonschema("vendor.github-workflows", bad)
    assert result.returncode != 0 and "bad.yml" in result.stdout + result.stderr


def test_book_workflow_builds_mini_caches_the_store_and_publishes():
    wf = load_workflow("book.yml")
    text = (WORKFLOWS / "book.yml").read_text()
    assert "secrets." not in text, "the book workflow must not need a secret"
    assert wf["env"]["PROFILE"] == "mini"
    build = wf["jobs"]["build"]
    assert build["runs-on"] == "ubuntu-latest"  # a CPU runner
    runs = " ".join(s.get("run", "") for s in steps(wf))
    assert 'python -m detpretrain book --profile "$PROFILE"' in runs
    assert f"torch==2.11.0 torchvision==0.26.0 --index-url {CPU_INDEX}" in runs  # the README's CPU row
    uses = {s["uses"].split("@")[0]: s for s in steps(wf) if "uses" in s}
    restore, save = uses["actions/cache/restore"], uses["actions/cache/save"]
    code = next(s for s in build["steps"] if s.get("id") == "code")  # the code's hash, taken once before the build
    assert "runs-${PROFILE}-" in code["run"] and all(f"'{g}'" in code["run"] for g in ("src/**", "book/**"))
    for cache in (restore["with"], save["with"]):
        assert {"runs", "data/generated"} <= set(cache["path"].split())
        assert cache["key"].startswith("${{ steps.code.outputs.key }}-")
    # a cold build may outlast one job: the build step stops first, the store is saved whatever happened, under a key
    # of its own (a cache key is written once), and the next build restores the newest one and resumes
    assert save["with"]["key"] == restore["with"]["key"]
    assert "${{ github.run_id }}-${{ github.run_attempt }}" in save["with"]["key"]
    # the newest store of any code: each build saves what it restored plus what it trained, so the newest holds the
    # most runs (a prefix of the same code would pick an older, smaller store after a revert)
    assert restore["with"]["restore-keys"].strip().splitlines() == ["runs-${{ env.PROFILE }}-"]
    assert save["if"] == "always()"
    # a cancelled job has about 5 minutes for its always() steps: main's long builds are never cancelled by a push
    assert wf["concurrency"]["cancel-in-progress"] == "${{ github.event_name == 'pull_request' }}"
    assert any("cron" in entry for entry in wf["on"]["schedule"])  # the cache is used at least weekly (7-day eviction)
    order = [s.get("name", "") for s in build["steps"]]
    book_step = next(s for s in build["steps"] if "python -m detpretrain book" in s.get("run", ""))
    assert order.index(code["name"]) < order.index(restore["name"]) < order.index(book_step["name"]) \
        < order.index(save["name"])
    prune = next(s for s in build["steps"] if "runs prune" in s.get("run", ""))
    assert prune["run"] == 'python -m detpretrain runs prune --profile "$PROFILE" --store runs'
    assert prune["if"] == "always()" and order.index(book_step["name"]) < order.index(prune["name"]) \
        < order.index(save["name"])  # the saved store holds the plan's runs only
    assert prune["continue-on-error"] is True  # a failed prune neither stops the save nor the publication
    assert book_step["timeout-minutes"] + 30 <= build["timeout-minutes"] <= 360  # GitHub's limit for one job
    assert "python -m detpretrain runs cost" in runs
    assert uses["actions/upload-pages-artifact"]["with"]["path"] == "_build/html"
    deploy = wf["jobs"]["deploy"]
    assert deploy["needs"] == "build" and deploy["permissions"] == {"pages": "write", "id-token": "write"}
    assert [s["uses"].split("@")[0] for s in deploy["steps"]] == ["actions/deploy-pages"]
    assert "refs/heads/main" in deploy["if"]
    artifacts = {s["with"]["name"]: s["with"]["path"] for s in steps(wf)
                 if s.get("uses", "").startswith("actions/upload-artifact")}
    assert set(artifacts) == set(rerun.ARTIFACTS.values())  # the names the Re-run chapter gives
    assert artifacts[rerun.ARTIFACTS["executed notebooks"]] == "book/*.ipynb"  # where book.py writes them
    assert artifacts[rerun.ARTIFACTS["print figures"]] == "_build/figures"
    store_artifact = next(v for k, v in rerun.ARTIFACTS.items() if k.startswith("run store"))
    assert artifacts[store_artifact] == "runs-mini.tar.gz"  # a runs export archive, as the chapter says
    assert "python -m detpretrain runs export --store runs -o runs-mini.tar.gz" in runs
    export = next(s for s in build["steps"] if "runs export" in s.get("run", ""))
    upload = next(s for s in build["steps"] if s.get("with", {}).get("path") == "runs-mini.tar.gz")
    for step in (export, upload):  # several GB kept 30 days: not for every pull-request push
        assert step["if"] == "always() && github.event_name != 'pull_request'"
    assert build["env"]["DETPRETRAIN_FIGURES"].endswith("/_build/figures")
    assert build["env"]["DETPRETRAIN_RUNS"].endswith("/runs")


def test_book_workflow_fills_the_branch_the_launch_buttons_open():
    wf = load_workflow("book.yml")
    assert wf["env"]["LAUNCH_BRANCH"] == rerun.repository().branch
    launch = wf["jobs"]["launch"]
    push = next(s for s in launch["steps"] if "git push" in s.get("run", ""))
    assert "git add --force book/*.ipynb" in push["run"]
    assert 'HEAD:refs/heads/${LAUNCH_BRANCH}' in push["run"]
    assert launch["needs"] == "build" and "refs/heads/main" in launch["if"]
    download = next(s for s in launch["steps"] if s.get("uses", "").startswith("actions/download-artifact"))
    assert download["with"] == {"name": rerun.ARTIFACTS["executed notebooks"], "path": "book"}
    # only this short job may write to the repository; the hours-long build (pull requests' code) reads only
    assert launch["permissions"] == {"contents": "write"} and wf["permissions"] == {"contents": "read"}
    build = wf["jobs"]["build"]
    assert "permissions" not in build and not any("git push" in s.get("run", "") for s in build["steps"])
    checkout = next(s for s in build["steps"] if s.get("uses", "").startswith("actions/checkout"))
    assert checkout["with"]["persist-credentials"] is False


def test_ci_workflow_runs_ci_run_on_the_claimed_python_versions():
    wf = load_workflow("ci.yml")
    job = wf["jobs"]["test"]
    assert [s["run"] for s in job["steps"] if "run" in s] == ["bash .ci/run"]
    versions = job["strategy"]["matrix"]["python-version"]
    assert versions == claimed_python_versions()
    assert f">={versions[0]}" == pyproject()["project"]["requires-python"]  # the lowest claimed one is tested


# ---------------------------------------------------------------------------------------- one repository URL


def test_every_link_derives_from_the_repository_url_in_config():
    repo = rerun.repository(PROJECT_ROOT)
    assert (repo.org, repo.name) == ("detpretrain", "detpretrain") and repo.branch
    config = yaml.safe_load((PROJECT_ROOT / "_config.yml").read_text())
    assert config["html"]["baseurl"] == repo.pages_url
    assert config["html"]["use_repository_button"] and config["html"]["use_issues_button"]
    assert config["launch_buttons"]["binderhub_url"] and config["launch_buttons"]["colab_url"]
    cff = yaml.safe_load((PROJECT_ROOT / "CITATION.cff").read_text())
    assert cff["repository-code"] == repo.url and cff["url"] == repo.pages_url
    urls = pyproject()["project"]["urls"]
    assert urls == {"Documentation": repo.pages_url, "Source": repo.url, "Issues": repo.issues_url}
    # every address of the repository, its pages or Binder in these files names the same repository
    for name in ("README.md", "CITATION.cff", "pyproject.toml", "_config.yml", "book/rerun.py"):
        text = (PROJECT_ROOT / name).read_text()
        for owner, project in re.findall(r"github\.com/([\w.-]+)/([\w.-]+)", text):
            if owner not in ("executablebooks",):
                assert (owner, project.removesuffix(".git")) == (repo.org, repo.name), f"{name}: {owner}/{project}"
        for owner, project in re.findall(r"([\w-]+)\.github\.io/([\w.-]+)", text):
            assert (owner, project) == (repo.org, repo.name), f"{name}: {owner}.github.io/{project}"
        for owner, project, branch in re.findall(r"mybinder\.org/v2/gh/([\w.-]+)/([\w.-]+)/([\w.-]+)", text):
            assert (owner, project, branch) == (repo.org, repo.name, repo.branch), name
    readme = (PROJECT_ROOT / "README.md").read_text()
    assert rerun.launch_urls(repo, "book/intro")["binder"] in readme  # the Binder badge
    assert f"]({repo.pages_url})" in readme


def test_launch_urls_are_built_like_the_theme_builds_them():
    repo = rerun.Repository(url="https://github.com/o/r", branch="b", binderhub_url="https://hub",
                            colab_url="https://colab")
    urls = rerun.launch_urls(repo, "book/detection")
    assert urls == {"binder": "https://hub/v2/gh/o/r/b?urlpath=tree/book/detection.ipynb",
                    "colab": "https://colab/github/o/r/blob/b/book/detection.ipynb",
                    "download": "../_sources/book/detection.ipynb"}
    assert repo.pages_url == "https://o.github.io/r/" and repo.issues_url == "https://github.com/o/r/issues"
    with pytest.raises(ValueError, match="not https://github.com/<org>/<name>"):
        rerun.Repository(url="", branch="main").org


# ------------------------------------------------------------------------------------------------- citations


def test_citation_cff_is_valid_and_cites_the_software_and_the_three_papers():
    result = check_jsonschema("vendor.citation-file-format", PROJECT_ROOT / "CITATION.cff")
    assert result.returncode == 0, result.stdout + result.stderr
    cff = yaml.safe_load((PROJECT_ROOT / "CITATION.cff").read_text())
    assert cff["type"] == "software" and cff["license"] == pyproject()["project"]["license"]["text"]
    assert cff["version"] == pyproject()["project"]["version"]
    from pybtex.database import parse_file

    bib = parse_file(str(PROJECT_ROOT / "references.bib")).entries
    papers = {"li2019analysis": "2019", "shinya2019understanding": "2019", "vasconcelos2022proper": "2022"}
    assert len(cff["references"]) == len(papers)
    for ref, key in zip(cff["references"], papers):
        entry = bib[key]
        assert ref["title"].lower() == re.sub(r"[{}]", "", entry.fields["title"]).lower()
        assert str(ref["year"]) == entry.fields["year"] == papers[key]
        assert [a["family-names"] for a in ref["authors"]] == [p.last_names[0] for p in entry.persons["author"]]
    assert (PROJECT_ROOT / "LICENSE").read_text().startswith("MIT License")


def cited_keys(text: str) -> set[str]:
    """Keys of the ``{cite}`` / ``{cite:p}`` / ``{cite:t}`` roles in ``text`` (comma-separated keys allowed)."""
    return {k.strip() for group in re.findall(r"\{cite(?::\w+)?\}`([^`]+)`", text) for k in group.split(",")}


def test_bibliography_holds_every_cited_work_and_every_work_is_cited():
    from pybtex.database import parse_file

    entries = set(parse_file(str(PROJECT_ROOT / "references.bib")).entries)
    required = {"li2019analysis", "shinya2019understanding", "vasconcelos2022proper", "hoiem2012diagnosing",
                "kornblith2019better", "chen2018deeplab", "he2019rethinking", "ren2015faster", "lin2017feature"}
    assert required <= entries
    cited = set()
    for entry in book.toc_files(PROJECT_ROOT):
        source = book.chapter_source(PROJECT_ROOT, entry)
        if source.suffix == ".py":
            nb = book.load_chapter(source)
            assert not any("{cite" in c.source for c in nb.cells if c.cell_type != "markdown"), source
            cited |= cited_keys("\n".join(c.source for c in nb.cells if c.cell_type == "markdown"))
    assert cited == entries, f"cited but absent: {cited - entries}; never cited: {entries - cited}"
    config = yaml.safe_load((PROJECT_ROOT / "_config.yml").read_text())
    assert config["bibtex_bibfiles"] == ["references.bib"]
    pages = [book.chapter_source(PROJECT_ROOT, e) for e in book.toc_files(PROJECT_ROOT)]
    assert sum("```{bibliography}" in p.read_text() for p in pages) == 1  # one bibliography page, in the toc


# --------------------------------------------------------------------------------------- install and Binder


def claimed_python_versions() -> list[str]:
    """The Python versions the README's Install section claims (``Python 3.11 or 3.12``)."""
    match = re.search(r"## Install\s+Python (3\.\d+) or (3\.\d+)", (PROJECT_ROOT / "README.md").read_text())
    assert match, "the README's Install section must start with the supported Python versions"
    return list(match.groups())


def test_python_version_claims_agree_and_the_lowest_is_the_one_tested_here():
    low, high = claimed_python_versions()
    assert pyproject()["project"]["requires-python"] == f">={low}"
    assert f"Programming Language :: Python :: {low}" in pyproject()["project"]["classifiers"]
    assert f"Programming Language :: Python :: {high}" in pyproject()["project"]["classifiers"]
    assert f"python={low}" in (PROJECT_ROOT / "environment.yml").read_text()
    assert (PROJECT_ROOT / "binder" / "runtime.txt").read_text().strip() == f"python-{low}"
    # tomllib (imported by these tests) exists from 3.11 on; this interpreter must satisfy the claim
    assert sys.version_info[:2] >= tuple(map(int, low.split(".")))


def test_binder_takes_cpu_torch_and_torchvision_from_one_index_at_the_pinned_pair():
    lines = [line.strip() for line in (PROJECT_ROOT / "binder" / "requirements.txt").read_text().splitlines()
             if line.strip() and not line.lstrip().startswith("#")]
    deps = pyproject()["project"]["dependencies"]
    assert f"--extra-index-url {CPU_INDEX}" in lines
    for name in ("torch", "torchvision"):
        version = pin(lines, name)
        assert version == pin(deps, name) + "+cpu", f"binder pins {name}=={version}, pyproject {pin(deps, name)}"
    post = (PROJECT_ROOT / "binder" / "postBuild").read_text()
    assert "pip install --no-cache-dir -e ." in post and "jupytext --to ipynb" in post
    assert os.access(PROJECT_ROOT / "binder" / "postBuild", os.X_OK)
    assert subprocess.run(["bash", "-n", str(PROJECT_ROOT / "binder" / "postBuild")]).returncode == 0


def test_readme_install_matrix_cpu_row_takes_both_from_the_cpu_index():
    readme = (PROJECT_ROOT / "README.md").read_text()
    install = readme[readme.index("## Install"):readme.index("## Run the main job")]
    deps = pyproject()["project"]["dependencies"]
    cpu = f"pip install torch=={pin(deps, 'torch')} torchvision=={pin(deps, 'torchvision')} --index-url {CPU_INDEX}"
    assert cpu in install, "the CPU row must install torch and torchvision in one command from the CPU index"
    for row in ("default (PyPI)", "CPU-only laptop", "conda"):
        assert f"| {row}" in install
    assert "conda env create -f environment.yml" in install and 'pip install -e ".[dev]"' in install
    chapter = (PROJECT_ROOT / "book" / "rerun.py").read_text()
    assert cpu in chapter  # the Re-run chapter gives the same command


# ----------------------------------------------------------------------------------- Re-run it yourself tables


def test_parameter_table_lists_every_notebook_chapters_declared_parameters():
    from detpretrain.parameters import rerun_table

    table = rerun.parameter_table(PROJECT_ROOT)
    notebooks = [e for e in book.toc_files(PROJECT_ROOT) if book.chapter_source(PROJECT_ROOT, e).suffix == ".py"]
    chapters = [book.chapter_name(e) for e in notebooks]
    assert list(dict.fromkeys(table["chapter"])) == chapters
    assert table.equals(rerun_table(chapters))  # the declarations, which test_parameters keeps in step with the cells
    for entry in notebooks:
        params = book.chapter_parameters(book.load_chapter(book.chapter_source(PROJECT_ROOT, entry)))
        assert list(table[table["chapter"] == book.chapter_name(entry)]["parameter"]) == list(params)
    detection = table[(table["chapter"] == "detection") & (table["parameter"] == "dataset")].iloc[0]
    assert detection["default"] == '"synthetic"' and "coco" in detection["meaning"]
    shared, per_chapter = rerun.split_parameters(table)
    assert len(shared) * len(notebooks) + len(per_chapter) == len(table)  # nothing lost
    assert {"store", "data_cache"} <= set(shared["parameter"])
    assert not set(shared["parameter"]) & set(per_chapter["parameter"])
    assert "rerun" in table["chapter"].values and "references" not in table["chapter"].values


def test_parameter_table_of_a_hand_made_book(tmp_path):
    from test_book import write_book

    write_book(tmp_path, {"intro": [], "extra": []})
    (tmp_path / "book" / "extra.py").write_text((tmp_path / "book" / "extra.py").read_text().replace(
        'data_cache = None\n', 'data_cache = None\nk = 3  # neighbours\n'))
    table = rerun.parameter_table(tmp_path)
    shared, per_chapter = rerun.split_parameters(table)
    assert list(per_chapter[per_chapter["chapter"] == "extra"]["parameter"]) == list(book.REQUIRED_PARAMETERS) + ["k"]
    assert per_chapter.iloc[-1].to_dict() == {"chapter": "extra", "parameter": "k", "accepts": "", "default": "3",
                                              "meaning": "neighbours"}  # undeclared: read from its parameters cell
    assert rerun.book_root(tmp_path / "book") == tmp_path.resolve()  # nbval runs a chapter in book/
    text = rerun.parameters_markdown(table[table["parameter"].isin(["k"])])
    assert text.splitlines() == ["| chapter | parameter | accepts | default | meaning |",
                                 "| --- | --- | --- | --- | --- |", "| extra | k |  | `3` | neighbours |"]


def test_markdown_table_escapes_what_would_split_a_cell_or_open_math():
    import pandas as pd

    frame = pd.DataFrame({"a": ["x | y", "$HOME and $PATH"], "b": [1, "two\nlines"]})
    assert results.markdown_table(frame).splitlines() == [
        "| a | b |", "| --- | --- |", "| x \\| y | 1 |", "| \\$HOME and \\$PATH | two lines |"]


def test_profile_table_names_the_downloaded_weights():
    table = rerun.profile_table().set_index("profile")
    assert list(table.index) == ["smoke", "mini", "torchvision", "paper"]
    assert table.loc["paper", "downloaded weights"] == "imagenet-cls: torchvision ResNet101_Weights.IMAGENET1K_V2"
    assert "detection: torchvision FasterRCNN_ResNet50_FPN_Weights.COCO_V1" in table.loc["torchvision",
                                                                                       "downloaded weights"]
    assert table.loc["mini", "downloaded weights"].startswith("none")


# ---------------------------------------------------------------------------------------------- results table


def _finished_run(store: RunStore, name: str, seed: int, metrics: dict, task: str = "detection",
                  epochs: int = 7, init: str | None = None) -> str:
    extra = {} if init is None else {"init": init}
    config = TrainConfig(name=name, task=task, seed=seed, optim=OptimSpec(epochs=epochs),
                         data=DataSpec(kind="synthetic", corpus={"role": "voc", "image_size": 64}), **extra)
    path = store.path_for(config)
    path.mkdir(parents=True)
    (path / "config.json").write_text(json.dumps(to_dict(config)))
    if metrics is not None:
        (path / "metrics.json").write_text(json.dumps({"task": task, **metrics}))
    return store.run_for(config).hash


def test_results_table_of_a_tiny_store(tmp_path, capsys):
    store = RunStore(tmp_path / "runs")
    ious = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]
    h0 = _finished_run(store, "finetune/detection", 0, {"iou_thresholds": ious, "mAP": [9, 8, 7, 6, 50.0, 4, 30.0, 2, 1]})
    h1 = _finished_run(store, "finetune/detection", 1, {"iou_thresholds": ious, "mAP": [9, 8, 7, 6, 54.0, 4, 34.0, 2, 1]})
    hc = _finished_run(store, "pretrain/imagenet-cls", 0, {"top1": 61.25}, task="classification")
    _finished_run(store, "finetune/scratch", 0, None)  # unfinished: left out
    table = results.results_table(store)
    assert list(table["metric"]) == ["mAP@0.5", "mAP@0.7", "top-1"]
    det = table[table["run"] == "finetune/detection"].set_index("metric")
    assert det.loc["mAP@0.5", "mean"] == pytest.approx(52.0) and det.loc["mAP@0.7", "sd"] == pytest.approx(2.828, 1e-3)
    assert det.loc["mAP@0.5", "config hashes"] == ", ".join(sorted([h0[:8], h1[:8]])) and det.loc["mAP@0.5", "runs"] == 2
    assert table.iloc[2]["sd"] != table.iloc[2]["sd"] and hc[:8] in table.iloc[2]["config hashes"]  # one run: NaN
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", table.iloc[0]["finished"])
    text = results.to_markdown(table, "runs")
    assert "| `finetune/detection` | — | synthetic voc (64 px) | 7 | mAP@0.7 | 2 | 32.0 ± 2.8 |" in text
    assert "| `pretrain/imagenet-cls` | — | synthetic voc (64 px) | 7 | top-1 | 1 | 61.2 |" in text
    # a fine-tuning of the same name that starts from another run is its own row, named by that run's arm
    _finished_run(store, "finetune/detection", 0, {"iou_thresholds": ious, "mAP": [0] * 9}, init=f"run:{hc}")
    _finished_run(store, "finetune/detection", 1, {"iou_thresholds": ious, "mAP": [0] * 9}, init="run:0123456789abcdef")
    split = results.results_table(store)
    split = split[split["run"] == "finetune/detection"].groupby("from")["runs"].max().to_dict()
    assert split == {"—": 2, "pretrain/imagenet-cls": 1, "run 01234567": 1}
    assert "setting" not in results.to_markdown(results.results_table(store), "runs")  # no two settings: no column
    # a run of another setting (train --set optim.lr=0.05) is its own row, not a third replicate of the default
    other = TrainConfig(name="finetune/detection", task="detection", seed=0, optim=OptimSpec(epochs=7, lr=0.05),
                        data=DataSpec(kind="synthetic", corpus={"role": "voc", "image_size": 64}))
    store.path_for(other).mkdir(parents=True)
    (store.path_for(other) / "config.json").write_text(json.dumps(to_dict(other)))
    (store.path_for(other) / "metrics.json").write_text(json.dumps({"task": "detection", "iou_thresholds": ious,
                                                                    "mAP": [0] * 9}))
    lr = results.results_table(store)
    lr = lr[(lr["run"] == "finetune/detection") & (lr["from"] == "—") & (lr["metric"] == "mAP@0.5")]
    assert sorted(zip(lr["setting"], lr["runs"], lr["mean"])) == [("optim.lr=0.02", 2, 52.0), ("optim.lr=0.05", 1, 0.0)]
    assert "| `finetune/detection` | — | synthetic voc (64 px) | 7 | optim.lr=0.05 | mAP@0.5 | 1 | 0.0 |" in \
        results.to_markdown(results.results_table(store), "runs")
    # the command prints it, and writes it between the README's markers
    assert cli_main(["results-table", "--store", str(store.root)]) == 0
    assert "32.0 ± 2.8" in capsys.readouterr().out
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n\n## Results\n{results.BEGIN}\nold\n{results.END}\n\n## Next\n")
    assert cli_main(["results-table", "--store", str(store.root), "--readme", str(readme)]) == 0
    written = readme.read_text()
    assert "old" not in written and "32.0 ± 2.8" in written and written.endswith(f"{results.END}\n\n## Next\n")
    readme.write_text("no markers\n")
    with pytest.raises(ValueError, match="no results section"):
        results.results_command(str(store.root), readme=str(readme))
    assert "No finished run" in results.to_markdown(results.results_table(tmp_path / "empty"), "empty")


def test_results_table_planned_keeps_the_runs_of_the_current_plan(tmp_path, capsys, monkeypatch):
    """A store keeps the runs of earlier configurations; ``--planned`` shows only those the book's plan reads."""
    import types

    store = RunStore(tmp_path / "runs")
    ious = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]
    new = _finished_run(store, "finetune/detection", 0, {"iou_thresholds": ious, "mAP": [0, 0, 0, 0, 60.0, 0, 37, 0, 0]})
    _finished_run(store, "finetune/detection", 0, {"iou_thresholds": ious, "mAP": [0, 0, 0, 0, 50.0, 0, 24, 0, 0]},
                  epochs=24)  # an earlier schedule, still in the store
    assert list(results.results_table(store)["epochs"]) == [7, 7, 24, 24]
    only = results.results_table(store, hashes={new})
    assert list(only["epochs"]) == [7, 7] and list(only["mean"]) == [60.0, 37.0]
    with pytest.raises(ConfigError, match="--planned needs --profile"):
        results.results_command(str(store.root), planned=True)
    seen = {}

    def fake_plan(profile, store=None, errors=None):
        seen["profile"] = profile
        errors["frozen_backbone"] = "DataError: no corpus"
        return types.SimpleNamespace(runs=seen.get("runs", {new: None}))

    monkeypatch.setattr("detpretrain.book.book_plan", fake_plan)
    monkeypatch.setattr(results, "primary_markdown", lambda store, profile: "primaries")
    assert cli_main(["results-table", "--store", str(store.root), "--profile", "smoke", "--planned"]) == 0
    out = capsys.readouterr().out
    assert seen["profile"] == "smoke" and "the runs of the book's plan at profile smoke" in out
    assert "60.0" in out and "50.0" not in out
    assert "not planned, so not shown: frozen_backbone (DataError: no corpus)" in out
    seen["runs"] = {}
    assert cli_main(["results-table", "--store", str(store.root), "--profile", "smoke", "--planned"]) == 0
    assert "No finished run of the book's plan at profile smoke" in capsys.readouterr().out


def test_readme_has_one_results_section_the_command_can_write():
    readme = (PROJECT_ROOT / "README.md").read_text()
    assert readme.count(results.BEGIN) == 1 and readme.count(results.END) == 1
    assert readme.index("## Results") < readme.index(results.BEGIN) < readme.index(results.END)
    assert results.replace_section(readme, "new table").count("new table") == 1


def test_results_rows_are_arms_and_the_primary_claims_come_first(tmp_path, corpus_root, capsys):
    """Replicates of one arm are one row; ``--profile`` puts every chapter's primary claim, read from the store,
    above the table ("not run in this store" where its runs are missing)."""
    from detpretrain.analysis.claims import PRIMARY_CLAIMS

    assert results.arm_name("frozen/imagenet-cls@r2/FPN/frozen") == "frozen/imagenet-cls/FPN/frozen"
    assert results.arm_name("finetune/detection@r12") == "finetune/detection"
    assert results.arm_name("finetune/a@rb") == "finetune/a@rb"  # not a replicate key
    store = RunStore(tmp_path / "runs", data_cache=corpus_root)
    ious = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]
    for r, m in enumerate((40.0, 44.0, 48.0)):
        _finished_run(store, "finetune/detection" + (f"@r{r}" if r else ""), r,
                      {"iou_thresholds": ious, "mAP": [0, 0, 0, 0, m, 0, m / 2, 0, 0]})
    _finished_run(store, "finetune/detection", 0, {"iou_thresholds": ious, "mAP": [0, 0, 0, 0, 60.0, 0, 30, 0, 0]},
                  epochs=14)  # a schedule check: its own row
    both = results.results_table(store)
    assert list(both["epochs"]) == [7, 7, 14, 14] and list(both["runs"]) == [3, 3, 1, 1]
    table = both[both["epochs"] == 7].set_index("metric")
    assert table.loc["mAP@0.5", "runs"] == 3 and table.loc["mAP@0.5", "mean"] == pytest.approx(44.0)
    assert table.loc["mAP@0.5", "sd"] == pytest.approx(4.0) and table.loc["mAP@0.5", "run"] == "finetune/detection"
    text = results.primary_markdown(store, "smoke")
    assert text.startswith("Primary claims at profile `smoke`")
    assert all(f"| {chapter} |" in text for chapter in PRIMARY_CLAIMS) and "not run in this store" in text
    assert cli_main(["results-table", "--store", str(store.root), "--profile", "smoke"]) == 0
    out = capsys.readouterr().out
    assert out.index("Primary claims") < out.index("Finished runs") and "44.0 ± 4.0" in out
