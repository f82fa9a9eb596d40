"""pyproject.toml and environment.yml describe the same environment."""

import re
import tomllib

from conftest import PROJECT_ROOT


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~ \[;]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


def _pyproject():
    data = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())
    reqs = data["project"]["dependencies"] + data["project"]["optional-dependencies"]["dev"]
    return {_name(r): r.replace(" ", "") for r in reqs}


def _environment():
    pip_lines, in_pip = [], False
    for line in (PROJECT_ROOT / "environment.yml").read_text().splitlines():
        stripped = line.strip()
        if stripped.startswith("- pip:"):
            in_pip = True
            continue
        if in_pip and stripped.startswith("- ") and not stripped.startswith("- -e"):
            pip_lines.append(stripped[2:])
    return {_name(r): r.replace(" ", "") for r in pip_lines}


def test_same_packages_and_pins():
    py, env = _pyproject(), _environment()
    assert set(py) == set(env), f"only in pyproject: {set(py) - set(env)}; only in environment.yml: {set(env) - set(py)}"
    assert py == env


def test_torch_torchvision_pinned_as_a_matching_pair():
    py = _pyproject()
    torch_v = re.search(r"==(\d+)\.(\d+)", py["torch"]).groups()
    vision_v = re.search(r"==0\.(\d+)", py["torchvision"]).groups()
    # torchvision 0.(N+15) pairs with torch 2.N (0.26 <-> 2.11)
    assert int(vision_v[0]) == int(torch_v[1]) + 15
