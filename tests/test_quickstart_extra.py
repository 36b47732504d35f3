"""`make quickstart` installs the `quickstart` extra, and that extra stays light.

The quickstart runs one notebook on the local endpoint (scripts/notebooks.py: nbformat and nbclient start
an ipykernel); the test suite's heavy tools (torch, diffusers, JupyterLab, Playwright, moto, mypy...) belong
to `dev` alone. `make test` installs `dev`, which includes `quickstart`, so either command can come first.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[1]
HEAVY = {"torch", "diffusers", "transformers", "jupyterlab", "playwright", "moto", "mypy", "pytest", "nbval"}


def extra_names(extra: str) -> set[str]:
    """Every distribution an extra names, with the project's own extras (`rp_notebook[local]`) expanded."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    names: set[str] = set()
    for spec in project["optional-dependencies"][extra]:
        requirement = Requirement(spec)
        if canonicalize_name(requirement.name) == canonicalize_name(project["name"]):
            for inner in requirement.extras:
                names |= extra_names(inner)
        else:
            names.add(canonicalize_name(requirement.name))
    return names


def test_the_quickstart_extra_has_what_running_a_notebook_needs_and_nothing_heavy():
    quickstart = extra_names("quickstart")
    assert extra_names("local") <= quickstart
    assert {"nbformat", "nbclient", "ipykernel"} <= quickstart
    assert not quickstart & HEAVY
    assert quickstart <= extra_names("dev")
    assert extra_names("dev") >= HEAVY


def test_make_quickstart_installs_the_quickstart_extra_and_make_test_the_dev_extra():
    makefile = (REPO / "Makefile").read_text()
    rules = dict(re.findall(r"^(\S+):[^\n]*\n((?:\t[^\n]*\n)+)", makefile, flags=re.MULTILINE))
    assert "-e '.[quickstart]'" in rules["$(QUICKSTART_STAMP)"]
    assert "-e '.[dev]'" in rules["$(STAMP)"]
    assert re.search(r"^quickstart: \$\(QUICKSTART_STAMP\)$", makefile, flags=re.MULTILINE)
    assert re.search(r"^test: \$\(STAMP\)$", makefile, flags=re.MULTILINE)
