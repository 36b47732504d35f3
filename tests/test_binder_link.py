"""scripts/binder_link.py (`make binder-link`): the mybinder.org link built from the clone's own git remote.

The URL building is a pure function, checked for each form a GitHub or GitLab remote takes; the script
itself runs against throwaway git repositories: with no remote (a message saying how to add one), and
with one (the link for the current branch, or the remote's default branch from a detached HEAD).
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("binder_link", REPO / "scripts" / "binder_link.py")
assert _spec and _spec.loader
binder_link = importlib.util.module_from_spec(_spec)
sys.modules["binder_link"] = binder_link  # dataclasses look the module up by name
_spec.loader.exec_module(binder_link)

QUICKSTART = "?urlpath=lab/tree/notebooks/01_quickstart.ipynb"
GH = "https://mybinder.org/v2/gh/acme/rp_notebook/main" + QUICKSTART
GL = "https://mybinder.org/v2/gl/lab-group%2Fml%2Frp_notebook/main" + QUICKSTART


@pytest.mark.parametrize(
    "remote",
    [
        "https://github.com/acme/rp_notebook",
        "https://github.com/acme/rp_notebook.git",
        "https://github.com/acme/rp_notebook/",
        "http://github.com/acme/rp_notebook.git",
        "https://GitHub.com/acme/rp_notebook.git",
        "git@github.com:acme/rp_notebook.git",
        "git@github.com:acme/rp_notebook",
        "ssh://git@github.com/acme/rp_notebook.git",
        "ssh://git@ssh.github.com:443/acme/rp_notebook.git",
        "git://github.com/acme/rp_notebook.git",
        "  https://github.com/acme/rp_notebook.git\n",  # as `git remote get-url` prints it
    ],
)
def test_github_remotes_in_every_form_give_the_same_link(remote):
    assert binder_link.binder_url(remote, "main") == GH


@pytest.mark.parametrize(
    "remote",
    [
        "https://gitlab.com/lab-group/ml/rp_notebook.git",
        "https://gitlab.com/lab-group/ml/rp_notebook",
        "git@gitlab.com:lab-group/ml/rp_notebook.git",
        "ssh://git@gitlab.com/lab-group/ml/rp_notebook.git",
        "ssh://git@altssh.gitlab.com:443/lab-group/ml/rp_notebook.git",
    ],
)
def test_gitlab_remotes_escape_the_whole_namespace_subgroups_included(remote):
    assert binder_link.binder_url(remote, "main") == GL


def test_a_token_in_an_https_remote_never_reaches_the_link():
    url = binder_link.binder_url("https://me:ghp_SECRET123@github.com/acme/rp_notebook.git", "main")
    assert url == GH
    other = binder_link.binder_url("https://me:SECRET123@git.example.org:8443/acme/rp_notebook.git", "main")
    assert "SECRET" not in other and "me%3A" not in other and "8443" not in other


def test_other_hosts_use_binders_generic_git_provider_with_the_https_clone_url():
    expected = (
        "https://mybinder.org/v2/git/https%3A%2F%2Fcodeberg.org%2Facme%2Frp_notebook.git/main" + QUICKSTART
    )
    assert binder_link.binder_url("https://codeberg.org/acme/rp_notebook.git", "main") == expected
    assert binder_link.binder_url("git@codeberg.org:acme/rp_notebook.git", "main") == expected


def test_the_ref_and_the_urlpath():
    assert binder_link.binder_url("git@github.com:acme/rp_notebook.git", "feature/binder-link") == (
        "https://mybinder.org/v2/gh/acme/rp_notebook/feature/binder-link" + QUICKSTART
    )
    assert binder_link.binder_url("git@github.com:acme/rp_notebook.git", "v0.1.0", urlpath="lab") == (
        "https://mybinder.org/v2/gh/acme/rp_notebook/v0.1.0?urlpath=lab"
    )
    assert binder_link.binder_url("git@github.com:acme/rp_notebook.git", "main", urlpath="") == (
        "https://mybinder.org/v2/gh/acme/rp_notebook/main"
    )
    with pytest.raises(ValueError, match="branch, tag or commit"):
        binder_link.binder_url("git@github.com:acme/rp_notebook.git", "")


@pytest.mark.parametrize(
    "remote",
    [
        "/srv/git/rp_notebook.git",
        "../rp_notebook",
        "file:///srv/git/rp_notebook.git",
        "",
        "https://github.com/acme",
    ],
)
def test_remotes_binder_cannot_clone_are_refused_with_the_reason(remote):
    with pytest.raises(binder_link.RemoteError):
        binder_link.binder_url(remote, "main")


def test_the_badge_is_markdown_around_the_link():
    assert binder_link.badge_markdown(GH) == f"[![Binder](https://mybinder.org/badge_logo.svg)]({GH})"


# ------------------------------------------------------------------------------------- the script itself
def git(repo: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.org", *args],
        cwd=repo,
        check=True,
        capture_output=True,
    )


@pytest.fixture
def clone(tmp_path: Path) -> Path:
    repo = tmp_path / "clone"
    repo.mkdir()
    git(repo, "init", "--quiet")
    git(repo, "checkout", "--quiet", "-b", "trunk")
    return repo


def test_with_no_remote_it_says_how_to_add_one_and_fails(clone, capsys):
    assert binder_link.main([], cwd=clone) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert "no git remote named 'origin'" in err
    assert "git remote add origin https://github.com/OWNER/REPO.git" in err
    assert "git push -u origin trunk" in err
    assert "make binder-link" in err


def test_it_prints_the_link_and_badge_for_the_current_branch(clone, capsys):
    git(clone, "remote", "add", "origin", "git@github.com:acme/rp_notebook.git")
    assert binder_link.main([], cwd=clone) == 0
    out = capsys.readouterr().out
    url = "https://mybinder.org/v2/gh/acme/rp_notebook/trunk" + QUICKSTART
    assert out.splitlines()[1] == url
    assert f"[![Binder](https://mybinder.org/badge_logo.svg)]({url})" in out

    assert binder_link.main(["--ref", "v0.1.0"], cwd=clone) == 0
    assert "/rp_notebook/v0.1.0?" in capsys.readouterr().out


def test_an_upstream_under_another_name_and_a_detached_head(clone, capsys):
    git(clone, "remote", "add", "origin", "https://gitlab.com/lab-group/ml/rp_notebook.git")
    git(clone, "commit", "--quiet", "--allow-empty", "-m", "first")
    for branch in ("release", "main"):
        git(clone, "update-ref", f"refs/remotes/origin/{branch}", "HEAD")
    git(clone, "branch", "--quiet", "--set-upstream-to=origin/release", "trunk")
    assert binder_link.main([], cwd=clone) == 0
    assert "/v2/gl/lab-group%2Fml%2Frp_notebook/release?" in capsys.readouterr().out

    git(clone, "symbolic-ref", "refs/remotes/origin/HEAD", "refs/remotes/origin/main")
    git(clone, "checkout", "--quiet", "--detach")
    assert binder_link.main([], cwd=clone) == 0
    assert "/v2/gl/lab-group%2Fml%2Frp_notebook/main?" in capsys.readouterr().out
