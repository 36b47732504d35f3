"""What a worker folder runs as: the process its image would start, and the packages it installs.

A Runpod worker is a container image; the local endpoint runs the folder the image is built from,
as that image would start:

1. the entry point: the template's start command (`dockerArgs`; the runpod SDK's
   `docker_start_cmd`) when set, else the Dockerfile's `ENTRYPOINT` + `CMD`, else `handler.py`.
   A command is followed through `sh -c "..."` and through shell scripts it starts, to the Python
   script (or `-m` module) it runs; container paths are mapped to the folder's files by the
   Dockerfile's `COPY`/`ADD` lines (`_dockerfile`), so `python -u /handler.py` after `ADD src .`
   runs `src/handler.py`, from the `WORKDIR`. Flags after the script are kept (`sys.argv`).
2. the packages: the Dockerfile's `pip install` commands (requirement files and local packages
   mapped the same way; index options dropped, so packages come from this machine's pip
   configuration), else the folder's `requirements.txt`, else none: the worker then runs on the
   server's own Python. `_environments` builds and caches the environment.
3. the Dockerfile's `ENV`, below the template's env. Values that are container paths become the
   folder's files where the Dockerfile copied them, and are dropped otherwise (with the variables
   that point an interpreter elsewhere: PATH, PYTHONPATH, ...), so a worker never looks for
   `/models` on this machine.

A folder where none of this leads to a Python file is refused (`WorkerFolderError`), naming what
was looked for: the local endpoint never falls back to running something else.
"""

from __future__ import annotations

import hashlib
import logging
import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from ._dockerfile import Dockerfile, DockerfileError, read_dockerfile, shell_words, split_commands

__all__ = [
    "DEFAULT_ENTRY_POINT",
    "WorkerCommand",
    "WorkerFolderError",
    "WorkerImage",
    "WorkerPackages",
    "read_worker_folder",
]

log = logging.getLogger("rp_notebook.local")

#: The origin of the last resort: handler.py in the folder, as an EndpointConfig runs by default.
DEFAULT_ENTRY_POINT = "handler.py"
_PYTHON = re.compile(r"^(?:.*/)?python(?:3(?:\.\d+)?)?$")
_SHELLS = frozenset({"sh", "bash", "dash", "/bin/sh", "/bin/bash", "/bin/dash", "/usr/bin/bash"})
_PYTHON_FLAGS_WITH_VALUE = frozenset({"-X", "-W", "-Q"})
_MAX_SCRIPT_DEPTH = 3  # sh -c -> start.sh -> python: how far a command is followed
#: Variables that would point the worker's interpreter or tools at the container's own paths.
_CONTAINER_ONLY_ENV = frozenset(
    {"PATH", "PYTHONPATH", "PYTHONHOME", "LD_LIBRARY_PATH", "LD_PRELOAD", "VIRTUAL_ENV", "HOME"}
)

# pip install options: kept with their value (paths mapped), kept alone, dropped with their value.
_PIP_PATH_OPTIONS = {
    "-r": "-r",
    "--requirement": "-r",
    "-c": "-c",
    "--constraint": "-c",
    "-e": "-e",
    "--editable": "-e",
}
_PIP_VALUE_OPTIONS = frozenset({"--only-binary", "--no-binary", "--upgrade-strategy"})
_PIP_KEPT_FLAGS = frozenset(
    {
        "--no-deps",
        "--pre",
        "-U",
        "--upgrade",
        "--force-reinstall",
        "--ignore-installed",
        "--no-build-isolation",
    }
)
#: Where packages come from, and where they go, is this machine's business (pip's configuration).
_PIP_DROPPED_WITH_VALUE = frozenset(
    {
        "-i",
        "--index-url",
        "--extra-index-url",
        "-f",
        "--find-links",
        "--trusted-host",
        "--root-user-action",
        "-t",
        "--target",
        "--prefix",
        "--root",
        "--python",
        "--progress-bar",
        "--cache-dir",
        "--src",
        "--platform",
        "--python-version",
        "--implementation",
        "--abi",
        "--index-strategy",
    }
)


_PIP_OPTIONS_WITH_VALUE = _PIP_VALUE_OPTIONS | _PIP_DROPPED_WITH_VALUE


class WorkerFolderError(ValueError):
    """The folder has no entry point the local endpoint can run; the message says what was tried."""


@dataclass(frozen=True)
class WorkerCommand:
    """The Python process a worker starts as: `python -u SCRIPT ARGS...` or `python -u -m MODULE ARGS...`."""

    script: Path | None
    module: str | None
    args: tuple[str, ...]
    cwd: Path
    origin: str  # where it was found, e.g. "the Dockerfile's CMD [...]"

    def argv(self, python: str) -> list[str]:
        target = ["-m", self.module] if self.module else [str(self.script)]
        return [python, "-u", *target, *self.args]


@dataclass(frozen=True)
class WorkerPackages:
    """What the image installs, as `pip install` argument lists with local paths resolved."""

    installs: tuple[tuple[str, ...], ...]
    origin: str  # e.g. "requirements.txt" or "the Dockerfile's pip install commands"
    skipped: tuple[str, ...] = ()  # install arguments that name nothing on this machine

    def fingerprint(self) -> str:
        """A hash of what gets installed: the install arguments, with each requirement or constraint
        file standing for its content (nested `-r`/`-c` included). Two folders with the same
        requirements share one environment; an edited file makes a new one."""
        digest = hashlib.sha256()
        for args in self.installs:
            for index, word in enumerate(args):
                if index and args[index - 1] in ("-r", "-c"):
                    word = "file:" + _file_digest(Path(word))
                digest.update(word.encode() + b"\0")
            digest.update(b"\n")
        return digest.hexdigest()


def _file_digest(path: Path, depth: int = 0) -> str:
    """The content hash of a requirements file and of the files it includes with `-r`/`-c`."""
    try:
        data = path.read_bytes()
    except OSError:
        return "missing"  # pip reports it when the environment is built
    digest = hashlib.sha256(data)
    for line in data.decode("utf-8", "replace").splitlines():
        words = line.split()
        if depth < 8 and len(words) >= 2 and _PIP_PATH_OPTIONS.get(words[0]) in ("-r", "-c"):
            digest.update(_file_digest(path.parent / words[1], depth + 1).encode())
    return digest.hexdigest()


@dataclass(frozen=True)
class WorkerImage:
    """A worker folder read as its image: the command, the packages, the image's environment."""

    folder: Path
    command: WorkerCommand
    packages: WorkerPackages | None
    env: Mapping[str, str] = field(default_factory=dict)


# ---------------------------------------------------------------------------------------- entry point


class _Resolver:
    """Finds the Python script a command runs, mapping container paths through the Dockerfile."""

    def __init__(self, folder: Path, dockerfile: Dockerfile | None) -> None:
        self.folder = folder
        self.dockerfile = dockerfile

    def local(self, container_path: str, cwd: str) -> Path | None:
        if self.dockerfile is not None:
            return self.dockerfile.local_path(container_path, cwd=cwd)
        # No Dockerfile: the folder is the container's working directory (and its root).
        candidate = self.folder / PurePosixPath(cwd, container_path).relative_to("/")
        return candidate if candidate.exists() else None

    def local_dir(self, container_dir: str) -> Path | None:
        if self.dockerfile is not None:
            return self.dockerfile.local_dir(container_dir)
        return self.folder

    def command(self, argv: Sequence[str], cwd: str, origin: str, depth: int = 0) -> WorkerCommand:
        """The Python command `argv` runs from `cwd`; WorkerFolderError says why there is none."""
        words = list(argv)
        while words and (words[0] in ("exec", "env", "/usr/bin/env") or _is_assignment(words[0])):
            words.pop(0)
        if not words:
            raise WorkerFolderError(f"{origin} is empty")
        if words[0] in _SHELLS and len(words) >= 3 and words[1] == "-c":
            return self._shell(words[2], list(words[3:]), cwd, origin, depth)
        if _PYTHON.match(words[0]):
            return self._python(words[1:], cwd, origin)
        target = self.local(words[0], cwd)
        if target is not None and target.is_file():
            head = target.read_bytes()[:128].split(b"\n", 1)[0]
            if target.suffix == ".py" or (head.startswith(b"#!") and b"python" in head):
                return self._python([words[0], *words[1:]], cwd, origin)
            is_shell_script = target.suffix == ".sh" or (head.startswith(b"#!") and b"sh" in head)
            if is_shell_script and depth < _MAX_SCRIPT_DEPTH:
                script = target.read_text(encoding="utf-8", errors="replace")
                return self._shell(script, words[1:], cwd, f"{origin} -> {words[0]}", depth + 1)
        raise WorkerFolderError(f"{origin} runs {shlex.join(words)!r}, which is not a Python script")

    def _shell(self, script: str, params: list[str], cwd: str, origin: str, depth: int) -> WorkerCommand:
        joined = re.sub(r"\\\n", " ", script)
        found: WorkerCommand | None = None
        problem = f"{origin} starts no Python script"
        for line in joined.splitlines():
            if line.strip().startswith("#"):
                continue
            line = line.replace('"$@"', " ".join(shlex.quote(p) for p in params)).replace(
                "$@", " ".join(params)
            )
            try:
                words = shell_words(line)
            except ValueError:
                continue
            for simple in split_commands(words):
                if simple[0] == "cd" and len(simple) > 1:
                    cwd = str(PurePosixPath(cwd, simple[1]))
                    continue
                try:
                    found = self.command(simple, cwd, origin, depth)
                except WorkerFolderError as exc:
                    if _PYTHON.match(simple[0].split("/")[-1]) or simple[0] == "exec":
                        problem = str(exc)
        if found is None:
            raise WorkerFolderError(problem)
        return found  # the last Python command wins: earlier ones are set-up or background services

    def _python(self, words: list[str], cwd: str, origin: str) -> WorkerCommand:
        index = 0
        module = None
        while index < len(words) and words[index].startswith("-") and words[index] != "-":
            flag = words[index]
            if flag == "-m" and index + 1 < len(words):
                module = words[index + 1]
                index += 2
                break
            if flag == "-c":
                raise WorkerFolderError(f"{origin} runs inline code (python -c), not a script file")
            index += 2 if flag in _PYTHON_FLAGS_WITH_VALUE else 1
        rest = words[index:]
        workdir = self.local_dir(cwd)
        if module is not None:
            if workdir is None:
                raise WorkerFolderError(
                    f"{origin}: its working directory {cwd} is not a folder of the worker"
                )
            return WorkerCommand(None, module, tuple(rest), workdir, origin)
        if not rest:
            raise WorkerFolderError(f"{origin} starts Python with no script")
        script = self.local(rest[0], cwd)
        if script is None or not script.is_file():
            where = " (the Dockerfile copies nothing there)" if self.dockerfile is not None else ""
            raise WorkerFolderError(
                f"{origin} runs {rest[0]}, which is not a file of the worker folder{where}"
            )
        return WorkerCommand(script, None, tuple(rest[1:]), workdir or script.parent, origin)


def _is_assignment(word: str) -> bool:
    name, sep, _ = word.partition("=")
    return bool(sep) and name.isidentifier()


def _entry_point(folder: Path, dockerfile: Dockerfile | None, start_command: str) -> WorkerCommand:
    resolver = _Resolver(folder, dockerfile)
    workdir = dockerfile.workdir if dockerfile is not None else "/"
    if start_command.strip():
        try:
            words = shlex.split(start_command)
        except ValueError as exc:
            raise WorkerFolderError(f"the template's start command {start_command!r}: {exc}") from None
        argv = dockerfile.command(tuple(words)) if dockerfile is not None else tuple(words)
        return resolver.command(argv, workdir, f"the template's start command {start_command!r}")
    tried = []
    if dockerfile is not None:
        argv = dockerfile.command()
        if argv:
            return resolver.command(argv, workdir, f"the Dockerfile's ENTRYPOINT/CMD {list(argv)}")
        tried.append("the Dockerfile (it has no CMD or ENTRYPOINT)")
    else:
        tried.append("a Dockerfile (there is none)")
    handler = folder / "handler.py"
    if handler.is_file():
        return WorkerCommand(handler, None, (), folder, DEFAULT_ENTRY_POINT)
    tried.append("handler.py (not there)")
    raise WorkerFolderError(
        f"{folder} has no entry point: looked for the template's start command (none), {', '.join(tried)}"
    )


# ---------------------------------------------------------------------------------------- packages


def _pip_install(
    args: Sequence[str], workdir: str, dockerfile: Dockerfile, skipped: list[str]
) -> tuple[str, ...] | None:
    """One Dockerfile `pip install`'s arguments for this machine, or None when nothing is left."""
    kept: list[str] = []
    words = list(args)
    while words:
        word = words.pop(0)
        option, eq, inline = word.partition("=")
        if word.startswith("-") and eq and (option in _PIP_PATH_OPTIONS or option in _PIP_OPTIONS_WITH_VALUE):
            word, words = option, [inline, *words]
        if word in _PIP_PATH_OPTIONS:
            value = words.pop(0) if words else ""
            local = None if "://" in value else dockerfile.local_path(value, cwd=workdir)
            if "://" in value:
                kept += [_PIP_PATH_OPTIONS[word], value]  # e.g. -e git+https://...
            elif local is None:
                skipped.append(f"{word} {value}")
            else:
                kept += [_PIP_PATH_OPTIONS[word], str(local)]
        elif word in _PIP_VALUE_OPTIONS:
            kept += [word, words.pop(0) if words else ""]
        elif word in _PIP_DROPPED_WITH_VALUE:
            words[:1] = []
        elif word in _PIP_KEPT_FLAGS:
            kept.append(word)
        elif word.startswith("-"):
            continue  # --no-cache-dir, --system, -q, ...: how to install, not what
        elif word == "pip":
            continue  # upgrading the installer itself: the environment's pip is this machine's
        elif word.startswith((".", "/")) or ("/" in word and "://" not in word and "@" not in word):
            local = dockerfile.local_path(word, cwd=workdir) or dockerfile.local_dir(word, cwd=workdir)
            if local is None:
                skipped.append(word)
            else:  # a local project: editable, so the environment always runs the folder's code
                kept += ["-e", str(local)] if local.is_dir() else [str(local)]
        else:
            kept.append(word)
    has_target = any(not w.startswith("-") for w in kept)
    return tuple(kept) if has_target else None


def _packages(folder: Path, dockerfile: Dockerfile | None) -> WorkerPackages | None:
    if dockerfile is not None and dockerfile.pip_installs:
        skipped: list[str] = []
        installs = [
            install
            for workdir, args in dockerfile.pip_installs
            if (install := _pip_install(args, workdir, dockerfile, skipped)) is not None
        ]
        if installs:  # the first install goes into an empty environment: nothing to upgrade there
            installs[0] = tuple(word for word in installs[0] if word not in ("-U", "--upgrade"))
            return WorkerPackages(tuple(installs), "the Dockerfile's pip install commands", tuple(skipped))
    requirements = folder / "requirements.txt"
    if requirements.is_file():
        return WorkerPackages((("-r", str(requirements)),), "requirements.txt")
    return None


def _image_env(dockerfile: Dockerfile | None) -> dict[str, str]:
    if dockerfile is None:
        return {}
    env = {}
    for name, value in dockerfile.env.items():
        # RUNPOD_* are the platform's: Runpod sets them at start, over the image's.
        if name in _CONTAINER_ONLY_ENV or name.startswith(("PIP_", "UV_", "RUNPOD_")):
            continue
        if value.startswith("/"):
            local = dockerfile.local_path(value, cwd="/")
            if local is None:
                continue  # a container path with nothing of ours behind it (e.g. HF_HOME=/models)
            value = str(local)
        env[name] = value
    return env


def read_worker_folder(folder: Path, start_command: str = "") -> WorkerImage:
    """Read `folder` as the image it is built into (see the module docstring).

    Raises WorkerFolderError when no entry point can be found or the Dockerfile cannot be read.
    """
    folder = folder.resolve()
    dockerfile = None
    if (folder / "Dockerfile").is_file():
        try:
            dockerfile = read_dockerfile(folder / "Dockerfile", folder=folder)
        except DockerfileError as exc:
            raise WorkerFolderError(str(exc)) from None
    command = _entry_point(folder, dockerfile, start_command)
    packages = _packages(folder, dockerfile)
    if packages is not None and packages.skipped:
        log.warning(
            "worker folder %s: pip install arguments that name nothing here were left out: %s",
            folder,
            ", ".join(packages.skipped),
        )
    return WorkerImage(folder, command, packages, _image_env(dockerfile))
