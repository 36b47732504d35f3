"""Print the mybinder.org launch link (and a README badge) for this clone, built from its git remote.

    python3 scripts/binder_link.py                 # or: make binder-link
    python3 scripts/binder_link.py --ref v0.1.0    # a tag, branch or commit other than the current branch

Binder builds a repository it can clone, so the link names the remote (`origin` unless --remote says
otherwise) and a ref on it: --ref, else the current branch's upstream branch, else the current branch,
else (a detached HEAD) the remote's default branch or `main`. It opens JupyterLab on the quickstart.

- github.com (https, `git@github.com:OWNER/REPO.git`, ssh://): `v2/gh/OWNER/REPO/REF`.
- gitlab.com, subgroups too: `v2/gl/GROUP%2FSUB%2FREPO/REF`.
- any other host: Binder's generic git provider, `v2/git/<escaped https clone URL>/REF`.

A trailing `.git` is dropped for GitHub and GitLab; a user name or token in an https remote never reaches
the link. Standard library only: it runs before any virtual environment exists.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlsplit

BINDER = "https://mybinder.org"
BADGE = "https://mybinder.org/badge_logo.svg"
#: What the link opens: JupyterLab on the first tutorial (binder/README.md).
URLPATH = "lab/tree/notebooks/01_quickstart.ipynb"
DEFAULT_BRANCH = "main"

#: Hosts whose ssh endpoints stand for the site itself.
GITHUB_HOSTS = {"github.com", "www.github.com", "ssh.github.com"}
GITLAB_HOSTS = {"gitlab.com", "www.gitlab.com", "altssh.gitlab.com"}
#: `user@host:path`, git's scp-like ssh form (no scheme).
SCP_LIKE = re.compile(r"^(?:[^@/]+@)?(?P<host>[^:/]+):(?P<path>(?!/).+)$")

NO_REMOTE = """\
This clone has no git remote named {remote!r}, so there is no repository for Binder to build.
Binder launches a repository it can clone from the internet: push this one to GitHub or GitLab, then
add the remote and run this again:

    git remote add {remote} https://github.com/OWNER/REPO.git
    git push -u {remote} {branch}
    make binder-link
"""


class RemoteError(ValueError):
    """The remote is not one Binder can clone."""


@dataclass(frozen=True)
class Remote:
    host: str  # lower case, no port or user
    path: str  # OWNER/REPO (GitLab: GROUP/SUBGROUP/REPO), no leading slash; `.git` kept as given

    @property
    def provider(self) -> str:
        if self.host in GITHUB_HOSTS:
            return "gh"
        if self.host in GITLAB_HOSTS:
            return "gl"
        return "git"

    @property
    def project(self) -> str:
        """The repository's path without `.git`: OWNER/REPO."""
        return self.path.removesuffix(".git")


def parse_remote(url: str) -> Remote:
    """The host and repository path of a git remote URL (https, ssh:// or scp-like `git@host:path`)."""
    url = url.strip()
    if not url:
        raise RemoteError("the remote URL is empty")
    if "://" in url:
        parts = urlsplit(url)
        if parts.scheme == "file":
            raise RemoteError(f"{url} is a folder on this machine: Binder can only build what it can clone")
        host, path = (parts.hostname or ""), parts.path
    elif match := SCP_LIKE.match(url):
        host, path = match["host"], match["path"]
    else:
        raise RemoteError(f"{url} is a folder on this machine: Binder can only build what it can clone")
    path = path.strip("/")
    if not host or "/" not in path:
        raise RemoteError(f"cannot read a host and an OWNER/REPO path from {url!r}")
    return Remote(host=host.lower(), path=path)


def binder_url(remote_url: str, ref: str, urlpath: str = URLPATH) -> str:
    """The mybinder.org launch URL for `ref` of the repository at `remote_url`."""
    if not ref:
        raise ValueError("a branch, tag or commit is needed")
    remote = parse_remote(remote_url)
    ref_part = quote(ref, safe="/")  # BinderHub takes everything after the repository as the ref
    if remote.provider == "gh":
        owner_repo = remote.project.split("/")
        if len(owner_repo) != 2:
            raise RemoteError(f"a GitHub remote is OWNER/REPO, not {remote.path!r}")
        spec = f"{quote(owner_repo[0])}/{quote(owner_repo[1])}/{ref_part}"
    elif remote.provider == "gl":
        spec = f"{quote(remote.project, safe='')}/{ref_part}"  # group%2Fsubgroup%2Frepo
    else:
        # The same path over https, with no user, token or port: what Binder can clone anonymously.
        clone_url = f"https://{remote.host}/{remote.path}"
        spec = f"{quote(clone_url, safe='')}/{ref_part}"
    link = f"{BINDER}/v2/{remote.provider}/{spec}"
    return f"{link}?urlpath={quote(urlpath, safe='/')}" if urlpath else link


def badge_markdown(url: str) -> str:
    return f"[![Binder]({BADGE})]({url})"


# ------------------------------------------------------------------------------------------ reading git
def git(*args: str, cwd: Path) -> str | None:
    """git's output, or None when the command fails (no such remote, no upstream, not a repository)."""
    try:
        done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    out = done.stdout.strip()
    return out if done.returncode == 0 and out else None


def current_ref(remote: str, cwd: Path) -> str:
    upstream = git("rev-parse", "--abbrev-ref", "--symbolic-full-name", "@{upstream}", cwd=cwd)
    if upstream and upstream.startswith(f"{remote}/"):
        return upstream.removeprefix(f"{remote}/")
    branch = git("symbolic-ref", "--quiet", "--short", "HEAD", cwd=cwd)
    if branch:
        return branch
    default = git("symbolic-ref", "--quiet", "--short", f"refs/remotes/{remote}/HEAD", cwd=cwd)
    return default.removeprefix(f"{remote}/") if default else DEFAULT_BRANCH


def main(argv: list[str] | None = None, cwd: Path | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--remote", default="origin", help="the git remote Binder clones (default: origin)")
    parser.add_argument("--ref", help="branch, tag or commit (default: the current branch)")
    parser.add_argument("--urlpath", default=URLPATH, help=f"what to open (default: {URLPATH})")
    args = parser.parse_args(argv)
    cwd = cwd or Path(__file__).resolve().parents[1]

    remote_url = git("remote", "get-url", args.remote, cwd=cwd)
    if remote_url is None:
        branch = git("symbolic-ref", "--quiet", "--short", "HEAD", cwd=cwd) or DEFAULT_BRANCH
        print(NO_REMOTE.format(remote=args.remote, branch=branch), file=sys.stderr, end="")
        return 1
    ref = args.ref or current_ref(args.remote, cwd)
    try:
        url = binder_url(remote_url, ref, args.urlpath)
    except ValueError as error:
        print(f"No Binder link for remote {args.remote!r}: {error}.", file=sys.stderr)
        return 1
    remote = parse_remote(remote_url)
    print(f"Binder launch link for {remote.host}/{remote.project} at {ref}:")
    print(url)
    print()
    print("Badge (Markdown):")
    print(badge_markdown(url))
    print()
    print(f"Binder builds what is pushed to {ref!r} on {args.remote!r}: push before you share the link.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
